import json
import os

import pytest
import safetensors.torch
import torch
from torch import nn

from anywidth.models import create_model
from anywidth.train import (
    CheckpointError,
    TrainConfig,
    load_model,
    read_checkpoint,
    register_structure_hook,
    save_checkpoint,
)
from tests.train._tiny import MODEL_NAME

KWARGS = {"num_classes": 10, "in_channels": 1, "width": 4}


def _trained_model() -> nn.Module:
    """A tiny model with non-default BN statistics and weights."""
    model = create_model(MODEL_NAME, **KWARGS)
    model.train()
    model(torch.randn(16, 1, 8, 8))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model


def _optimizer_with_state(model: nn.Module) -> torch.optim.Optimizer:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    optimizer.step()
    return optimizer


def test_round_trip_model_and_metadata(tmp_path):
    model = _trained_model()
    config = TrainConfig(epochs=3)
    path = save_checkpoint(
        tmp_path / "sub" / "ckpt.safetensors",
        model,
        model_name=MODEL_NAME,
        model_kwargs=KWARGS,
        metrics={"val_accuracy": 0.5, "as_tensor": torch.tensor(0.25)},
        epoch=3,
        config=config,
        extra={"note": [1, 2]},
    )
    loaded, meta = load_model(path)
    assert not loaded.training
    original = model.state_dict()
    assert set(loaded.state_dict()) == set(original)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, original[key]), key
    assert meta["model"] == {"name": MODEL_NAME, "kwargs": KWARGS}
    assert meta["metrics"] == {"val_accuracy": 0.5, "as_tensor": 0.25}
    assert meta["epoch"] == 3 and meta["extra"] == {"note": [1, 2]}
    assert TrainConfig.from_dict(meta["config"]) == config
    assert meta["format_version"] == 1
    assert not list(tmp_path.glob("sub/.*partial*"))  # nothing left of the atomic write


def test_file_is_plain_safetensors_with_prefixed_tensors(tmp_path):
    model = _trained_model()
    optimizer = _optimizer_with_state(model)
    path = save_checkpoint(
        tmp_path / "c.safetensors", model, model_name=MODEL_NAME, optimizer=optimizer
    )
    tensors = safetensors.torch.load_file(path)
    assert tensors["model.0.weight"].shape == (4, 1, 3, 3)
    assert torch.equal(tensors["optimizer.state.0.momentum_buffer"], optimizer.state[
        next(iter(model.parameters()))
    ]["momentum_buffer"])  # fmt: skip
    assert tensors["rng.torch"].dtype == torch.uint8
    meta = read_checkpoint(path).meta
    assert meta["optimizer"]["type"] == "SGD"
    assert meta["optimizer"]["param_groups"][0]["momentum"] == 0.9


def test_tied_weights_are_saved(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    model[1].weight = model[0].weight
    path = save_checkpoint(tmp_path / "tied.safetensors", model, model_name="none")
    state = read_checkpoint(path).model_state()
    assert torch.equal(state["0.weight"], state["1.weight"])


def _write_good(path):
    return save_checkpoint(path, _trained_model(), model_name=MODEL_NAME, model_kwargs=KWARGS)


def _truncated(path):
    data = _write_good(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random_bytes(path):
    path.write_bytes(os.urandom(4096))


def _tiny_file(path):
    path.write_bytes(b"abc")


def _no_anywidth_meta(path):
    safetensors.torch.save_file({"w": torch.zeros(2)}, path, metadata={"other": "x"})


def _meta_not_json(path):
    safetensors.torch.save_file({"w": torch.zeros(2)}, path, metadata={"anywidth": "{nope"})


def _meta_without_model(path):
    doc = json.dumps({"format_version": 1})
    safetensors.torch.save_file({"w": torch.zeros(2)}, path, metadata={"anywidth": doc})


def _corrupt_header(path):
    data = bytearray(_write_good(path).read_bytes())
    data[8:12] = b"\xff\xfe\x00{"
    path.write_bytes(bytes(data))


def _shape_mismatch(path):
    wider = create_model(MODEL_NAME, **{**KWARGS, "width": 6})
    save_checkpoint(path, wider, model_name=MODEL_NAME, model_kwargs=KWARGS)  # claims width 4


def _missing_keys(path):
    save_checkpoint(path, nn.Linear(2, 2), model_name=MODEL_NAME, model_kwargs=KWARGS)


def _unknown_model(path):
    save_checkpoint(path, _trained_model(), model_name="no_such_net_xyz", model_kwargs={})


def _bad_kwargs(path):
    save_checkpoint(path, _trained_model(), model_name=MODEL_NAME, model_kwargs={"depth": 3})


BAD_FILES = {
    "missing": (lambda path: None, "no such checkpoint file"),
    "truncated": (_truncated, "truncated"),
    "random_bytes": (_random_bytes, "not a safetensors file"),
    "too_short": (_tiny_file, "too short"),
    "corrupt_header": (_corrupt_header, "corrupt safetensors header"),
    "no_anywidth_metadata": (_no_anywidth_meta, "not an anywidth checkpoint"),
    "metadata_not_json": (_meta_not_json, "not JSON"),
    "metadata_without_model": (_meta_without_model, "lacks 'format_version' or 'model'"),
    "shape_mismatch": (_shape_mismatch, r"shape mismatches \[0.weight: checkpoint \(6, 1, 3, 3\)"),
    "missing_keys": (_missing_keys, "missing keys"),
    "unknown_model": (_unknown_model, "'no_such_net_xyz' is not in the zoo"),
    "bad_kwargs": (_bad_kwargs, "cannot rebuild model"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_checkpoint_raises_checkpoint_error_naming_the_file(tmp_path, case):
    make, message = BAD_FILES[case]
    path = tmp_path / f"bad_{case}.safetensors"
    make(path)
    with pytest.raises(CheckpointError, match=message) as info:
        load_model(path)
    assert path.name in str(info.value)
    assert isinstance(info.value, ValueError)
    assert info.value.__cause__ is None  # no torch/safetensors trace chained on


def test_unserialisable_metadata_is_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(CheckpointError, match="x.safetensors.*JSON-serialisable"):
        save_checkpoint(path, _trained_model(), model_name=MODEL_NAME, extra={"f": object()})
    assert not path.exists()


def _rebuild_with_width(model, meta, state):
    kwargs = {**meta["model"]["kwargs"], "width": meta["extra"]["_test_width"]}
    return create_model(MODEL_NAME, **kwargs)


def test_structure_hook_rebuilds_before_loading(tmp_path):
    register_structure_hook("_test_width", _rebuild_with_width)
    register_structure_hook("_test_width", _rebuild_with_width)  # same function: fine
    narrow = create_model(MODEL_NAME, **{**KWARGS, "width": 2})
    path = save_checkpoint(
        tmp_path / "narrow.safetensors",
        narrow,
        model_name=MODEL_NAME,
        model_kwargs=KWARGS,  # the zoo width is 4; the hook makes it 2
        extra={"_test_width": 2},
    )
    loaded, _ = load_model(path)
    assert loaded[0].weight.shape == (2, 1, 3, 3)
    assert torch.equal(loaded[0].weight, narrow[0].weight)
    with pytest.raises(ValueError, match="already registered"):
        register_structure_hook("_test_width", lambda m, meta, s: m)


def test_failing_structure_hook_is_reported(tmp_path):
    def broken(model, meta, state):
        raise RuntimeError("widths do not add up")

    register_structure_hook("_test_broken", broken)
    path = save_checkpoint(
        tmp_path / "b.safetensors", _trained_model(), model_name=MODEL_NAME,
        model_kwargs=KWARGS, extra={"_test_broken": True},
    )  # fmt: skip
    with pytest.raises(CheckpointError, match="b.safetensors.*'_test_broken' failed: widths"):
        load_model(path)


def test_a_zoo_model_saves_and_loads_without_naming_itself(tmp_path):
    model = create_model(MODEL_NAME, width=4)
    path = save_checkpoint(tmp_path / "m.safetensors", model)
    loaded, meta = load_model(path)
    assert meta["model"] == {"name": MODEL_NAME, "kwargs": {"width": 4}}
    assert "steps" not in meta["extra"]  # nothing was done to it
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(loaded(x), model.eval()(x))


def test_a_model_without_a_zoo_name_warns_on_save_and_fails_clearly_on_load(tmp_path, caplog):
    model = nn.Sequential(nn.Linear(3, 2))
    with caplog.at_level("WARNING", logger="anywidth.train.checkpoint"):
        path = save_checkpoint(tmp_path / "plain.safetensors", model)
    assert "Sequential was not built by anywidth.create_model" in caplog.text
    with pytest.raises(CheckpointError, match="records no zoo model name.*model_state"):
        load_model(path)


def test_load_model_starts_from_a_given_model_without_changing_it(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2))
    path = save_checkpoint(tmp_path / "plain.safetensors", model)
    fresh = nn.Sequential(nn.Linear(3, 2))
    before = fresh[0].weight.clone()
    loaded, _ = load_model(path, model=fresh)
    assert loaded is not fresh and torch.equal(fresh[0].weight, before)
    assert torch.equal(loaded[0].weight, model[0].weight) and not loaded.training
    with pytest.raises(CheckpointError, match="size mismatch|shape"):
        load_model(path, model=nn.Sequential(nn.Linear(3, 5)))


def test_a_cut_model_reloads_by_replaying_every_step(tmp_path):
    from anywidth.graph import Cutter, channel_groups, keep_first

    model = create_model(MODEL_NAME, width=4)
    x = torch.randn(1, 1, 8, 8)
    first = channel_groups(model, x)[1].name
    once = Cutter(model, x)(keep_first(channel_groups(model, x), {first: 3}))
    twice = Cutter(once, x)(keep_first(channel_groups(once, x), {first: 2}), method="again")
    loaded, meta = load_model(save_checkpoint(tmp_path / "twice.safetensors", twice))
    assert [s["method"] for s in meta["extra"]["steps"]] == ["cut", "again"]
    assert loaded[0].out_channels == 2
    torch.testing.assert_close(loaded(x), twice.eval()(x))
