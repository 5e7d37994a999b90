"""The union-find with splitting under the groups."""

from __future__ import annotations

from anywidth.graph._slots import SlotTable


def _sizes(table: SlotTable, slot: int) -> list[int]:
    return [table.size[leaf] for leaf in table.leaves(slot)]


def test_slicing_splits_every_tied_slot():
    t = SlotTable()
    a, b = t.new(8, "a"), t.new(8, "b")
    t.union(a, b)
    before, inside = t.slice(a, 2, 5)
    assert _sizes(t, a) == _sizes(t, b) == [2, 3, 3]
    assert t.size[before] == 2 and t.size[inside] == 3
    assert t.class_name(t.leaves(b)[1]) == "a[2:5]"
    assert t.find(t.leaves(a)[1]) == t.find(t.leaves(b)[1])


def test_union_refines_different_run_boundaries():
    t = SlotTable()
    y, z = t.new(1, "y"), t.new(2, "z")
    left, right = t.composite([y, z]), t.composite([z, y])
    t.union(left, right)
    assert len(t.classes()) == 1  # y ~ z[0:1] ~ z[1:2]: every channel is one


def test_fixed_flag_survives_splits_and_unions():
    t = SlotTable()
    a, b = t.new(4, "a", fixed=True), t.new(4, "b")
    t.slice(a, 0, 1)
    t.union(b, a)
    assert all(t.is_fixed(leaf) for leaf in t.leaves(b))
    assert t.fix(b) == []


def test_split_equal_ties_nothing_by_itself():
    t = SlotTable()
    a = t.new(6, "a")
    runs = t.split_equal(a, 3)
    assert [t.size[r] for r in runs] == [2, 2, 2] and len(t.classes()) == 3
