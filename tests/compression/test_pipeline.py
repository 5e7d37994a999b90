"""The checkpoint path: load with the recorded data, compress, score, save; the saved model
reloads and scores what the pipeline reported."""

from __future__ import annotations

import pytest
import torch

import anywidth
from anywidth import Budget
from anywidth.compression.pipeline import (
    DataOptions,
    compress_checkpoint,
    compress_source,
    open_checkpoint,
    recorded_data,
    save_compressed,
)
from anywidth.lowrank import LowRankConfig
from anywidth.measure import count_macs
from anywidth.pruning import PruneConfig
from anywidth.train import load_model, read_checkpoint, save_checkpoint
from tests.integral._helpers import randomize_

FAST = DataOptions(batch_size=256)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_(anywidth.create_model("tiny_resnet", num_classes=10, in_channels=1))
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    return save_checkpoint(path, model, extra={"data": {"name": "digits", "seed": 3}})


def test_compress_checkpoint_saves_what_it_reports(checkpoint, tmp_path):
    out = tmp_path / "small.safetensors"
    result = compress_checkpoint(checkpoint, PruneConfig(budget=Budget(macs=0.5)), out, FAST)
    assert result.report.method == "prune" and result.report.met_budget
    small, meta = load_model(out)
    x = torch.zeros(1, 1, 8, 8)
    assert meta["metrics"]["macs"] == count_macs(small, x) == result.report.after.macs
    source = open_checkpoint(out, FAST)
    assert source.score(small) == meta["metrics"]["test_accuracy"] == result.after
    assert result.before == open_checkpoint(checkpoint, FAST).score(load_model(checkpoint)[0])
    # the data record goes with the model: the recorded seed, not the options' default
    assert meta["extra"]["data"] == {
        "name": "digits", "root": None, "image_size": None, "seed": 3, "options": {},
    }  # fmt: skip
    assert meta["extra"]["compress"]["method"] == "prune"
    assert [s["kind"] for s in meta["extra"]["steps"]] == ["cut"]


def test_without_recalibration_batchnorm_keeps_the_methods_statistics(checkpoint):
    source = open_checkpoint(checkpoint, FAST)
    config = LowRankConfig(budget=Budget(params=0.6), calibration_batches=0)
    plain = compress_source(source, config, recalibrate=False)
    fixed = compress_source(source, config)
    assert not any("recalibrated" in step for step in plain.report.done)
    assert "recalibrated BatchNorm on up to 20 batches" in fixed.report.done
    assert "weight SVD" in plain.report.done[0]  # calibration_batches=0: weights only
    stem = source.model.stem[1].running_mean
    assert torch.equal(plain.model.stem[1].running_mean, stem)
    assert not torch.equal(fixed.model.stem[1].running_mean, stem)


def test_onnx_output_and_the_method_record(checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    source = open_checkpoint(checkpoint, FAST)
    result = compress_source(source, PruneConfig(budget=Budget(macs=0.5)))
    path = save_compressed(tmp_path / "small.onnx", result, source)
    assert path.stat().st_size > 1000
    saved = save_compressed(tmp_path / "s.safetensors", result, source, {"prune": {"a": 1}})
    assert read_checkpoint(saved).meta["extra"]["prune"] == {"a": 1}


def test_data_options_pick_the_recorded_data_unless_named():
    meta = {"metrics": {"data": {"name": "sr-skimage", "seed": 2, "options": {"scale": 3}}}}
    assert recorded_data(meta)["name"] == "sr-skimage"  # an INN file keeps it in metrics
    recorded = DataOptions(batch_size=8).record(meta)
    assert (recorded["name"], recorded["seed"], recorded["options"]) == ("sr-skimage", 2,
                                                                        {"scale": 3})  # fmt: skip
    named = DataOptions(name="digits", seed=5).record(meta)
    assert (named["name"], named["seed"], named["options"]) == ("digits", 5, {})
    assert DataOptions().record({})["name"] == "digits"
