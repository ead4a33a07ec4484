"""Requests, tools and failures of the compiled DES kernel (:mod:`simfleet.worker.des.kernel`).

Each function mirrors the :class:`~simfleet.worker.des.engine.Simulation` method it names, operation by operation.
"""

from __future__ import annotations

from typing import Any

from simfleet.worker.des.kernel_layout import (
    A_COL,
    A_RANDOM,
    ARR_POISSON,
    ARR_PROCESS,
    ARRIVAL,
    ATTEMPTS,
    BRANCH_SKIPPED,
    C_ARRIVALS,
    C_COUNTED_INFLIGHT,
    C_FAILED,
    C_INFLIGHT,
    COMPLETED_OK,
    D_NODES,
    D_OFFSET,
    EV_N,
    FAILED,
    FAILED_OUTCOME,
    FALLBACKS,
    FALLIBLE,
    HORIZON_S,
    K_PARTS,
    K_RANDOM,
    K_SPACES,
    KIND_SHIFT,
    MAX_NODES,
    N_PREDS,
    N_SYS,
    N_TMPL,
    ON_FALLBACK,
    ON_SKIP,
    P_FAIL,
    P_FALLBACK,
    P_HAS_TIMEOUT,
    P_ON_FAILURE,
    P_RETRIES,
    P_TIMEOUT,
    POS,
    Q_COUNTED,
    Q_DAG,
    Q_DEAD,
    Q_LEFT,
    Q_RID,
    Q_TYPE,
    Q_WAITING,
    READY_N,
    REQ_FREE_N,
    RETRY,
    RID,
    SEQ,
    SKIPPED,
    SYS_INT,
    SYS_T,
    T_ATTEMPT,
    T_FAILS,
    T_FALLBACK,
    T_NODE,
    T_PARTS,
    T_POL,
    T_REQ,
    T_SPACE_POS,
    T_TMPL,
    T_UID,
    TIMED_OUT,
    TIMED_OUT_OUTCOME,
    TIMEOUT,
    TOOL_FREE_N,
    UID,
    WARMUP_S,
    Y_ARRIVAL,
    Y_ATTR_RANDOM,
    Y_DAG0,
    Y_MEAN_GAP,
    Y_NATTRS,
    Y_NDAGS,
    Y_PRIORITY,
    Y_WEIGHT,
)
from simfleet.worker.des.kernel_resources import (
    R_WASTED,
    as_int64,
    heap_push,
    njit_cached,
    njit_inlined,
    rate_cancel,
    rate_join,
    space_acquire,
    space_cancel_waiting,
    space_release,
)

# ------------------------------------------------------------------------------------------------ requests and tools


@njit_cached
def start_work(gi: Any, rates: Any, model: Any, table: Any, draws: Any, fail: Any, tool: int, now: float) -> None:
    """Simulation._start_work: draw the tool's work and join its rate resources (or finish it at once)."""
    rate_f, rate_i, next_times, rh_kf = rates[0], rates[1], rates[2], rates[3]
    rh_ki, rh_pf, rq_kf, rq_ki, rq_pf = rates[4], rates[5], rates[6], rates[7], rates[8]
    tool_rs, tool_vf = rates[9], rates[10]
    type_f, type_i, tmpl_i, tmpl_res, tmpl_rand, tmpl_const = model[0], model[1], model[5], model[6], model[7], model[8]
    tmpl_per, overhead = model[14], model[15]
    req_i, tool_i, ready_buf, req_a, ready_uid, tool_jw = table[1], table[3], table[7], table[8], fail[5], fail[8]
    work_buf, work_pos = draws[0], draws[1]
    k = tool_i[tool, T_TMPL]
    req = tool_i[tool, T_REQ]
    rtype = req_i[req, Q_TYPE]
    weight = type_f[rtype, Y_WEIGHT]
    priority = type_i[rtype, Y_PRIORITY]
    fallible = gi[FALLIBLE]
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
            rate_join(rate_f, rate_i, next_times, rh_kf, rh_ki, rh_pf, rq_kf, rq_ki, rq_pf, tool_rs, tool_vf, r, tool,
                      work, weight, priority, seq, now)  # fmt: skip
            if fallible:
                tool_jw[tool, r] = work
            seq += 1
            parts += 1
    gi[SEQ] = seq
    tool_i[tool, T_PARTS] = parts
    if not parts:
        ready_buf[gi[READY_N]] = tool
        ready_uid[gi[READY_N]] = tool_i[tool, T_UID]
        gi[READY_N] += 1


@njit_cached
def acquire_space(spaces: Any, model: Any, table: Any, tool: int, now: float) -> bool:
    """Simulation._acquire_space: take the template's spaces in order from where the tool stands."""
    space_f, space_i, sq_kf, sq_ki, sq_pf, tool_sq = spaces[0], spaces[1], spaces[2], spaces[3], spaces[4], spaces[5]
    type_i, tmpl_i, tmpl_space, tmpl_amt = model[1], model[5], model[9], model[10]
    req_i, tool_i = table[1], table[3]
    k = tool_i[tool, T_TMPL]
    priority = type_i[req_i[tool_i[tool, T_REQ], Q_TYPE], Y_PRIORITY]
    while tool_i[tool, T_SPACE_POS] < tmpl_i[k, K_SPACES]:
        pos = tool_i[tool, T_SPACE_POS]
        if not space_acquire(
            space_f, space_i, sq_kf, sq_ki, sq_pf, tool_sq, tmpl_space[k, pos], tool, tmpl_amt[k, pos], priority, now
        ):
            return False
        tool_i[tool, T_SPACE_POS] = pos + 1
    return True


@njit_cached
def admit_all(
    gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, fail: Any, m: int, now: float
) -> None:
    """Simulation._admitted for the ``m`` tools in admit_buf: take their next spaces, then start their work."""
    tool_i, admit_buf = table[3], table[6]
    for i in range(m):
        admitted = admit_buf[i]
        tool_i[admitted, T_SPACE_POS] += 1
        if acquire_space(spaces, model, table, admitted, now):
            start_work(gi, rates, model, table, draws, fail, admitted, now)


@njit_inlined
def count(model: Any, table: Any, out: Any, req: int, node: int, figure: int) -> None:
    """Simulation._count."""
    req_i, dag_i, node_fig = table[1], model[13], out[3]
    if req_i[req, Q_COUNTED]:
        node_fig[req_i[req, Q_TYPE], dag_i[req_i[req, Q_DAG], D_OFFSET] + node, figure] += 1


@njit_cached
def attempt(gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, fail: Any, out: Any, events: Any,
            req: int, node: int, k: int, pol: int, number: int, is_fallback: int, now: float) -> None:  # fmt: skip
    """Simulation._attempt: a new attempt of a node (its failure draw, its timer), then its space and its work."""
    tool_rs, tool_sq = rates[9], spaces[5]
    tmpl_i, pol_f, pol_i = model[5], fail[2], fail[3]
    req_i, tool_i, tool_free, tool_jw = table[1], table[3], table[4], fail[8]
    dec_buf, dec_pos = draws[4], draws[5]
    gi[TOOL_FREE_N] -= 1
    tool = tool_free[gi[TOOL_FREE_N]]
    tool_i[tool, T_REQ] = req
    tool_i[tool, T_NODE] = node
    tool_i[tool, T_TMPL] = k
    tool_i[tool, T_PARTS] = 0
    tool_i[tool, T_SPACE_POS] = 0
    tool_i[tool, T_ATTEMPT] = number
    tool_i[tool, T_FALLBACK] = is_fallback
    tool_i[tool, T_FAILS] = 0
    tool_i[tool, T_POL] = pol
    uid = gi[UID]
    gi[UID] = uid + 1
    tool_i[tool, T_UID] = uid
    for r in range(tool_rs.shape[1]):
        tool_rs[tool, r, 0] = -1
        tool_jw[tool, r] = 0.0
    tool_sq[tool, 0] = -1
    req_i[req, Q_WAITING + gi[MAX_NODES] + node] = tool
    count(model, table, out, req, node, ATTEMPTS)
    fail_prob = pol_f[pol, P_FAIL]
    if fail_prob > 0.0:
        rtype = req_i[req, Q_TYPE]
        u = dec_buf[rtype, 0, dec_pos[rtype, POS]]
        dec_pos[rtype, POS] += 1
        if u < fail_prob:
            tool_i[tool, T_FAILS] = 1
    if pol_i[pol, P_HAS_TIMEOUT]:
        push_event(gi, events, now + pol_f[pol, P_TIMEOUT], as_int64(TIMEOUT), tool, uid, as_int64(0))
    if tmpl_i[k, K_SPACES] and not acquire_space(spaces, model, table, tool, now):
        return
    start_work(gi, rates, model, table, draws, fail, tool, now)


@njit_cached
def start_node(gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, fail: Any, out: Any, events: Any,
               req: int, node: int, now: float) -> None:  # fmt: skip
    """Simulation._start in a scenario that can fail: the node's branch draw (``prob`` < 1), then its attempt."""
    node_i, node_prob, node_pol = model[2], model[11], fail[0]
    req_i, ready_buf = table[1], table[7]
    dec_buf, dec_pos = draws[4], draws[5]
    dag = req_i[req, Q_DAG]
    prob = node_prob[dag, node]
    if prob < 1.0:
        rtype = req_i[req, Q_TYPE]
        u = dec_buf[rtype, 0, dec_pos[rtype, POS]]
        dec_pos[rtype, POS] += 1
        if u >= prob:
            count(model, table, out, req, node, BRANCH_SKIPPED)
            ready_buf[gi[READY_N]] = -1 - (req * gi[MAX_NODES] + node)
            gi[READY_N] += 1
            return
    attempt(gi, rates, spaces, model, table, draws, fail, out, events, req, node, node_i[dag, node, N_TMPL],
            node_pol[dag, node], as_int64(0), as_int64(0), now)  # fmt: skip


@njit_cached
def request_done(gf: Any, gi: Any, table: Any, out: Any, fail: Any, req: int, outcome: int, now: float) -> None:
    """Simulation._request_done: the request leaves (completed, failed or timed out)."""
    req_f, req_i, req_free = table[0], table[1], table[2]
    lat_buf, lat_n, counts, fail_buf, fail_n = out[0], out[1], out[2], fail[9], fail[10]
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
    if outcome != COMPLETED_OK:
        counts[rtype, C_FAILED + outcome - 1] += 1
        fail_buf[rtype, fail_n[rtype]] = now - req_f[req]
        fail_n[rtype] += 1
        return
    lat_buf[rtype, lat_n[rtype]] = now - req_f[req]
    lat_n[rtype] += 1


@njit_inlined
def free_tool(gi: Any, table: Any, tool: int) -> None:
    """A tool's row goes back to the free list (its timer, ready and done entries are stale from now on)."""
    req_i, tool_i, tool_free = table[1], table[3], table[4]
    if gi[FALLIBLE]:
        tool_i[tool, T_UID] = -1
        req_i[tool_i[tool, T_REQ], Q_WAITING + gi[MAX_NODES] + tool_i[tool, T_NODE]] = -1
    tool_free[gi[TOOL_FREE_N]] = tool
    gi[TOOL_FREE_N] += 1


@njit_cached
def finish_tool(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, fail: Any, out: Any,
                events: Any, tool: int, now: float) -> None:  # fmt: skip
    """Simulation._finish_tool: free its space, then count its node done, or its attempt failed."""
    space_f, space_i, sq_kf, sq_ki, sq_pf, tool_sq = spaces[0], spaces[1], spaces[2], spaces[3], spaces[4], spaces[5]
    tmpl_i, tmpl_space, tmpl_amt = model[5], model[9], model[10]
    tool_i, admit_buf = table[3], table[6]
    k = tool_i[tool, T_TMPL]
    req = tool_i[tool, T_REQ]
    node = tool_i[tool, T_NODE]
    fails = gi[FALLIBLE] and tool_i[tool, T_FAILS]
    # The row is freed first: the admissions below start other tools' work but never take a row, so its fields stay
    # readable for attempt_failed.
    free_tool(gi, table, tool)
    for pos in range(tmpl_i[k, K_SPACES]):
        m = space_release(
            space_f, space_i, sq_kf, sq_ki, sq_pf, tool_sq, tmpl_space[k, pos], tmpl_amt[k, pos], now, admit_buf
        )
        admit_all(gi, rates, spaces, model, table, draws, fail, m, now)
    if fails:
        attempt_failed(gf, gi, rates, spaces, model, table, draws, fail, out, events, tool, now)
        return
    node_done(gf, gi, rates, spaces, model, table, draws, fail, out, events, req, node, now)


@njit_cached
def attempt_failed(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, fail: Any, out: Any,
                   events: Any, tool: int, now: float) -> None:  # fmt: skip
    """Simulation._attempt_failed: all the (freed) tool's work is wasted; retry or apply ``on_failure``."""
    rate_f = rates[0]
    tmpl_i, tmpl_res = model[5], model[6]
    tool_i, tool_jw = table[3], fail[8]
    k = tool_i[tool, T_TMPL]
    for p in range(tmpl_i[k, K_PARTS]):
        r = tmpl_res[k, p]
        if tool_jw[tool, r] > 0.0:
            rate_f[r, R_WASTED] += tool_jw[tool, r]
    req = tool_i[tool, T_REQ]
    node = tool_i[tool, T_NODE]
    count(model, table, out, req, node, FAILED)
    attempt_over(gf, gi, rates, spaces, model, table, draws, fail, out, events, req, node, k, tool_i[tool, T_POL],
                 tool_i[tool, T_ATTEMPT], tool_i[tool, T_FALLBACK], as_int64(FAILED_OUTCOME), now)  # fmt: skip


@njit_cached
def attempt_over(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, fail: Any, out: Any,
                 events: Any, req: int, node: int, k: int, pol: int, number: int, is_fallback: int, outcome: int,
                 now: float) -> None:  # fmt: skip
    """Simulation._attempt_over: retry (at once, or a RETRY event after the backoff), skip, fall back, or fail."""
    tmpl_i, tmpl_pol, pol_i, pol_delay = model[5], fail[1], fail[3], fail[4]
    req_i = table[1]
    if number < pol_i[pol, P_RETRIES]:
        delay = pol_delay[pol, number + 1]
        if delay <= 0.0:
            attempt(gi, rates, spaces, model, table, draws, fail, out, events, req, node, k, pol, number + 1,
                    is_fallback, now)  # fmt: skip
            return
        packed = (((number + 1) * 2 + is_fallback) * tmpl_i.shape[0] + k) * gi[MAX_NODES] + node
        push_event(gi, events, now + delay, as_int64(RETRY), req, req_i[req, Q_RID], packed)
        return
    on_failure = pol_i[pol, P_ON_FAILURE]
    if on_failure == ON_SKIP:
        count(model, table, out, req, node, SKIPPED)
        node_done(gf, gi, rates, spaces, model, table, draws, fail, out, events, req, node, now)
    elif on_failure == ON_FALLBACK:
        count(model, table, out, req, node, FALLBACKS)
        fallback = pol_i[pol, P_FALLBACK]
        attempt(gi, rates, spaces, model, table, draws, fail, out, events, req, node, fallback, tmpl_pol[fallback],
                as_int64(0), as_int64(1), now)  # fmt: skip
    else:
        request_failed(gf, gi, rates, spaces, model, table, draws, fail, out, req, outcome, now)


@njit_cached
def cancel_tool(
    gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, fail: Any, tool: int, now: float
) -> None:
    """Simulation._cancel: take an unfinished attempt off what it holds or waits for; its done work is wasted."""
    rate_f, rate_i, next_times, rh_kf = rates[0], rates[1], rates[2], rates[3]
    rh_ki, rh_pf, rq_kf, rq_ki, rq_pf = rates[4], rates[5], rates[6], rates[7], rates[8]
    tool_rs, tool_vf = rates[9], rates[10]
    space_f, space_i, sq_kf, sq_ki, sq_pf, tool_sq = spaces[0], spaces[1], spaces[2], spaces[3], spaces[4], spaces[5]
    type_f, tmpl_i, tmpl_res, tmpl_space, tmpl_amt = model[0], model[5], model[6], model[9], model[10]
    req_i, tool_i, admit_buf, tool_jw = table[1], table[3], table[6], fail[8]
    k = tool_i[tool, T_TMPL]
    weight = type_f[req_i[tool_i[tool, T_REQ], Q_TYPE], Y_WEIGHT]
    for p in range(tmpl_i[k, K_PARTS]):
        r = tmpl_res[k, p]
        work = tool_jw[tool, r]
        if work > 0.0:
            rate_f[r, R_WASTED] += rate_cancel(rate_f, rate_i, next_times, rh_kf, rh_ki, rh_pf, rq_kf, rq_ki, rq_pf,
                                               tool_rs, tool_vf, r, tool, work, weight, now)  # fmt: skip
    n_spaces = tmpl_i[k, K_SPACES]
    if n_spaces:
        held = tool_i[tool, T_SPACE_POS]
        if held < n_spaces:
            tool_sq[tool, 0] = -1
            m = space_cancel_waiting(
                space_f, space_i, sq_kf, sq_ki, sq_pf, tool_sq, tmpl_space[k, held], now, admit_buf
            )
            admit_all(gi, rates, spaces, model, table, draws, fail, m, now)
        for pos in range(held):
            m = space_release(
                space_f, space_i, sq_kf, sq_ki, sq_pf, tool_sq, tmpl_space[k, pos], tmpl_amt[k, pos], now, admit_buf
            )
            admit_all(gi, rates, spaces, model, table, draws, fail, m, now)
    free_tool(gi, table, tool)


@njit_cached
def request_failed(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, fail: Any, out: Any,
                   req: int, outcome: int, now: float) -> None:  # fmt: skip
    """Simulation._request_failed: cancel the request's live attempts in the order they began, and it leaves."""
    dag_i = model[13]
    req_i, tool_i, cancel_buf = table[1], table[3], fail[7]
    req_i[req, Q_DEAD] = 1
    base = Q_WAITING + gi[MAX_NODES]
    n = 0
    for node in range(dag_i[req_i[req, Q_DAG], D_NODES]):
        tool = req_i[req, base + node]
        if tool < 0:
            continue
        i = n
        while i > 0 and tool_i[cancel_buf[i - 1], T_UID] > tool_i[tool, T_UID]:
            cancel_buf[i] = cancel_buf[i - 1]
            i -= 1
        cancel_buf[i] = tool
        n += 1
    for i in range(n):
        cancel_tool(gi, rates, spaces, model, table, draws, fail, cancel_buf[i], now)
    request_done(gf, gi, table, out, fail, req, outcome, now)


@njit_cached
def timeout(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, fail: Any, out: Any,
            events: Any, tool: int, now: float) -> None:  # fmt: skip
    """Simulation._timeout: cancel the attempt, count it, retry or apply ``on_failure``."""
    tool_i = table[3]
    req, node, k = tool_i[tool, T_REQ], tool_i[tool, T_NODE], tool_i[tool, T_TMPL]
    pol, number, is_fallback = tool_i[tool, T_POL], tool_i[tool, T_ATTEMPT], tool_i[tool, T_FALLBACK]
    cancel_tool(gi, rates, spaces, model, table, draws, fail, tool, now)
    count(model, table, out, req, node, TIMED_OUT)
    attempt_over(gf, gi, rates, spaces, model, table, draws, fail, out, events, req, node, k, pol, number,
                 is_fallback, as_int64(TIMED_OUT_OUTCOME), now)  # fmt: skip
    if gi[READY_N]:
        drain_ready(gf, gi, rates, spaces, model, table, draws, fail, out, events, now)


@njit_cached
def retry(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, fail: Any, out: Any,
          events: Any, req: int, packed: int, now: float) -> None:  # fmt: skip
    """Simulation._retry: the attempt that waited for its backoff starts."""
    tmpl_i, tmpl_pol, node_pol = model[5], fail[1], fail[0]
    req_i = table[1]
    max_nodes = gi[MAX_NODES]
    n_tmpl = tmpl_i.shape[0]
    node = packed % max_nodes
    packed //= max_nodes
    k = packed % n_tmpl
    packed //= n_tmpl
    is_fallback = packed % 2
    number = packed // 2
    pol = tmpl_pol[k] if is_fallback else node_pol[req_i[req, Q_DAG], node]
    attempt(gi, rates, spaces, model, table, draws, fail, out, events, req, node, k, pol, number, is_fallback, now)
    if gi[READY_N]:
        drain_ready(gf, gi, rates, spaces, model, table, draws, fail, out, events, now)


@njit_cached
def node_done(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, fail: Any, out: Any,
              events: Any, req: int, node: int, now: float) -> None:  # fmt: skip
    """Simulation._node_done: finish the request, or start the successors the node unblocks."""
    succ_start, succ = model[3], model[4]
    req_i = table[1]
    req_i[req, Q_LEFT] -= 1
    if not req_i[req, Q_LEFT]:
        request_done(gf, gi, table, out, fail, req, as_int64(COMPLETED_OK), now)
        return
    dag = req_i[req, Q_DAG]
    for e in range(succ_start[dag, node], succ_start[dag, node + 1]):
        nxt = succ[dag, e]
        req_i[req, Q_WAITING + nxt] -= 1
        if not req_i[req, Q_WAITING + nxt]:
            start_node(gi, rates, spaces, model, table, draws, fail, out, events, req, nxt, now)


@njit_cached
def drain_ready(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, fail: Any, out: Any,
                events: Any, now: float) -> None:  # fmt: skip
    """Simulation._drain_ready: finish the tools that had no work and the skipped nodes, in the order they came.

    A tool cancelled meanwhile (its row freed, perhaps reused: its uid differs) and a node of a request that failed
    meanwhile are passed over, as the engine passes over cancelled tools and dead requests.
    """
    req_i, tool_i, ready_buf, ready_uid = table[1], table[3], table[7], fail[5]
    fallible = gi[FALLIBLE]
    head = 0
    while head < gi[READY_N]:
        item = ready_buf[head]
        if item >= 0:
            if not fallible or tool_i[item, T_UID] == ready_uid[head]:
                head += 1
                finish_tool(gf, gi, rates, spaces, model, table, draws, fail, out, events, item, now)
                continue
        else:
            code = -1 - item
            req = code // gi[MAX_NODES]
            if not req_i[req, Q_DEAD]:
                head += 1
                node_done(gf, gi, rates, spaces, model, table, draws, fail, out, events, req, code % gi[MAX_NODES], now)
                continue
        head += 1
    gi[READY_N] = 0


@njit_cached
def push_event(gi: Any, events: Any, when: float, kind: int, payload: int, stamp: int, packed: int) -> None:
    """Simulation._schedule (with a timer's or retry's stamp, and a retry's packed attempt)."""
    ev_kf, ev_ki, ev_pf = events[0], events[1], events[2]
    n = gi[EV_N]
    if ev_ki.shape[1] > 2:  # a scenario that cannot fail has no stamps (narrower rows swap faster)
        ev_ki[n, 2] = stamp
        ev_ki[n, 3] = packed
    heap_push(ev_kf, ev_ki, ev_pf, n, when, kind * KIND_SHIFT + gi[SEQ], payload, 0.0, 0.0)
    gi[EV_N] = n + 1
    gi[SEQ] += 1


@njit_inlined
def next_arrival(model: Any, draws: Any, rtype: int, now: float) -> float:
    """The time of the type's next arrival (ArrivalStream.next_gap, or the process's next time)."""
    type_f, type_i = model[0], model[1]
    arr_buf, arr_pos = draws[2], draws[3]
    arrival = type_i[rtype, Y_ARRIVAL]
    if arrival == ARR_POISSON:
        following = now + arr_buf[rtype, arr_pos[rtype, POS]] * type_f[rtype, Y_MEAN_GAP]
        arr_pos[rtype, POS] += 1
    elif arrival == ARR_PROCESS:
        following = arr_buf[rtype, arr_pos[rtype, POS]]
        arr_pos[rtype, POS] += 1
    else:
        following = now + type_f[rtype, Y_MEAN_GAP]
    result: float = following
    return result


@njit_inlined
def type_pick(model: Any, draws: Any, rtype: int) -> int:
    """TypeSpec.pick for a type with several DAGs: the chosen one's position among them."""
    type_i, type_cum = model[1], model[12]
    dec_buf, dec_pos = draws[4], draws[5]
    n_dags = type_i[rtype, Y_NDAGS]
    u = dec_buf[rtype, 0, dec_pos[rtype, POS]]
    dec_pos[rtype, POS] += 1
    chosen: int = n_dags - 1
    for v in range(n_dags):
        if u < type_cum[rtype, v]:
            chosen = v
            break
    return chosen


@njit_inlined
def draw_attributes(model: Any, table: Any, draws: Any, rtype: int, req: int) -> None:
    """The type's attribute WorkStream.draw, into the request's columns of req_a."""
    type_i, type_attr, type_attr_const = model[1], model[16], model[17]
    req_a = table[8]
    attr_buf, attr_pos = draws[6], draws[7]
    n_attrs = type_i[rtype, Y_NATTRS]
    if n_attrs:
        j = attr_pos[rtype, POS]
        if type_i[rtype, Y_ATTR_RANDOM]:
            attr_pos[rtype, POS] = j + 1
        for a in range(n_attrs):
            value = attr_buf[rtype, a, j] if type_attr[rtype, a, A_RANDOM] else type_attr_const[rtype, a]
            req_a[req, type_attr[rtype, a, A_COL]] = value


@njit_cached
def arrive(gf: Any, gi: Any, rates: Any, spaces: Any, model: Any, table: Any, draws: Any, fail: Any, out: Any,
           events: Any, rtype: int, now: float) -> None:  # fmt: skip
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
    req_i[req, Q_DEAD] = 0
    req_i[req, Q_RID] = gi[RID]
    gi[RID] += 1
    max_nodes = gi[MAX_NODES]
    for node in range(nodes):
        req_i[req, Q_WAITING + node] = node_i[dag, node, N_PREDS]
        req_i[req, Q_WAITING + max_nodes + node] = -1
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
            start_node(gi, rates, spaces, model, table, draws, fail, out, events, req, node, now)
    if gi[READY_N]:
        drain_ready(gf, gi, rates, spaces, model, table, draws, fail, out, events, now)
