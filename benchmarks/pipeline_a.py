"""INN pipeline A on classifiers: discrete vs INN trained from scratch vs INN-init, resnet20.

The seed's pipeline A asks whether a network trained as an INN is as good as the discrete
network, and whether converting a trained network ("INN-init") keeps its accuracy. Per data
set (digits; a fixed Fashion-MNIST subset) and seed:

- **discrete**: the zoo resnet20 trained with SGD (the benchmarks' shared recipe);
- **INN (scratch)**: the same architecture converted at initialisation and trained with
  random widths (full + smallest width per step, smallest = 50% channels; in-place
  distillation) for the same epochs and learning rate;
- **INN (scratch) + consistency**: the same, plus the seed's consistency objective
  ``|Net(X, P1) − Net(X, P2)|`` between the smallest and one random width (weight 1);
- **INN-init**: the trained discrete network converted (channels ordered), as converted and
  after a short width-random fine-tune (a quarter of the epochs, a tenth of the lr).

Every row: full-width test accuracy and accuracy at 50% of the MACs without fine-tuning for
that budget (discrete: L1 pruning; INNs: resampling), both after BatchNorm recalibration on
20 training batches; training wall seconds. Per-seed results are cached as JSON under
runs/bench/pipeline_a, so a run can be split over processes and resumed.

Run: .venv/bin/python benchmarks/pipeline_a.py [--data digits fashion-mnist] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from _common import CACHE, trained, write_table

from anywidth.integral import IntegralConfig, to_integral
from anywidth.integral.training import WidthTrainConfig, train_integral_
from anywidth.measure import evaluate
from anywidth.models import create_model
from anywidth.pruning import PruneConfig, prune, recalibrate_bn
from anywidth.train import TrainConfig

NAME = "resnet20"
OUT = CACHE / "pipeline_a"
# Data options and training epochs per data set (the any_width benchmark's base recipes).
RECIPES = {
    "digits": ({}, 15),
    "fashion-mnist": ({"limit": 3000, "test_limit": 2000}, 4),
}
METHODS = {
    "discrete": "discrete",
    "scratch": "INN (scratch)",
    "scratch_consistency": "INN (scratch) + consistency 1.0",
    "init": "INN-init (converted)",
    "init_ft": "INN-init + fine-tune",
}


def accuracy(small, loaders) -> float:
    """Test accuracy (%) after BatchNorm recalibration on 20 training batches."""
    fixed = recalibrate_bn(small, loaders.train, batches=20)
    return 100 * evaluate(fixed, loaders.test)["accuracy"]


def sgd(epochs: int, lr: float, seed: int) -> TrainConfig:
    """The shared recipe of `_common.trained` (warm-up only for full-length runs)."""
    warmup = 2 if epochs > 2 else 0
    return TrainConfig(epochs=epochs, lr=lr, warmup_epochs=warmup, weight_decay=5e-4, seed=seed)


def inn_row(inn, loaders) -> dict:
    return {"full": accuracy(inn.resample(None), loaders),
            "half": accuracy(inn.resample(target_macs=0.5), loaders)}  # fmt: skip


def run_seed(data: str, seed: int) -> dict:
    path = OUT / f"{data}-{NAME}-s{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    options, epochs = RECIPES[data]
    rec: dict = {"data": data, "seed": seed, "epochs": epochs}
    began = time.perf_counter()
    model, loaders = trained(NAME, epochs=epochs, seed=seed, data=data, **options)
    x = next(iter(loaders.test))[0][:1]
    half, _ = prune(model, x, PruneConfig(target_macs=0.5))
    rec["discrete"] = {"full": accuracy(model, loaders), "half": accuracy(half, loaders),
                       "seconds": time.perf_counter() - began}  # fmt: skip
    kwargs = {"num_classes": loaders.num_classes, "in_channels": loaders.in_channels}
    for key, consistency in (("scratch", 0.0), ("scratch_consistency", 1.0)):
        torch.manual_seed(seed)
        inn = to_integral(create_model(NAME, **kwargs), x, IntegralConfig(reorder=False))
        width = WidthTrainConfig(method="integral", min_ratio=0.5, random_plans=1 if consistency
                                 else 0, consistency=consistency, seed=seed)  # fmt: skip
        began = time.perf_counter()
        train_integral_(inn, loaders, sgd(epochs, 0.05, seed), width)
        rec[key] = inn_row(inn.eval(), loaders) | {"seconds": time.perf_counter() - began}
    began = time.perf_counter()
    init = to_integral(model, x, IntegralConfig())
    rec["init"] = inn_row(init, loaders) | {"seconds": time.perf_counter() - began}
    width = WidthTrainConfig(method="integral", min_ratio=0.5, random_plans=0, seed=seed)
    began = time.perf_counter()
    ft_epochs = max(1, epochs // 4)
    train_integral_(init, loaders, sgd(ft_epochs, 0.005, seed), width)
    rec["init_ft"] = inn_row(init.eval(), loaders) | {"seconds": time.perf_counter() - began}
    rec["ft_epochs"] = ft_epochs
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, indent=1))
    return rec


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}" if values else "–"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def table(records: list[dict]) -> list[list[object]]:
    rows = []
    for data in RECIPES:
        recs = [r for r in records if r["data"] == data]
        for key, label in METHODS.items():
            if not recs:
                continue
            secs = statistics.mean(r[key]["seconds"] for r in recs)
            rows.append([data, NAME, label, len(recs), mean_std([r[key]["full"] for r in recs]),
                         mean_std([r[key]["half"] for r in recs]), f"{secs:.0f}"])  # fmt: skip
    return rows


NOTES = """
Test accuracy % (BatchNorm recalibrated on 20 training batches), mean ± std over seeds; each
seed trains its own networks. Digits: 15 epochs; Fashion-MNIST: a fixed subset (3,000
training, 2,000 test images), 4 epochs. SGD lr 0.05, 2 warm-up epochs, cosine, weight decay
5e-4, batch 64, for the discrete network and both INNs from scratch (full + smallest width
per step, smallest = 50% channels, in-place distillation; the consistency row adds one
random width and the consistency term). INN-init fine-tune: a quarter of the epochs at lr
0.005. "50% MACs": no fine-tuning for that budget (discrete: L1 pruning; INNs: resampled).
"train s": wall seconds of that row's training (for INN-init: conversion, for the discrete
row: training when not cached) on a shared 2-core machine: compare roughly only.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--table-only", action="store_true", help="tabulate cached seeds only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.table_only:
        for data in args.data:
            for seed in args.seeds:
                run_seed(data, seed)
    records = [json.loads(p.read_text()) for p in sorted(OUT.glob(f"*-{NAME}-s*.json"))]
    headers = ["data", "model", "method", "seeds", "accuracy", "at 50% MACs", "train s"]
    print(write_table("pipeline_a", headers, table(records), NOTES).read_text())


if __name__ == "__main__":
    main()
