"""`anywidth compare` and `anywidth compress --method auto`: fronts over anywidth.compare."""

from __future__ import annotations

import csv

import pytest

from anywidth.cli.main import main
from anywidth.train import load_model
from tests.cli.conftest import FAST


def test_compare_writes_the_table_plot_report_and_best_models(trained_checkpoint, tmp_path):
    out = tmp_path / "compare"
    args = ["compare", str(trained_checkpoint), "--target-macs", "0.5", "0.25", "--methods",
            "prune-l1", "inn", "--tune-steps", "2", "--out", str(out)]  # fmt: skip
    assert main([*args, *FAST]) == 0
    with open(out / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["budget"]) for r in rows] == [
        ("full", "-"), ("prune-l1", "macs 50%"), ("prune-l1", "macs 25%"),
        ("inn", "macs 50%"), ("inn", "macs 25%"),
    ]  # fmt: skip
    assert (out / "pareto.png").stat().st_size > 0 and "prune-l1" in (
        out / "report.html"
    ).read_text()
    for budget in ("macs0.5", "macs0.25"):
        _, meta = load_model(out / f"best-{budget}.safetensors")
        assert meta["extra"]["compare"]["method"] in ("prune-l1", "inn")


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--methods", "prune-l3"], "unknown method 'prune-l3' (did you mean 'prune-l1'?)"),
     (["--target-macs", "0"], "each budget is a fraction of the full model in (0, 1)"),
     (["--target-macs"], "needs a budget")],
    ids=["unknown-method", "zero-budget", "no-budget"],
)  # fmt: skip
def test_compare_refuses_bad_input_before_work(args, message, trained_checkpoint, capsys):
    assert main(["compare", str(trained_checkpoint), *args]) == 2
    assert message in capsys.readouterr().err


def test_compare_names_a_missing_checkpoint(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope.safetensors")]) == 2
    assert "nope.safetensors does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("extra, screened", [([], 5), (["--train-epochs", "1"], 7)],
                         ids=["one-shot", "with-training"])  # fmt: skip
def test_compress_auto_screens_and_says_what_it_chose(extra, screened, trained_checkpoint,
                                                      tmp_path, capsys):  # fmt: skip
    out = tmp_path / "auto.safetensors"
    args = ["compress", str(trained_checkpoint), "--method", "auto", "--target-macs", "0.5",
            "--tune-steps", "2", "--out", str(out), *extra]  # fmt: skip
    assert main([*args, *FAST]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("auto: ") and "budget macs=0.5: met" in printed
    assert f"screened {screened} methods" in printed and "chose " in printed
    _, meta = load_model(out)
    assert meta["extra"]["compress"]["method"].startswith("auto: ")
