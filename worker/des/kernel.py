"""The DES event loop compiled with numba, for :mod:`simfleet.worker.des.compiled`.

It mirrors :mod:`simfleet.worker.des.engine` and :mod:`simfleet.worker.des.resources` operation by operation, in the
same order of floating-point operations and with the same tie-breaking, so that a compiled run's summary equals the
Python engine's bit for bit. The state lives in numpy arrays (one row per rate resource, space resource, request,
tool; see :class:`simfleet.worker.des.compiled.KernelState` for the layout); tools and requests are ids into their
tables, reused through free lists.

Random numbers are not drawn here: Python fills the blocks (same generators, same block sizes as
:mod:`simfleet.worker.des.streams`) and :func:`run_events` returns a status between two events when it needs more
of them, when a latency buffer holds a batch to fold into its sketch, when a table must grow, or when it paused or
ended. Before each event it checks that whatever the event could use is there, so it never stops half-way through
one.

The arrays travel in tuples, always in this order (compiled.py builds them):

- ``rates``: rate_f, rate_i (the R_* columns), next_times, the served heaps rh_kf, rh_ki, rh_pf (virtual finish;
  sequence and tool; weight) and the waiting queues rq_kf, rq_ki, rq_pf (-priority; sequence and tool; work and
  weight), one row per resource;
- ``spaces``: space_f, space_i (the S_* columns), the queues sq_kf, sq_ki, sq_pf (-priority; order and tool; amount);
- ``model``: type_f, type_i (Y_*), node_i (N_*, per DAG and node: a type's DAGs are rows Y_DAG0.. of every per-DAG
  table), succ_start, succ (each node's successors), tmpl_i (K_*), tmpl_res, tmpl_rand, tmpl_const (per template
  part: its rate resource, whether drawn, its constant), tmpl_space, tmpl_amt, node_prob (per DAG and node), type_cum
  (per type, its variants' cumulative weights), dag_i (D_*), tmpl_per (per template part: the attribute column that
  scales it, -1 for none), overhead (per rate resource: its join_overhead), type_attr (per type and attribute: its
  column in req_a, whether drawn), type_attr_const (its constant);
- ``table``: req_f (arrival time), req_i (Q_*), req_free, tool_i (T_*), tool_free, the scratch lists done_buf,
  admit_buf, ready_buf (a tool id, or ``-1 - (req * MAX_NODES + node)`` for a node whose ``prob`` said no), and req_a
  (per request, its attributes by column);
- ``draws``: work_buf (template, part, draw), work_pos, arr_buf (unit exponentials; for an arrival process the
  absolute times, computed ahead by Python), arr_pos, dec_buf (type, 1, uniform), dec_pos, attr_buf (type,
  attribute, draw), attr_pos (positions: next unused, end: POS, LEN);
- ``out``: lat_buf, lat_n (latencies not yet in a sketch), counts (C_*), node_fig (per type, node key and
  NODE_FIGURES column), win_f, win_n (the window snapshots: time, sys integral, three integrals per rate resource, two
  per space; requests in system);
- ``events``: ev_kf, ev_ki, ev_pf (time; kind * KIND_SHIFT + sequence and payload; unused).

Heaps and resources are in :mod:`simfleet.worker.des.kernel_resources`.
"""

from __future__ import annotations

from typing import Any

from simfleet.worker.des.kernel_resources import (
    INF,
    R_BUSY,
    R_MAX_N,
    R_MAX_Q,
    R_N,
    R_NINT,
    R_QINT,
    R_QUEUE_N,
    S_MAX_Q,
    S_MAX_USED,
    S_QINT,
    S_QUEUE_N,
    S_USED,
    S_USED_INT,
    heap_pop,
    heap_push,
    njit_cached,
    rate_advance,
    rate_complete,
    rate_join,
    space_acquire,
    space_advance,
    space_release,
)

FLUSH_EVERY = 4096
"""Latencies folded into a sketch per batch (:data:`simfleet.worker.des.engine.FLUSH_EVERY`)."""
WARMUP, ARRIVAL, HORIZON = 0, 1, 2
KIND_SHIFT = 1 << 48
"""Event heap entries are ordered by (time, kind * KIND_SHIFT + seq): the engine's (time, kind, seq)."""

# Statuses of run_events.
DONE, PAUSED, NEED_ARRIVALS, NEED_WORK, FLUSH, GROW, MAX_EVENTS, NEED_DECISIONS, NEED_ATTRIBUTES = range(9)

# Global floats (gf) and integers (gi).
NOW, SYS_INT, SYS_T, HORIZON_S, WARMUP_S, LIMIT = range(6)
N_GF = 6
(SEQ, EVENTS, N_SYS, FINISHED, STOPPED, UNSTABLE, DRAIN, MAX_EVENTS_I, MAX_IN_FLIGHT, EV_N, REQ_FREE_N, TOOL_FREE_N,
 STATUS_ARG, HAS_START, HAS_END, MAX_NODES, READY_N, STREAMS_V2) = range(18)  # fmt: skip
N_GI = 18
"""STREAMS_V2: whether some type draws decisions or attributes (else _room skips their check)."""
UNSTABLE_LOAD, UNSTABLE_IN_FLIGHT = 1, 2
# Requests (req_i; req_f holds the arrival time) and tools (tool_i).
Q_TYPE, Q_LEFT, Q_COUNTED, Q_DAG = range(4)
Q_WAITING = 4
"""req_i[rid, Q_WAITING + node]: the predecessors the node still waits for."""
T_REQ, T_NODE, T_TMPL, T_PARTS, T_SPACE_POS = range(5)
N_TI = 5
# Request types (type_f, type_i), nodes (node_i), templates (tmpl_i), counters (counts).
Y_WEIGHT, Y_MEAN_GAP = range(2)
Y_PRIORITY, Y_ARRIVAL, Y_DAG0, Y_NDAGS, Y_DECIDES, Y_NATTRS, Y_ATTR_RANDOM = range(7)
N_YI = 7
ARR_DETERMINISTIC, ARR_POISSON, ARR_PROCESS = range(3)
"""Y_ARRIVAL: a constant gap, unit exponentials times the mean gap, or absolute times of an arrival process."""
D_NODES, D_OFFSET = range(2)
"""dag_i: the DAG's nodes, and the position of its first node among its type's node keys."""
A_COL, A_RANDOM = range(2)
N_TMPL, N_PREDS = range(2)
ATTEMPTS, BRANCH_SKIPPED = 0, 5
"""Columns of node_fig (simfleet.shared.messages.des.NODE_FIGURES; the others stay 0 without failures)."""
K_PARTS, K_SPACES, K_RANDOM = range(3)
C_INFLIGHT, C_COUNTED_INFLIGHT, C_ARRIVALS = range(3)
POS, LEN = range(2)


# ------------------------------------------------------------------------------------------------ requests and tools


@njit_cached
def start_work(gi: Any, rates: Any, model: Any, table: Any, draws: Any, tool: int, now: float) -> None:
    """Simulation._start_work: draw the tool's work and join its rate resources (or finish it at once)."""
    rate_f, rate_i, next_times, rh_kf = rates[0], rates[1], rates[2], rates[3]
    rh_ki, rh_pf, rq_kf, rq_ki, rq_pf = rates[4], rates[5], rates[6], rates[7], rates[8]
    type_f, type_i, tmpl_i, tmpl_res, tmpl_rand, tmpl_const = model[0], model[1], model[5], model[6], model[7], model[8]
    tmpl_per, overhead = model[14], model[15]
    req_i, tool_i, ready_buf, req_a = table[1], table[3], table[7], table[8]
    work_buf, work_pos = draws[0], draws[1]
    k = tool_i[tool, T_TMPL]
    req = tool_i[tool, T_REQ]
    rtype = req_i[req, Q_TYPE]
    weight = type_f[rtype, Y_WEIGHT]
    priority = type_i[rtype, Y_PRIORITY]
    j = work_pos[k, POS]
    if tmpl_i[k, K_RANDOM]:
        work_pos[k, POS] = j + 1
    seq = gi[SEQ]
    parts = 0
    for p in range(tmpl_i[k, K_PARTS]):
        work = work_buf[k, p, j] if tmpl_rand[k, p] else tmpl_const[k, p]
        col = tmpl_per[k, p]
        if col >= 0:
            work *= req_a[req, col]
        if work > 0.0:
            r = tmpl_res[k, p]
            work += overhead[r]
            rate_join(rate_f, rate_i, next_times, rh_kf, rh_ki, rh_pf, rq_kf, rq_ki, rq_pf, r, tool, work, weight,
                      priority, seq, now)  # fmt: skip
            seq += 1
            parts += 1
    gi[SEQ] = seq
    tool_i[tool, T_PARTS] = parts
    if not parts:
        ready_buf[gi[READY_N]] = tool
        gi[READY_N] += 1


@njit_cached
def acquire_space(spaces: Any, model: Any, table: Any, tool: int, now: float) -> bool:
    """Simulation._acquire_space: take the template's spaces in order from where the tool stands."""
    space_f, space_i, sq_kf, sq_ki, sq_pf = spaces[0], spaces[1], spaces[2], spaces[3], spaces[4]
    type_i, tmpl_i, tmpl_space, tmpl_amt = model[1], model[5], model[9], model[10]
    req_i, tool_i = table[1], table[3]
    k = tool_i[tool, T_TMPL]
    priority = type_i[req_i[tool_i[tool, T_REQ], Q_TYPE], Y_PRIORITY]
    while tool_i[tool, T_SPACE_POS] < tmpl_i[k, K_SPACES]:
        pos = tool_i[tool, T_SPACE_POS]
        if not space_acquire(space_f, space_i, sq_kf, sq_ki, sq_pf, tmpl_space[k, pos], tool, tmpl_amt[k, pos],
                             priority, now):  # fmt: skip
            return False
        tool_i[tool, T_SPACE_POS] = pos + 1
    return True


@njit_cached
def start_node(gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, out: Any, req: int, node: int,
               now: float) -> None:  # fmt: skip
    """Simulation._start for a node that cannot fail: its branch draw (``prob`` < 1), then its tool."""
    node_i, tmpl_i, node_prob, dag_i = model[2], model[5], model[11], model[13]
    req_i, tool_i, tool_free, ready_buf = table[1], table[3], table[4], table[7]
    dec_buf, dec_pos = draws[4], draws[5]
    node_fig = out[3]
    rtype = req_i[req, Q_TYPE]
    dag = req_i[req, Q_DAG]
    key = dag_i[dag, D_OFFSET] + node
    prob = node_prob[dag, node]
    if prob < 1.0:
        u = dec_buf[rtype, 0, dec_pos[rtype, POS]]
        dec_pos[rtype, POS] += 1
        if u >= prob:
            if req_i[req, Q_COUNTED]:
                node_fig[rtype, key, BRANCH_SKIPPED] += 1
            ready_buf[gi[READY_N]] = -1 - (req * gi[MAX_NODES] + node)
            gi[READY_N] += 1
            return
    gi[TOOL_FREE_N] -= 1
    tool = tool_free[gi[TOOL_FREE_N]]
    k = node_i[dag, node, N_TMPL]
    tool_i[tool, T_REQ] = req
    tool_i[tool, T_NODE] = node
    tool_i[tool, T_TMPL] = k
    tool_i[tool, T_PARTS] = 0
    tool_i[tool, T_SPACE_POS] = 0
    if req_i[req, Q_COUNTED]:
        node_fig[rtype, key, ATTEMPTS] += 1
    if tmpl_i[k, K_SPACES] and not acquire_space(spaces, model, table, tool, now):
        return
    start_work(gi, rates, model, table, draws, tool, now)


@njit_cached
def request_done(gf: Any, gi: Any, table: Any, out: Any, req: int, now: float) -> None:
    """Simulation._request_done for a request that completed."""
    req_f, req_i, req_free = table[0], table[1], table[2]
    lat_buf, lat_n, counts = out[0], out[1], out[2]
    n_sys = gi[N_SYS]
    gf[SYS_INT] += n_sys * (now - gf[SYS_T])
    gf[SYS_T] = now
    gi[N_SYS] = n_sys - 1
    rtype = req_i[req, Q_TYPE]
    counts[rtype, C_INFLIGHT] -= 1
    req_free[gi[REQ_FREE_N]] = req
    gi[REQ_FREE_N] += 1
    if not req_i[req, Q_COUNTED]:
        return
    counts[rtype, C_COUNTED_INFLIGHT] -= 1
    lat_buf[rtype, lat_n[rtype]] = now - req_f[req]
    lat_n[rtype] += 1


@njit_cached
def finish_tool(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, out: Any, tool: int,
                now: float) -> None:  # fmt: skip
    """Simulation._finish_tool: free its space, count its node done, start the successors it unblocks."""
    space_f, space_i, sq_kf, sq_ki, sq_pf = spaces[0], spaces[1], spaces[2], spaces[3], spaces[4]
    tmpl_i, tmpl_space, tmpl_amt = model[5], model[9], model[10]
    tool_i, tool_free, admit_buf = table[3], table[4], table[6]
    k = tool_i[tool, T_TMPL]
    req = tool_i[tool, T_REQ]
    node = tool_i[tool, T_NODE]
    tool_free[gi[TOOL_FREE_N]] = tool
    gi[TOOL_FREE_N] += 1
    for pos in range(tmpl_i[k, K_SPACES]):
        m = space_release(space_f, space_i, sq_kf, sq_ki, sq_pf, tmpl_space[k, pos], tmpl_amt[k, pos], now,
                          admit_buf)  # fmt: skip
        for i in range(m):
            admitted = admit_buf[i]
            tool_i[admitted, T_SPACE_POS] += 1
            if acquire_space(spaces, model, table, admitted, now):
                start_work(gi, rates, model, table, draws, admitted, now)
    node_done(gf, gi, rates, spaces, model, table, draws, out, req, node, now)


@njit_cached
def node_done(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, out: Any, req: int,
              node: int, now: float) -> None:  # fmt: skip
    """Simulation._node_done: finish the request, or start the successors the node unblocks."""
    succ_start, succ = model[3], model[4]
    req_i = table[1]
    req_i[req, Q_LEFT] -= 1
    if not req_i[req, Q_LEFT]:
        request_done(gf, gi, table, out, req, now)
        return
    dag = req_i[req, Q_DAG]
    for e in range(succ_start[dag, node], succ_start[dag, node + 1]):
        nxt = succ[dag, e]
        req_i[req, Q_WAITING + nxt] -= 1
        if not req_i[req, Q_WAITING + nxt]:
            start_node(gi, rates, spaces, model, table, draws, out, req, nxt, now)


@njit_cached
def drain_ready(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, out: Any,
                now: float) -> None:  # fmt: skip
    """Simulation._drain_ready: finish the tools that had no work and the skipped nodes, in the order they came."""
    ready_buf = table[7]
    head = 0
    while head < gi[READY_N]:
        item = ready_buf[head]
        head += 1
        if item >= 0:
            finish_tool(gf, gi, rates, spaces, model, table, draws, out, item, now)
        else:
            code = -1 - item
            node_done(gf, gi, rates, spaces, model, table, draws, out, code // gi[MAX_NODES], code % gi[MAX_NODES],
                      now)  # fmt: skip
    gi[READY_N] = 0


@njit_cached
def push_event(gi: Any, events: Any, when: float, kind: int, payload: int) -> None:
    """Simulation._schedule."""
    ev_kf, ev_ki, ev_pf = events[0], events[1], events[2]
    heap_push(ev_kf, ev_ki, ev_pf, gi[EV_N], when, kind * KIND_SHIFT + gi[SEQ], payload, 0.0, 0.0)
    gi[EV_N] += 1
    gi[SEQ] += 1


@njit_cached
def arrive(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, out: Any, events: Any,
           rtype: int, now: float) -> None:  # fmt: skip
    """Simulation._arrive: schedule the type's next arrival, then start the new request's roots."""
    type_f, type_i, node_i, type_cum, dag_i = model[0], model[1], model[2], model[12], model[13]
    type_attr, type_attr_const = model[16], model[17]
    req_f, req_i, req_free, req_a = table[0], table[1], table[2], table[8]
    arr_buf, arr_pos, dec_buf, dec_pos, attr_buf, attr_pos = draws[2], draws[3], draws[4], draws[5], draws[6], draws[7]
    counts = out[2]
    arrival = type_i[rtype, Y_ARRIVAL]
    if arrival == ARR_POISSON:
        following = now + arr_buf[rtype, arr_pos[rtype, POS]] * type_f[rtype, Y_MEAN_GAP]
        arr_pos[rtype, POS] += 1
    elif arrival == ARR_PROCESS:
        following = arr_buf[rtype, arr_pos[rtype, POS]]
        arr_pos[rtype, POS] += 1
    else:
        following = now + type_f[rtype, Y_MEAN_GAP]
    if following < gf[HORIZON_S]:
        push_event(gi, events, following, ARRIVAL, rtype)
    counted = now >= gf[WARMUP_S]
    gi[REQ_FREE_N] -= 1
    req = req_free[gi[REQ_FREE_N]]
    dag = type_i[rtype, Y_DAG0]
    n_dags = type_i[rtype, Y_NDAGS]
    if n_dags > 1:  # TypeSpec.pick
        u = dec_buf[rtype, 0, dec_pos[rtype, POS]]
        dec_pos[rtype, POS] += 1
        chosen = n_dags - 1
        for v in range(n_dags):
            if u < type_cum[rtype, v]:
                chosen = v
                break
        dag += chosen
    nodes = dag_i[dag, D_NODES]
    req_f[req] = now
    req_i[req, Q_TYPE] = rtype
    req_i[req, Q_LEFT] = nodes
    req_i[req, Q_COUNTED] = 1 if counted else 0
    req_i[req, Q_DAG] = dag
    for node in range(nodes):
        req_i[req, Q_WAITING + node] = node_i[dag, node, N_PREDS]
    n_attrs = type_i[rtype, Y_NATTRS]
    if n_attrs:  # the type's attribute WorkStream.draw
        j = attr_pos[rtype, POS]
        if type_i[rtype, Y_ATTR_RANDOM]:
            attr_pos[rtype, POS] = j + 1
        for a in range(n_attrs):
            value = attr_buf[rtype, a, j] if type_attr[rtype, a, A_RANDOM] else type_attr_const[rtype, a]
            req_a[req, type_attr[rtype, a, A_COL]] = value
    n_sys = gi[N_SYS]
    gf[SYS_INT] += n_sys * (now - gf[SYS_T])
    gf[SYS_T] = now
    gi[N_SYS] = n_sys + 1
    counts[rtype, C_INFLIGHT] += 1
    if counted:
        counts[rtype, C_ARRIVALS] += 1
        counts[rtype, C_COUNTED_INFLIGHT] += 1
    for node in range(nodes):
        if node_i[dag, node, N_PREDS] == 0:
            start_node(gi, rates, spaces, model, table, draws, out, req, node, now)
    if gi[READY_N]:
        drain_ready(gf, gi, rates, spaces, model, table, draws, out, now)


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
        win_f[which, 2 + 3 * r] = rate_f[r, R_BUSY]
        win_f[which, 3 + 3 * r] = rate_f[r, R_NINT]
        win_f[which, 4 + 3 * r] = rate_f[r, R_QINT]
    base = 2 + 3 * n_rates
    for s in range(space_f.shape[0]):
        win_f[which, base + 2 * s] = space_f[s, S_USED_INT]
        win_f[which, base + 2 * s + 1] = space_f[s, S_QINT]


@njit_cached
def open_window(gf: Any, gi: Any, rates: Any, spaces: Any, out: Any, now: float) -> None:
    """Simulation._open_window: snapshot, and measure maxima afresh."""
    snapshot(gf, gi, rates, spaces, out, 0, now)
    rate_i = rates[1]
    space_f, space_i = spaces[0], spaces[1]
    for r in range(rate_i.shape[0]):
        rate_i[r, R_MAX_N] = rate_i[r, R_N]
        rate_i[r, R_MAX_Q] = rate_i[r, R_QUEUE_N]
    for s in range(space_f.shape[0]):
        space_f[s, S_MAX_USED] = space_f[s, S_USED]
        space_i[s, S_MAX_Q] = space_i[s, S_QUEUE_N]
    gi[HAS_START] = 1


@njit_cached
def close_window(gf: Any, gi: Any, rates: Any, spaces: Any, out: Any, now: float) -> None:
    """Simulation._close_window (once; opens the window first if the warmup never ended)."""
    if gi[HAS_END]:
        return
    if not gi[HAS_START]:
        open_window(gf, gi, rates, spaces, out, now)
    snapshot(gf, gi, rates, spaces, out, 1, now)
    gi[HAS_END] = 1


# ------------------------------------------------------------------------------------------------------- the loop


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
    for k in range(tmpl_i.shape[0]):
        if tmpl_i[k, K_RANDOM] and work_pos[k, LEN] - work_pos[k, POS] < tools_bound:
            gi[STATUS_ARG] = k
            return NEED_WORK
    if not gi[STREAMS_V2]:
        return DONE
    type_i, dec_pos, attr_pos = model[1], draws[5], draws[7]
    for t in range(type_i.shape[0]):
        # An event starts at most tools_bound nodes, each with at most one branch draw, and picks one variant.
        if type_i[t, Y_DECIDES] and dec_pos[t, LEN] - dec_pos[t, POS] < tools_bound + 1:
            gi[STATUS_ARG] = t
            return NEED_DECISIONS
        if type_i[t, Y_ATTR_RANDOM] and attr_pos[t, LEN] - attr_pos[t, POS] < 1:
            gi[STATUS_ARG] = t
            return NEED_ATTRIBUTES
    return DONE


@njit_cached
def run_events(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, out: Any,
               events: Any) -> int:  # fmt: skip
    """Simulation.run's loop up to gf[LIMIT]; returns a status (see the module docstring)."""
    rate_f, rate_i, next_times, rh_kf = rates[0], rates[1], rates[2], rates[3]
    rh_ki, rh_pf, rq_kf, rq_ki, rq_pf = rates[4], rates[5], rates[6], rates[7], rates[8]
    ev_kf, ev_ki, ev_pf = events[0], events[1], events[2]
    type_i = model[1]
    arr_pos = draws[3]
    done_buf = table[5]
    limit = gf[LIMIT]
    n_rates = next_times.shape[0]
    while not gi[FINISHED]:
        status = _room(gi, model, table, draws, out)
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
            m = rate_complete(rate_f, rate_i, next_times, rh_kf, rh_ki, rh_pf, rq_kf, rq_ki, rq_pf, index, t_res,
                              done_buf)  # fmt: skip
            tool_i = table[3]
            for i in range(m):
                tool = done_buf[i]
                tool_i[tool, T_PARTS] -= 1
                if not tool_i[tool, T_PARTS]:
                    finish_tool(gf, gi, rates, spaces, model, table, draws, out, tool, t_res)
            if gi[READY_N]:
                drain_ready(gf, gi, rates, spaces, model, table, draws, out, t_res)
        else:
            if t_ev > limit:
                return PAUSED
            kind = ev_ki[0, 0] // KIND_SHIFT
            payload = ev_ki[0, 1]
            if (kind == ARRIVAL and type_i[payload, Y_ARRIVAL] != ARR_DETERMINISTIC
                    and arr_pos[payload, POS] >= arr_pos[payload, LEN]):  # fmt: skip
                gi[STATUS_ARG] = payload
                return NEED_ARRIVALS
            heap_pop(ev_kf, ev_ki, ev_pf, gi[EV_N])
            gi[EV_N] -= 1
            now = t_ev
            gf[NOW] = now
            if kind == ARRIVAL:
                arrive(gf, gi, rates, spaces, model, table, draws, out, events, payload, now)
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
