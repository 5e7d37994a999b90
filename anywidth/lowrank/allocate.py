"""Which layers to factor, with how many slices (k) and which rank (j): ALDS and uniform SVD.

ALDS (Liebenwein et al., NeurIPS 2021) alternates two steps from several starting k:

- **global**: with k fixed per layer, one error level ε for every layer; each layer takes
  the smallest rank whose exact relative error is at most ε (dense when that is not
  smaller), and ε is bisected so the network meets the budget — the maximum error is as
  small as the budget allows; leftover budget then buys rank for the worst layers;
- **local**: with each layer's size fixed, the k whose rank fitting that size has the
  smallest error.

The allocation with the lowest maximum error wins. Every (layer, k) is decomposed once
(`SliceSVD`), so a search costs eigen-solves of small matrices.

With ``round_to`` every factored layer's middle width, the k·j channels between its two
convs, is a multiple of ``round_to`` (as pruning, the INN and slimmable models keep their
channel counts): ranks step by ``round_to / gcd(round_to, k)``, rounded up where an error
level asks for a rank and down where a size must be kept.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from anywidth.graph import PlanError
from anywidth.lowrank._factors import LayerInfo, SliceSVD

__all__ = ["Choice", "Allocator"]


@dataclass(frozen=True)
class Choice:
    """One layer's decomposition: ``k`` slices at rank ``j``, or dense (``j is None``)."""

    k: int = 1
    j: int | None = None

    @property
    def dense(self) -> bool:
        return self.j is None


class Allocator:
    """Sizes and errors of every layer's decompositions, and the searches over them.

    Args:
        layers: the layers that may be factored.
        metric: ``"params"`` or ``"macs"``: what the budget counts.
        max_k: the largest number of slices tried.
        covs: per layer name, its input covariance (`input_covariances`): errors are then
            relative errors of the layers' outputs on that data; without, of their weights.
        round_to: k·j of every factored layer is a multiple of this (`step`).
    """

    def __init__(
        self,
        layers: Sequence[LayerInfo],
        metric: str,
        max_k: int,
        covs: Mapping[str, torch.Tensor] | None = None,
        round_to: int = 1,
    ) -> None:
        self.layers = list(layers)
        self.metric, self.max_k, self.round_to = metric, max_k, round_to
        self.covs = dict(covs or {})
        self._svds: dict[tuple[int, int], SliceSVD] = {}

    # -- one layer -----------------------------------------------------------------------
    def svd(self, index: int, k: int) -> SliceSVD:
        key = (index, k)
        if key not in self._svds:
            # ‖W‖₂ is the top singular value of the unsliced weight: computed once per layer
            norm = None if k == 1 else float(self.svd(index, 1).s[0][0])
            layer = self.layers[index]
            cov = self.covs.get(layer.name)
            self._svds[key] = SliceSVD.of(layer.module.weight, k, norm, cov)
        return self._svds[key]

    def size(self, index: int, choice: Choice) -> int:
        layer = self.layers[index]
        if choice.dense:
            return layer.dense_params if self.metric == "params" else layer.dense_macs
        if self.metric == "params":
            return layer.params(choice.k, choice.j)
        return layer.macs(choice.k, choice.j)

    def error(self, index: int, choice: Choice) -> float:
        return 0.0 if choice.dense else self.svd(index, choice.k).error(choice.j)

    def step(self, k: int) -> int:
        """The rank step with k slices: the least j whose k·j is a multiple of ``round_to``."""
        return self.round_to // math.gcd(self.round_to, k)

    def round_down(self, k: int, j: int) -> int:
        """The largest admissible rank (a multiple of `step`) at most ``j``; 0 if none."""
        return j // self.step(k) * self.step(k)

    def _at(self, index: int, k: int, j: int) -> Choice:
        """Rank j (rounded up to a multiple of `step`) with k slices, or dense when that is
        above the layer's largest rank or not smaller."""
        j = -(-j // self.step(k)) * self.step(k)
        if j > self.layers[index].max_rank(k):
            return Choice()
        factored = Choice(k, j)
        return factored if self.size(index, factored) < self.size(index, Choice()) else Choice()

    def dense_total(self) -> int:
        return sum(self.size(i, Choice()) for i in range(len(self.layers)))

    def total(self, choices: Sequence[Choice]) -> int:
        return sum(self.size(i, c) for i, c in enumerate(choices))

    def smallest_total(self) -> int:
        """The smallest size the layers reach: the least rank and k = 1 (dense where not
        smaller)."""
        return self.total([self._at(i, 1, 1) for i in range(len(self.layers))])

    def max_error(self, choices: Sequence[Choice]) -> float:
        return max((self.error(i, c) for i, c in enumerate(choices)), default=0.0)

    # -- global step ---------------------------------------------------------------------
    def global_step(self, ks: Sequence[int], budget: int) -> list[Choice]:
        """One error level for all layers (bisected to meet ``budget``), then a fill."""
        n = len(self.layers)

        def at_level(eps: float) -> list[Choice]:
            out = []
            for i in range(n):
                top = self.layers[i].max_rank(ks[i])
                out.append(self._at(i, ks[i], self.svd(i, ks[i]).rank_for(eps, top)))
            return out

        smallest = [self._at(i, ks[i], 1) for i in range(n)]
        if self.total(smallest) > budget:
            raise PlanError(
                f"a {self.metric} budget of {budget:,} for the factored layers is below the "
                f"smallest decomposition ({self.total(smallest):,}: rank 1 everywhere); "
                "give a larger target"
            )
        lo, hi = 0.0, max(self.error(i, c) for i, c in enumerate(smallest))
        for _ in range(40):  # errors are in [0, 1]: 40 halvings resolve every rank step
            mid = (lo + hi) / 2
            if self.total(at_level(mid)) <= budget:
                hi = mid
            else:
                lo = mid
        return self._fill(at_level(hi), budget, key=lambda i, c: self.error(i, c))

    def _fill(self, choices: list[Choice], budget: int, key) -> list[Choice]:
        """Spend what the budget has left one rank at a time, on the layer ``key`` ranks
        highest among those whose next rank still fits."""
        choices = list(choices)
        spent = self.total(choices)
        while True:
            best, best_key, best_next = None, None, None
            for i, c in enumerate(choices):
                if c.dense:
                    continue
                nxt = self._at(i, c.k, c.j + 1)  # the next admissible rank, or dense
                extra = self.size(i, nxt) - self.size(i, c)
                if spent + extra > budget:
                    continue
                score = key(i, c)
                if best_key is None or score > best_key:
                    best, best_key, best_next = i, score, nxt
            if best is None:
                return choices
            spent += self.size(best, best_next) - self.size(best, choices[best])
            choices[best] = best_next

    # -- local step ----------------------------------------------------------------------
    def local_step(self, choices: Sequence[Choice]) -> list[int]:
        """For each factored layer, the k whose rank at the layer's current size errs least."""
        ks = []
        for i, c in enumerate(choices):
            if c.dense:
                ks.append(c.k)
                continue
            layer, room = self.layers[i], self.size(i, c)
            best_k, best_err = c.k, self.error(i, c)
            for k in layer.slice_counts(self.max_k):
                unit = self.size(i, Choice(k, 1)) - self.size(i, Choice(k, 0))
                j = min((room - self.size(i, Choice(k, 0))) // unit, layer.max_rank(k))
                j = self.round_down(k, j)
                if j >= 1 and (err := self.svd(i, k).error(j)) < best_err:
                    best_k, best_err = k, err
            ks.append(best_k)
        return ks

    # -- searches ------------------------------------------------------------------------
    def alds(self, budget: int, starts: int, rounds: int, seed: int) -> list[Choice]:
        """The ALDS search: alternate global and local steps from ``starts`` starting k
        (all ones first, then random), keep the allocation with the lowest maximum error."""
        rng = random.Random(seed)
        best, best_err = None, float("inf")
        for start in range(starts):
            if start == 0:
                ks = [1] * len(self.layers)
            else:
                ks = [rng.choice(layer.slice_counts(self.max_k)) for layer in self.layers]
            for _ in range(rounds):
                choices = self.global_step(ks, budget)
                new_ks = self.local_step(choices)
                if new_ks == ks:
                    break
                ks = new_ks
            choices = self.global_step(ks, budget)
            err = self.max_error(choices)
            if err < best_err:
                best, best_err = choices, err
        return best

    def uniform(self, budget: int) -> list[Choice]:
        """Plain SVD (k = 1) at one rank ratio for every layer, bisected to meet ``budget``;
        what is left is spent a rank at a time on the layers in turn (smallest ratio first)."""
        n = len(self.layers)

        def at_ratio(ratio: float) -> list[Choice]:
            out = []
            for i in range(n):
                top = self.layers[i].max_rank(1)
                out.append(self._at(i, 1, max(1, min(top, round(ratio * top)))))
            return out

        if self.total(at_ratio(0.0)) > budget:
            raise PlanError(
                f"a {self.metric} budget of {budget:,} for the factored layers is below the "
                "smallest decomposition (rank 1 everywhere); give a larger target"
            )
        lo, hi = 0.0, 1.0
        for _ in range(40):
            mid = (lo + hi) / 2
            if self.total(at_ratio(mid)) <= budget:
                lo = mid
            else:
                hi = mid
        fill_key = lambda i, c: -c.j / self.layers[i].max_rank(1)  # noqa: E731
        return self._fill(at_ratio(lo), budget, key=fill_key)
