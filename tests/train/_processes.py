"""Run a function in several local processes joined by a gloo process group, as torchrun
would start them, and collect what each returns (or the exception it raised)."""

from __future__ import annotations

import io
import os
import queue
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from anywidth.models import register_model

__all__ = ["DDP_MODEL", "Outcome", "free_port", "run_processes"]


@register_model
def _test_ddp_net(num_classes: int = 10, in_channels: int = 1, width: int = 8) -> nn.Module:
    """Convolutions without BatchNorm or dropout: each sample's gradient depends on that
    sample only, so a batch split over processes gives the gradient of the whole batch."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * 4, num_classes),
    )


DDP_MODEL = "_test_ddp_net"


class Outcome(dict):
    """Per rank: ``{"value": ...}`` or ``{"error": type name, "message": ..., "seconds": ...}``."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _to_bytes(value: Any) -> bytes:
    # Tensors put on a torch.multiprocessing queue travel as shared memory that vanishes
    # when the worker exits; bytes survive it.
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _worker(rank: int, world: int, port: int, timeout_s: float, fn, kwargs, results) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world), ANYWIDTH_DIST_TIMEOUT=str(timeout_s), ANYWIDTH_PROGRESS="0",
    )  # fmt: skip
    torch.set_num_threads(1)
    began = time.perf_counter()
    try:
        results.put((rank, {"value": _to_bytes(fn(rank, **kwargs))}))
    except BaseException as error:  # noqa: BLE001  reported to the parent, which asserts
        results.put(
            (
                rank,
                {
                    "error": type(error).__name__,
                    "message": str(error),
                    "seconds": time.perf_counter() - began,
                    "trace": traceback.format_exc(),
                },
            )
        )
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_processes(
    fn: Callable[..., Any],
    world: int = 2,
    *,
    timeout_s: float = 30.0,
    wait_s: float = 120.0,
    wait_for: tuple[int, ...] | None = None,
    **kwargs: Any,
) -> dict[int, Outcome]:
    """``fn(rank, **kwargs)`` in ``world`` spawned processes; ``{rank: Outcome}``.

    ``timeout_s`` is the process group's timeout. Once the ranks in ``wait_for`` (default:
    all) have reported, or after ``wait_s``, processes still running are killed and
    reported as ``{"error": "Hung"}``.
    """
    wait_for = set(range(world) if wait_for is None else wait_for)
    context = mp.get_context("spawn")
    results = context.Queue()
    port = free_port()
    procs = [
        context.Process(target=_worker, args=(r, world, port, timeout_s, fn, kwargs, results))
        for r in range(world)
    ]
    for p in procs:
        p.start()
    outcomes: dict[int, Outcome] = {}
    deadline = time.monotonic() + wait_s
    while not wait_for <= set(outcomes) and time.monotonic() < deadline:
        try:
            rank, outcome = results.get(timeout=0.5)
            if "value" in outcome:
                outcome["value"] = torch.load(io.BytesIO(outcome["value"]), weights_only=False)
            outcomes[rank] = Outcome(outcome)
        except queue.Empty:
            if all(not p.is_alive() for p in procs) and results.empty():
                break
    grace = 2.0 if wait_for <= set(outcomes) else max(0.1, deadline - time.monotonic())
    for p in procs:
        p.join(timeout=grace)
        if p.is_alive():
            p.kill()
            p.join()
    for rank in range(world):
        outcomes.setdefault(rank, Outcome(error="Hung", message="no result", seconds=wait_s))
    return outcomes
