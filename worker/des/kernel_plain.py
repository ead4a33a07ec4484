"""The hot paths of the compiled DES kernel for scenarios that cannot fail (:func:`kernel.run_events`).

The same steps as :mod:`simfleet.worker.des.kernel_tools`, without what failures need (attempts, uids, dead
requests, the request's live tools): separate functions, so that the failure paths' code is not linked into a run that
cannot use it (with it, numba/LLVM inlined less of the hot chain and model v1 runs took twice as long).

The chain an arrival or a completion runs (arrive, start_node, start_work, finish_tool, node_done, request_done,
rate_join, rate_complete, rate_admit_and_reschedule) is inlined at numba's level into :func:`kernel.run_events` (and
into :func:`drain_ready_plain`): a call that is not inlined passes every array of its tuples as ~7 scalars each (~400
arguments), which cost more than the event's work (M/M/1-PS 2.2M -> 5.6M requests/s, fork-join 0.67M -> 1.5M; the
cold compile of the plain loop 21 s -> 35 s). The rarer steps (spaces, their admissions, the ready list) stay
separate functions: inlining them too took the compile to ~3 min for no further speed.
"""

from __future__ import annotations

from typing import Any

from simfleet.worker.des.kernel_layout import (
    ARRIVAL,
    ATTEMPTS,
    BRANCH_SKIPPED,
    C_ARRIVALS,
    C_COUNTED_INFLIGHT,
    C_INFLIGHT,
    D_NODES,
    D_OFFSET,
    HORIZON_S,
    K_PARTS,
    K_RANDOM,
    K_SPACES,
    MAX_NODES,
    N_PREDS,
    N_SYS,
    N_TMPL,
    POS,
    Q_COUNTED,
    Q_DAG,
    Q_LEFT,
    Q_TYPE,
    Q_WAITING,
    READY_N,
    REQ_FREE_N,
    SEQ,
    SYS_INT,
    SYS_T,
    T_NODE,
    T_PARTS,
    T_REQ,
    T_SPACE_POS,
    T_TMPL,
    TOOL_FREE_N,
    WARMUP_S,
    Y_DAG0,
    Y_NDAGS,
    Y_PRIORITY,
    Y_WEIGHT,
)
from simfleet.worker.des.kernel_resources import as_int64, njit_cached, njit_inlined
from simfleet.worker.des.kernel_resources_plain import rate_join_plain, space_acquire_plain, space_release_plain
from simfleet.worker.des.kernel_tools import draw_attributes, next_arrival, push_event, type_pick


@njit_cached
def acquire_space_plain(spaces: Any, model: Any, table: Any, tool: int, now: float) -> bool:
    """Simulation._acquire_space: take the template's spaces in order from where the tool stands."""
    space_f, space_i, sq_kf, sq_ki, sq_pf = spaces[0], spaces[1], spaces[2], spaces[3], spaces[4]
    type_i, tmpl_i, tmpl_space, tmpl_amt = model[1], model[5], model[9], model[10]
    req_i, tool_i = table[1], table[3]
    k = tool_i[tool, T_TMPL]
    priority = type_i[req_i[tool_i[tool, T_REQ], Q_TYPE], Y_PRIORITY]
    while tool_i[tool, T_SPACE_POS] < tmpl_i[k, K_SPACES]:
        pos = tool_i[tool, T_SPACE_POS]
        if not space_acquire_plain(space_f, space_i, sq_kf, sq_ki, sq_pf, tmpl_space[k, pos], tool, tmpl_amt[k, pos],
                                   priority, now):  # fmt: skip
            return False
        tool_i[tool, T_SPACE_POS] = pos + 1
    return True


@njit_inlined
def start_work_plain(gi: Any, rates: Any, model: Any, table: Any, draws: Any, tool: int, now: float) -> None:
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
            rate_join_plain(rate_f, rate_i, next_times, rh_kf, rh_ki, rh_pf, rq_kf, rq_ki, rq_pf, r, tool, work,
                            weight, priority, seq, now)  # fmt: skip
            seq += 1
            parts += 1
    gi[SEQ] = seq
    tool_i[tool, T_PARTS] = parts
    if not parts:
        ready_buf[gi[READY_N]] = tool
        gi[READY_N] += 1


@njit_cached
def admit_all_plain(gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, m: int, now: float) -> None:
    """Simulation._admitted for the ``m`` tools in admit_buf: take their next spaces, then start their work."""
    tool_i, admit_buf = table[3], table[6]
    for i in range(m):
        admitted = admit_buf[i]
        tool_i[admitted, T_SPACE_POS] += 1
        if acquire_space_plain(spaces, model, table, admitted, now):
            start_work_plain(gi, rates, model, table, draws, admitted, now)


@njit_inlined
def start_node_plain(gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, out: Any, req: int,
                     node: int, now: float) -> None:  # fmt: skip
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
    if tmpl_i[k, K_SPACES] and not acquire_space_plain(spaces, model, table, tool, now):
        return
    start_work_plain(gi, rates, model, table, draws, tool, now)


@njit_inlined
def request_done_plain(gf: Any, gi: Any, table: Any, out: Any, req: int, now: float) -> None:
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


@njit_inlined
def finish_tool_plain(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, out: Any,
                      tool: int, now: float) -> None:  # fmt: skip
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
        m = space_release_plain(space_f, space_i, sq_kf, sq_ki, sq_pf, tmpl_space[k, pos], tmpl_amt[k, pos], now,
                                admit_buf)  # fmt: skip
        admit_all_plain(gi, rates, spaces, model, table, draws, m, now)
    node_done_plain(gf, gi, rates, spaces, model, table, draws, out, req, node, now)


@njit_inlined
def node_done_plain(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, out: Any, req: int,
                    node: int, now: float) -> None:  # fmt: skip
    """Simulation._node_done: finish the request, or start the successors the node unblocks."""
    succ_start, succ = model[3], model[4]
    req_i = table[1]
    req_i[req, Q_LEFT] -= 1
    if not req_i[req, Q_LEFT]:
        request_done_plain(gf, gi, table, out, req, now)
        return
    dag = req_i[req, Q_DAG]
    for e in range(succ_start[dag, node], succ_start[dag, node + 1]):
        nxt = succ[dag, e]
        req_i[req, Q_WAITING + nxt] -= 1
        if not req_i[req, Q_WAITING + nxt]:
            start_node_plain(gi, rates, spaces, model, table, draws, out, req, nxt, now)


@njit_cached
def drain_ready_plain(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, out: Any,
                      now: float) -> None:  # fmt: skip
    """Simulation._drain_ready: finish the tools that had no work and the skipped nodes, in the order they came."""
    ready_buf = table[7]
    head = 0
    while head < gi[READY_N]:
        item = ready_buf[head]
        head += 1
        if item >= 0:
            finish_tool_plain(gf, gi, rates, spaces, model, table, draws, out, item, now)
        else:
            code = -1 - item
            node_done_plain(gf, gi, rates, spaces, model, table, draws, out, code // gi[MAX_NODES],
                            code % gi[MAX_NODES], now)  # fmt: skip
    gi[READY_N] = 0


@njit_inlined
def arrive_plain(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, out: Any, events: Any,
                 rtype: int, now: float) -> None:  # fmt: skip
    """Simulation._arrive: schedule the type's next arrival, then start the new request's roots."""
    type_i, node_i, dag_i = model[1], model[2], model[13]
    req_f, req_i, req_free = table[0], table[1], table[2]
    counts = out[2]
    following = next_arrival(model, draws, rtype, now)
    if following < gf[HORIZON_S]:
        push_event(gi, events, following, as_int64(ARRIVAL), rtype, as_int64(0), as_int64(0))
    counted = now >= gf[WARMUP_S]
    gi[REQ_FREE_N] -= 1
    req = req_free[gi[REQ_FREE_N]]
    dag = type_i[rtype, Y_DAG0]
    if type_i[rtype, Y_NDAGS] > 1:
        dag += type_pick(model, draws, rtype)
    nodes = dag_i[dag, D_NODES]
    req_f[req] = now
    req_i[req, Q_TYPE] = rtype
    req_i[req, Q_LEFT] = nodes
    req_i[req, Q_COUNTED] = 1 if counted else 0
    req_i[req, Q_DAG] = dag
    for node in range(nodes):
        req_i[req, Q_WAITING + node] = node_i[dag, node, N_PREDS]
    draw_attributes(model, table, draws, rtype, req)
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
            start_node_plain(gi, rates, spaces, model, table, draws, out, req, node, now)
    if gi[READY_N]:
        drain_ready_plain(gf, gi, rates, spaces, model, table, draws, out, now)
