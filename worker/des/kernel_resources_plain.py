"""Rate and space resources of the compiled DES kernel for scenarios that cannot fail (:mod:`kernel_plain`).

:mod:`simfleet.worker.des.kernel_resources` without cancellation: no tool is ever cancelled, so there is no per-tool
record to keep and no stale entry to drop, and the loop of a scenario that cannot fail passes none of those arrays
(each non-inlined call copies the arrays it is given: model v1 runs were ~10% slower with them).
"""

from __future__ import annotations

from typing import Any

from simfleet.worker.des.kernel_resources import (
    INF,
    R_BUSY,
    R_CAP,
    R_CAPACITY,
    R_HEAP_N,
    R_MAX_ACTIVE,
    R_MAX_N,
    R_MAX_Q,
    R_N,
    R_NINT,
    R_QINT,
    R_QUEUE_N,
    R_T_LAST,
    R_VCLOCK,
    R_VRATE,
    R_WSUM,
    S_CAPACITY,
    S_MAX_Q,
    S_MAX_USED,
    S_ORDER,
    S_QUEUE_N,
    S_USED,
    heap_pop,
    heap_push,
    njit_cached,
    njit_inlined,
    rate_advance,
    space_advance,
)


@njit_inlined
def rate_join_plain(rate_f: Any, rate_i: Any, next_times: Any, rh_kf: Any, rh_ki: Any, rh_pf: Any, rq_kf: Any,
                    rq_ki: Any, rq_pf: Any, r: int, tool: int, work: float, weight: float, priority: int, seq: int,
                    now: float) -> None:  # fmt: skip
    """RateResource.join."""
    rate_advance(rate_f, rate_i, r, now)
    n = rate_i[r, R_N]
    if n >= rate_i[r, R_MAX_ACTIVE]:
        q = rate_i[r, R_QUEUE_N]
        heap_push(rq_kf[r], rq_ki[r], rq_pf[r], q, float(-priority), seq, tool, work, weight)
        q += 1
        rate_i[r, R_QUEUE_N] = q
        if q > rate_i[r, R_MAX_Q]:
            rate_i[r, R_MAX_Q] = q
        return
    vclock = rate_f[r, R_VCLOCK]
    vfinish = vclock + work / weight
    h = rate_i[r, R_HEAP_N]
    heap_push(rh_kf[r], rh_ki[r], rh_pf[r], h, vfinish, seq, tool, weight, 0.0)
    rate_i[r, R_HEAP_N] = h + 1
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


@njit_inlined
def rate_admit_and_reschedule_plain(rate_f: Any, rate_i: Any, next_times: Any, rh_kf: Any, rh_ki: Any, rh_pf: Any,
                              rq_kf: Any, rq_ki: Any, rq_pf: Any, r: int, now: float) -> None:  # fmt: skip
    """RateResource._admit_and_reschedule (no tool is ever cancelled in model v1)."""
    n = rate_i[r, R_N]
    wsum = rate_f[r, R_WSUM]
    vclock = rate_f[r, R_VCLOCK]
    q = rate_i[r, R_QUEUE_N]
    if q:
        h = rate_i[r, R_HEAP_N]
        max_active = rate_i[r, R_MAX_ACTIVE]
        while q and n < max_active:
            seq = rq_ki[r, 0, 0]
            tool = rq_ki[r, 0, 1]
            work = rq_pf[r, 0, 0]
            weight = rq_pf[r, 0, 1]
            heap_pop(rq_kf[r], rq_ki[r], rq_pf[r], q)
            q -= 1
            vfinish = vclock + work / weight
            heap_push(rh_kf[r], rh_ki[r], rh_pf[r], h, vfinish, seq, tool, weight, 0.0)
            h += 1
            n += 1
            wsum += weight
        rate_i[r, R_QUEUE_N] = q
        rate_i[r, R_HEAP_N] = h
        if n > rate_i[r, R_MAX_N]:
            rate_i[r, R_MAX_N] = n
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


@njit_inlined
def rate_complete_plain(rate_f: Any, rate_i: Any, next_times: Any, rh_kf: Any, rh_ki: Any, rh_pf: Any, rq_kf: Any,
                  rq_ki: Any, rq_pf: Any, r: int, now: float, done: Any) -> int:  # fmt: skip
    """RateResource.complete: the tools done at ``now`` go into ``done``; returns how many."""
    n = rate_i[r, R_N]
    dt = now - rate_f[r, R_T_LAST]
    if dt > 0.0:
        rate_f[r, R_VCLOCK] += rate_f[r, R_VRATE] * dt
        rate_f[r, R_BUSY] += rate_f[r, R_VRATE] * rate_f[r, R_WSUM] * dt
        rate_f[r, R_NINT] += n * dt
        if rate_i[r, R_QUEUE_N]:
            rate_f[r, R_QINT] += rate_i[r, R_QUEUE_N] * dt
    rate_f[r, R_T_LAST] = now
    kf, ki, pf = rh_kf[r], rh_ki[r], rh_pf[r]
    h = rate_i[r, R_HEAP_N]
    vfinish = kf[0]
    done[0] = ki[0, 1]
    weight = pf[0, 0]
    heap_pop(kf, ki, pf, h)
    h -= 1
    vclock = rate_f[r, R_VCLOCK]
    if vfinish > vclock:
        vclock = vfinish
        rate_f[r, R_VCLOCK] = vfinish
    m = 1
    n -= 1
    wsum = rate_f[r, R_WSUM] - weight
    while h and kf[0] <= vclock:
        done[m] = ki[0, 1]
        weight = pf[0, 0]
        heap_pop(kf, ki, pf, h)
        h -= 1
        m += 1
        n -= 1
        wsum -= weight
    rate_i[r, R_HEAP_N] = h
    rate_i[r, R_N] = n
    rate_f[r, R_WSUM] = wsum
    if rate_i[r, R_QUEUE_N] or not n:
        rate_admit_and_reschedule_plain(rate_f, rate_i, next_times, rh_kf, rh_ki, rh_pf, rq_kf, rq_ki, rq_pf, r, now)
        return m
    vrate = rate_f[r, R_CAPACITY] / wsum
    if vrate > rate_f[r, R_CAP]:
        vrate = rate_f[r, R_CAP]
    rate_f[r, R_VRATE] = vrate
    next_times[r] = now + (kf[0] - vclock) / vrate
    return m


# -------------------------------------------------------------------------------------------------- space resources


@njit_cached
def space_acquire_plain(space_f: Any, space_i: Any, sq_kf: Any, sq_ki: Any, sq_pf: Any, s: int, tool: int,
                        amount: float, priority: int, now: float) -> bool:  # fmt: skip
    """SpaceResource.acquire."""
    space_advance(space_f, space_i, s, now)
    q = space_i[s, S_QUEUE_N]
    if space_f[s, S_USED] + amount <= space_f[s, S_CAPACITY] and (not q or -priority < sq_kf[s, 0]):
        space_f[s, S_USED] += amount
        if space_f[s, S_USED] > space_f[s, S_MAX_USED]:
            space_f[s, S_MAX_USED] = space_f[s, S_USED]
        return True
    heap_push(sq_kf[s], sq_ki[s], sq_pf[s], q, float(-priority), space_i[s, S_ORDER], tool, amount, 0.0)
    space_i[s, S_ORDER] += 1
    q += 1
    space_i[s, S_QUEUE_N] = q
    if q > space_i[s, S_MAX_Q]:
        space_i[s, S_MAX_Q] = q
    return False


@njit_cached
def space_release_plain(space_f: Any, space_i: Any, sq_kf: Any, sq_ki: Any, sq_pf: Any, s: int, amount: float,
                        now: float, admitted: Any) -> int:  # fmt: skip
    """SpaceResource.release: the tools admitted go into ``admitted``, in order; returns how many."""
    space_advance(space_f, space_i, s, now)
    space_f[s, S_USED] -= amount
    if space_f[s, S_USED] < 1e-12:
        space_f[s, S_USED] = 0.0
    m = 0
    q = space_i[s, S_QUEUE_N]
    while q and space_f[s, S_USED] + sq_pf[s, 0, 0] <= space_f[s, S_CAPACITY]:
        admitted[m] = sq_ki[s, 0, 1]
        space_f[s, S_USED] += sq_pf[s, 0, 0]
        heap_pop(sq_kf[s], sq_ki[s], sq_pf[s], q)
        q -= 1
        m += 1
    space_i[s, S_QUEUE_N] = q
    if space_f[s, S_USED] > space_f[s, S_MAX_USED]:
        space_f[s, S_MAX_USED] = space_f[s, S_USED]
    return m
