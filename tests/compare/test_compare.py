"""`compare` on a tiny trained checkpoint and synthetic data: every method end to end, the
table, plot and HTML it writes, the cache a rerun reads, the best model per budget, and
clear errors for bad input."""

from __future__ import annotations

import base64
import csv
import json
import re
from html.parser import HTMLParser

import pytest
import torch

import anywidth
from anywidth.compare import METHODS, CompareConfig, compare, subject_of, write_report
from anywidth.compression.pipeline import DataOptions, open_checkpoint
from anywidth.data import make_loaders
from anywidth.measure import count_macs
from anywidth.train import TrainConfig, load_model, train_

DATA = {"num_samples": 192, "image_shape": (3, 8, 8), "num_classes": 4, "signal": 2.0}
FAST = {"tune_steps": 2, "slim_epochs": 1, "search_epochs": 1}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    loaders = make_loaders("synthetic", batch_size=64, **DATA)
    kwargs = {"num_classes": 4, "in_channels": 3}
    model = anywidth.create_model("tiny_resnet", **kwargs)
    folder = tmp_path_factory.mktemp("trained")
    record = {"data": {"name": "synthetic", "seed": 0, "options": DATA}}
    train_(model, loaders, TrainConfig(epochs=3, lr=0.05), checkpoint_dir=folder,
           model_name="tiny_resnet", model_kwargs=kwargs, checkpoint_extra=record)  # fmt: skip
    return folder / "last.safetensors"


@pytest.fixture(scope="module")
def every_method(checkpoint, tmp_path_factory):
    """Every method at one MAC budget (the slow part, run once for the tests below)."""
    out = tmp_path_factory.mktemp("compare")
    source = open_checkpoint(checkpoint)
    result = compare(subject_of(source), CompareConfig(macs=(0.5,), **FAST), out)
    return result, out, write_report(result, out, "tiny_resnet on synthetic")


def test_every_method_runs_to_the_budget_and_is_scored(every_method):
    result, _, _ = every_method
    assert [r.method for r in result.rows] == list(METHODS)
    ran = [r for r in result.rows if r.ok]
    assert {r.method for r in ran} >= {"prune-l1", "prune-taylor", "inn", "slim", "svd", "alds"}
    for row in ran:
        assert 0.0 <= row.val <= 1.0 and 0.0 <= row.test <= 1.0
        assert row.latency_ms > 0 and row.speedup > 0 and row.seconds > 0
        # the table shows the full model's time beside each result's: the speed-up is theirs
        assert row.speedup == pytest.approx(row.full_latency_ms / row.latency_ms)
        assert row.params < result.full.params
        if row.met_budget:
            assert abs(row.mac_ratio - 0.5) <= 0.02 * 0.5
    # slimmable training and the INN conversion are the one-off preparations
    assert {r.method for r in ran if r.prep_seconds > 0} == {"inn", "slim"}
    assert result.full.val > 0.5  # the trained model learnt the templates


def test_the_best_model_per_budget_is_a_checkpoint_of_what_the_table_says(every_method):
    result, out, _ = every_method
    [best] = result.best_rows()
    assert best.val == max(r.val for r in result.rows if r.ok and r.met_budget)
    model, meta = load_model(result.best["macs 50%"])
    assert meta["extra"]["compare"]["method"] == best.method
    assert count_macs(model, torch.zeros(1, 3, 8, 8)) == best.macs
    source = open_checkpoint(result.best["macs 50%"], DataOptions(batch_size=64))
    assert source.scorer(model, source.loaders.val) == pytest.approx(best.val)


def test_table_plot_and_html_name_every_method_and_embed_the_plot(every_method):
    result, _, paths = every_method
    with open(paths["csv"]) as f:
        table = list(csv.DictReader(f))
    assert [r["method"] for r in table] == ["full", *METHODS]
    markdown = paths["markdown"].read_text()
    png = paths["png"].read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    page = paths["html"].read_text()
    parser = HTMLParser()
    parser.feed(page)  # the page parses
    parser.close()
    for name in METHODS:
        assert name in markdown and f"<td>{name}</td>" in page
    assert base64.b64encode(png).decode() in page  # the plot is embedded, not linked
    assert page.count("<tr>") == 1 + 1 + len(METHODS)


def test_a_rerun_reads_the_cache_and_a_new_setting_runs_again(checkpoint, every_method):
    result, out, _ = every_method
    source = open_checkpoint(checkpoint)
    config = CompareConfig(macs=(0.5,), methods=("prune-l1",), **FAST)
    cached = out / "cache" / "prune-l1-macs0.5.json"
    before = cached.stat().st_mtime_ns
    again = compare(subject_of(source), config, out)
    assert cached.stat().st_mtime_ns == before  # read back, not run again
    assert again.rows[0] == next(r for r in result.rows if r.method == "prune-l1")
    changed = CompareConfig(macs=(0.5,), methods=("prune-l1",), tune_steps=3, slim_epochs=1)
    compare(subject_of(source), changed, out)
    assert json.loads(cached.read_text())["stamp"]["settings"]["tune_steps"] == 3


def test_a_budget_a_method_cannot_meet_gives_a_row_that_says_why(checkpoint, tmp_path):
    source = open_checkpoint(checkpoint)
    config = CompareConfig(macs=(), latency=(0.5,), methods=("tas",), **FAST)
    [row] = compare(subject_of(source), config, tmp_path).rows
    assert row.status == "skipped" and "latency" in row.note and row.val is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"methods": ("prune-l2",)}, "unknown method 'prune-l2' (did you mean 'prune-l1'?)"),
        ({"methods": ("svd", "svd")}, "name one method twice"),
        ({"methods": ()}, "no method given"),
        ({"macs": (1.5,)}, "each budget is a fraction of the full model in (0, 1)"),
        ({"macs": (0.5, 0.5)}, "repeats a budget"),
        ({"macs": ()}, "needs a budget"),
        ({"tune_steps": -1}, "tune_steps=-1 must be an int >= 0"),
        ({"runtime": "tvm"}, "LatencyConfig.runtime='tvm'"),
    ],
    ids=[
        "unknown-method",
        "repeated-method",
        "no-method",
        "budget-above-1",
        "repeated-budget",
        "no-budget",
        "negative-steps",
        "unknown-runtime",
    ],  # fmt: skip
)
def test_bad_settings_are_refused_with_a_message(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        CompareConfig(**kwargs)
