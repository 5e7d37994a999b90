"""Read a width plan from tensor shapes at run time: the bookkeeping behind `width_agnostic`.

Every dimension of every parameter or buffer is a linear function of the channel-group
sizes, ``length = const + sum(coef * size[group])``, where ``coef`` sums the ``block`` of
the group's members on that dimension (a grouped conv's weight holds its tied group once
per conv group). `PlanReader` solves these equations for the sizes, one group at a time
from an equation in which it is the only unknown left (the order is found once, when the
skeleton is built), checks that every tensor agrees with the sizes found, and evaluates
the graph constants (slice bounds, split and view sizes) as linear forms of the sizes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain

from torch import nn

from anywidth.graph._affine import Form
from anywidth.graph._types import ChannelGroup, GraphError, PlanError

__all__ = ["PlanReader", "build_reader", "unread_groups"]


@dataclass(frozen=True)
class _Equation:
    name: str  # a parameter or buffer
    dim: int
    form: Form


class PlanReader(nn.Module):
    """Reads group sizes from the shapes of the tensors it is called with.

    Called by the skeleton's graph with the tensors ``names`` (read with ``get_attr``, so
    ``torch.func.functional_call`` supplies them); returns the values of ``forms``.
    Holds no parameters or buffers.
    """

    _is_impure = True  # its checks must survive dead-code elimination

    def __init__(
        self,
        names: list[str],
        groups: list[ChannelGroup],
        steps: list[tuple[_Equation, int]],
        checks: dict[str, list[_Equation]],
        forms: list[Form],
    ) -> None:
        super().__init__()
        pos = {name: i for i, name in enumerate(names)}
        self.names, self.groups, self.forms = names, groups, forms
        self.steps = [(pos[eq.name], eq.dim, eq.form, group) for eq, group in steps]
        # Checked tensors' shapes, flattened: the constant part of each length, and where a
        # length depends on the plan, which of the distinct forms gives it.
        self.checked = [pos[name] for name in checks]
        self.ranks = [len(eqs) for eqs in checks.values()]
        self.base: list[int] = []
        self.slots: list[tuple[int, int]] = []
        distinct: dict[Form, int] = {}
        for eq in (eq for eqs in checks.values() for eq in eqs):
            if eq.form.coefs:
                self.slots.append((len(self.base), distinct.setdefault(eq.form, len(distinct))))
            self.base.append(eq.form.const)
        self.dim_forms = list(distinct)

    def extra_repr(self) -> str:
        return f"tensors={len(self.names)}, groups={len(self.groups)}, values={len(self.forms)}"

    def forward(self, *tensors) -> tuple[int, ...]:
        shapes = [t.shape for t in tensors]
        sizes = self.read(shapes)
        if self.checked:
            picked = [shapes[i] for i in self.checked]
            values = [form.value(sizes) for form in self.dim_forms]
            expected = list(self.base)
            for at, form in self.slots:
                expected[at] = values[form]
            if [len(s) for s in picked] != self.ranks or [*chain(*picked)] != expected:
                raise PlanError(self._mismatch(shapes, sizes, expected))
        return tuple(form.value(sizes) for form in self.forms)

    def read(self, shapes: Sequence[Sequence[int]]) -> list[int]:
        """Sizes of the free groups that ``steps`` read (the others are left at 0)."""
        sizes = [0] * len(self.groups)
        for index, dim, form, group in self.steps:
            shape = shapes[index]
            coef, rest = 0, (shape[dim] if dim < len(shape) else 0) - form.const
            for other, k in form.coefs:
                if other == group:
                    coef = k
                else:
                    rest -= k * sizes[other]
            size, remainder = divmod(rest, coef)
            full = self.groups[group].size
            if remainder or not 1 <= size <= full:
                raise PlanError(
                    f"tensor {self.names[index]!r} has shape {tuple(shape)}: its dimension "
                    f"{dim} gives channel group {self.groups[group].name!r} {rest}/{coef} "
                    f"channels, not a whole number in 1..{full}"
                )
            sizes[group] = size
        return sizes

    def _mismatch(self, shapes, sizes: list[int], expected: list[int]) -> str:
        """The message for the first checked tensor whose shape is not the expected one."""
        start = 0
        for index, rank in zip(self.checked, self.ranks, strict=True):
            want = tuple(expected[start : start + rank])
            start += rank
            if tuple(shapes[index]) != want:
                break
        source = {group: self.names[i] for i, _, _, group in self.steps}
        used = {
            g
            for at, f in self.slots
            if start - rank <= at < start
            for g, _ in self.dim_forms[f].coefs
        }
        read = ", ".join(
            f"{self.groups[g].name!r}={sizes[g]} (from {source[g]!r})" for g in sorted(used)
        )
        return (
            f"tensor {self.names[index]!r} has shape {tuple(shapes[index])}, but the width "
            f"plan read from the other tensors gives it shape {want}"
            + (f" (channel groups {read})" if read else "")
            + "; pass the tensors of one width plan (see plan_shapes)"
        )


def _equations(
    shapes: Mapping[str, Sequence[int]], free: list[ChannelGroup]
) -> dict[str, list[_Equation]]:
    """One equation per dimension of every tensor, keyed by tensor name."""
    coefs: dict[tuple[str, int], dict[int, int]] = {}
    for index, group in enumerate(free):
        for m in group.members:
            if m.name not in shapes or m.dim >= len(shapes[m.name]):
                raise GraphError(
                    f"channel group {group.name!r} names {m.name!r} dimension {m.dim}, which "
                    "this model does not have; pass the model's own channel_groups"
                )
            bucket = coefs.setdefault((m.name, m.dim), {})
            bucket[index] = bucket.get(index, 0) + m.block
    out = {}
    for name, shape in shapes.items():
        out[name] = []
        for dim, length in enumerate(shape):
            parts = coefs.get((name, dim), {})
            const = length - sum(k * free[g].size for g, k in parts.items())
            out[name].append(_Equation(name, dim, Form(const, tuple(sorted(parts.items())))))
    return out


def _solve_order(equations: Iterable[_Equation]) -> list[tuple[_Equation, int]]:
    """Which equation reads which group, in an order where each has one unknown left."""
    pending = sorted((eq for eq in equations if eq.form.coefs), key=lambda e: len(e.form.coefs))
    solved: set[int] = set()
    steps = []
    progress = True
    while progress:
        progress = False
        for eq in pending:
            unknown = [g for g, _ in eq.form.coefs if g not in solved]
            if len(unknown) == 1:
                steps.append((eq, unknown[0]))
                solved.add(unknown[0])
                progress = True
        pending = [eq for eq in pending if any(g not in solved for g, _ in eq.form.coefs)]
    return steps


def unread_groups(
    shapes: Mapping[str, Sequence[int]], free: list[ChannelGroup], forms: list[Form]
) -> list[int]:
    """The free groups (by index) that ``forms`` need but no tensor shape determines.

    A group is read from a dimension in which it is the only group whose size is still
    unknown; one that only ever appears together with other unread groups stays unknown.
    """
    equations = _equations(shapes, free)
    read = {group for _, group in _solve_order(eq for eqs in equations.values() for eq in eqs)}
    return sorted({g for form in forms for g, _ in form.coefs} - read)


def build_reader(
    shapes: Mapping[str, Sequence[int]],
    free: list[ChannelGroup],
    forms: list[Form],
    check: bool,
) -> PlanReader:
    """A `PlanReader` for a model whose tensors have ``shapes`` at full width.

    Args:
        shapes: every parameter and buffer name of the skeleton, with its full shape.
        free: the groups that may change size; `Form` group indices point into it. Every
            group the forms need must be readable (see `unread_groups`).
        forms: the values the graph needs.
        check: verify every dimension of every tensor, not only those the forms need.
    """
    equations = _equations(shapes, free)
    steps = _solve_order(eq for eqs in equations.values() for eq in eqs)
    read = {group for _, group in steps}
    if check:
        checks = {
            name: eqs
            for name, eqs in equations.items()
            if all(g in read for eq in eqs for g, _ in eq.form.coefs)
        }
        return PlanReader(list(shapes), free, steps, checks, forms)
    needed = {g for form in forms for g, _ in form.coefs}
    kept = []
    for eq, group in reversed(steps):
        if group in needed:
            kept.append((eq, group))
            needed.update(g for g, _ in eq.form.coefs)
    kept.reverse()
    names = list(dict.fromkeys(eq.name for eq, _ in kept))
    return PlanReader(names, free, kept, {}, forms)
