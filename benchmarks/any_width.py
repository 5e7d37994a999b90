"""Train once, ship at any width: slimmable training against the INN, over data sets and seeds.

For each data set, model and seed, a model is trained (cached), then measured at 75/50/35/25/
15/10% of its MACs, every row after BatchNorm recalibration on 20 training batches:

- L1 + recal: anywidth L1 pruning (global ranking), no training;
- control: the same + the tuning steps on BatchNorm γ/β only (weights frozen), distilled
  from the full model;
- INN + partition tuning: the converted INN, its partition tuned for the budget (weights
  frozen), no weight training;
- slimmable: channels sorted by L1, trained with random widths (sandwich rule, in-place
  distillation), each width keeps the first channels;
- INN trained: the same loop and epochs on the INN, resampled at the budget;
- INN trained + partition tuning for the budget.

The two trained methods get the same epochs, learning rate and width draws; their training
wall time (steps only) is reported. Widths never seen in training: a plan at 25% MACs with
global allocation (groups at different ratios) and the uniform ratio 0.25, below the
smallest trained width (0.3). Per-seed results are cached as JSON under runs/bench/any_width,
so an interrupted run resumes and the table can be written from the seeds done.

Run: .venv/bin/python benchmarks/any_width.py [--data digits fashion-mnist]
    [--models resnet20] [--seeds 0 1 2] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from _common import CACHE, trained, write_table
from integral_pruning import control
from torch import nn

from anywidth.graph import PlanError
from anywidth.integral import IntegralConfig, to_integral
from anywidth.integral.training import _discrete_pace_hooks
from anywidth.integral.tuning import TuneConfig, tune_partition
from anywidth.measure import evaluate
from anywidth.models import create_model
from anywidth.pruning import PruneConfig, prune, recalibrate_bn
from anywidth.slim import WidthTrainConfig, to_slimmable, train_any_width
from anywidth.train import TrainConfig
from anywidth.train.width import width_random_loss

BUDGETS = (0.75, 0.5, 0.35, 0.25, 0.15, 0.10)
UNSEEN = ("25% global", "ratio 0.25")
OUT = CACHE / "any_width"
# Fixed subsets and epochs per data set: (data options, base epochs, width-random epochs).
RECIPES = {
    "digits": ({}, 15, 6),
    "fashion-mnist": ({"limit": 3000, "test_limit": 2000}, 4, 3),
}


def accuracy(small, loaders) -> float:
    """Test accuracy (%) after BatchNorm recalibration on 20 training batches."""
    fixed = recalibrate_bn(small, loaders.train, batches=20)
    return 100 * evaluate(fixed, loaders.test)["accuracy"]


def plans(wide, unseen: bool = False):
    """``{column: plan}`` for every budget (and, with ``unseen``, every unseen width)."""
    out = {f"{b:.0%}": wide.width_plan(target_macs=b) for b in BUDGETS}
    if unseen:
        out[UNSEEN[0]] = wide.width_plan(target_macs=0.25, allocation="global")
        out[UNSEEN[1]] = wide.width_plan(0.25)
    return out


def untrained_rows(model, x, loaders, steps: int) -> dict[str, dict[str, float]]:
    """L1 + recal, the γ/β control and the INN + partition tuning, per budget."""
    rows = {"L1 + recal": {}, f"control: L1 + recal + BN γ/β {steps} steps": {}}
    inn_row = rows[f"INN + partition tuning {steps} steps"] = {}
    inn = to_integral(model, x, IntegralConfig())
    for column, plan in plans(inn).items():
        tuned = tune_partition(inn, plan, loaders.train, TuneConfig(steps=steps))
        inn_row[column] = accuracy(tuned.resample(plan), loaders)
    for budget in BUDGETS:
        column = f"{budget:.0%}"
        try:
            small, _ = prune(model, x, PruneConfig(target_macs=budget))
        except PlanError:
            continue
        rows["L1 + recal"][column] = accuracy(small, loaders)
        fixed = control(model, small, loaders, steps)
        rows[f"control: L1 + recal + BN γ/β {steps} steps"][column] = accuracy(fixed, loaders)
    return rows


def trained_rows(model, x, loaders, method: str, epochs: int, seed: int, steps: int):
    """The width-random trained model's rows (and the INN's + tuning rows), and its seconds."""
    config = TrainConfig(epochs=epochs, lr=0.02, weight_decay=5e-4, seed=seed)
    width = WidthTrainConfig(method=method, min_ratio=0.3, seed=seed)
    wide, result = train_any_width(model, x, loaders, config, width)
    seconds = sum(h["seconds"] for h in result.history)
    wide.eval()
    name = "slimmable" if method == "slice" else "INN trained"
    rows = {f"{name} {epochs} ep.": {}}
    tuned_row = rows[f"INN trained {epochs} ep. + partition tuning {steps}"] = {}
    for column, plan in plans(wide, unseen=True).items():
        rows[f"{name} {epochs} ep."][column] = accuracy(wide.resample(plan), loaders)
        if method == "integral" and column not in UNSEEN:
            tuned = tune_partition(wide, plan, loaders.train, TuneConfig(steps=steps))
            tuned_row[column] = accuracy(tuned.resample(plan), loaders)
    if method == "slice":
        del rows[f"INN trained {epochs} ep. + partition tuning {steps}"]
    return rows, seconds


def run_seed(data: str, name: str, seed: int, steps: int) -> dict:
    """Every row for one data set, model and seed (cached as JSON)."""
    path = OUT / f"{data}-{name}-s{seed}-t{steps}.json"
    if path.exists():
        return json.loads(path.read_text())
    options, base_epochs, epochs = RECIPES[data]
    torch.manual_seed(seed)
    model, loaders = trained(name, epochs=base_epochs, seed=seed, data=data, **options)
    x = next(iter(loaders.test))[0][:1]
    rows = {"full model": {"100%": 100 * evaluate(model, loaders.test)["accuracy"]}}
    rows.update(untrained_rows(model, x, loaders, steps))
    seconds = {}
    for method in ("slice", "integral"):
        more, seconds[method] = trained_rows(model, x, loaders, method, epochs, seed, steps)
        rows.update(more)
    macs = {f"{b:.0%}": b for b in BUDGETS}
    record = {"rows": rows, "seconds": seconds, "macs": macs, "epochs": epochs}
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return record


def summary(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def table_rows(data: str, name: str, records: list[dict]) -> list[list[object]]:
    """One row per method: mean ± std over seeds at every column, and training seconds."""
    columns = ["100%", *(f"{b:.0%}" for b in BUDGETS), *UNSEEN]
    out = []
    for method in records[0]["rows"]:
        cells = [summary([r["rows"][method][c] for r in records if c in r["rows"][method]])
                 for c in columns]  # fmt: skip
        kind = "slice" if method.startswith("slimmable") else "integral"
        trained_method = method.startswith(("slimmable", "INN trained"))
        secs = summary([r["seconds"][kind] for r in records]) if trained_method else ""
        out.append([data, name, len(records), method, *cells, secs])
    return out


def step_seconds(name: str, repeats: int = 12) -> list[list[object]]:
    """CPU seconds of one width-random step (loss + backward) per method, interleaved.

    The methods alternate step by step in one process, so load from other processes on a
    shared machine hits both alike; the median of the last ``repeats - 2`` steps is kept.
    """
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_channels=1).eval()
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    wides = {"slice": to_slimmable(model, x[:1]), "integral": to_integral(model, x[:1])}
    hooks = _discrete_pace_hooks(wides["integral"])
    times: dict[str, list[float]] = {"plain (one full-width step)": [], **{k: [] for k in wides}}
    for _ in range(repeats):
        for method, wide in wides.items():
            loss_fn = width_random_loss(wide.train(), WidthTrainConfig(method=method))
            began = time.process_time()
            loss_fn(wide, x, y)[0].backward()
            times[method].append(time.process_time() - began)
        began = time.process_time()
        nn.functional.cross_entropy(model.train()(x), y).backward()
        times["plain (one full-width step)"].append(time.process_time() - began)
    for hook in hooks:
        hook.remove()
    medians = {k: statistics.median(v[2:]) for k, v in times.items()}
    return [[name, k, f"{v:.3f}", f"{v / medians['slice']:.2f}"] for k, v in medians.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--models", nargs="+", default=["resnet20"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=50, help="tuning steps (both kinds)")
    parser.add_argument("--table-only", action="store_true", help="tabulate cached seeds only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for data in args.data:
        for name in args.models:
            records = []
            for seed in args.seeds:
                path = OUT / f"{data}-{name}-s{seed}-t{args.steps}.json"
                if args.table_only and not path.exists():
                    continue
                records.append(run_seed(data, name, seed, args.steps))
            if records:
                rows += table_rows(data, name, records)
    headers = ["data", "model", "seeds", "method", "full", *(f"{b:.0%}" for b in BUDGETS)]
    headers += [f"{u} (unseen)" for u in UNSEEN] + ["train s"]
    print(write_table("any_width", headers, rows, NOTES).read_text())
    steps = [r for name in args.models for r in step_seconds(name)]
    headers = ["model", "method", "CPU s per step (batch 64, 28×28)", "× slimmable"]
    print(write_table("any_width_step_time", headers, steps, STEP_NOTES).read_text())


NOTES = """Test accuracy % after BatchNorm recalibration, mean ± std over seeds (each seed
trains its own model). Columns are MAC budgets (uniform allocation), then widths the
trained methods never saw. "train s": seconds of width-random training steps."""


STEP_NOTES = """One width-random step = full width + smallest width + one random width (shared
ratio), forward and backward; the INN's includes sampling every tensor and its backward."""


if __name__ == "__main__":
    main()
