"""Shared pieces of the benchmark scripts: trained models, environment record, result tables."""

from __future__ import annotations

import csv
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import torch

from anywidth.data import Loaders, make_loaders
from anywidth.models import create_model
from anywidth.train import TrainConfig, load_model, read_checkpoint, train_

RESULTS = Path(__file__).parent / "results"
CACHE = Path(__file__).resolve().parent.parent / "runs" / "bench"

__all__ = ["RESULTS", "environment", "kept_rows", "trained", "write_table"]


def trained(
    name: str, epochs: int = 15, seed: int = 0, data: str = "digits", **data_options: int
) -> tuple[torch.nn.Module, Loaders]:
    """A zoo model trained on ``data`` (cached under runs/bench so reruns skip training).

    Recipe: SGD lr 0.05 with 2 warm-up epochs, cosine, weight decay 5e-4, batch 64.
    ``data_options`` go to `make_loaders` (e.g. ``limit=5000`` for a fixed subset).
    """
    loaders = make_loaders(data, batch_size=64, seed=seed, **data_options)
    subset = "".join(f"-{k}{v}" for k, v in sorted(data_options.items()))
    folder = CACHE / f"{name}-{data}{subset}-e{epochs}-s{seed}-lr0.05-w2"
    path = folder / "last.safetensors"
    if path.exists() and read_checkpoint(path).meta.get("epoch") == epochs:
        model, _ = load_model(path)
        return model.eval(), loaders
    kwargs = {"num_classes": loaders.num_classes, "in_channels": loaders.in_channels}
    model = create_model(name, **kwargs)
    # Warm-up: resnet56 stalls near chance on digits when started at full lr 0.1.
    config = TrainConfig(epochs=epochs, lr=0.05, warmup_epochs=2, weight_decay=5e-4, seed=seed)
    resume = path.exists()  # an interrupted run: finish it
    train_(model, loaders, config, checkpoint_dir=folder, model_name=name, model_kwargs=kwargs,
           resume=resume)  # fmt: skip
    return model.eval(), loaders


def environment() -> dict[str, str]:
    """What a results table must record about the run."""
    return {
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv]),
        "torch": torch.__version__,
        "anywidth": version("anywidth"),
        "device": "cpu",
        "threads": str(torch.get_num_threads()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
    }


def write_table(
    stem: str, headers: Sequence[str], rows: Sequence[Sequence[object]], notes: str = ""
) -> Path:
    """Write ``results/<stem>.md`` (with the environment) and ``results/<stem>.csv``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(headers)
        writer.writerows(rows)
    env = environment()
    lines = [f"# {stem}", "", f"Command: `{env.pop('command')}`", ""]
    lines += [f"- {k}: {v}" for k, v in env.items()]
    lines += ["", "| " + " | ".join(map(str, headers)) + " |"]
    lines += ["|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    if notes:
        lines += ["", notes.strip()]
    path = RESULTS / f"{stem}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def kept_rows(stem: str, new: list[list[object]], key: tuple[int, ...]) -> list[list[object]]:
    """The committed table's rows that this run did not measure again.

    Per-seed caches live in an ignored folder, so a run for one model or method on a new
    checkout must not drop the other committed rows: a row is identified by its cells at
    the ``key`` positions (e.g. data set, model, method), and the committed CSV's rows
    whose identity this run did not produce are kept.
    """
    path = RESULTS / f"{stem}.csv"
    if not path.exists():
        return []
    done = {tuple(str(r[i]) for i in key) for r in new}
    with open(path, newline="") as f:
        old = list(csv.reader(f))[1:]
    return [r for r in old if tuple(r[i] for i in key) not in done]
