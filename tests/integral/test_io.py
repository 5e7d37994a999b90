"""save_integral / load_integral: exact round trips without re-running the conversion."""

from __future__ import annotations

import pytest
import torch

from anywidth.graph import channel_groups, cut, keep_first
from anywidth.integral import (
    IntegralConfig,
    IntegralModel,
    load_integral,
    save_integral,
    to_integral,
)
from anywidth.integral import _order as order_module
from anywidth.record import ModelRecord, get_record, set_record_
from anywidth.train import CheckpointError, load_model, read_checkpoint, save_checkpoint
from tests.integral._helpers import input_for, random_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _converted(name: str, config: IntegralConfig, **kwargs) -> tuple[IntegralModel, torch.Tensor]:
    model, x = random_model(name, **kwargs), input_for(name)
    inn = to_integral(model, x[:1], config, model_name=name, model_kwargs=kwargs).eval()
    with torch.no_grad():  # make the saved state differ from a fresh conversion
        for p in inn.grid_parameters():
            p.mul_(torch.rand_like(p) + 0.5)
        inn.lam.get_parameter("fc.weight").add_(0.1)
    return inn, x


def _no_ordering(*_, **__):
    raise AssertionError("loading must not run the channel ordering")


@pytest.mark.parametrize(
    "name, config",
    [
        ("tiny_rexnet", IntegralConfig(partition="trainable")),
        ("tiny_concat", IntegralConfig(rule="simpson", nodes=0.5, partition="trainable")),
        ("resnet20", IntegralConfig(rule="rectangle", fixed=["layer3.*"])),
    ],
    ids=["tiny_rexnet-trainable", "tiny_concat-fewer-nodes", "resnet20-fixed"],
)
def test_round_trip_restores_the_model_exactly(name, config, tmp_path, monkeypatch):
    inn, x = _converted(name, config)
    plan = {g.name: max(1, g.size // 2) for g in inn.resizable[:3]}
    inn.set_sizes_(plan)
    path = save_integral(inn, tmp_path / "inn.safetensors", metrics={"note": 1})
    monkeypatch.setattr(order_module, "channel_order", _no_ordering)
    loaded = load_integral(path)
    assert not loaded.training
    assert loaded.sizes == inn.sizes and loaded.nodes == inn.nodes
    assert loaded.permutation == inn.permutation and loaded.config == inn.config
    assert loaded.model_name == name
    for key, value in inn.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with torch.no_grad():
        assert torch.equal(loaded(x), inn(x))
        loaded.set_sizes_(None)
        inn.set_sizes_(None)
        assert torch.equal(loaded(x), inn(x))


def test_load_model_also_returns_the_integral_model(tmp_path):
    inn, x = _converted("tiny_convnet", IntegralConfig(), num_classes=4)
    path = save_integral(inn, tmp_path / "inn.safetensors")
    model, meta = load_model(path)
    assert isinstance(model, IntegralModel) and meta["model"]["kwargs"] == {"num_classes": 4}
    with torch.no_grad():
        assert torch.equal(model(x), inn(x))


def test_double_precision_round_trip(tmp_path):
    model, x = random_model("tiny_resnet").double(), input_for("tiny_resnet", dtype=torch.float64)
    inn = to_integral(model, x[:1], model_name="tiny_resnet").eval()
    loaded = load_integral(save_integral(inn, tmp_path / "inn.safetensors"))
    with torch.no_grad():
        assert torch.equal(loaded(x), inn(x))
    assert loaded.resample(0.5).stem[0].weight.dtype == torch.float64


def test_a_zoo_model_records_its_name_without_being_told(tmp_path):
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    path = save_integral(to_integral(model, x[:1]).eval(), tmp_path / "inn.safetensors")
    loaded = load_integral(path)  # rebuilt from the record create_model wrote
    assert loaded.model_name == "tiny_convnet"


def test_a_model_without_zoo_name_needs_the_model_passed(tmp_path, caplog):
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    set_record_(model, ModelRecord())  # as if built outside the zoo
    inn = to_integral(model, x[:1]).eval()
    with caplog.at_level("WARNING", logger="anywidth"):
        path = save_integral(inn, tmp_path / "inn.safetensors")
    assert "load_integral(path, model=" in caplog.text  # the warning names the right reader
    assert "load_model cannot" not in caplog.text
    with pytest.raises(CheckpointError, match="records no zoo model name"):
        load_integral(path)
    fresh = random_model("tiny_convnet", seed=5)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    loaded = load_integral(path, model=fresh)
    with torch.no_grad():
        assert torch.equal(loaded(x), inn(x))
    assert all(torch.equal(v, before[k]) for k, v in fresh.state_dict().items())


def test_plain_checkpoints_and_wrong_architectures_are_rejected(tmp_path):
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    plain = save_checkpoint(tmp_path / "plain.safetensors", model, model_name="tiny_convnet")
    with pytest.raises(CheckpointError, match="not an integral model"):
        load_integral(plain)
    inn = to_integral(model, x[:1]).eval()
    path = save_integral(inn, tmp_path / "inn.safetensors")
    with pytest.raises(CheckpointError, match="channel groups differ"):
        load_integral(path, model=random_model("tiny_resnet"))


def test_the_general_checkpoint_path_saves_and_loads_an_inn(tmp_path):
    inn, x = _converted("tiny_convnet", IntegralConfig(partition="trainable"), num_classes=4)
    inn.set_sizes_(0.5)
    path = save_checkpoint(tmp_path / "inn.safetensors", inn, metrics={"note": 1})
    meta = read_checkpoint(path).meta
    step = meta["extra"]["steps"][-1]
    assert step["kind"] == "integral" and step["sizes"] == inn.sizes
    assert "integral" not in meta["extra"]  # one record: the steps
    assert meta["model"] == {"name": "tiny_convnet", "kwargs": {"num_classes": 4}}
    loaded, _ = load_model(path)
    assert isinstance(loaded, IntegralModel) and loaded.sizes == inn.sizes
    with torch.no_grad():
        assert torch.equal(loaded(x), inn(x))
    assert get_record(loaded).steps[-1] == get_record(inn).steps[-1]


def test_an_inn_of_a_cut_model_replays_the_cut_first(tmp_path):
    model, x = random_model("tiny_convnet"), input_for("tiny_convnet")
    groups = channel_groups(model, x[:1])
    small = cut(model, x[:1], keep_first(groups, {groups[0].name: 3}))
    inn = to_integral(small, x[:1]).eval()
    assert [s["kind"] for s in get_record(inn).steps] == ["cut", "integral"]
    loaded, _ = load_model(save_checkpoint(tmp_path / "inn.safetensors", inn))
    with torch.no_grad():
        assert torch.equal(loaded(x), inn(x))


def test_files_written_before_inns_had_a_record_still_load(tmp_path, monkeypatch):
    inn, x = _converted("tiny_convnet", IntegralConfig())
    step = get_record(inn).steps[-1]
    old = {k: v for k, v in step.items() if k not in ("kind", "method", "inputs")}
    old |= {"input_shape": list(x[:1].shape), "input_dtype": "float32"}
    with monkeypatch.context() as patch:  # as written then: the INN carried no record
        patch.setattr(IntegralModel, "anywidth_record", None)
        path = save_checkpoint(
            tmp_path / "old.safetensors", inn, model_name="tiny_convnet", extra={"integral": old}
        )
    assert "steps" not in read_checkpoint(path).meta["extra"]
    loaded = load_integral(path)
    assert loaded.model_name == "tiny_convnet"
    with torch.no_grad():
        assert torch.equal(loaded(x), inn(x))
