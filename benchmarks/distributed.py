"""Epoch time of training in 1 and 2 processes (torchrun + DDP, gloo on CPU).

Runs itself under ``torch.distributed.run`` once per setting — 1 process with 1 thread,
1 process with 2 threads, 2 processes with 1 thread each — for plain training (`train_`)
and slimmable width-random training (`train_width_random_`) of resnet20 on digits at the
same global batch, and writes ``results/distributed.md`` / ``.csv``.

    .venv/bin/python benchmarks/distributed.py --epochs 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_table  # noqa: E402

SETTINGS = ((1, 1), (1, 2), (2, 1))  # (processes, threads per process)
KINDS = ("plain", "width-random")
BATCH = 64


def _worker(kind: str, epochs: int, out: str) -> None:
    from anywidth import create_model
    from anywidth.data import make_loaders
    from anywidth.slim import to_slimmable
    from anywidth.train import TrainConfig, train_
    from anywidth.train.distributed import init_distributed
    from anywidth.train.width import WidthTrainConfig, train_width_random_

    where = init_distributed()
    loaders = make_loaders("digits", batch_size=BATCH, seed=0)
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_channels=1)
    config = TrainConfig(epochs=epochs, lr=0.05, seed=0)
    if kind == "plain":
        result = train_(model, loaders, config)
    else:
        slim = to_slimmable(model, torch.randn(1, 1, 8, 8))
        result = train_width_random_(slim, loaders, config, WidthTrainConfig(random_plans=1))
    if where.is_main:
        Path(out).write_text(json.dumps(result.history))


def _run(kind: str, processes: int, threads: int, epochs: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "history.json"
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), ANYWIDTH_PROGRESS="0")
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
            "--standalone", __file__, "--worker", kind, "--epochs", str(epochs),
            "--threads", str(threads), "--json", str(out),
        ]  # fmt: skip
        subprocess.run(command, env=env, check=True)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="per run; the first is warm-up")
    parser.add_argument("--worker", choices=KINDS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        torch.set_num_threads(args.threads)
        _worker(args.worker, args.epochs, args.json)
        return
    load_before = os.getloadavg()[0]
    rows = []
    for kind in KINDS:
        base = None
        for processes, threads in SETTINGS:
            history = _run(kind, processes, threads, args.epochs)
            seconds = statistics.median(h["seconds"] for h in history[1:] or history)
            base = base or seconds
            rows.append([
                kind, processes, threads, BATCH, BATCH // processes, f"{seconds:.2f}",
                f"{base / seconds:.2f}", f"{history[-1]['train_loss']:.4f}",
                f"{100 * history[-1]['val_accuracy']:.1f}",
            ])  # fmt: skip
            print(rows[-1], flush=True)
    headers = ["training", "processes", "threads/process", "global batch", "batch/process",
               "epoch s (median)", "speed-up vs 1x1", "last train loss", "val acc %"]  # fmt: skip
    load = f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    write_table("distributed", headers, rows, notes=NOTES.format(epochs=args.epochs, load=load))


NOTES = """
resnet20 on digits (1258 training images, 20 steps of the global batch per epoch), SGD
lr 0.05, {epochs} epochs per run; "epoch s" is the median of the epochs after the first
(warm-up), training steps only (width-random: full + smallest + 1 random width per step;
recalibration and validation excluded). Speed-up is wall-clock epoch time against 1 process
with 1 thread. Every run uses the same global batch (64), so the batches and the learning
rate are the same at every setting; the loss differs slightly between 1 and 2 processes
because BatchNorm normalises each process's half batch.

This machine has 2 CPU cores, shared with other jobs (benchmarks, another engineer's tests)
while this ran (1-minute load average {load}), so the timings are noisy and little or no
speed-up was expected: two
processes on two loaded cores compete with each other and with the gradient all-reduce
(gloo over loopback), and these 8x8 images make each step so small that per-step overhead
dominates. No GPU was available in this session, so there is no nccl row; the GPU path
(`device="cuda"`, nccl, one process per GPU) is described in docs/distributed.md but not
measured here. The "threads" line above is the driver's; each row's processes ran with
the threads given in the row (`OMP_NUM_THREADS`). One process with 2 threads is the slowest
setting here: on cores this busy, intra-op threads wait for each other at every op.
"""


if __name__ == "__main__":
    main()
