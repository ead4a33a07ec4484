"""The suite's test order: the longest tests start first on every process, and no test is lost or repeated."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tests.ordering import LONGEST, longest_first, slice_sizes


def items(count: int, long_at: list[int]) -> list[Any]:
    names = [f"tests/x.py::test_{i}" for i in range(count)]
    for rank, position in enumerate(long_at):
        names[position] = LONGEST[rank]
    return [SimpleNamespace(nodeid=name) for name in names]


def test_slices_are_those_xdist_hands_out():
    assert slice_sizes(10, 4) == [2, 2, 3, 3] and slice_sizes(1766, 4) == [441, 441, 442, 442]


def test_the_longest_tests_head_the_slices_round_the_processes_and_nothing_is_lost():
    given = items(40, long_at=[39, 5, 30, 17, 22, 38])
    ordered = longest_first(given, 4)
    assert sorted(item.nodeid for item in ordered) == sorted(item.nodeid for item in given)
    starts = [0, 10, 20, 30]
    assert [ordered[s].nodeid for s in starts] == list(LONGEST[:4])
    assert [ordered[s + 1].nodeid for s in starts[:2]] == list(LONGEST[4:6])
    rest = [item.nodeid for item in ordered if item.nodeid not in LONGEST]
    assert rest == [item.nodeid for item in given if item.nodeid not in LONGEST]  # the others keep their order


def test_a_plain_run_keeps_the_collection_order():
    given = items(12, long_at=[11])
    assert longest_first(given, 0) == given and longest_first(given, 1) == given
