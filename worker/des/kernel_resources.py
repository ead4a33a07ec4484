"""Heaps and resources of the compiled DES kernel (:mod:`simfleet.worker.des.kernel`).

Binary heaps over numpy rows, the processor-sharing rate resources and the space resources, each mirroring
:mod:`simfleet.worker.des.resources` operation by operation (same floating-point expressions in the same order, same
tie-breaking).

Heaps hold unique keys (a float, then a sequence number), so any correct binary heap pops them in the same order as
Python's ``heapq``. Rate resources are rows of ``rate_f``/``rate_i`` (the R_* columns) with a served heap
(``rh_*``: virtual finish; sequence and tool; weight) and a waiting queue (``rq_*``: -priority; sequence and tool;
work and weight); space resources are rows of ``space_f``/``space_i`` (S_*) with a queue (``sq_*``: -priority; order
and tool; amount).

Cancellation (model v2 failures; only on resources whose ``R_TRACK``/``S_TRACK`` flag is set) is lazy, as in the
engine: a cancelled tool's heap entry stays where it is and is dropped when it comes to the top. Tool rows are reused
at once, so an entry is live only while it matches what its tool records: ``tool_rs[tool, r]`` holds the sequence of
the tool's entry on rate resource ``r`` (-1 when it has none: the engine's ``r not in tool.at``) and whether it is
served (``AT_SERVED``, virtual finish in ``tool_vf[tool, r]``) or waiting (``AT_WAITING``: the engine's ``None``);
``tool_sq[tool]`` holds the space resource and order of its entry in a space queue (-1 when none). Sequences are
unique over the run and orders per space resource, so a reused row never revives an old entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np

F = TypeVar("F", bound=Callable[..., Any])

INF = np.inf

# Rate resources: floats (rate_f) and integers (rate_i).
R_CAPACITY, R_CAP, R_VCLOCK, R_T_LAST, R_WSUM, R_VRATE, R_BUSY, R_NINT, R_QINT, R_WASTED = range(10)
N_RF = 10
R_N, R_MAX_ACTIVE, R_MAX_N, R_MAX_Q, R_HEAP_N, R_QUEUE_N, R_DEAD_Q, R_TRACK = range(8)
N_RI = 8
"""R_QUEUE_N counts the queue's entries, cancelled ones included (``len(queue)``); R_DEAD_Q the cancelled ones."""
# Space resources.
S_CAPACITY, S_USED, S_T_LAST, S_USED_INT, S_QINT, S_MAX_USED = range(6)
N_SF = 6
S_QUEUE_N, S_ORDER, S_MAX_Q, S_DEAD, S_TRACK = range(5)
N_SI = 5
AT_WAITING, AT_SERVED = 1, 2
"""tool_rs[tool, r, 1]: where a tool with an entry on rate resource r stands."""


_OPTIONS: dict[str, Any] = {"cache": True, "nogil": True, "_nrt": False}


def njit_cached(function: F) -> F:
    """``numba.njit`` with the on-disk cache, keeping the function's type for mypy.

    Compiled without numba's reference counting (``_nrt=False``): the kernel never allocates, and every array it
    touches (or takes a row of) is owned by the driver for the whole call, so the counting only cost time: its atomic
    increments and decrements on every row view and tuple unpacking took about 80% of an event (M/M/1-PS: 0.4 M
    requests/s with it, 1.9 M without).
    """
    return cast(F, numba.njit(**_OPTIONS)(function))


def njit_inlined(function: F) -> F:
    """:func:`njit_cached`, inlined into its callers at numba's level (the small helpers of the hot paths)."""
    return cast(F, numba.njit(inline="always", **_OPTIONS)(function))


@njit_inlined
def as_int64(value: int) -> int:
    """``value`` typed int64 rather than as a literal: constants go to kernel calls through this.

    numba compiles a callee once per literal it is passed (a call with ``0`` and one with ``1`` are two compilations).
    """
    return np.int64(value)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------------------ heaps


@njit_inlined
def _less(kf: Any, ki: Any, a: int, b: int) -> bool:
    less: bool = kf[a] < kf[b] or (kf[a] == kf[b] and ki[a, 0] < ki[b, 0])
    return less


@njit_inlined
def _swap(kf: Any, ki: Any, pf: Any, a: int, b: int) -> None:
    kf[a], kf[b] = kf[b], kf[a]
    for c in range(ki.shape[1]):
        ki[a, c], ki[b, c] = ki[b, c], ki[a, c]
    for c in range(pf.shape[1]):
        pf[a, c], pf[b, c] = pf[b, c], pf[a, c]


@njit_inlined
def heap_push(kf: Any, ki: Any, pf: Any, n: int, key: float, seq: int, item: int, x: float, y: float) -> None:
    """Put an entry at position ``n`` (the heap's size before the push) and sift it up."""
    kf[n] = key
    ki[n, 0] = seq
    ki[n, 1] = item
    pf[n, 0] = x
    if pf.shape[1] > 1:
        pf[n, 1] = y
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if _less(kf, ki, i, parent):
            _swap(kf, ki, pf, i, parent)
            i = parent
        else:
            break


@njit_inlined
def heap_pop(kf: Any, ki: Any, pf: Any, n: int) -> None:
    """Drop the top of a heap of ``n`` entries (read it first)."""
    last = n - 1
    if last > 0:
        _swap(kf, ki, pf, 0, last)
    i = 0
    while True:
        left = 2 * i + 1
        if left >= last:
            break
        child = left
        if left + 1 < last and _less(kf, ki, left + 1, left):
            child = left + 1
        if _less(kf, ki, child, i):
            _swap(kf, ki, pf, i, child)
            i = child
        else:
            break


# --------------------------------------------------------------------------------------------------- rate resources


@njit_inlined
def rate_advance(rate_f: Any, rate_i: Any, r: int, now: float) -> None:
    """RateResource.advance."""
    dt = now - rate_f[r, R_T_LAST]
    if dt > 0.0:
        n = rate_i[r, R_N]
        if n:
            rate_f[r, R_VCLOCK] += rate_f[r, R_VRATE] * dt
            rate_f[r, R_BUSY] += rate_f[r, R_VRATE] * rate_f[r, R_WSUM] * dt
            rate_f[r, R_NINT] += n * dt
        if rate_i[r, R_QUEUE_N]:
            rate_f[r, R_QINT] += (rate_i[r, R_QUEUE_N] - rate_i[r, R_DEAD_Q]) * dt
    rate_f[r, R_T_LAST] = now


@njit_inlined
def _stale(rh_ki: Any, tool_rs: Any, r: int, i: int) -> bool:
    """Whether entry ``i`` of a heap of rate resource ``r`` belongs to a cancelled tool."""
    stale: bool = tool_rs[rh_ki[r, i, 1], r, 0] != rh_ki[r, i, 0]
    return stale


@njit_cached
def rate_join(rate_f: Any, rate_i: Any, next_times: Any, rh_kf: Any, rh_ki: Any, rh_pf: Any, rq_kf: Any, rq_ki: Any,
              rq_pf: Any, tool_rs: Any, tool_vf: Any, r: int, tool: int, work: float, weight: float, priority: int,
              seq: int, now: float) -> None:  # fmt: skip
    """RateResource.join."""
    rate_advance(rate_f, rate_i, r, now)
    n = rate_i[r, R_N]
    track = rate_i[r, R_TRACK]
    if n >= rate_i[r, R_MAX_ACTIVE]:
        q = rate_i[r, R_QUEUE_N]
        heap_push(rq_kf[r], rq_ki[r], rq_pf[r], q, float(-priority), seq, tool, work, weight)
        q += 1
        rate_i[r, R_QUEUE_N] = q
        if track:
            tool_rs[tool, r, 0] = seq
            tool_rs[tool, r, 1] = AT_WAITING
        waiting = q - rate_i[r, R_DEAD_Q]
        if waiting > rate_i[r, R_MAX_Q]:
            rate_i[r, R_MAX_Q] = waiting
        return
    vclock = rate_f[r, R_VCLOCK]
    vfinish = vclock + work / weight
    h = rate_i[r, R_HEAP_N]
    heap_push(rh_kf[r], rh_ki[r], rh_pf[r], h, vfinish, seq, tool, weight, 0.0)
    rate_i[r, R_HEAP_N] = h + 1
    if track:
        tool_rs[tool, r, 0] = seq
        tool_rs[tool, r, 1] = AT_SERVED
        tool_vf[tool, r] = vfinish
    n += 1
    rate_i[r, R_N] = n
    rate_f[r, R_WSUM] += weight
    if n > rate_i[r, R_MAX_N]:
        rate_i[r, R_MAX_N] = n
    vrate = rate_f[r, R_CAPACITY] / rate_f[r, R_WSUM]
    if vrate > rate_f[r, R_CAP]:
        vrate = rate_f[r, R_CAP]
    rate_f[r, R_VRATE] = vrate
    next_times[r] = now + (rh_kf[r, 0] - vclock) / vrate


@njit_cached
def rate_admit_and_reschedule(rate_f: Any, rate_i: Any, next_times: Any, rh_kf: Any, rh_ki: Any, rh_pf: Any,
                              rq_kf: Any, rq_ki: Any, rq_pf: Any, tool_rs: Any, tool_vf: Any, r: int,
                              now: float) -> None:  # fmt: skip
    """RateResource._admit_and_reschedule: admit waiting tools, drop cancelled entries from the top, reschedule."""
    n = rate_i[r, R_N]
    wsum = rate_f[r, R_WSUM]
    vclock = rate_f[r, R_VCLOCK]
    q = rate_i[r, R_QUEUE_N]
    track = rate_i[r, R_TRACK]
    h = rate_i[r, R_HEAP_N]
    if q:
        max_active = rate_i[r, R_MAX_ACTIVE]
        while q and n < max_active:
            seq = rq_ki[r, 0, 0]
            tool = rq_ki[r, 0, 1]
            work = rq_pf[r, 0, 0]
            weight = rq_pf[r, 0, 1]
            stale = track and tool_rs[tool, r, 0] != seq
            heap_pop(rq_kf[r], rq_ki[r], rq_pf[r], q)
            q -= 1
            if stale:
                rate_i[r, R_DEAD_Q] -= 1
                continue
            vfinish = vclock + work / weight
            heap_push(rh_kf[r], rh_ki[r], rh_pf[r], h, vfinish, seq, tool, weight, 0.0)
            if track:
                tool_rs[tool, r, 1] = AT_SERVED
                tool_vf[tool, r] = vfinish
            h += 1
            n += 1
            wsum += weight
        rate_i[r, R_QUEUE_N] = q
        if n > rate_i[r, R_MAX_N]:
            rate_i[r, R_MAX_N] = n
    if track:
        while h and _stale(rh_ki, tool_rs, r, 0):
            heap_pop(rh_kf[r], rh_ki[r], rh_pf[r], h)
            h -= 1
    rate_i[r, R_HEAP_N] = h
    rate_i[r, R_N] = n
    if n:
        rate_f[r, R_WSUM] = wsum
        vrate = rate_f[r, R_CAPACITY] / wsum
        if vrate > rate_f[r, R_CAP]:
            vrate = rate_f[r, R_CAP]
        rate_f[r, R_VRATE] = vrate
        next_times[r] = now + (rh_kf[r, 0] - vclock) / vrate
    else:
        rate_i[r, R_HEAP_N] = 0
        rate_f[r, R_WSUM] = 0.0
        rate_f[r, R_VRATE] = 0.0
        next_times[r] = INF


@njit_cached
def rate_complete(rate_f: Any, rate_i: Any, next_times: Any, rh_kf: Any, rh_ki: Any, rh_pf: Any, rq_kf: Any,
                  rq_ki: Any, rq_pf: Any, tool_rs: Any, tool_vf: Any, r: int, now: float,
                  done: Any) -> int:  # fmt: skip
    """RateResource.complete: the tools done at ``now`` go into ``done``; returns how many."""
    n = rate_i[r, R_N]
    dt = now - rate_f[r, R_T_LAST]
    if dt > 0.0:
        rate_f[r, R_VCLOCK] += rate_f[r, R_VRATE] * dt
        rate_f[r, R_BUSY] += rate_f[r, R_VRATE] * rate_f[r, R_WSUM] * dt
        rate_f[r, R_NINT] += n * dt
        if rate_i[r, R_QUEUE_N]:
            rate_f[r, R_QINT] += (rate_i[r, R_QUEUE_N] - rate_i[r, R_DEAD_Q]) * dt
    rate_f[r, R_T_LAST] = now
    kf, ki, pf = rh_kf[r], rh_ki[r], rh_pf[r]
    track = rate_i[r, R_TRACK]
    h = rate_i[r, R_HEAP_N]
    vfinish = kf[0]
    tool = ki[0, 1]
    done[0] = tool
    weight = pf[0, 0]
    heap_pop(kf, ki, pf, h)
    h -= 1
    if track:
        tool_rs[tool, r, 0] = -1
    vclock = rate_f[r, R_VCLOCK]
    if vfinish > vclock:
        vclock = vfinish
        rate_f[r, R_VCLOCK] = vfinish
    m = 1
    n -= 1
    wsum = rate_f[r, R_WSUM] - weight
    while h and kf[0] <= vclock:
        tool = ki[0, 1]
        weight = pf[0, 0]
        stale = track and tool_rs[tool, r, 0] != ki[0, 0]
        heap_pop(kf, ki, pf, h)
        h -= 1
        if stale:
            continue
        if track:
            tool_rs[tool, r, 0] = -1
        done[m] = tool
        m += 1
        n -= 1
        wsum -= weight
    rate_i[r, R_HEAP_N] = h
    rate_i[r, R_N] = n
    rate_f[r, R_WSUM] = wsum
    if rate_i[r, R_QUEUE_N] or not n or (track and _stale(rh_ki, tool_rs, r, 0)):
        rate_admit_and_reschedule(rate_f, rate_i, next_times, rh_kf, rh_ki, rh_pf, rq_kf, rq_ki, rq_pf, tool_rs,
                                  tool_vf, r, now)  # fmt: skip
        return m
    vrate = rate_f[r, R_CAPACITY] / wsum
    if vrate > rate_f[r, R_CAP]:
        vrate = rate_f[r, R_CAP]
    rate_f[r, R_VRATE] = vrate
    next_times[r] = now + (kf[0] - vclock) / vrate
    return m


@njit_cached
def rate_cancel(rate_f: Any, rate_i: Any, next_times: Any, rh_kf: Any, rh_ki: Any, rh_pf: Any, rq_kf: Any,
                rq_ki: Any, rq_pf: Any, tool_rs: Any, tool_vf: Any, r: int, tool: int, work: float, weight: float,
                now: float) -> float:  # fmt: skip
    """RateResource.cancel: take a cancelled tool off resource ``r``; return the work it had done here."""
    if tool_rs[tool, r, 0] < 0:
        return work
    tool_rs[tool, r, 0] = -1
    rate_advance(rate_f, rate_i, r, now)
    if tool_rs[tool, r, 1] == AT_WAITING:
        rate_i[r, R_DEAD_Q] += 1
        return 0.0
    rate_i[r, R_N] -= 1
    rate_f[r, R_WSUM] -= weight
    left = tool_vf[tool, r] - rate_f[r, R_VCLOCK]
    if not left > 0.0:
        left = 0.0
    done = work - left * weight
    rate_admit_and_reschedule(rate_f, rate_i, next_times, rh_kf, rh_ki, rh_pf, rq_kf, rq_ki, rq_pf, tool_rs, tool_vf,
                              r, now)  # fmt: skip
    return done if done > 0.0 else 0.0


# -------------------------------------------------------------------------------------------------- space resources


@njit_inlined
def space_advance(space_f: Any, space_i: Any, s: int, now: float) -> None:
    """SpaceResource.advance."""
    dt = now - space_f[s, S_T_LAST]
    if dt > 0.0:
        space_f[s, S_USED_INT] += space_f[s, S_USED] * dt
        space_f[s, S_QINT] += (space_i[s, S_QUEUE_N] - space_i[s, S_DEAD]) * dt
    space_f[s, S_T_LAST] = now


@njit_inlined
def space_drop_dead(space_i: Any, sq_kf: Any, sq_ki: Any, sq_pf: Any, tool_sq: Any, s: int) -> None:
    """SpaceResource._drop_dead: pop the cancelled entries off the top of the queue."""
    if not space_i[s, S_TRACK]:
        return
    q = space_i[s, S_QUEUE_N]
    while q:
        tool = sq_ki[s, 0, 1]
        if tool_sq[tool, 0] == s and tool_sq[tool, 1] == sq_ki[s, 0, 0]:
            break
        heap_pop(sq_kf[s], sq_ki[s], sq_pf[s], q)
        q -= 1
        space_i[s, S_DEAD] -= 1
    space_i[s, S_QUEUE_N] = q


@njit_cached
def space_acquire(space_f: Any, space_i: Any, sq_kf: Any, sq_ki: Any, sq_pf: Any, tool_sq: Any, s: int, tool: int,
                  amount: float, priority: int, now: float) -> bool:  # fmt: skip
    """SpaceResource.acquire."""
    space_advance(space_f, space_i, s, now)
    space_drop_dead(space_i, sq_kf, sq_ki, sq_pf, tool_sq, s)
    q = space_i[s, S_QUEUE_N]
    if space_f[s, S_USED] + amount <= space_f[s, S_CAPACITY] and (not q or -priority < sq_kf[s, 0]):
        space_f[s, S_USED] += amount
        if space_f[s, S_USED] > space_f[s, S_MAX_USED]:
            space_f[s, S_MAX_USED] = space_f[s, S_USED]
        return True
    order = space_i[s, S_ORDER]
    heap_push(sq_kf[s], sq_ki[s], sq_pf[s], q, float(-priority), order, tool, amount, 0.0)
    if space_i[s, S_TRACK]:
        tool_sq[tool, 0] = s
        tool_sq[tool, 1] = order
    space_i[s, S_ORDER] = order + 1
    q += 1
    space_i[s, S_QUEUE_N] = q
    waiting = q - space_i[s, S_DEAD]
    if waiting > space_i[s, S_MAX_Q]:
        space_i[s, S_MAX_Q] = waiting
    return False


@njit_cached
def space_admit(space_f: Any, space_i: Any, sq_kf: Any, sq_ki: Any, sq_pf: Any, tool_sq: Any, s: int,
                admitted: Any) -> int:  # fmt: skip
    """SpaceResource.admit: the tools admitted go into ``admitted``, in order; returns how many."""
    m = 0
    space_drop_dead(space_i, sq_kf, sq_ki, sq_pf, tool_sq, s)
    q = space_i[s, S_QUEUE_N]
    while q and space_f[s, S_USED] + sq_pf[s, 0, 0] <= space_f[s, S_CAPACITY]:
        tool = sq_ki[s, 0, 1]
        admitted[m] = tool
        space_f[s, S_USED] += sq_pf[s, 0, 0]
        heap_pop(sq_kf[s], sq_ki[s], sq_pf[s], q)
        q -= 1
        m += 1
        space_i[s, S_QUEUE_N] = q
        space_drop_dead(space_i, sq_kf, sq_ki, sq_pf, tool_sq, s)
        q = space_i[s, S_QUEUE_N]
    if space_f[s, S_USED] > space_f[s, S_MAX_USED]:
        space_f[s, S_MAX_USED] = space_f[s, S_USED]
    return m


@njit_cached
def space_release(space_f: Any, space_i: Any, sq_kf: Any, sq_ki: Any, sq_pf: Any, tool_sq: Any, s: int, amount: float,
                  now: float, admitted: Any) -> int:  # fmt: skip
    """SpaceResource.release: the tools admitted go into ``admitted``, in order; returns how many."""
    space_advance(space_f, space_i, s, now)
    space_f[s, S_USED] -= amount
    if space_f[s, S_USED] < 1e-12:
        space_f[s, S_USED] = 0.0
    return space_admit(space_f, space_i, sq_kf, sq_ki, sq_pf, tool_sq, s, admitted)


@njit_cached
def space_cancel_waiting(space_f: Any, space_i: Any, sq_kf: Any, sq_ki: Any, sq_pf: Any, tool_sq: Any, s: int,
                         now: float, admitted: Any) -> int:  # fmt: skip
    """SpaceResource.cancel_waiting: a waiting tool (its ``tool_sq`` already cleared) leaves; returns the admitted."""
    space_advance(space_f, space_i, s, now)
    space_i[s, S_DEAD] += 1
    return space_admit(space_f, space_i, sq_kf, sq_ki, sq_pf, tool_sq, s, admitted)
