"""TAS (searched widths and depths + distillation) against three cheaper ways to the same MACs.

For resnet20 and resnet56 trained on the bundled digits, at 50% and 25% of the MACs:

- TAS: `anywidth.search.search_shape` (``--search-epochs``), the found shape from the
  unpruned weights (`SearchResult.materialize`), BN recalibration, then ``--epochs`` of
  `distill_` from the unpruned model (T = 4, weight 0.9);
- (a) uniform: every group narrowed by the same fraction (L1-chosen channels, `prune` with
  ``ranking="local"``) to the TAS shape's MACs, then the same distillation;
- (b) L1: global L1 channel pruning (`prune`) to the same MACs, then the same number of
  epochs of plain fine-tuning (cross-entropy);
- (c) INN: the model converted to an INN, resampled to the same MACs after partition
  tuning (grids and BN γ/β, weights frozen) for as many steps as the fine-tunes take.

Every fine-tune: SGD lr ``--lr``, cosine, no warm-up, batch 64. Seeds 0, 1, 2 seed the
search (logits, Gumbel noise, data halves) and every fine-tune's data order. The search's
wall time is compared with one plain training run of the same model for the same number of
epochs, timed in the same process.

Run: .venv/bin/python benchmarks/tas.py [--models resnet20 resnet56]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch
from _common import trained, write_table

from anywidth.integral import TuneConfig, to_integral, tune_partition
from anywidth.measure import count_macs, evaluate
from anywidth.models import create_model
from anywidth.pruning import PruneConfig, prune
from anywidth.search import DistillConfig, SearchConfig, distill_, search_shape
from anywidth.train import TrainConfig, recalibrate_bn_, train_

BUDGETS = (0.5, 0.25)
SEEDS = (0, 1, 2)
METHODS = ("TAS + KD", "(a) uniform + KD", "(b) L1 + FT", "(c) INN + partition tuning")

log = logging.getLogger("tas-bench")


def mean_std(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` (sample std over seeds)."""
    vals = [scale * v for v in values]
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.{digits}f} ± {std:.{digits}f}"


def plain_seconds(name: str, loaders, epochs: int) -> float:
    """Wall time of one plain training run of a fresh ``name`` for ``epochs`` epochs."""
    kwargs = {"num_classes": loaders.num_classes, "in_channels": loaders.in_channels}
    began = time.perf_counter()
    train_(create_model(name, **kwargs), loaders, TrainConfig(epochs=epochs, lr=0.05))
    return time.perf_counter() - began


def one_seed(teacher, inn, loaders, x, budget: float, seed: int, args) -> dict[str, tuple]:
    """``{method: (MAC ratio, test accuracy)}`` plus the search's record, for one seed."""
    full = count_macs(teacher, x)
    tune = TrainConfig(epochs=args.epochs, lr=args.lr, warmup_epochs=0, seed=seed)
    kd = DistillConfig(temperature=4.0, weight=0.9)

    def score(small) -> tuple[float, float]:
        return count_macs(small, x) / full, evaluate(small, loaders.test)["accuracy"]

    search = SearchConfig(target_macs=budget, epochs=args.search_epochs, seed=seed)
    result = search_shape(teacher, x, loaders, search)
    out = {"search": result}
    small = result.materialize()
    recalibrate_bn_(small, loaders.train)
    distill_(small, teacher, loaders, tune, kd)
    out["TAS + KD"] = score(small)
    uniform, _ = prune(teacher, x, PruneConfig(target_macs=result.mac_ratio, ranking="local"))
    recalibrate_bn_(uniform, loaders.train)
    distill_(uniform, teacher, loaders, tune, kd)
    out["(a) uniform + KD"] = score(uniform)
    l1, _ = prune(teacher, x, PruneConfig(target_macs=result.mac_ratio))
    recalibrate_bn_(l1, loaders.train)
    train_(l1, loaders, tune)
    out["(b) L1 + FT"] = score(l1)
    plan = inn.width_plan(target_macs=result.mac_ratio)
    steps = args.epochs * len(loaders.train)
    tuned = tune_partition(inn, plan, loaders.train, TuneConfig(steps=steps))
    resampled = tuned.resample(plan)
    recalibrate_bn_(resampled, loaders.train)
    out["(c) INN + partition tuning"] = score(resampled)
    return out


def run_model(name: str, args) -> list[list[object]]:
    teacher, loaders = trained(name, epochs=15)
    x = next(iter(loaders.test))[0][:1]
    full_acc = evaluate(teacher, loaders.test)["accuracy"]
    plain = plain_seconds(name, loaders, args.search_epochs)
    inn = to_integral(teacher, x)
    rows = [[name, "unpruned", "—", "100.0", f"{100 * full_acc:.1f}", "—", "—", "—"]]
    for budget in BUDGETS:
        runs = []
        for seed in SEEDS:
            began = time.perf_counter()
            runs.append(one_seed(teacher, inn, loaders, x, budget, seed, args))
            log.info("%s %.0f%% seed %d: %.0fs %s", name, 100 * budget, seed,
                     time.perf_counter() - began, runs[-1])  # fmt: skip
        searches = [r["search"] for r in runs]
        in_band = sum(s.in_band for s in searches)
        seconds = [s.seconds for s in searches]
        depth = "; ".join(
            ", ".join(f"{k}/{len(run)}" for run, k in zip(s.runs, s.depths.values(), strict=True))
            for s in searches
        )
        for method in METHODS:
            macs = [r[method][0] for r in runs]
            accs = [r[method][1] for r in runs]
            extra = ["—", "—", "—"]
            if method == "TAS + KD":
                ratio = statistics.mean(seconds) / plain
                extra = [f"{in_band}/{len(SEEDS)}", f"{statistics.mean(seconds):.0f} s "
                         f"({ratio:.1f}× plain {plain:.0f} s)", depth]  # fmt: skip
            rows.append([name, method, f"{budget:.0%}", mean_std(macs), mean_std(accs), *extra])
    return rows


NOTES = """\
Digits test split ({test} images: one image is {one:.2f} points). Teacher: the zoo model
trained 15 epochs (`benchmarks/_common.trained`). "MACs %": of the unpruned model, measured
on the built model (`count_macs`), mean ± std over the seeds {seeds}; the baselines are
built to each seed's TAS MACs. "in band": seeds whose found shape lies within the target ±
the tolerance (0.05 of the original MACs). Search: {search} epochs (each a weight step and
an architecture step per pair of batches from the two halves of the training split), then
{epochs} epochs of fine-tuning (SGD lr {lr}, cosine, no warm-up) for TAS, (a) and (b);
(c) tunes its partition for the same number of steps. "search time": mean wall time of the
search against one plain training run of the same model for {search} epochs, same process,
1 thread. "depth kept": blocks kept of each run of skippable blocks, per seed.
A difference smaller than the spread (or than one test image) is a tie.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    parser.add_argument("--search-epochs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4, help="fine-tune / distill epochs")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    start = time.perf_counter()
    rows = []
    headers = ["model", "method", "target MACs", "MACs %", "test acc %", "in band",
               "search time", "depth kept"]  # fmt: skip
    for name in args.models:  # the table is rewritten after every model
        rows += run_model(name, args)
        _, loaders = trained(args.models[0], epochs=15)
        test = sum(len(y) for _, y in loaders.test)
        notes = NOTES.format(test=test, one=100 / test, seeds=", ".join(map(str, SEEDS)),
                             search=args.search_epochs, epochs=args.epochs, lr=args.lr)  # fmt: skip
        minutes = (time.perf_counter() - start) / 60
        notes += f"\nWall time of the whole run: {minutes:.1f} min.\n"
        path = write_table("tas", headers, rows, notes)
    print(path.read_text())


if __name__ == "__main__":
    main()
