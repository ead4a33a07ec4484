"""The maintenance options of docs/lifecycle.md "Planning" as numba-compiled helpers of :mod:`.numba_kernels`.

The repair shop of a group (member x type) has ``slots`` places; airframes sent to repair while it is full wait in
the group's queue, first come first served by (day joined, aircraft number). The queue of each group is a ring
buffer in one shared ``int32`` array: group ``g`` owns ``queue_store[base[g] : base[g] + capacity[g]]``, where
``capacity[g]`` is the group's number of agents (an airframe waits at most once at a time). Inside a day the
waiting airframes are served first, then the day's entrants in idx order (which is aircraft-number order inside a
group), so no sort is ever needed: the ring keeps the order by itself.

Random draws (removals, repair durations) are :func:`.ensemble.draw` computed on ``uint64`` scalars: every constant
and operand is ``np.uint64``, since numba turns a mix of ``uint64`` and ``int64`` into ``float64``.

The ``plan`` tuple the kernels pass around holds, in this order: ``slots`` (``int64[groups]``), ``hazard``
(``uint64[groups]``, 32-bit thresholds), ``spread_kind`` (``int64[groups]``), ``spread_table`` (``int64[groups,
width]``), ``spread_len`` (``uint64[groups]``), ``rng_key`` (``uint64[groups]``), ``fleet_idx`` (``uint64[n]``, the
agent's idx in its fleet), ``under`` (``int64[groups]``, repairs under way), then the queue: ``queue_store``
(``int32[n]``), ``base``, ``capacity``, ``head``, ``length`` (``int64[groups]``). A run without maintenance options
passes zero-length arrays (``slots.shape[0] == 0``), and the kernels take today's path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np

from simfleet.worker.lifecycle.ensemble import KIND_DURATION, KIND_REMOVAL, SPREAD_DAYS, SPREAD_NONE
from simfleet.worker.lifecycle.environment import NO_DATE

F = TypeVar("F", bound=Callable[..., Any])

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
MIX_2 = np.uint64(0x94D049BB133111EB)
SHIFT_2, SHIFT_27, SHIFT_30, SHIFT_31, SHIFT_32 = (np.uint64(b) for b in (2, 27, 30, 31, 32))
REMOVAL, DURATION = np.uint64(KIND_REMOVAL), np.uint64(KIND_DURATION)
HALF_FIXED = 1 << 15
"""Rounding half up of a fixed-point (16 fractional bits) product."""


def compiled(function: F) -> F:
    """``numba.njit`` with the on-disk cache, keeping the function's type for mypy."""
    return cast(F, numba.njit(cache=True, nogil=True)(function))


@compiled
def mix64(x: Any) -> Any:
    """The SplitMix64 finaliser on a ``uint64`` (wrap-around arithmetic)."""
    x = x + GOLDEN
    x = (x ^ (x >> SHIFT_30)) * MIX_1
    x = (x ^ (x >> SHIFT_27)) * MIX_2
    return x ^ (x >> SHIFT_31)


@compiled
def draw(key: Any, day: int, idx: Any, kind: Any) -> Any:
    """:func:`.ensemble.draw` for one airframe: 32 random bits (a ``uint64`` below 2**32); ``day`` >= 0."""
    counter = (np.uint64(day) << SHIFT_32) | (idx << SHIFT_2) | kind
    return mix64(key ^ mix64(counter)) >> SHIFT_32


@compiled
def flag_removals(s: int, status: Any, group: Any, flags: Any, plan: Any) -> None:
    """Step 3's unplanned removals: a flyer that may go on flying (flag 0) is flagged 2 when its draw says so.

    Every agent draws (no branch on the status, which would be mispredicted about every other airframe).
    """
    hazard, key, fleet_idx = plan[1], plan[5], plan[6]
    for i in range(status.shape[0]):
        g = group[i]
        u = draw(key[g], s, fleet_idx[i], REMOVAL)
        if (status[i] == 2) & (flags[i] == 0) & (u < hazard[g]):  # rare: a well-predicted branch
            flags[i] = 2


@compiled
def start_repair(i: int, s: int, decided_on: int, static: Any, state: Any, plan: Any, repairing: Any,
                 sizes: Any) -> None:  # fmt: skip
    """Agent ``i`` starts a repair on day index ``s`` (date ``decided_on``): its duration, dates, and a place.

    The duration is MP1's ``repair_time`` or one drawn with day ``s + 1`` (the rule of docs/lifecycle.md); the
    repair is counted down from the next day on.
    """
    group, _, _, _, repair_time, partout_time, repair_minus_assembly, _ = static
    repair_days, partout, assembly, repair_duration, queued_since = state[3], state[4], state[5], state[7], state[8]
    spread_kind, table, length, key, fleet_idx, under = plan[2], plan[3], plan[4], plan[5], plan[6], plan[7]
    g = group[i]
    duration = np.int64(repair_time[i])
    if spread_kind[g] != SPREAD_NONE:
        u = draw(key[g], s + 1, fleet_idx[i], DURATION)
        entry = table[g, np.int64((u * length[g]) >> SHIFT_32)]
        duration = entry if spread_kind[g] == SPREAD_DAYS else max(1, (duration * entry + HALF_FIXED) >> 16)
    repair_duration[i] = duration
    repair_days[i] = 0
    partout[i] = decided_on + partout_time[i]
    assembly[i] = decided_on + duration - (repair_time[i] - repair_minus_assembly[i])
    queued_since[i] = NO_DATE
    repairing[sizes[0]] = i
    sizes[0] += 1
    under[g] += 1


@compiled
def admit(i: int, s: int, decided_on: int, static: Any, state: Any, plan: Any, repairing: Any, sizes: Any) -> None:
    """Agent ``i`` is sent to repair on day index ``s``: it starts if its group's shop has a free slot, else waits.

    Call it for a day's entrants in idx order, after :func:`serve_queue`: those waiting from earlier days come
    first, so an entrant finds a free slot only when nobody of its group waits.
    """
    slots, under, store, base, capacity, head, length = plan[0], plan[7], plan[8], plan[9], plan[10], plan[11], plan[12]
    g = static[0][i]
    if under[g] < slots[g]:
        start_repair(i, s, decided_on, static, state, plan, repairing, sizes)
    else:
        state[8][i] = decided_on
        store[base[g] + (head[g] + length[g]) % capacity[g]] = i
        length[g] += 1


@compiled
def serve_queue(s: int, decided_on: int, static: Any, state: Any, plan: Any, repairing: Any, sizes: Any) -> None:
    """Day ``s``: the waiting airframes take the slots left free after the day's finished repairs, in queue order."""
    slots, under, store, base, capacity, head, length = plan[0], plan[7], plan[8], plan[9], plan[10], plan[11], plan[12]
    for g in range(slots.shape[0]):
        while length[g] > 0 and under[g] < slots[g]:
            i = store[base[g] + head[g]]
            head[g] = (head[g] + 1) % capacity[g]
            length[g] -= 1
            start_repair(i, s, decided_on, static, state, plan, repairing, sizes)


def build_queues(group: Any, queued_since: Any, groups: int) -> tuple[Any, ...]:
    """The queue part of ``plan`` from a state: each group's waiting agents by (day joined, agent), in its ring.

    Returns:
        ``queue_store``, ``base``, ``capacity``, ``head`` (all 0), ``length``.
    """
    n = group.shape[0]
    capacity = np.bincount(group, minlength=groups).astype(np.int64)
    base = (np.cumsum(capacity) - capacity).astype(np.int64)
    store = np.zeros(n, dtype=np.int32)
    waiting = np.flatnonzero(queued_since != NO_DATE)
    waiting = waiting[np.lexsort((waiting, queued_since[waiting], group[waiting]))]
    length = np.bincount(group[waiting], minlength=groups).astype(np.int64)
    rank = np.arange(waiting.size) - (np.cumsum(length) - length)[group[waiting]]
    store[base[group[waiting]] + rank] = waiting
    return store, base, np.maximum(capacity, 1), np.zeros(groups, dtype=np.int64), length
