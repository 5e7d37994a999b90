"""Union-find over channel slots, with splitting.

A *slot* is the channel dimension of one tensor (or parameter dimension), as a list of
channels. Two kinds exist:

- a **leaf** is an indivisible run of channels; leaves that must keep the same size and
  order are merged into one *class* (union-find), and a class becomes a `ChannelGroup`;
- a **composite** is a sequence of other slots (a concatenation), resolved to its leaves
  on demand.

A leaf made for a 1-d parameter or buffer read on its own is *provisional*: the tensor may
hold channels (a per-channel scale) or not (a relative-position index, a mask), which only
its uses tell. A class of provisional leaves alone is not a channel group; one tied to a
layer's channels is.

Slicing a channel range out of a leaf (``x[:, :16]``) splits the leaf's whole class at the
same position, so every tensor tied to it is cut into the same two runs; later unions of
slots with different run boundaries refine both sides first. Leaves never shrink or move,
they only gain children, so any slot recorded early still resolves to the right leaves at
the end.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SlotTable"]


class SlotTable:
    """All slots of one traced model, and the classes their leaves form."""

    def __init__(self) -> None:
        self.size: list[int] = []
        self.children: list[list[int] | None] = []
        self.key: list[tuple[int, ...]] = []  # creation order, for stable names
        self.label: list[str] = []  # the producer that created the root slot
        self.start: list[int] = []  # channel offset inside that producer's slot
        self.root_size: list[int] = []
        self.provisional: list[bool] = []  # leaves made for a tensor read on its own
        self._parent: list[int] = []
        self._members: dict[int, list[int]] = {}  # class root -> leaves
        self._fixed: set[int] = set()  # class roots
        self._counter = 0

    # -- creation --------------------------------------------------------------------
    def new(self, size: int, label: str, fixed: bool = False, provisional: bool = False) -> int:
        """A fresh leaf of ``size`` channels named after ``label``."""
        self._counter += 1
        sid = self._add(size, (self._counter,), label, 0, size, leaf=True)
        self.provisional[sid] = provisional
        if fixed:
            self._fixed.add(sid)
        return sid

    def composite(self, parts: Iterable[int]) -> int | None:
        """A slot that is the concatenation of ``parts`` (None if empty)."""
        parts = list(parts)
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        self._counter += 1
        sid = self._add(sum(self.size[p] for p in parts), (self._counter,), "", 0, 0, leaf=False)
        self.children[sid] = parts
        return sid

    def _add(self, size, key, label, start, root_size, leaf) -> int:
        sid = len(self.size)
        self.size.append(size)
        self.children.append(None)
        self.key.append(key)
        self.label.append(label)
        self.start.append(start)
        self.root_size.append(root_size)
        self.provisional.append(False)
        self._parent.append(sid)
        if leaf:
            self._members[sid] = [sid]
        return sid

    # -- queries ---------------------------------------------------------------------
    def leaves(self, sid: int | None) -> list[int]:
        """The leaves of a slot, in channel order."""
        if sid is None:
            return []
        kids = self.children[sid]
        if kids is None:
            return [sid]
        out: list[int] = []
        for kid in kids:
            out.extend(self.leaves(kid))
        return out

    def find(self, leaf: int) -> int:
        """The class root of a leaf."""
        root = leaf
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[leaf] != root:
            self._parent[leaf], leaf = root, self._parent[leaf]
        return root

    def is_fixed(self, leaf: int) -> bool:
        return self.find(leaf) in self._fixed

    def is_provisional(self, sid: int) -> bool:
        """Whether every leaf of ``sid`` is in a class of provisional leaves only."""
        return all(
            all(self.provisional[m] for m in self._members[self.find(leaf)])
            for leaf in self.leaves(sid)
        )

    def classes(self) -> dict[int, list[int]]:
        """Every live class: root -> its leaves."""
        return {r: list(m) for r, m in self._members.items()}

    def leaf_name(self, leaf: int) -> str:
        """``label`` or ``label[a:b]`` when the leaf is part of its producer's channels."""
        start, size = self.start[leaf], self.size[leaf]
        if start == 0 and size == self.root_size[leaf]:
            return self.label[leaf]
        return f"{self.label[leaf]}[{start}:{start + size}]"

    def class_name(self, leaf: int) -> str:
        """Name of a leaf's class: the name of its earliest-created leaf that is not
        provisional (a layer's channels rather than a tensor read on its own)."""
        members = self._members[self.find(leaf)]
        return self.leaf_name(min(members, key=lambda m: (self.provisional[m], self.key[m])))

    # -- changes ---------------------------------------------------------------------
    def fix(self, sid: int | None) -> list[str]:
        """Mark every class under ``sid`` fixed; return the names of those newly fixed
        (provisional classes left out: they are no groups, unless tied to one later)."""
        newly = []
        for leaf in self.leaves(sid):
            root = self.find(leaf)
            if root not in self._fixed:
                if not self.is_provisional(root):
                    newly.append(self.class_name(leaf))
                self._fixed.add(root)
        return newly

    def union(self, a: int, b: int) -> None:
        """Tie two slots of equal size channel by channel."""
        if self.size[a] != self.size[b]:
            raise ValueError(f"cannot tie slots of {self.size[a]} and {self.size[b]} channels")
        while True:
            la, lb = self.leaves(a), self.leaves(b)
            ba, bb = self._boundaries(la), self._boundaries(lb)
            missing = sorted(ba ^ bb)
            if not missing:
                break
            point = missing[0]
            self._split_seq_at(la if point in bb else lb, point)
        for x, y in zip(self.leaves(a), self.leaves(b), strict=True):
            self._union_leaves(x, y)

    def slice(self, sid: int, start: int, stop: int) -> tuple[int | None, int]:
        """Channels ``start:stop`` of a slot, splitting leaves as needed.

        Returns:
            ``(before, inside)``: the slot of channels ``0:start`` (None if empty) and the
            slot of channels ``start:stop``.
        """
        for point in (start, stop):
            self._split_seq_at(self.leaves(sid), point)
        before, inside, pos = [], [], 0
        for leaf in self.leaves(sid):
            if pos + self.size[leaf] <= start:
                before.append(leaf)
            elif pos >= start and pos + self.size[leaf] <= stop:
                inside.append(leaf)
            pos += self.size[leaf]
        return self.composite(before), self.composite(inside)

    def split_equal(self, sid: int, parts: int) -> list[int]:
        """Cut a slot into ``parts`` equal runs (its size must divide evenly)."""
        step = self.size[sid] // parts
        return [self.slice(sid, i * step, (i + 1) * step)[1] for i in range(parts)]

    def _boundaries(self, leaves: list[int]) -> set[int]:
        out, pos = set(), 0
        for leaf in leaves[:-1]:
            pos += self.size[leaf]
            out.add(pos)
        return out

    def _split_seq_at(self, leaves: list[int], point: int) -> None:
        """Split the class of the leaf that strictly contains channel offset ``point``."""
        pos = 0
        for leaf in leaves:
            size = self.size[leaf]
            if pos < point < pos + size:
                self._split_class(leaf, point - pos)
                return
            pos += size

    def _split_class(self, leaf: int, at: int) -> None:
        root = self.find(leaf)
        fixed = root in self._fixed
        members = sorted(self._members.pop(root), key=lambda m: self.key[m])
        self._fixed.discard(root)
        lefts, rights = [], []
        for m in members:
            kids = []
            for i, (off, size) in enumerate(((0, at), (at, self.size[m] - at))):
                kid = self._add(
                    size,
                    self.key[m] + (i,),
                    self.label[m],
                    self.start[m] + off,
                    self.root_size[m],
                    leaf=True,
                )
                self.provisional[kid] = self.provisional[m]
                kids.append(kid)
            self.children[m] = kids
            lefts.append(kids[0])
            rights.append(kids[1])
        for side in (lefts, rights):
            for other in side[1:]:
                self._union_leaves(side[0], other)
            if fixed:
                self._fixed.add(self.find(side[0]))

    def _union_leaves(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx == ry:
            return
        if self.key[rx] > self.key[ry]:
            rx, ry = ry, rx
        self._parent[ry] = rx
        self._members[rx].extend(self._members.pop(ry))
        if ry in self._fixed:
            self._fixed.discard(ry)
            self._fixed.add(rx)
