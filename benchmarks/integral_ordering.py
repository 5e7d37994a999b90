"""Channel ordering for INN conversion: anywidth's open-path solver against LKH-3.

For each size n the script builds two kinds of per-channel feature rows (d = 576, like a
64×3×3 conv slice): (a) structured rows, smooth functions of a hidden 1-D coordinate plus
noise, in random order; (b) kaiming-normal random conv weights. It times
`anywidth.integral.channel_order` (median of repeats, distance matrix included) and
compares the total variation Σ‖F[σ(i)] − F[σ(i+1)]‖₁ of its path with the identity order,
a nearest-neighbour path, and LKH-3 through `elkai` when that is importable (elkai is
non-commercial and not a dependency: `pip install elkai` only to run this comparison).
A last row times n = 512 with d = 4608 (a 512×3×3 slice), where the L1 distance matrix
dominates.

Writes benchmarks/results/integral_ordering.{md,csv}.

Run: .venv/bin/python benchmarks/integral_ordering.py
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shlex
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from anywidth.integral.ordering import channel_order, distance_matrix

try:
    import elkai
except ImportError:  # optional: LKH-3 is only a reference
    elkai = None

RESULTS = Path(__file__).parent / "results"
COLUMNS = [
    "data",
    "n",
    "d",
    "time_s",
    "distance_s",
    "lkh_time_s",
    "ours",
    "identity",
    "nearest_neighbour",
    "lkh3",
    "ours_vs_lkh_pct",
    "nn_vs_lkh_pct",
    "identity_vs_lkh_pct",
]


def structured_rows(n: int, d: int, seed: int, noise: float = 0.1) -> np.ndarray:
    """Rows that are smooth functions of a hidden coordinate t in [0, 1], plus noise."""
    rng = np.random.default_rng(seed)
    t = rng.random(n)[:, None]  # (n, 1) random, i.e. already shuffled
    rows = np.zeros((n, d))
    for k in range(1, 5):
        amplitude, phase = rng.normal(size=d), rng.uniform(0, 2 * np.pi, size=d)
        rows += amplitude * np.sin(k * np.pi * t + phase) / k
    return (rows + noise * rng.normal(size=(n, d))).astype(np.float32)  # (n, d)


def kaiming_rows(n: int, d: int, seed: int) -> np.ndarray:
    torch.manual_seed(seed)
    weight = torch.empty(n, d // 9, 3, 3)
    torch.nn.init.kaiming_normal_(weight)
    return weight.reshape(n, -1).numpy()  # (n, d)


def length(dist: np.ndarray, path: np.ndarray) -> float:
    return float(dist[path[:-1], path[1:]].sum())


def nearest_neighbour(dist: np.ndarray, start: int = 0) -> np.ndarray:
    n = dist.shape[0]
    seen = np.zeros(n, dtype=bool)
    path = [start]
    seen[start] = True
    for _ in range(n - 1):
        nxt = int(np.argmin(np.where(seen, np.inf, dist[path[-1]])))
        path.append(nxt)
        seen[nxt] = True
    return np.array(path)


def lkh3_open_path(dist: np.ndarray, runs: int) -> np.ndarray:
    """LKH-3 on a closed tour with a zero-distance dummy city, cut open at the dummy."""
    n = dist.shape[0]
    scaled = np.zeros((n + 1, n + 1), dtype=np.int64)
    scaled[:n, :n] = np.rint(dist * (1e6 / dist.max()))  # LKH wants integer weights
    tour = elkai.DistanceMatrix(scaled.tolist()).solve_tsp(runs=runs)[:-1]
    cut = tour.index(n)
    return np.array(tour[cut + 1 :] + tour[:cut])


def pct_over(value: float, reference: float | None) -> str:
    return "n/a" if reference is None else f"{100 * (value / reference - 1):.2f}"


def run_case(data: str, feats: np.ndarray, repeats: int, lkh_runs: int) -> dict[str, object]:
    n, d = feats.shape
    times, perm = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        perm = channel_order(feats)
        times.append(time.perf_counter() - start)
    dist_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        dist = distance_matrix(feats)
        dist_times.append(time.perf_counter() - start)
    ours = length(dist, perm.numpy())
    identity = length(dist, np.arange(n))
    nn = length(dist, nearest_neighbour(dist))
    lkh, lkh_time = None, None
    if elkai is not None:
        start = time.perf_counter()
        lkh = length(dist, lkh3_open_path(dist, lkh_runs))
        lkh_time = time.perf_counter() - start
    return {
        "data": data,
        "n": n,
        "d": d,
        "time_s": f"{statistics.median(times):.3f}",
        "distance_s": f"{statistics.median(dist_times):.3f}",
        "lkh_time_s": "n/a" if lkh_time is None else f"{lkh_time:.2f}",
        "ours": f"{ours:.1f}",
        "identity": f"{identity:.1f}",
        "nearest_neighbour": f"{nn:.1f}",
        "lkh3": "n/a" if lkh is None else f"{lkh:.1f}",
        "ours_vs_lkh_pct": pct_over(ours, lkh),
        "nn_vs_lkh_pct": pct_over(nn, lkh),
        "identity_vs_lkh_pct": pct_over(identity, lkh),
    }


def write_results(rows: list[dict[str, object]], header: list[str], env: dict[str, object]) -> None:
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "integral_ordering.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS + list(env))
        writer.writeheader()
        writer.writerows([{**row, **env} for row in rows])
    lines = ["# Channel ordering (open-path TSP, L1) against LKH-3", "", *header, ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(row[c]) for c in COLUMNS) + " |" for row in rows]
    lines += [
        "",
        "time_s: median wall clock of `channel_order`, distance_s of the L1 distance matrix",
        "alone (included in time_s). Lengths are",
        "the total variation Σ‖F[σ(i)] − F[σ(i+1)]‖₁ of the open path; *_vs_lkh_pct is the",
        "excess over LKH-3 (elkai, open path via a zero-distance dummy city, integer-scaled",
        "distances). nearest_neighbour starts at channel 0. n/a: elkai not installed.",
    ]
    (RESULTS / "integral_ordering.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--dim", type=int, default=576)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lkh-runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    opts = {"repeats": args.repeats, "lkh_runs": args.lkh_runs}
    rows = []
    for n in args.sizes:
        rows.append(run_case("structured", structured_rows(n, args.dim, args.seed), **opts))
        rows.append(run_case("kaiming", kaiming_rows(n, args.dim, args.seed), **opts))
    big = max(args.sizes)
    rows.append(run_case("structured", structured_rows(big, 4608, args.seed), **opts))

    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    lkh_version = version("elkai") if elkai is not None else "n/a (not installed)"
    env = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": machine,
        "elkai": lkh_version,
        "command": command,
    }
    header = [
        f"- command: `{command}`",
        f"- torch {torch.__version__}, numpy {np.__version__}, elkai (LKH-3) {lkh_version}",
        f"- machine: {machine}, torch threads {torch.get_num_threads()}, "
        f"{platform.system()} {platform.release()}, python {platform.python_version()}",
        f"- load average before the run (1/5/15 min): {load} (the machine is shared)",
        f"- LKH-3 runs per instance: {args.lkh_runs}; timing repeats: {args.repeats}",
    ]
    write_results(rows, header, env)
    print((RESULTS / "integral_ordering.md").read_text())


if __name__ == "__main__":
    main()
