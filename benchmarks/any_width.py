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
from _common import CACHE, kept_rows, trained, write_table
from integral_pruning import control
from torch import nn

from anywidth.graph import PlanError
from anywidth.integral import IntegralConfig, load_integral, save_integral, to_integral
from anywidth.integral.training import _discrete_pace_hooks
from anywidth.integral.tuning import TuneConfig, tune_partition
from anywidth.measure import evaluate
from anywidth.models import create_model
from anywidth.pruning import PruneConfig, prune, recalibrate_bn
from anywidth.slim import WidthTrainConfig, to_slimmable, train_any_width
from anywidth.train import TrainConfig, load_model, save_checkpoint
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


class Record:
    """One seed's results, saved as JSON after every number so a stopped run resumes."""

    def __init__(self, path) -> None:
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {"rows": {}, "seconds": {}}

    def has(self, method: str, column: str) -> bool:
        return column in self.data["rows"].get(method, {})

    def put(self, method: str, column: str, value: float) -> None:
        self.data["rows"].setdefault(method, {})[column] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=1))


def measure(record: Record, method: str, columns: dict, make) -> None:
    """``record`` ``method`` at every column not measured yet: ``make(plan)`` -> model."""
    for column, plan in columns.items():
        if not record.has(method, column):
            record.put(method, column, accuracy(make(plan), loaders_of[0]))


def pruning_rows(record: Record, model, x, loaders, steps: int) -> None:
    """L1 + recal and the γ/β control, per budget."""
    for budget in BUDGETS:
        column = f"{budget:.0%}"
        if record.has(f"control: L1 + recal + BN γ/β {steps} steps", column):
            continue
        try:
            small, _ = prune(model, x, PruneConfig(target_macs=budget))
        except PlanError:
            continue
        record.put("L1 + recal", column, accuracy(small, loaders))
        fixed = control(model, small, loaders, steps)
        record.put(f"control: L1 + recal + BN γ/β {steps} steps", column, accuracy(fixed, loaders))


def trained_wide(record: Record, model, x, loaders, method: str, epochs: int, seed: int):
    """The width-random trained model (saved beside the record, reloaded on a rerun)."""
    path = record.path.with_suffix(f".{method}.safetensors")
    if path.exists():
        if method == "integral":
            return load_integral(path).eval()
        return to_slimmable(load_model(path)[0].eval(), x, sort=False).eval()
    config = TrainConfig(epochs=epochs, lr=0.02, weight_decay=5e-4, seed=seed)
    # The "INN trained" rows run without the narrow pace (p = 0), as their committed seeds
    # did; the paced rows come from any_width_variant.py --variant pace.
    width = WidthTrainConfig(method=method, min_ratio=0.3, narrow_pace=0.0, seed=seed)
    wide, result = train_any_width(model, x, loaders, config, width)
    record.data["seconds"][method] = sum(h["seconds"] for h in result.history)
    if method == "integral":
        save_integral(wide, path)
    else:
        save_checkpoint(path, wide.model)
    return wide.eval()


def merged(path) -> dict:
    """A seed's record with the rows of ``<stem>.extra.json`` (extra variants run apart)."""
    data = Record(path).data
    extra = path.with_suffix(".extra.json")
    if extra.exists():
        more = Record(extra).data
        data["rows"].update(more["rows"])
        data["seconds"].update(more["seconds"])
    return data


def run_seed(data: str, name: str, seed: int, steps: int) -> dict:
    """Every row for one data set, model and seed; the headline rows first."""
    record = Record(OUT / f"{data}-{name}-s{seed}-t{steps}.json")
    options, base_epochs, epochs = RECIPES[data]
    torch.manual_seed(seed)
    model, loaders = trained(name, epochs=base_epochs, seed=seed, data=data, **options)
    loaders_of[:] = [loaders]
    x = next(iter(loaders.test))[0][:1]
    measure(record, "full model", {"100%": None}, lambda _: model)
    for method, label in (("slice", "slimmable"), ("integral", "INN trained")):
        wide = trained_wide(record, model, x, loaders, method, epochs, seed)
        measure(record, f"{label} {epochs} ep.", plans(wide, unseen=True), wide.resample)
    pruning_rows(record, model, x, loaders, steps)
    inn = to_integral(model, x, IntegralConfig())
    measure(record, f"INN + partition tuning {steps} steps", plans(inn),
            lambda plan: tuned(inn, plan, loaders, steps))  # fmt: skip
    measure(record, f"INN trained {epochs} ep. + partition tuning {steps}", plans(wide),
            lambda plan: tuned(wide, plan, loaders, steps))  # fmt: skip
    return record.data


def tuned(inn, plan, loaders, steps: int):
    return tune_partition(inn, plan, loaders.train, TuneConfig(steps=steps)).resample(plan)


loaders_of: list = []  # the current seed's loaders, for `measure`


def summary(values: list[float], seeds: int = 0) -> str:
    """Mean ± std (one value as it is); ``[n]`` when fewer than ``seeds`` values exist."""
    if not values:
        return "—"
    text = f"{values[0]:.1f}"
    if len(values) > 1:
        text = f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"
    return text + (f" [{len(values)}]" if len(values) < seeds else "")


def table_rows(data: str, name: str, records: list[dict]) -> list[list[object]]:
    """One row per method: mean ± std over seeds at every column, and training seconds."""
    columns = ["100%", *(f"{b:.0%}" for b in BUDGETS), *UNSEEN]
    out = []
    methods = list(dict.fromkeys(m for r in records for m in r["rows"]))
    for method in methods:
        cells = [summary([r["rows"][method][c] for r in records
                          if c in r["rows"].get(method, {})], len(records))
                 for c in columns]  # fmt: skip
        kind = "slice" if method.startswith("slimmable") else "integral"
        kind = "integral-nodes0.5" if "nodes 0.5" in method else kind
        kind = "integral-pace" if "+ narrow pace" in method else kind
        kind = "integral-pace1" if "+ narrow pace 1 " in method else kind
        kind = "integral-no-pace" if "no narrow pace" in method else kind
        trained_method = method.startswith(("slimmable", "INN trained", "INN nodes"))
        secs = [r["seconds"][kind] for r in records if kind in r["seconds"]]
        secs = summary(secs) if trained_method else ""
        out.append([data, name, len(records), method, *cells, secs])
    return out


def step_seconds(name: str, side: int, repeats: int = 12) -> list[list[object]]:
    """CPU seconds of one width-random step (loss + backward) per method, interleaved.

    The methods alternate step by step in one process, so load from other processes on a
    shared machine hits both alike; the median of the last ``repeats - 2`` steps is kept.
    """
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_channels=1).eval()
    x, y = torch.randn(64, 1, side, side), torch.randint(0, 10, (64,))
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
    size = f"{side}×{side}"
    return [[name, size, k, f"{v:.3f}", f"{v / medians['slice']:.2f}"] for k, v in medians.items()]


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
                if args.table_only:
                    if path.exists() or path.with_suffix(".extra.json").exists():
                        records.append(merged(path))
                    continue
                records.append(run_seed(data, name, seed, args.steps))
            if records:
                rows += table_rows(data, name, records)
    headers = ["data", "model", "seeds", "method", "full", *(f"{b:.0%}" for b in BUDGETS)]
    headers += [f"{u} (unseen)" for u in UNSEEN] + ["train s"]
    rows = kept_rows("any_width", rows, key=(0, 1, 3)) + rows
    order = ["resnet20", "resnet56", "mobilenetv2"]
    rows.sort(key=lambda r: (list(RECIPES).index(r[0]), order.index(r[1]) if r[1] in order else 9))
    print(write_table("any_width", headers, rows, NOTES).read_text())
    if args.table_only:
        return
    steps = [r for name in args.models for side in (8, 28) for r in step_seconds(name, side)]
    steps = kept_rows("any_width_step_time", steps, key=(0,)) + steps
    headers = ["model", "input", "method", "CPU s per step (batch 64)", "× slimmable"]
    print(write_table("any_width_step_time", headers, steps, STEP_NOTES).read_text())


NOTES = """Test accuracy % after BatchNorm recalibration, mean ± std over seeds (each seed
trains its own model). Columns are MAC budgets (uniform allocation), then widths the
trained methods never saw. "train s": seconds of width-random training steps."""


STEP_NOTES = """One width-random step = full width + smallest width + one random width (shared
ratio), forward and backward; the INN's includes sampling every tensor and its backward,
a cost independent of the input size: it shows on 8×8 digits, not on 28×28 images."""


if __name__ == "__main__":
    main()
