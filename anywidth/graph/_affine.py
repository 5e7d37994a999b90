"""Lengths as affine forms of group sizes: the one arithmetic behind cut, cost and skeleton.

Every channel dimension anywidth follows (a slot, read with a ``block``) has a length that is
an affine function of the channel-group sizes: ``const + sum(coef * size[group])``. A leaf
of a group contributes ``block`` times that group's size; a leaf that belongs to no group in
the index (a fixed group, or channels without parameters) keeps its traced length. `cut`
evaluates the forms at the new sizes, `WidthCost` multiplies them into MACs and parameter
counts, and `width_agnostic` reads them from tensor shapes at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from anywidth.graph._slots import SlotTable

__all__ = ["Form", "FormOf", "form_maker"]


@dataclass(frozen=True)
class Form:
    """``const + sum(coef * sizes[group])`` over groups by index."""

    const: int
    coefs: tuple[tuple[int, int], ...] = ()  # (group index, coefficient), sorted

    def __add__(self, other: Form) -> Form:
        merged = dict(self.coefs)
        for group, coef in other.coefs:
            merged[group] = merged.get(group, 0) + coef
        return Form(self.const + other.const, tuple(sorted(merged.items())))

    def value(self, sizes: Sequence[int]) -> int:
        """The length at the group sizes ``sizes`` (indexed like the form's groups)."""
        total = self.const
        for group, coef in self.coefs:
            total += coef * sizes[group]
        return total


FormOf = Callable[[int | None, int], Form]


def form_maker(
    table: SlotTable, name_of_root: Mapping[int, str], index: Mapping[str, int]
) -> FormOf:
    """``form(slot, block)``: the length of a slot as a `Form` of the groups in ``index``.

    Args:
        table: the analysis' slot table.
        name_of_root: group name of each class root (from `collect`).
        index: position of each group that may change size in the sizes vectors.
    """

    def form(slot: int | None, block: int = 1) -> Form:
        const, coefs = 0, {}
        for leaf in table.leaves(slot):
            group = index.get(name_of_root.get(table.find(leaf), ""))
            if group is None:
                const += table.size[leaf] * block
            else:
                coefs[group] = coefs.get(group, 0) + block
        return Form(const, tuple(sorted(coefs.items())))

    return form
