"""The searched architecture: logits over widths and depths, sampling, and its MAC cost."""

from __future__ import annotations

import torch
from torch import nn

from anywidth.graph import WidthCost
from anywidth.search._supernet import Choices
from anywidth.search.ops import pick

__all__ = ["Architecture", "candidate_sizes"]


def candidate_sizes(size: int, ratios: tuple[float, ...]) -> list[int]:
    """Widths ``round(r · size)`` (at least 1), deduplicated and sorted, with ``size`` last."""
    return sorted({max(1, round(r * size)) for r in ratios} | {size})


class Architecture(nn.Module):
    """Distributions over the width of every searched group and the depth of every run.

    Args:
        groups: names of the searched groups.
        candidates: their candidate widths.
        runs: the block names of every run (depth candidates ``0..len(run)``).
        cost: MACs of the model (before the search) as a function of group sizes.
        generator: seeds the logits' initialisation and all sampling.
    """

    def __init__(
        self,
        groups: list[str],
        candidates: list[list[int]],
        runs: list[list[str]],
        cost: WidthCost,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.groups, self.candidates, self.runs = groups, candidates, runs
        self.generator = generator

        def logits(n: int) -> nn.Parameter:
            return nn.Parameter(1e-2 * torch.randn(n, generator=generator))

        self.width_logits = nn.ParameterList(logits(len(c)) for c in candidates)
        self.depth_logits = nn.ParameterList(logits(len(run) + 1) for run in runs)
        self.cost = cost
        self.full_macs = cost.macs({})
        self._block_of = self._locate_layers(cost)

    def _locate_layers(self, cost: WidthCost) -> dict[str, tuple[int, int]]:
        """``{layer: (run, position)}`` for layers inside a block of a run."""
        out = {}
        for layer in cost.macs_by_layer({}):
            for r, run in enumerate(self.runs):
                for i, block in enumerate(run):
                    if layer == block or layer.startswith(block + "."):
                        out[layer] = (r, i)
        return out

    def sample_(self, choices: Choices, tau: float) -> None:
        """Two candidates per distribution, Gumbel-softmax weighted (the reference's draw)."""
        choices.widths = [self._draw(lg, tau) for lg in self.width_logits]
        choices.depths = [self._draw(lg, tau) for lg in self.depth_logits]

    def _draw(self, logits: torch.Tensor, tau: float) -> list[tuple[int, torch.Tensor]]:
        indices, weights = pick(logits, tau, 2, self.generator)
        return list(zip(indices, weights, strict=True))

    def argmax_(self, choices: Choices) -> None:
        """The most likely candidate everywhere, weight 1: the supernet is the cut model."""
        choices.widths = [[(int(lg.argmax()), 1.0)] for lg in self.width_logits]
        choices.depths = [[(int(lg.argmax()), 1.0)] for lg in self.depth_logits]

    def shape(self) -> tuple[dict[str, int], list[int]]:
        """The argmax widths ``{group: size}`` and depths (blocks kept per run)."""
        plan = {
            name: sizes[int(lg.argmax())]
            for name, sizes, lg in zip(self.groups, self.candidates, self.width_logits, strict=True)
        }
        return plan, [int(lg.argmax()) for lg in self.depth_logits]

    def macs(self, plan: dict[str, int], depths: list[int]) -> int:
        """Exact MACs of the model cut to ``plan`` with the runs cut to ``depths``."""
        total = self.cost.other_macs
        for layer, value in self.cost.macs_by_layer(plan).items():
            where = self._block_of.get(layer)
            if where is None or where[1] < depths[where[0]]:
                total += value
        return total

    def expected_macs(self) -> torch.Tensor:
        """MACs at the expected widths ``Σ p_j C_j``, each block's layers weighted by the
        probability that the block is kept; a fraction of the original MACs."""
        sizes = {}
        for name, cands, lg in zip(self.groups, self.candidates, self.width_logits, strict=True):
            values = torch.tensor(cands, dtype=lg.dtype, device=lg.device)
            sizes[name] = (torch.softmax(lg, 0) * values).sum()
        # P(block i kept) = P(depth > i) = 1 − cumsum(q)[i]
        kept = [1 - torch.cumsum(torch.softmax(lg, 0), 0) for lg in self.depth_logits]
        total = torch.tensor(float(self.cost.other_macs))
        for layer, value in self.cost.macs_by_layer(sizes).items():
            where = self._block_of.get(layer)
            total = total + (value if where is None else value * kept[where[0]][where[1]])
        return total / self.full_macs
