"""Channel importance criteria: an `Importance` maps a channel group to one score per channel.

Scores are summed over every weight tensor the group touches — the producer's filters and
the consumers' input slices — so a channel that feeds nothing useful scores low even when
its own filter is large.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from anywidth.graph import ChannelGroup, Member
from anywidth.measure import forward_hooked

logger = logging.getLogger(__name__)
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)

__all__ = [
    "Importance",
    "MagnitudeImportance",
    "TaylorImportance",
    "ActivationImportance",
    "RandomImportance",
    "make_importance",
]


def _slices(tensor: torch.Tensor, member: Member, size: int) -> torch.Tensor:
    """The group's channels of one tensor: ``(size, everything else)``."""
    moved = tensor.detach().movedim(member.dim, 0)
    part = moved[member.offset : member.offset + size * member.block]
    return part.reshape(size, -1)  # (size, block * rest)


def _weight_members(group: ChannelGroup, tensors: Mapping[str, torch.Tensor]) -> list[Member]:
    """Members in conv/linear weights (2-D or more); all parameter members if there are none."""
    members = [m for m in group.members if m.name in tensors]
    weights = [m for m in members if tensors[m.name].dim() >= 2]
    return weights or members


class Importance:
    """Scores the channels of a group; higher means more important.

    Subclasses implement `__call__`; those that need data or gradients (Taylor) also
    implement `prepare`, which `prune` calls once before scoring.
    """

    needs_data = False

    def prepare(self, model: nn.Module, data: Iterable | None) -> None:
        """Collect whatever the criterion needs from the model (default: nothing)."""

    def __call__(
        self, group: ChannelGroup, tensors: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:  # (size,)
        raise NotImplementedError


class MagnitudeImportance(Importance):
    """Sum over the group's weights of each channel's L_p norm raised to p (L1: p=1, L2: p=2).

    Example:
        >>> scores = MagnitudeImportance(p=1)(group, dict(model.named_parameters()))
    """

    def __init__(self, p: int = 1) -> None:
        if p not in (1, 2):
            raise ValueError(f"MagnitudeImportance supports p=1 or p=2, got {p}")
        self.p = p

    def __call__(self, group: ChannelGroup, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        score = torch.zeros(group.size, dtype=torch.float64)
        for member in _weight_members(group, tensors):
            part = _slices(tensors[member.name], member, group.size).double()
            score += part.abs().pow(self.p).sum(dim=1)
        return score


class TaylorImportance(Importance):
    """First-order Taylor importance: |Σ w·∂L/∂w| per channel, gradients summed over batches.

    Approximates the change of the loss when the channel is removed (Molchanov et al.,
    2019). `prepare` runs ``batches`` training batches through the model (eval mode, no
    weight update) to accumulate the gradients.
    """

    needs_data = True

    def __init__(self, batches: int = 4) -> None:
        if batches < 1:
            raise ValueError(f"TaylorImportance needs batches >= 1, got {batches}")
        self.batches = batches
        self._products: dict[str, torch.Tensor] = {}

    def prepare(self, model: nn.Module, data: Iterable | None) -> None:
        if data is None:
            raise ValueError("Taylor importance needs data: pass data=<a training loader>")
        work = _grad_copy(model)
        seen = 0
        for images, labels in itertools.islice(data, self.batches):
            loss = nn.functional.cross_entropy(work(images), labels)
            loss.backward()
            seen += 1
        if seen == 0:
            raise ValueError("Taylor importance got an empty loader; pass training data")
        self._products = {
            name: (p.detach() * p.grad).double()
            for name, p in work.named_parameters()
            if p.grad is not None
        }

    def __call__(self, group: ChannelGroup, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if not self._products:
            raise RuntimeError("TaylorImportance.prepare(model, data) must run first")
        score = torch.zeros(group.size, dtype=torch.float64)
        for member in _weight_members(group, self._products):
            part = _slices(self._products[member.name], member, group.size)
            score += part.sum(dim=1).abs()
        return score


class ActivationImportance(Importance):
    """Each channel's expected squared contribution to the layers that read it:
    Σ over consumers ‖W[:, c]‖² · E[x_c²], where x is the consumer's input on data.

    Magnitude criteria ignore how strong a channel's signal is; this one weighs the weights
    a channel feeds by the energy of what it sends them (structured pruning's analogue of
    activation-aware criteria for large models). It needs no labels: `prepare` only runs
    ``batches`` batches forward (eval mode, restored after). A batch is what a loader yields,
    ``(inputs, labels)`` (the inputs are used), a tensor of inputs, or a dict of keyword
    inputs (Hugging Face: ``{"input_ids": ..., "attention_mask": ...}``). Consumers measured:
    `nn.Linear` and ungrouped convolutions; a group without one is scored by L2 magnitude.

    Example:
        >>> small, _ = prune(model, x, PruneConfig(target_macs=0.5, importance="activation"),
        ...                  data=loaders.train)
    """

    needs_data = True

    def __init__(self, batches: int = 4) -> None:
        if batches < 1:
            raise ValueError(f"ActivationImportance needs batches >= 1, got {batches}")
        self.batches = batches
        self._energy: dict[str, torch.Tensor] = {}  # consumer module -> E[x²] per input

    def prepare(self, model: nn.Module, data: Iterable | None) -> None:
        if data is None:
            raise ValueError(
                "activation importance needs data: pass data=<a loader, or batches of inputs>"
            )
        sums: dict[str, list] = {}

        def record(name: str):
            def hook(module: nn.Module, args: tuple, _out: Any) -> None:
                x = args[0].detach().double()
                x = x.movedim(1, -1) if isinstance(module, _CONVS) else x
                x = x.reshape(-1, x.shape[-1])
                total = sums.setdefault(name, [0.0, 0])
                total[0] = total[0] + x.pow(2).sum(0)
                total[1] += x.shape[0]

            return hook

        consumers = [
            (module, record(name))
            for name, module in model.named_modules()
            if isinstance(module, nn.Linear) or (isinstance(module, _CONVS) and module.groups == 1)
        ]
        forward_hooked(model, data, consumers, self.batches)  # eval mode, restored after
        self._energy = {name: total / count for name, (total, count) in sums.items()}

    def __call__(self, group: ChannelGroup, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if not self._energy:
            raise RuntimeError("ActivationImportance.prepare(model, data) must run first")
        score = torch.zeros(group.size, dtype=torch.float64)
        measured = False
        for member in group.members:
            module = member.name.removesuffix(".weight")
            energy = self._energy.get(module)
            tensor = tensors.get(member.name)
            if member.dim != 1 or energy is None or tensor is None or tensor.dim() < 2:
                continue
            weight = tensor.detach().double().movedim(1, 0)
            per_input = weight.reshape(weight.shape[0], -1).pow(2).sum(1) * energy
            part = per_input[member.offset : member.offset + group.size * member.block]
            score += part.reshape(group.size, member.block).sum(1)
            measured = True
        if not measured:
            logger.debug("activation importance: no measured consumer of %s; L2", group.name)
            return MagnitudeImportance(p=2)(group, tensors)
        return score


def _grad_copy(model: nn.Module) -> nn.Module:
    """A copy in eval mode (BN statistics untouched) with gradients enabled and cleared."""
    work = copy.deepcopy(model).eval()
    for p in work.parameters():
        p.requires_grad_(True)
        p.grad = None
    return work


class RandomImportance(Importance):
    """Seeded random scores: the floor every criterion must beat."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def __call__(self, group: ChannelGroup, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        # Seeded per group name so a group's scores do not depend on the other groups.
        offset = sum(ord(c) * (i + 1) for i, c in enumerate(group.name))
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + offset)
        return torch.rand(group.size, generator=gen, dtype=torch.float64)


def make_importance(name: str, *, taylor_batches: int = 4, seed: int = 0) -> Importance:
    """An importance by name: ``"l1"``, ``"l2"``, ``"taylor"``, ``"activation"`` or
    ``"random"``."""
    makers = {
        "l1": lambda: MagnitudeImportance(p=1),
        "l2": lambda: MagnitudeImportance(p=2),
        "taylor": lambda: TaylorImportance(batches=taylor_batches),
        "activation": lambda: ActivationImportance(batches=taylor_batches),
        "random": lambda: RandomImportance(seed=seed),
    }
    if name not in makers:
        raise ValueError(f"unknown importance {name!r}; use one of {sorted(makers)}")
    return makers[name]()
