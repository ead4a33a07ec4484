"""The DES event loop compiled with numba, for :mod:`simfleet.worker.des.compiled`.

It mirrors :mod:`simfleet.worker.des.engine` and :mod:`simfleet.worker.des.resources` operation by operation, in the
same order of floating-point operations and with the same tie-breaking, so that a compiled run's summary equals the
Python engine's bit for bit. The state lives in numpy arrays (one row per rate resource, space resource, request,
tool); tools and requests are ids into their tables, reused through free lists.

Random numbers are not drawn here: Python fills the blocks (same generators, same block sizes as
:mod:`simfleet.worker.des.streams`) and :func:`run_events` returns a status between two events when it needs more
of them, when a latency buffer holds a batch to fold into its sketch, when a table must grow, or when it paused or
ended. Before each event it checks that whatever the event could use is there, so it never stops half-way through
one.

There are two loops: :func:`run_events` for a scenario that cannot fail (it calls only
:mod:`simfleet.worker.des.kernel_plain`'s functions and gets the rate and space tuples without their per-tool
records: linking the failure paths in, and passing their arrays, made it twice as slow) and
:func:`run_events_fallible`, which takes the ``fail`` tuple too.

Failures (model v2, :func:`run_events_fallible`): every node runs as an attempt (a tool row with its attempt number,
policy row, failure draw and uid). Timers and retries are events whose payload is checked when they come up (the
engine's ``_due``): a TIMEOUT carries its tool row and the attempt's uid (stale once the row was freed or reused), a
RETRY its request row, the request's id and the packed (attempt, fallback, template, node) (stale once the request
failed or its row was reused); stale ones are not events. Rows that something may still name after they are freed
(the ready list, the tools a completion returned) are checked the same way, by uid. A request keeps its live tool per
node (``req_i[req, Q_WAITING + MAX_NODES + node]``) so that a failure cancels them in the engine's order (by uid).

The arrays travel in tuples, always in this order (compiled.py builds them):

- ``rates``: rate_f, rate_i (the R_* columns), next_times, the served heaps rh_kf, rh_ki, rh_pf (virtual finish;
  sequence and tool; weight), the waiting queues rq_kf, rq_ki, rq_pf (-priority; sequence and tool; work and
  weight), one row per resource, and per tool and rate resource tool_rs (its entry's sequence or -1, and AT_*) and
  tool_vf (its virtual finish when served): the last two are left out for :func:`run_events`;
- ``spaces``: space_f, space_i (the S_* columns), the queues sq_kf, sq_ki, sq_pf (-priority; order and tool;
  amount), and per tool tool_sq (the space resource and order of its queue entry, -1 when none; left out for
  :func:`run_events`);
- ``model``: type_f, type_i (Y_*), node_i (N_*, per DAG and node: a type's DAGs are rows Y_DAG0.. of every per-DAG
  table), succ_start, succ (each node's successors), tmpl_i (K_*), tmpl_res, tmpl_rand, tmpl_const (per template
  part: its rate resource, whether drawn, its constant), tmpl_space, tmpl_amt, node_prob (per DAG and node), type_cum
  (per type, its variants' cumulative weights), dag_i (D_*), tmpl_per (per template part: the attribute column that
  scales it, -1 for none), overhead (per rate resource: its join_overhead), type_attr (per type and attribute: its
  column in req_a, whether drawn), type_attr_const (its constant);
- ``table``: req_f (arrival time), req_i (Q_*), req_free, tool_i (T_*), tool_free, the scratch lists done_buf,
  admit_buf, ready_buf (a tool id, or ``-1 - (req * MAX_NODES + node)`` for a node whose ``prob`` said no), req_a
  (per request, its attributes by column);
- ``draws``: work_buf (template, part, draw), work_pos, arr_buf (unit exponentials; for an arrival process the
  absolute times, computed ahead by Python), arr_pos, dec_buf (type, 1, uniform), dec_pos, attr_buf (type,
  attribute, draw), attr_pos (positions: next unused, end: POS, LEN);
- ``out``: lat_buf, lat_n (latencies not yet in a sketch), counts (C_*), node_fig (per type, node key and
  NODE_FIGURES column), win_f, win_n (the window snapshots: time, sys integral, four integrals per rate resource
  (busy, consumers, waiting, wasted), two per space; requests in system);
- ``events``: ev_kf, ev_ki, ev_pf (time; kind * KIND_SHIFT + sequence, payload, and with failures a stamp and a packed
  retry; unused);
- ``fail`` (failures only): node_pol (per DAG and node: its policy row), tmpl_pol (per template: its own policy row,
  for fallbacks), pol_f, pol_i (P_*), pol_delay (per policy and retry k = 1..retries: the backoff, computed by
  ``Backoff.delay_s``), ready_uid and done_uid (the uids of the tools in ready_buf and done_buf), cancel_buf (a
  failed request's tools), tool_jw (per tool and rate resource: the work it joined with, 0 for none), fail_buf,
  fail_n (latencies of the counted requests that failed, all kept until ``flush()``, as the engine does).

The column and status numbers are in :mod:`simfleet.worker.des.kernel_layout`, requests, tools and failures in
:mod:`simfleet.worker.des.kernel_tools`, heaps and resources in :mod:`simfleet.worker.des.kernel_resources`
(and their copies without failures in ``kernel_plain`` and ``kernel_resources_plain``); this module has the
measurement window, the room checks and the loops.
"""

from __future__ import annotations

from typing import Any

from simfleet.worker.des.kernel_layout import (
    ARR_DETERMINISTIC,
    ARRIVAL,
    ATT_BOUND,
    DEC_MULT,
    DONE,
    DRAIN,
    EV_N,
    EVENTS,
    FINISHED,
    FLUSH,
    FLUSH_EVERY,
    GROW,
    GROW_EVENTS,
    GROW_FAILS,
    GROW_HEAPS,
    HAS_END,
    HAS_START,
    K_RANDOM,
    KIND_SHIFT,
    LEN,
    LIMIT,
    MAX_EVENTS,
    MAX_EVENTS_I,
    MAX_IN_FLIGHT,
    MAX_NODES,
    N_SYS,
    NEED_ARRIVALS,
    NEED_ATTRIBUTES,
    NEED_DECISIONS,
    NEED_WORK,
    NOW,
    PAUSED,
    POS,
    Q_DEAD,
    Q_RID,
    READY_N,
    RETRY,
    STATUS_ARG,
    STOPPED,
    STREAMS_V2,
    SYS_INT,
    SYS_T,
    T_PARTS,
    T_UID,
    TIMEOUT,
    UNSTABLE,
    UNSTABLE_IN_FLIGHT,
    WARMUP,
    Y_ARRIVAL,
    Y_ATTR_RANDOM,
    Y_DECIDES,
)
from simfleet.worker.des.kernel_plain import arrive_plain, drain_ready_plain, finish_tool_plain
from simfleet.worker.des.kernel_resources import (
    INF,
    R_BUSY,
    R_DEAD_Q,
    R_HEAP_N,
    R_MAX_N,
    R_MAX_Q,
    R_N,
    R_NINT,
    R_QINT,
    R_QUEUE_N,
    R_WASTED,
    S_DEAD,
    S_MAX_Q,
    S_MAX_USED,
    S_QINT,
    S_QUEUE_N,
    S_USED,
    S_USED_INT,
    as_int64,
    heap_pop,
    njit_cached,
    rate_advance,
    rate_complete,
    space_advance,
)
from simfleet.worker.des.kernel_resources_plain import rate_complete_plain
from simfleet.worker.des.kernel_tools import (
    arrive,
    drain_ready,
    finish_tool,
    retry,
    timeout,
)

# ------------------------------------------------------------------------------------------- the measurement window


@njit_cached
def snapshot(gf: Any, gi: Any, rates: Any, spaces: Any, out: Any, which: int, now: float) -> None:
    """Simulation._snapshot into row ``which`` (0: start, 1: end) of the window arrays."""
    rate_f, rate_i = rates[0], rates[1]
    space_f, space_i = spaces[0], spaces[1]
    win_f, win_n = out[4], out[5]
    n_rates = rate_f.shape[0]
    for r in range(n_rates):
        rate_advance(rate_f, rate_i, r, now)
    for s in range(space_f.shape[0]):
        space_advance(space_f, space_i, s, now)
    gf[SYS_INT] += gi[N_SYS] * (now - gf[SYS_T])
    gf[SYS_T] = now
    win_f[which, 0] = now
    win_f[which, 1] = gf[SYS_INT]
    win_n[which] = gi[N_SYS]
    for r in range(n_rates):
        win_f[which, 2 + 4 * r] = rate_f[r, R_BUSY]
        win_f[which, 3 + 4 * r] = rate_f[r, R_NINT]
        win_f[which, 4 + 4 * r] = rate_f[r, R_QINT]
        win_f[which, 5 + 4 * r] = rate_f[r, R_WASTED]
    base = 2 + 4 * n_rates
    for s in range(space_f.shape[0]):
        win_f[which, base + 2 * s] = space_f[s, S_USED_INT]
        win_f[which, base + 2 * s + 1] = space_f[s, S_QINT]


@njit_cached
def open_window(gf: Any, gi: Any, rates: Any, spaces: Any, out: Any, now: float) -> None:
    """Simulation._open_window: snapshot, and measure maxima afresh."""
    snapshot(gf, gi, rates, spaces, out, as_int64(0), now)
    rate_i = rates[1]
    space_f, space_i = spaces[0], spaces[1]
    for r in range(rate_i.shape[0]):
        rate_i[r, R_MAX_N] = rate_i[r, R_N]
        rate_i[r, R_MAX_Q] = rate_i[r, R_QUEUE_N] - rate_i[r, R_DEAD_Q]
    for s in range(space_f.shape[0]):
        space_f[s, S_MAX_USED] = space_f[s, S_USED]
        space_i[s, S_MAX_Q] = space_i[s, S_QUEUE_N] - space_i[s, S_DEAD]
    gi[HAS_START] = 1


@njit_cached
def close_window(gf: Any, gi: Any, rates: Any, spaces: Any, out: Any, now: float) -> None:
    """Simulation._close_window (once; opens the window first if the warmup never ended)."""
    if gi[HAS_END]:
        return
    if not gi[HAS_START]:
        open_window(gf, gi, rates, spaces, out, now)
    snapshot(gf, gi, rates, spaces, out, as_int64(1), now)
    gi[HAS_END] = 1


# ------------------------------------------------------------------------------------------------------- the loop


@njit_cached
def _room_fallible(gi: Any, rates: Any, spaces: Any, events: Any, fail: Any) -> int:
    """The extra room an event of a scenario that can fail may use (DONE when there is enough).

    An event makes at most ``tools_bound * ATT_BOUND`` attempts (every node in flight or started by it, each at most
    its whole chain of retries and fallbacks). Heaps keep cancelled entries until they come up, so a served heap may
    receive every waiting entry and every new attempt; the ready list every skipped node and attempt; the event heap
    a timer and a retry per attempt; the failure buffers one latency per request in flight.
    """
    rate_i, rh_kf, space_i = rates[1], rates[3], spaces[1]
    fail_buf, fail_n = fail[9], fail[10]
    tools_bound = (gi[N_SYS] + 1) * gi[MAX_NODES]
    attempts = tools_bound * gi[ATT_BOUND]
    need = tools_bound + attempts + 1
    for r in range(rate_i.shape[0]):
        need = max(need, rate_i[r, R_HEAP_N] + rate_i[r, R_QUEUE_N] + attempts)
    for s in range(space_i.shape[0]):
        need = max(need, space_i[s, S_QUEUE_N] + attempts)
    if need > rh_kf.shape[1]:
        gi[STATUS_ARG] = need
        return GROW_HEAPS
    need = gi[EV_N] + 2 * attempts + 2
    if need > events[0].shape[0]:
        gi[STATUS_ARG] = need
        return GROW_EVENTS
    for t in range(fail_n.shape[0]):
        if fail_n[t] + gi[N_SYS] + 1 > fail_buf.shape[1]:
            gi[STATUS_ARG] = fail_n[t] + gi[N_SYS] + 1
            return GROW_FAILS
    return DONE


@njit_cached
def _room(gi: Any, model: Any, table: Any, draws: Any, out: Any) -> int:
    """What must be refilled or grown before the next event can surely run to its end (DONE when nothing)."""
    tmpl_i = model[5]
    req_f, tool_i = table[0], table[3]
    work_pos = draws[1]
    lat_buf, lat_n = out[0], out[1]
    n_sys = gi[N_SYS]
    tools_bound = (n_sys + 1) * gi[MAX_NODES]
    if n_sys + 1 > req_f.shape[0] or tools_bound > tool_i.shape[0] or FLUSH_EVERY + n_sys + 1 > lat_buf.shape[1]:
        return GROW
    for t in range(lat_n.shape[0]):
        if lat_n[t] >= FLUSH_EVERY:
            gi[STATUS_ARG] = t
            return FLUSH
    work_bound = tools_bound * gi[ATT_BOUND]
    for k in range(tmpl_i.shape[0]):
        if tmpl_i[k, K_RANDOM] and work_pos[k, LEN] - work_pos[k, POS] < work_bound:
            gi[STATUS_ARG] = k
            return NEED_WORK
    if not gi[STREAMS_V2]:
        return DONE
    type_i, dec_pos, attr_pos = model[1], draws[5], draws[7]
    for t in range(type_i.shape[0]):
        # An event starts at most tools_bound nodes, each with at most one branch draw and a failure draw per
        # attempt, and picks one variant.
        if type_i[t, Y_DECIDES] and dec_pos[t, LEN] - dec_pos[t, POS] < tools_bound * gi[DEC_MULT] + 1:
            gi[STATUS_ARG] = t
            return NEED_DECISIONS
        if type_i[t, Y_ATTR_RANDOM] and attr_pos[t, LEN] - attr_pos[t, POS] < 1:
            gi[STATUS_ARG] = t
            return NEED_ATTRIBUTES
    return DONE


@njit_cached
def run_events(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, out: Any,
               events: Any) -> int:  # fmt: skip
    """Simulation.run's loop up to gf[LIMIT] for a scenario that cannot fail; returns a status (see the docstring).

    ``rates`` and ``spaces`` are the first 9 and 5 arrays of the bundles (no per-tool records: nothing is cancelled).
    """
    rate_f, rate_i, next_times, rh_kf = rates[0], rates[1], rates[2], rates[3]
    rh_ki, rh_pf, rq_kf, rq_ki, rq_pf = rates[4], rates[5], rates[6], rates[7], rates[8]
    ev_kf, ev_ki, ev_pf = events[0], events[1], events[2]
    type_i = model[1]
    arr_pos = draws[3]
    done_buf = table[5]
    limit = gf[LIMIT]
    n_rates = next_times.shape[0]
    count = gi[EVENTS]  # the event count, kept here and written back before each return
    max_events = gi[MAX_EVENTS_I]
    while not gi[FINISHED]:
        status = _room(gi, model, table, draws, out)
        if status != DONE:
            gi[EVENTS] = count
            return status
        t_res = next_times[0]
        index = 0
        for r in range(1, n_rates):
            if next_times[r] < t_res:
                t_res = next_times[r]
                index = r
        t_ev = ev_kf[0] if gi[EV_N] else INF
        if t_res <= t_ev:
            if t_res == INF:
                gi[FINISHED] = 1
                break
            if t_res > limit:
                gi[EVENTS] = count
                return PAUSED
            gf[NOW] = t_res
            m = rate_complete_plain(rate_f, rate_i, next_times, rh_kf, rh_ki, rh_pf, rq_kf, rq_ki, rq_pf, index, t_res,
                                    done_buf)  # fmt: skip
            tool_i = table[3]
            for i in range(m):
                tool = done_buf[i]
                tool_i[tool, T_PARTS] -= 1
                if not tool_i[tool, T_PARTS]:
                    finish_tool_plain(gf, gi, rates, spaces, model, table, draws, out, tool, t_res)
            if gi[READY_N]:
                drain_ready_plain(gf, gi, rates, spaces, model, table, draws, out, t_res)
        else:
            if t_ev > limit:
                gi[EVENTS] = count
                return PAUSED
            kind = ev_ki[0, 0] // KIND_SHIFT
            payload = ev_ki[0, 1]
            if (kind == ARRIVAL and type_i[payload, Y_ARRIVAL] != ARR_DETERMINISTIC
                    and arr_pos[payload, POS] >= arr_pos[payload, LEN]):  # fmt: skip
                gi[STATUS_ARG] = payload
                gi[EVENTS] = count
                return NEED_ARRIVALS
            heap_pop(ev_kf, ev_ki, ev_pf, gi[EV_N])
            gi[EV_N] -= 1
            now = t_ev
            gf[NOW] = now
            if kind == ARRIVAL:
                arrive_plain(gf, gi, rates, spaces, model, table, draws, out, events, payload, now)
                if gi[N_SYS] > gi[MAX_IN_FLIGHT]:
                    gi[UNSTABLE] = UNSTABLE_IN_FLIGHT
                    close_window(gf, gi, rates, spaces, out, now)
                    gi[FINISHED] = 1
            elif kind == WARMUP:
                open_window(gf, gi, rates, spaces, out, now)
            else:
                close_window(gf, gi, rates, spaces, out, now)
                if not gi[DRAIN] or gi[UNSTABLE]:
                    gi[STOPPED] = 1
                    gi[FINISHED] = 1
        count += 1
        if count >= max_events:
            gi[EVENTS] = count
            return MAX_EVENTS
    gi[EVENTS] = count
    return DONE


@njit_cached
def run_events_fallible(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, out: Any,
                        events: Any, fail: Any) -> int:  # fmt: skip
    """Simulation.run's loop up to gf[LIMIT] for a scenario that can fail; returns a status (see the docstring)."""
    rate_f, rate_i, next_times, rh_kf = rates[0], rates[1], rates[2], rates[3]
    rh_ki, rh_pf, rq_kf, rq_ki, rq_pf = rates[4], rates[5], rates[6], rates[7], rates[8]
    tool_rs, tool_vf = rates[9], rates[10]
    ev_kf, ev_ki, ev_pf = events[0], events[1], events[2]
    type_i = model[1]
    arr_pos = draws[3]
    req_i, done_buf, done_uid = table[1], table[5], fail[6]
    limit = gf[LIMIT]
    n_rates = next_times.shape[0]
    while not gi[FINISHED]:
        status = _room(gi, model, table, draws, out)
        if status == DONE:
            status = _room_fallible(gi, rates, spaces, events, fail)
        if status != DONE:
            return status
        t_res = next_times[0]
        index = 0
        for r in range(1, n_rates):
            if next_times[r] < t_res:
                t_res = next_times[r]
                index = r
        t_ev = ev_kf[0] if gi[EV_N] else INF
        if t_res <= t_ev:
            if t_res == INF:
                gi[FINISHED] = 1
                break
            if t_res > limit:
                return PAUSED
            gf[NOW] = t_res
            m = rate_complete(rate_f, rate_i, next_times, rh_kf, rh_ki, rh_pf, rq_kf, rq_ki, rq_pf, tool_rs, tool_vf,
                              as_int64(index), t_res, done_buf)  # fmt: skip
            tool_i = table[3]
            for i in range(m):
                done_uid[i] = tool_i[done_buf[i], T_UID]
            for i in range(m):
                tool = done_buf[i]
                if tool_i[tool, T_UID] != done_uid[i]:
                    continue  # cancelled by a tool finished before it at this instant
                tool_i[tool, T_PARTS] -= 1
                if not tool_i[tool, T_PARTS]:
                    finish_tool(gf, gi, rates, spaces, model, table, draws, fail, out, events, tool, t_res)
            if gi[READY_N]:
                drain_ready(gf, gi, rates, spaces, model, table, draws, fail, out, events, t_res)
        else:
            if t_ev > limit:
                return PAUSED
            kind = ev_ki[0, 0] // KIND_SHIFT
            payload = ev_ki[0, 1]
            stamp = ev_ki[0, 2]
            packed = ev_ki[0, 3]
            if (kind == ARRIVAL and type_i[payload, Y_ARRIVAL] != ARR_DETERMINISTIC
                    and arr_pos[payload, POS] >= arr_pos[payload, LEN]):  # fmt: skip
                gi[STATUS_ARG] = payload
                return NEED_ARRIVALS
            heap_pop(ev_kf, ev_ki, ev_pf, gi[EV_N])
            gi[EV_N] -= 1
            if kind >= TIMEOUT:  # Simulation._due: a stale timer or retry is dropped, and is not an event
                if kind == TIMEOUT:
                    if table[3][payload, T_UID] != stamp:
                        continue
                elif req_i[payload, Q_RID] != stamp or req_i[payload, Q_DEAD]:
                    continue
            now = t_ev
            gf[NOW] = now
            if kind == TIMEOUT:
                timeout(gf, gi, rates, spaces, model, table, draws, fail, out, events, payload, now)
            elif kind == RETRY:
                retry(gf, gi, rates, spaces, model, table, draws, fail, out, events, payload, packed, now)
            elif kind == ARRIVAL:
                arrive(gf, gi, rates, spaces, model, table, draws, fail, out, events, payload, now)
                if gi[N_SYS] > gi[MAX_IN_FLIGHT]:
                    gi[UNSTABLE] = UNSTABLE_IN_FLIGHT
                    close_window(gf, gi, rates, spaces, out, now)
                    gi[FINISHED] = 1
            elif kind == WARMUP:
                open_window(gf, gi, rates, spaces, out, now)
            else:
                close_window(gf, gi, rates, spaces, out, now)
                if not gi[DRAIN] or gi[UNSTABLE]:
                    gi[STOPPED] = 1
                    gi[FINISHED] = 1
        gi[EVENTS] += 1
        if gi[EVENTS] >= gi[MAX_EVENTS_I]:
            return MAX_EVENTS
    return DONE
