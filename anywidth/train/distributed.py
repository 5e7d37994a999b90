"""Training in several processes with PyTorch's own engine (torchrun + DDP).

The training loops call these helpers; nothing else in anywidth knows about processes.

- `init_distributed` joins the process group that ``torchrun`` describes in the
  environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``):
  ``nccl`` on GPUs, ``gloo`` on CPU, with a timeout so that a rank that fails or stalls
  ends the run with a `DistributedError` instead of a hang.
- `shard_train_loader` gives each process its part of every batch through a
  `DistributedSampler` re-seeded per epoch (`set_epoch`) that deals out the very order the
  loader has in one process. A loader's batch size is the *global* batch: each of ``N``
  processes takes ``batch_size / N`` samples of it, so the batches, the effective batch
  size and the learning rate do not depend on the number of processes.
- `wrap_ddp` wraps the model in `DistributedDataParallel`; `evaluate_sharded` and
  `all_sum` reduce metrics; `broadcast_buffers_` makes every rank hold rank 0's buffers.

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) every helper is the identity of one
process, so the loops run the same code either way.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from anywidth.measure import evaluate
from anywidth.metrics import ACCURACY, Metric

__all__ = [
    "BACKENDS",
    "DEFAULT_TIMEOUT_S",
    "TIMEOUT_ENV",
    "DistributedError",
    "Processes",
    "all_sum",
    "average_gradients_",
    "barrier",
    "broadcast_buffers_",
    "collective",
    "evaluate_sharded",
    "init_distributed",
    "processes",
    "resolve_device",
    "set_epoch",
    "shard_train_loader",
    "wrap_ddp",
]

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "gloo", "nccl")
TIMEOUT_ENV = "ANYWIDTH_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0
_LAUNCH_VARS = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(RuntimeError):
    """A multi-process run failed: a rank stopped answering, or the set-up is wrong."""


@dataclass(frozen=True)
class Processes:
    """Where this process stands in the run: its rank among ``world_size`` processes.

    Example:
        >>> processes()  # outside torchrun
        Processes(rank=0, world_size=1, local_rank=0)
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """More than one process trains (collectives and DDP are used)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, logs and prints."""
        return self.rank == 0


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"environment variable {name}={value!r} must be an int") from None


def _timeout(timeout_s: float | None) -> timedelta:
    if timeout_s is None:
        raw = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
        try:
            timeout_s = float(raw)
        except ValueError:
            raise DistributedError(f"{TIMEOUT_ENV}={raw!r} must be a number of seconds") from None
    if not timeout_s > 0:
        raise DistributedError(f"the distributed timeout must be > 0 seconds, got {timeout_s}")
    return timedelta(seconds=timeout_s)


def init_distributed(
    backend: str = "auto", timeout_s: float | None = None, device: str = "cpu"
) -> Processes:
    """Join the process group that ``torchrun`` set up, once; outside torchrun do nothing.

    Args:
        backend: ``"auto"`` (``nccl`` for a CUDA ``device``, else ``gloo``), ``"gloo"`` or
            ``"nccl"``.
        timeout_s: how long a collective waits for the other ranks before the run fails;
            default ``$ANYWIDTH_DIST_TIMEOUT`` or 600 s.
        device: the training device (``config.device``), which picks the ``auto`` backend.

    Returns:
        This process's `Processes`.

    Raises:
        DistributedError: an incomplete torchrun environment, ``nccl`` without CUDA, or an
            unknown backend.

    Example:
        >>> # torchrun --nproc-per-node 2 my_script.py
        >>> init_distributed().world_size
        2
    """
    if dist.is_available() and dist.is_initialized():
        return processes()
    world_size = _env_int("WORLD_SIZE")
    if world_size is None or world_size == 1:
        return Processes()
    missing = [name for name in _LAUNCH_VARS if name not in os.environ]
    if world_size < 1 or missing:
        raise DistributedError(
            f"WORLD_SIZE={world_size} but {missing or 'a positive WORLD_SIZE'} missing from "
            f"the environment; start the run with torchrun (it sets RANK, LOCAL_RANK, "
            f"MASTER_ADDR and MASTER_PORT), or unset WORLD_SIZE to train in one process"
        )
    if _env_int("MASTER_PORT") == 0:
        raise DistributedError(
            "MASTER_PORT=0: the processes cannot find each other on a port chosen at random; "
            "pass torchrun --standalone (one machine) or --master-port/--rdzv-endpoint"
        )
    if backend not in BACKENDS:
        raise DistributedError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    cuda = torch.device(device).type == "cuda"
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    if backend == "nccl" and not torch.cuda.is_available():
        raise DistributedError(
            "backend 'nccl' needs CUDA GPUs and this machine has none; use backend='gloo' "
            "(or 'auto') to train on CPU"
        )
    if cuda:
        torch.cuda.set_device(_env_int("LOCAL_RANK") or 0)
    timeout = _timeout(timeout_s)
    with collective("joining the process group"):
        dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    found = processes()
    logger.info("rank %d of %d joined (%s)", found.rank, found.world_size, backend)
    return found


def processes() -> Processes:
    """This process's rank and the number of processes (one when no group is set up)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Processes()
    return Processes(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK") or 0)


@contextlib.contextmanager
def collective(what: str) -> Iterator[None]:
    """Turn a communication failure during ``what`` into a `DistributedError` that says so.

    A rank that crashed closes its connections; one that stalls lets the others time out.
    Either way the surviving ranks stop here with a message naming the step, not a hang.
    """
    try:
        yield
    except dist.DistError as error:
        raise _failure(what, error) from error
    except RuntimeError as error:
        text = str(error).lower()
        words = ("gloo", "nccl", "timed out", "connection")
        if not processes().active or not any(word in text for word in words):
            raise
        raise _failure(what, error) from error


def _failure(what: str, error: Exception) -> DistributedError:
    me = processes()
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return DistributedError(
        f"rank {me.rank} of {me.world_size}: the other processes stopped answering while "
        f"{what} ({first[:300]}). Another rank has probably failed or stalled: look for its "
        f"error above. A slow but healthy step needs a longer {TIMEOUT_ENV} (seconds)."
    )


def resolve_device(device: str, where: Processes) -> torch.device:
    """The device this process trains on: ``"cuda"`` becomes ``cuda:LOCAL_RANK``.

    Raises:
        DistributedError: a numbered CUDA device (``"cuda:0"``) with several processes,
            which would put every process on the same GPU.
    """
    resolved = torch.device(device)
    if not where.active or resolved.type != "cuda":
        return resolved
    if resolved.index is not None:
        raise DistributedError(
            f"config.device={device!r} would put all {where.world_size} processes on one GPU; "
            f"use device='cuda' under torchrun (each process takes cuda:LOCAL_RANK)"
        )
    return torch.device("cuda", where.local_rank)


def wrap_ddp(
    model: nn.Module,
    where: Processes,
    device: torch.device,
    *,
    find_unused_parameters: bool = False,
) -> nn.Module:
    """``DistributedDataParallel(model)`` when several processes train, else ``model``.

    Wrapping broadcasts rank 0's parameters and buffers, so every rank starts equal; DDP
    then broadcasts rank 0's buffers before every forward (BatchNorm running statistics
    are rank 0's). ``find_unused_parameters`` is for models whose loss leaves some
    parameters without a gradient in a step (see docs/distributed.md).
    """
    if not where.active:
        return model
    ids = [device.index] if device.type == "cuda" else None
    with collective("wrapping the model in DistributedDataParallel"):
        return nn.parallel.DistributedDataParallel(
            model,
            device_ids=ids,
            find_unused_parameters=find_unused_parameters,
        )


class _Shards(DistributedSampler):
    """Deals out the order of a loader's own sampler: every ``world_size``-th index to
    each rank, padded (as `DistributedSampler` pads) to a multiple of ``world_size``.

    Iterating the original sampler, with its generator seeded ``seed + epoch`` by
    `set_epoch`, gives exactly the order one process sees in that epoch; so batch ``k``
    of all ranks together is batch ``k`` of the one-process run.
    """

    def __init__(self, loader: DataLoader, where: Processes, seed: int) -> None:
        super().__init__(loader.dataset, num_replicas=where.world_size, rank=where.rank, seed=seed)
        self.source = loader.sampler
        self.num_samples = math.ceil(len(self.source) / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        generator = getattr(self.source, "generator", None)
        if isinstance(generator, torch.Generator):
            generator.manual_seed(self.seed + epoch)

    def __iter__(self) -> Iterator[int]:
        order = list(self.source)
        order += order[: self.total_size - len(order)]
        return iter(order[self.rank : self.total_size : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


def shard_train_loader(loader: Iterable, where: Processes, seed: int) -> Iterable:
    """The part of a train loader that this process reads, in the one-process order.

    In one process the loader is returned unchanged. Under ``N`` processes a `DataLoader`
    gets a `DistributedSampler` that deals out its own sampler's order (seeded
    ``seed + epoch`` by `set_epoch`, as `train_` seeds a loader's generator every epoch)
    and a per-process batch of ``batch_size / N``: the ``N`` parts of batch ``k`` make up
    batch ``k`` of the one-process run. A deterministic order needs a sampler with its own
    ``torch.Generator`` (`anywidth.data.make_loaders` gives one).

    Raises:
        ValueError: under several processes, a loader that is not a `DataLoader` with a
            plain batch size, or a batch size not divisible by the number of processes.
    """
    if not where.active:
        return loader
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        raise ValueError(
            f"training in {where.world_size} processes needs a torch DataLoader with a "
            f"batch_size (its dataset is split with DistributedSampler); got "
            f"{type(loader).__name__}"
        )
    if loader.batch_size % where.world_size:
        raise ValueError(
            f"the batch size {loader.batch_size} is the global batch, split over "
            f"WORLD_SIZE={where.world_size} processes, so it must be divisible by "
            f"{where.world_size}; use a batch size of "
            f"{loader.batch_size // where.world_size * where.world_size or where.world_size}"
            f" or a different number of processes"
        )
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size // where.world_size,
        sampler=_Shards(loader, where, seed),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        generator=loader.generator,
        worker_init_fn=loader.worker_init_fn,
    )


def set_epoch(loader: Iterable, epoch: int) -> None:
    """Seed a sharded loader's order for ``epoch`` (no-op for other loaders)."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)


class _Strided(Sampler[int]):
    """Every ``step``-th index from ``start``: an evaluation shard with nothing repeated."""

    def __init__(self, size: int, start: int, step: int) -> None:
        self.indices = range(start, size, step)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def evaluate_sharded(
    model: nn.Module,
    loader: Iterable,
    device: str | torch.device = "cpu",
    metric: Metric = ACCURACY,
) -> dict[str, float]:
    """`anywidth.measure.evaluate` with the samples split over the processes.

    Each rank scores every ``world_size``-th sample (no sample twice, none left out) and
    the sums are added up across ranks, so every rank gets the score of the whole loader.
    A loader that is not a map-style `DataLoader` is evaluated whole on every rank.
    """
    where = processes()
    if not where.active or not isinstance(loader, DataLoader) or loader.batch_size is None:
        return evaluate(model, loader, device, metric)
    shard = DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=_Strided(len(loader.dataset), where.rank, where.world_size),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
    )
    sums = torch.zeros(3, dtype=torch.float64)
    if len(shard.sampler) > 0:
        local = evaluate(model, shard, device, metric)
        count = local["samples"]
        sums += torch.tensor([local[metric.name] * count, local["loss"] * count, count])
    total = all_sum(sums, "adding up the validation scores")
    if total[2] == 0:
        raise ValueError("evaluate got an empty loader; check the data split")
    return {
        metric.name: float(total[0] / total[2]),
        "loss": float(total[1] / total[2]),
        "samples": int(total[2]),
    }


def _backend_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if _nccl() else torch.device("cpu")


def _nccl() -> bool:
    return dist.is_initialized() and dist.get_backend() == "nccl"


def all_sum(values: torch.Tensor, what: str = "adding up metrics") -> torch.Tensor:
    """``values`` summed over all processes (a copy; ``values`` itself in one process)."""
    if not processes().active:
        return values
    total = values.detach().to(_backend_device()).clone()
    with collective(what):
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.to(values.device)


def average_gradients_(parameters: Iterable[nn.Parameter], what: str) -> None:
    """Average the ``.grad`` of parameters that no DDP module syncs (e.g. architecture
    logits) over all processes, in place; a missing gradient counts as zero."""
    where = processes()
    if not where.active:
        return
    params = [p for p in parameters if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    flat = all_sum(flat, what) / where.world_size
    for p, chunk in zip(params, flat.split([g.numel() for g in grads]), strict=True):
        p.grad = chunk.view_as(p).clone()


def broadcast_buffers_(model: nn.Module, what: str = "sharing buffers") -> None:
    """Give every rank rank 0's buffers (e.g. BatchNorm statistics), in place."""
    if not processes().active:
        return
    with collective(what), torch.no_grad():
        for buffer in model.buffers():
            moved = buffer.to(_backend_device())
            dist.broadcast(moved, src=0)
            buffer.copy_(moved)


def barrier(what: str) -> None:
    """Wait until every process gets here (no-op in one process)."""
    if processes().active:
        with collective(what):
            dist.barrier()
