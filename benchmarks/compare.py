"""Which method, from the reference models: every method at 50/25/10% of the MACs, with and
without one fine-tune epoch, three seeds of the compression step, and the automatic pick.

For each committed reference model (benchmarks/reference.py), each post-compression budget
(the default 100 tuning steps, or 1 fine-tune epoch; TAS distils for that epoch) and each
seed (data order, tuning draws, conversion, search: `CompareConfig.seed`), `anywidth.compare`
runs every method at every budget; `Auto(Budget(macs=...))` through `anywidth.compress`
picks one for the same budget and seed. The table gives test accuracy mean ± std over the
seeds (val in the cached rows), MACs, the measured speed-up (torch, batch 1, 1 thread, side
by side with the full model), seconds, and for the automatic pick its picks and its time
against running every method. Every method × budget × seed is cached under
runs/bench-compare: an interrupted run resumes.

Run (the lead; hours on CPU):
    .venv/bin/python benchmarks/compare.py                       # all reference models
    .venv/bin/python benchmarks/compare.py --models resnet20-digits --finetune 0
Check on a tiny setting (after reference.py --check; prints, writes no results table):
    .venv/bin/python benchmarks/compare.py --check
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import write_table

from anywidth import Budget, compress
from anywidth.compare import METHODS, Auto, CompareConfig, compare, subject_of
from anywidth.compression.pipeline import DataOptions, open_checkpoint
from anywidth.measure import evaluate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = ["resnet20-fashion-mnist", "resnet56-fashion-mnist", "mobilenetv2-fashion-mnist",
          "resnet20-digits"]  # fmt: skip
BUDGETS = (0.5, 0.25, 0.1)
CHECK = {"tune_steps": 5, "slim_epochs": 1, "search_epochs": 1}
FULL = {"tune_steps": 100, "slim_epochs": 5, "search_epochs": 5}


def _auto(source, budget: float, seed: int, finetune: int, steps: int, path: Path) -> dict:
    """The automatic pick at one budget and seed (cached as JSON)."""
    if path.exists():
        return json.loads(path.read_text())
    config = Auto(Budget(macs=budget), tune_steps=steps if not finetune else 0,
                  finetune_epochs=finetune, seed=seed)  # fmt: skip
    start = time.perf_counter()
    small, report = compress(source.model, source.example, config, source.loaders)
    record = {"method": report.details.chosen, "seconds": time.perf_counter() - start,
              "val": evaluate(small, source.loaders.val)["accuracy"],
              "test": evaluate(small, source.loaders.test)["accuracy"],
              "mac_ratio": report.mac_ratio, "done": report.done}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    mean = 100 * statistics.mean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f}"


def _method_rows(stem, after, name, results) -> tuple[list[list[object]], float]:
    """Each method's row at budget ``name`` over the seeds, and the mean seconds of all."""
    rows, total = [], 0.0
    for method in METHODS:
        same = [r for res in results for r in res.rows if r.method == method and r.budget == name]
        ok = [r for r in same if r.ok and r.met_budget]
        total += statistics.mean([r.seconds + r.prep_seconds for r in same]) if same else 0.0
        if not ok:
            note = same[0].note[:80] if same else ""
            rows.append([stem, after, method, name, "-", "-", "-", "-", note])
            continue
        rows.append([stem, after, method, name, _spread([r.test for r in ok]),
                     f"{100 * statistics.mean(r.mac_ratio for r in ok):.1f}",
                     f"{statistics.mean(r.speedup for r in ok):.2f}",
                     f"{statistics.mean(r.seconds + r.prep_seconds for r in ok):.0f}",
                     f"{len(ok)} seeds"])  # fmt: skip
    return rows, total


def _auto_row(stem, after, name, picks, total) -> list[object]:
    seconds = statistics.mean(a["seconds"] for a in picks)
    chosen = ", ".join(a["method"] for a in picks)
    return [stem, after, "auto", name, _spread([a["test"] for a in picks]),
            f"{100 * statistics.mean(a['mac_ratio'] for a in picks):.1f}", "-",
            f"{seconds:.0f}", f"picked {chosen}; {seconds / total:.0%} of running all"]  # fmt: skip


def run_model(stem: str, args, folder: Path) -> list[list[object]]:
    """The rows of one reference model: every post-compression budget, method and budget."""
    source = open_checkpoint(folder / f"{stem}.safetensors", DataOptions(batch_size=128))
    steps = dict(CHECK if args.check else FULL)
    rows = []
    for finetune in args.finetune:
        tune = 0 if finetune else steps["tune_steps"]
        results, autos = [], {b: [] for b in BUDGETS}
        for seed in args.seeds:
            config = CompareConfig(macs=BUDGETS, seed=seed, finetune_epochs=finetune,
                                   **dict(steps, tune_steps=tune))  # fmt: skip
            out = ROOT / "runs" / "bench-compare" / stem / f"ft{finetune}-s{seed}"
            results.append(compare(subject_of(source), config, out))
            for b in BUDGETS:
                path = out / f"auto-macs{b:g}.json"
                autos[b].append(_auto(source, b, seed, finetune, steps["tune_steps"], path))
        after = f"{finetune} fine-tune epoch" if finetune else f"{tune} tuning steps"
        full = _spread([r.full.test for r in results])
        rows.append([stem, after, "full model", "-", full, "100.0", "1.00", "-", ""])
        for b in BUDGETS:
            name = f"macs {b:.0%}"
            method_rows, total = _method_rows(stem, after, name, results)
            rows += [*method_rows, _auto_row(stem, after, name, autos[b], total)]
    return rows


NOTES = """Test accuracy %, mean ± std over the seeds of the compression step (data order,
tuning draws, conversion, search); every method was chosen among on the validation split.
"speed-up": the full model's measured latency over the result's (torch, batch 1, 1 thread,
timed side by side; ideal 1 / MACs). "s": seconds of the method at that budget, its
one-off preparation (INN conversion, slimmable training) included. "auto": Auto(budget)
through anywidth.compress (a screen of the one-shot methods with 10 tuning steps on 4
validation batches, then the best finished), with its time against running every method.
A difference smaller than the spread is a tie. Timed beside other jobs: seconds are
indicative only."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--finetune", nargs="+", type=int, default=[0, 1],
                        help="0: tuning steps; N: N fine-tune epochs")  # fmt: skip
    parser.add_argument("--check", action="store_true",
                        help="reference.py --check's models, tiny settings, one seed")  # fmt: skip
    args = parser.parse_args()
    folder = ROOT / "runs" / "reference-check" if args.check else HERE / "reference"
    if args.check:
        args.seeds = args.seeds[:1]
    rows = [row for stem in args.models for row in run_model(stem, args, folder)]
    headers = ["model", "after compression", "method", "budget", "test acc %", "MACs %",
               "speed-up", "s", "note"]  # fmt: skip
    if args.check:
        print("\n".join(" | ".join(map(str, r)) for r in rows))
        return
    print(write_table("compare", headers, rows, NOTES).read_text())


if __name__ == "__main__":
    main()
