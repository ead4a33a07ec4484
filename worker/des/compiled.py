"""A replication run by the compiled event loop of :mod:`simfleet.worker.des.kernel`.

:class:`CompiledSimulation` has the surface of :class:`~simfleet.worker.des.engine.Simulation` (``run``,
``summary``, ``events``, ``now``, ``wall_s``) and gives the same summary bit for bit. It owns the generators (made by
:func:`~simfleet.worker.des.streams.make_generators`, so every draw is the Python engine's) and hands the kernel blocks
of draws; the kernel returns between two events whenever it needs more, a latency batch is full, or a table must
grow, and this class does that and calls it again.

It covers the whole of model v2: failures (``fail_prob``), timeouts, retries with their backoff, ``on_failure``
(fail, skip, fallback chains) with cancellation and wasted work, branch probabilities (``prob``), variants, attributes
and ``per``, join overheads, priorities and the arrival processes (schedule, MMPP, trace: their times are computed
here by the engine's own :class:`~simfleet.worker.des.arrivals.ProcessStream` and handed to the kernel in blocks).
Saving and resuming, and the views the summary reads, are in :mod:`simfleet.worker.des.compiled_state`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from simfleet.shared.errors import SimulationError
from simfleet.shared.messages.des import NODE_FIGURES, ReplicationSummary
from simfleet.worker.des import kernel as K
from simfleet.worker.des import kernel_layout as L
from simfleet.worker.des import kernel_resources as KR
from simfleet.worker.des.arrivals import ProcessStream
from simfleet.worker.des.compiled_state import SummaryViews, check_state, restore_state, save_state
from simfleet.worker.des.entities import TypeSpec
from simfleet.worker.des.kernel_cache import invalidate_stale
from simfleet.worker.des.kernel_tools import push_event
from simfleet.worker.des.limits import check_number
from simfleet.worker.des.scenario import FailurePolicy, Scenario
from simfleet.worker.des.sketch import LatencySketch
from simfleet.worker.des.slicing import Sliced
from simfleet.worker.des.streams import BLOCK, make_generators

invalidate_stale()  # numba's cache must not hold code compiled from other kernel sources (kernel_cache.py)


def _chain(policy: FailurePolicy, tools: dict[str, Any]) -> list[FailurePolicy]:
    """The policies a node's attempts may run under: its own, then its fallback chain's (tool chains are acyclic)."""
    chain = [policy]
    while policy.on_failure == "fallback" and policy.fallback is not None and len(chain) <= len(tools):
        policy = tools[policy.fallback].policy
        chain.append(policy)
    return chain


def policy_tables(scenario: Scenario, types: list[TypeSpec], template_index: dict[str, int]) -> dict[str, Any]:
    """The failure policies as the kernel reads them.

    Rows 0..templates-1 are the templates' own policies (a fallback runs under its template's), then one row per DAG
    node. Returns the arrays ``node_pol``, ``tmpl_pol``, ``pol_f``, ``pol_i``, ``pol_delay`` (the backoff of retry k
    in column k, from ``Backoff.delay_s`` itself), ``attempts`` (the most attempts of one node: retries and fallbacks
    of its whole chain) and ``fail_types`` (per type, whether an attempt of it may draw a failure).
    """
    tools = scenario.tools
    policies = [tool.policy for tool in tools.values()]
    dags = [dag for spec in types for dag in spec.dags]
    max_nodes = max(len(dag.preds) for dag in dags)
    node_pol = np.zeros((len(dags), max_nodes), dtype=np.int64)
    attempts = 1
    fail_types = []
    d = 0
    for spec in types:
        fails = False
        for dag in spec.dags:
            for node, policy in enumerate(dag.policies):
                node_pol[d, node] = len(policies)
                policies.append(policy)
                chain = _chain(policy, tools)
                attempts = max(attempts, sum(p.retries + 1 for p in chain))
                fails = fails or any(p.fail_prob > 0.0 for p in chain)
            d += 1
        fail_types.append(fails)
    pol_f = np.zeros((len(policies), 2))
    pol_i = np.zeros((len(policies), 4), dtype=np.int64)
    pol_delay = np.zeros((len(policies), 1 + max(p.retries for p in policies)))
    for row, p in enumerate(policies):
        if p.on_failure == "fallback" and p.fallback is not None:
            on_failure, fallback = L.ON_FALLBACK, template_index[p.fallback]
        else:  # the engine fails the request for anything but skip or a named fallback
            on_failure, fallback = (L.ON_SKIP if p.on_failure == "skip" else L.ON_FAIL), -1
        pol_f[row] = (p.fail_prob, 0.0 if p.timeout_s is None else p.timeout_s)
        pol_i[row] = (p.timeout_s is not None, p.retries, on_failure, fallback)
        for k in range(1, p.retries + 1):
            pol_delay[row, k] = p.backoff.delay_s(k)
    return {
        "node_pol": node_pol, "tmpl_pol": np.arange(len(tools), dtype=np.int64), "pol_f": pol_f, "pol_i": pol_i,
        "pol_delay": pol_delay, "attempts": attempts, "fail_types": fail_types,
    }  # fmt: skip


def _grown(array: Any, shape: tuple[int, ...], dtype: Any = np.float64) -> Any:
    """A zero array of ``shape`` with ``array`` (when given) copied into its leading corner."""
    new = np.zeros(shape, dtype=dtype)
    if array is not None:
        new[tuple(slice(0, s) for s in array.shape)] = array
    return new


class CompiledSimulation(SummaryViews, Sliced):
    """One replication of a scenario on the compiled kernel; call :meth:`run`, then :meth:`summary`.

    Args:
        scenario: the validated scenario.
        seed: the study seed.
        replication: the replication index; together with ``seed`` it fixes every random draw.
    """

    req_f: Any
    req_i: Any
    req_free: Any
    req_a: Any
    tool_i: Any
    tool_free: Any

    def __init__(self, scenario: Scenario, seed: int, replication: int = 0) -> None:
        self.scenario = scenario
        self.seed = seed
        self.replication = replication
        self.fallible = scenario.fallible
        rate_names = [n for n, r in scenario.resources.items() if r.kind == "rate"]
        space_names = [n for n, r in scenario.resources.items() if r.kind == "space"]
        self.rate_names, self.space_names = rate_names, space_names
        rate_index = {n: i for i, n in enumerate(rate_names)}
        space_index = {n: i for i, n in enumerate(space_names)}
        template_index = {n: i for i, n in enumerate(scenario.tools)}
        self.types = [TypeSpec(i, scenario, name, template_index) for i, name in enumerate(scenario.request_types)]
        for name, rt in scenario.request_types.items():
            check_number(rt.rate_per_min, scenario.source, f"request_types.{name}.rate_per_min", positive=True)
        arrival_rngs, work_rngs, v2_rngs = make_generators(seed, replication, len(self.types), len(scenario.tools))
        self.arrival_rngs, self.work_rngs = arrival_rngs, work_rngs
        self.decision_rngs = [d for d, _, _ in v2_rngs]
        self.attribute_rngs = [a for _, a, _ in v2_rngs]
        sc_types = list(scenario.request_types.values())
        self.processes: list[ProcessStream | None] = [
            None if rt.process is None else ProcessStream(rt.process, rng, modulation)
            for rt, rng, (_, _, modulation) in zip(sc_types, arrival_rngs, v2_rngs, strict=True)
        ]
        self.dists = [list(tool.work.values()) for tool in scenario.tools.values()]
        self.attr_dists = [list(rt.attributes.values()) for rt in sc_types]
        offered = scenario.offered_load()
        self.offered_load = offered
        overloaded = sorted(name for name, rho in offered.items() if rho >= 1.0)
        self.unstable_reason: str | None = (
            f"offered load reaches capacity on {', '.join(overloaded)}" if overloaded else None
        )
        self.stopped_at_horizon = False
        self.horizon_s = scenario.horizon_s
        self.finished = False
        self.wall_s = 0.0
        self.sketches = [LatencySketch() for _ in self.types]
        self.fail_sketches = [LatencySketch() for _ in self.types]
        self._build_arrays(rate_index, space_index, template_index)
        self._schedule_start()

    # ------------------------------------------------------------------------------------------------ the arrays

    def _build_arrays(self, rate_index: dict[str, int], space_index: dict[str, int],
                      template_index: dict[str, int]) -> None:  # fmt: skip
        sc = self.scenario
        n_rates, n_spaces = max(1, len(self.rate_names)), len(self.space_names)
        n_types, n_tmpl = len(self.types), len(sc.tools)
        dags = [dag for spec in self.types for dag in spec.dags]
        max_nodes = max(len(dag.preds) for dag in dags)
        max_keys = max(len(spec.node_keys) for spec in self.types)
        max_dags = max(len(spec.dags) for spec in self.types)
        attr_names = sorted({a for rt in sc.request_types.values() for a in rt.attributes})
        attr_col = {a: i for i, a in enumerate(attr_names)}
        max_attrs = max([1] + [len(rt.attributes) for rt in sc.request_types.values()])
        self.n_attr_cols = max(1, len(attr_names))
        max_parts = max([1] + [len(t.work) for t in sc.tools.values()])
        max_spaces = max([1] + [len(t.space) for t in sc.tools.values()])
        self.gf = np.zeros(L.N_GF)
        self.gf[L.HORIZON_S], self.gf[L.WARMUP_S] = sc.horizon_s, sc.warmup_s
        self.gi = np.zeros(L.N_GI, dtype=np.int64)
        self.gi[L.DRAIN] = 1 if sc.drain else 0
        self.gi[L.MAX_EVENTS_I], self.gi[L.MAX_IN_FLIGHT] = sc.max_events, sc.max_in_flight
        self.gi[L.MAX_NODES] = max_nodes
        self.gi[L.UNSTABLE] = L.UNSTABLE_LOAD if self.unstable_reason else 0
        policies = policy_tables(sc, self.types, template_index)
        fallible = 1 if self.fallible else 0
        self.gi[L.FALLIBLE] = fallible
        self.gi[L.ATT_BOUND] = policies["attempts"] if fallible else 1
        self.gi[L.DEC_MULT] = 1 + policies["attempts"] if fallible else 1
        rate_f = np.zeros((n_rates, KR.N_RF))
        rate_i = np.zeros((n_rates, KR.N_RI), dtype=np.int64)
        rate_i[:, KR.R_MAX_ACTIVE] = 1 << 62
        rate_i[:, KR.R_TRACK] = fallible
        for i, name in enumerate(self.rate_names):
            res = sc.resources[name]
            rate_f[i, KR.R_CAPACITY] = res.capacity
            rate_f[i, KR.R_CAP] = np.inf if res.per_tool_cap is None else res.per_tool_cap
            if res.max_active is not None:
                rate_i[i, KR.R_MAX_ACTIVE] = res.max_active
        # A scenario without rate resources still has one idle row, as the engine's next_times has one entry.
        self.next_times = np.full(n_rates, np.inf)
        self.rate_f, self.rate_i = rate_f, rate_i
        self.space_f = np.zeros((n_spaces, KR.N_SF))
        self.space_i = np.zeros((n_spaces, KR.N_SI), dtype=np.int64)
        self.space_i[:, KR.S_TRACK] = fallible
        for i, name in enumerate(self.space_names):
            self.space_f[i, KR.S_CAPACITY] = sc.resources[name].capacity
        type_f = np.zeros((n_types, 2))
        type_i = np.zeros((n_types, L.N_YI), dtype=np.int64)
        type_cum = np.ones((n_types, max_dags))
        type_attr = np.zeros((n_types, max_attrs, 2), dtype=np.int64)
        type_attr_const = np.zeros((n_types, max_attrs))
        n_dags = len(dags)
        dag_i = np.zeros((n_dags, 2), dtype=np.int64)
        node_i = np.zeros((n_dags, max_nodes, 2), dtype=np.int64)
        node_prob = np.ones((n_dags, max_nodes))
        succ_start = np.zeros((n_dags, max_nodes + 1), dtype=np.int64)
        succ = np.zeros((n_dags, max(1, max_nodes * max_nodes)), dtype=np.int64)
        d = 0
        for t, (spec, rt) in enumerate(zip(self.types, sc.request_types.values(), strict=True)):
            type_f[t, L.Y_WEIGHT] = spec.weight
            type_f[t, L.Y_MEAN_GAP] = 1.0 / (rt.rate_per_min / 60.0)
            if rt.process is not None:
                arrival = L.ARR_PROCESS
            else:
                arrival = L.ARR_POISSON if rt.arrival == "poisson" else L.ARR_DETERMINISTIC
            decides = (len(spec.dags) > 1 or any(p < 1.0 for dag in spec.dags for p in dag.probs)
                       or policies["fail_types"][t])  # fmt: skip
            randoms = [dist.is_random for dist in rt.attributes.values()]
            type_i[t] = (spec.priority, arrival, d, len(spec.dags), decides, len(randoms), any(randoms))
            type_cum[t, : len(spec.cumulative)] = spec.cumulative
            for a, (name, dist) in enumerate(rt.attributes.items()):
                type_attr[t, a] = (attr_col[name], dist.is_random)
                type_attr_const[t, a] = dist.mean
            for dag in spec.dags:
                dag_i[d] = (len(dag.preds), dag.offset)
                edges = 0
                for node, (tmpl, preds, succs) in enumerate(zip(dag.templates, dag.preds, dag.succs, strict=True)):
                    node_i[d, node] = (tmpl, preds)
                    node_prob[d, node] = dag.probs[node]
                    succ_start[d, node] = edges
                    for s in succs:
                        succ[d, edges] = s
                        edges += 1
                succ_start[d, len(dag.preds) :] = edges
                d += 1
        tmpl_i = np.zeros((n_tmpl, 3), dtype=np.int64)
        tmpl_res = np.zeros((n_tmpl, max_parts), dtype=np.int64)
        tmpl_rand = np.zeros((n_tmpl, max_parts), dtype=np.int64)
        tmpl_const = np.zeros((n_tmpl, max_parts))
        tmpl_space = np.zeros((n_tmpl, max_spaces), dtype=np.int64)
        tmpl_amt = np.zeros((n_tmpl, max_spaces))
        tmpl_per = np.full((n_tmpl, max_parts), -1, dtype=np.int64)
        for k, tool in enumerate(sc.tools.values()):
            randoms = [d.is_random for d in tool.work.values()]
            tmpl_i[k] = (len(tool.work), len(tool.space), 1 if any(randoms) else 0)
            for p, (res_name, dist) in enumerate(tool.work.items()):
                tmpl_res[k, p] = rate_index[res_name]
                tmpl_rand[k, p] = 1 if dist.is_random else 0
                tmpl_const[k, p] = dist.mean
            for res_name, attribute in tool.per.items():
                # A tool no request type runs may name an attribute no type declares (the scenario reader checks
                # only the types that run it): it never draws work, so it needs no column.
                tmpl_per[k, list(tool.work).index(res_name)] = attr_col.get(attribute, -1)
            for p, (res_name, amount) in enumerate(tool.space.items()):
                tmpl_space[k, p], tmpl_amt[k, p] = space_index[res_name], amount
        overhead = np.zeros(n_rates)
        for i, name in enumerate(self.rate_names):
            overhead[i] = sc.resources[name].join_overhead
        self.gi[L.STREAMS_V2] = 1 if (type_i[:, L.Y_DECIDES].any() or type_i[:, L.Y_ATTR_RANDOM].any()) else 0
        self.model = (type_f, type_i, node_i, succ_start, succ, tmpl_i, tmpl_res, tmpl_rand, tmpl_const, tmpl_space,
                      tmpl_amt, node_prob, type_cum, dag_i, tmpl_per, overhead, type_attr, type_attr_const)  # fmt: skip
        self.policies = tuple(policies[k] for k in ("node_pol", "tmpl_pol", "pol_f", "pol_i", "pol_delay"))
        self.work_buf = np.zeros((n_tmpl, max_parts, 2 * BLOCK))
        self.work_pos = np.zeros((n_tmpl, 2), dtype=np.int64)
        self.arr_buf = np.zeros((n_types, BLOCK))
        self.arr_pos = np.zeros((n_types, 2), dtype=np.int64)
        self.dec_buf = np.zeros((n_types, 1, 2 * BLOCK))
        self.dec_pos = np.zeros((n_types, 2), dtype=np.int64)
        self.attr_buf = np.zeros((n_types, max_attrs, 2 * BLOCK))
        self.attr_pos = np.zeros((n_types, 2), dtype=np.int64)
        self.lat_buf = np.zeros((n_types, 2 * L.FLUSH_EVERY))
        self.lat_n = np.zeros(n_types, dtype=np.int64)
        self.counts = np.zeros((n_types, 5), dtype=np.int64)
        self.fail_buf = np.zeros((n_types, 64))
        self.fail_n = np.zeros(n_types, dtype=np.int64)
        self.node_fig = np.zeros((n_types, max_keys, len(NODE_FIGURES)), dtype=np.int64)
        self.win_f = np.zeros((2, 2 + 4 * n_rates + 2 * n_spaces))
        self.win_n = np.zeros(2, dtype=np.int64)
        self.ev_kf = np.zeros(n_types + 4)
        self.ev_ki = np.zeros((n_types + 4, L.EV_COLS if self.fallible else 2), dtype=np.int64)
        self.ev_pf = np.zeros((n_types + 4, 1))
        self._alloc_requests(64)
        self.cancel_buf = np.zeros(max_nodes, dtype=np.int64)
        self._alloc_tools(64 * max_nodes)

    def _alloc_requests(self, capacity: int) -> None:
        """(Re)size the request table to ``capacity`` rows, keeping the requests in flight and their ids."""
        old = getattr(self, "req_f", None)
        width = L.Q_WAITING + 2 * int(self.gi[L.MAX_NODES])
        req_f, req_i = np.zeros(capacity), np.zeros((capacity, width), dtype=np.int64)
        req_free = np.zeros(capacity, dtype=np.int64)
        req_a = np.zeros((capacity, self.n_attr_cols))
        used = 0 if old is None else old.shape[0]
        if old is not None:
            req_f[:used], req_i[:used], req_a[:used] = self.req_f, self.req_i, self.req_a
            n_free = int(self.gi[L.REQ_FREE_N])
            req_free[:n_free] = self.req_free[:n_free]
        else:
            n_free = 0
        fresh = np.arange(capacity - 1, used - 1, -1, dtype=np.int64)
        req_free[n_free : n_free + fresh.size] = fresh
        self.gi[L.REQ_FREE_N] = n_free + fresh.size
        self.req_f, self.req_i, self.req_free, self.req_a = req_f, req_i, req_free, req_a

    def _alloc_tools(self, capacity: int) -> None:
        """(Re)size the tool table and its per-tool records to ``capacity`` rows, keeping the tools and their ids.

        The heaps, queues and scratch lists are grown with it when smaller (they hold at least one entry per tool).
        """
        old = getattr(self, "tool_i", None)
        used = 0 if old is None else old.shape[0]
        n_rates = self.rate_f.shape[0]
        get = self.__dict__.get
        self.tool_i = _grown(old, (capacity, L.N_TI), np.int64)
        tool_free = np.zeros(capacity, dtype=np.int64)
        n_free = 0
        if old is not None:
            n_free = int(self.gi[L.TOOL_FREE_N])
            tool_free[:n_free] = self.tool_free[:n_free]
        fresh = np.arange(capacity - 1, used - 1, -1, dtype=np.int64)
        tool_free[n_free : n_free + fresh.size] = fresh
        self.gi[L.TOOL_FREE_N] = n_free + fresh.size
        self.tool_free = tool_free
        self.tool_rs = _grown(get("tool_rs"), (capacity, n_rates, 2), np.int64)
        self.tool_vf = _grown(get("tool_vf"), (capacity, n_rates))
        self.tool_jw = _grown(get("tool_jw"), (capacity, n_rates))
        self.tool_sq = _grown(get("tool_sq"), (capacity, 2), np.int64)
        if get("rh_kf") is None or self.rh_kf.shape[1] < capacity:
            self._alloc_heaps(capacity)

    def _alloc_heaps(self, capacity: int) -> None:
        """(Re)size the rate resources' heaps and queues, the space queues and the scratch lists to ``capacity``."""
        n_rates, n_spaces = self.rate_f.shape[0], self.space_f.shape[0]
        get = self.__dict__.get
        self.rh_kf = _grown(get("rh_kf"), (n_rates, capacity))
        self.rh_ki = _grown(get("rh_ki"), (n_rates, capacity, 2), np.int64)
        self.rh_pf = _grown(get("rh_pf"), (n_rates, capacity, 1))
        self.rq_kf = _grown(get("rq_kf"), (n_rates, capacity))
        self.rq_ki = _grown(get("rq_ki"), (n_rates, capacity, 2), np.int64)
        self.rq_pf = _grown(get("rq_pf"), (n_rates, capacity, 2))
        self.sq_kf = _grown(get("sq_kf"), (n_spaces, capacity))
        self.sq_ki = _grown(get("sq_ki"), (n_spaces, capacity, 2), np.int64)
        self.sq_pf = _grown(get("sq_pf"), (n_spaces, capacity, 1))
        self.alloc_scratch(capacity)

    def alloc_scratch(self, capacity: int) -> None:
        """The scratch lists of one event (nothing in them outlives it), ``capacity`` entries each."""
        self.done_buf, self.admit_buf, self.ready_buf, self.ready_uid, self.done_uid = (
            np.zeros(capacity, dtype=np.int64) for _ in range(5)
        )

    def _bundles(self) -> tuple[Any, ...]:
        rates = (self.rate_f, self.rate_i, self.next_times, self.rh_kf, self.rh_ki, self.rh_pf, self.rq_kf, self.rq_ki,
                 self.rq_pf, self.tool_rs, self.tool_vf)  # fmt: skip
        spaces = (self.space_f, self.space_i, self.sq_kf, self.sq_ki, self.sq_pf, self.tool_sq)
        table = (self.req_f, self.req_i, self.req_free, self.tool_i, self.tool_free, self.done_buf, self.admit_buf,
                 self.ready_buf, self.req_a)  # fmt: skip
        draws = (self.work_buf, self.work_pos, self.arr_buf, self.arr_pos, self.dec_buf, self.dec_pos, self.attr_buf,
                 self.attr_pos)  # fmt: skip
        out = (self.lat_buf, self.lat_n, self.counts, self.node_fig, self.win_f, self.win_n)
        events = (self.ev_kf, self.ev_ki, self.ev_pf)
        return self.gf, self.gi, rates, spaces, self.model, table, draws, out, events

    def _fail_bundle(self) -> tuple[Any, ...]:
        """What only scenarios that can fail use (kernel_layout's ``fail`` tuple)."""
        return (*self.policies, self.ready_uid, self.done_uid, self.cancel_buf, self.tool_jw, self.fail_buf,
                self.fail_n)  # fmt: skip

    # --------------------------------------------------------------------------------------------------- draws

    def _refill_arrivals(self, t: int) -> None:
        """A block of type ``t``'s arrivals: unit exponentials, or the process's next absolute times.

        A process's times come from its :class:`ProcessStream`, each from the one before (the last of the previous
        block), as the engine asks at each arrival; a block stops at the first time at or past the horizon (the
        engine never asks further), the rest of it is infinite.
        """
        process = self.processes[t]
        if process is None:
            self.arr_buf[t] = self.arrival_rngs[t].standard_exponential(BLOCK)
        else:
            horizon_s = self.scenario.horizon_s
            last = 0.0 if self.arr_pos[t, L.LEN] == 0 else float(self.arr_buf[t, BLOCK - 1])
            block = np.full(BLOCK, np.inf)
            for i in range(BLOCK):
                last = process.next_time(last)
                block[i] = last
                if not last < horizon_s:
                    break
            self.arr_buf[t] = block
        self.arr_pos[t] = (0, BLOCK)

    def _refill(self, which: str, row: int, need: int) -> None:
        """Append blocks to row ``row`` of a stream's buffer until ``need`` draws are unused.

        ``which`` is ``work`` (template ``row``, as WorkStream._refill draws), ``dec`` (type ``row``'s decisions, as
        UniformStream.draw) or ``attr`` (type ``row``'s attributes, as WorkStream._refill). Drawing a block early
        changes none of its values: nothing else draws from that generator.
        """
        buf, positions = getattr(self, f"{which}_buf"), getattr(self, f"{which}_pos")
        pos, end = (int(v) for v in positions[row])
        left = end - pos
        blocks = max(0, -(-(need - left) // BLOCK))
        if left + blocks * BLOCK > buf.shape[2]:
            size = buf.shape[2]
            while size < left + blocks * BLOCK:
                size *= 2
            bigger = np.zeros((*buf.shape[:2], size))
            bigger[:, :, : buf.shape[2]] = buf
            buf = bigger
            setattr(self, f"{which}_buf", buf)
        rows = buf[row]
        rows[:, :left] = rows[:, pos:end]
        for b in range(blocks):
            at = left + b * BLOCK
            if which == "dec":
                rows[0, at : at + BLOCK] = self.decision_rngs[row].random(BLOCK)
                continue
            rng = self.work_rngs[row] if which == "work" else self.attribute_rngs[row]
            dists = self.dists[row] if which == "work" else self.attr_dists[row]
            for p, dist in enumerate(dists):
                if dist.is_random:
                    rows[p, at : at + BLOCK] = dist.sample(rng, BLOCK)
        positions[row] = (0, left + blocks * BLOCK)

    def _schedule_start(self) -> None:
        gi, model, events = self.gi, self.model, self._bundles()[8]
        push_event(gi, events, self.scenario.warmup_s, L.WARMUP, -1, 0, 0)
        push_event(gi, events, self.scenario.horizon_s, L.HORIZON, -1, 0, 0)
        type_f, type_i = model[0], model[1]
        for t in range(len(self.types)):
            if type_i[t, L.Y_ARRIVAL] == L.ARR_PROCESS:
                self._refill_arrivals(t)
                first = float(self.arr_buf[t, 0])
                self.arr_pos[t, L.POS] = 1
            elif type_i[t, L.Y_ARRIVAL] == L.ARR_POISSON:
                self._refill_arrivals(t)
                first = 0.0 + self.arr_buf[t, 0] * type_f[t, L.Y_MEAN_GAP]
                self.arr_pos[t, L.POS] = 1
            else:
                first = 0.0 + type_f[t, L.Y_MEAN_GAP]
            if first < self.scenario.horizon_s:
                push_event(gi, events, first, L.ARRIVAL, t, 0, 0)

    # -------------------------------------------------------------------------------------------------- the loop

    @property
    def now(self) -> float:
        """The simulated time of the last event (seconds)."""
        return float(self.gf[L.NOW])

    @property
    def events(self) -> int:
        """Events processed so far, counted as the Python engine counts them."""
        return int(self.gi[L.EVENTS])

    @property
    def next_event_s(self) -> float:
        """The simulated time of the next event (infinite when nothing is left), as ``Simulation.next_event_s``."""
        t_ev = float(self.ev_kf[0]) if self.gi[L.EV_N] else float("inf")
        return min(float(self.next_times.min()), t_ev)

    @property
    def n_sys(self) -> int:
        """Requests in flight."""
        return int(self.gi[L.N_SYS])

    def run(self, until_s: float | None = None) -> bool:
        """Process events up to simulated time ``until_s`` (all of them when ``None``).

        Returns:
            True when the replication has ended, False when it paused at ``until_s`` (call again to go on).
        """
        started = time.perf_counter()
        self.gf[L.LIMIT] = np.inf if until_s is None else until_s
        # Two loops, so that a run that cannot fail does not carry the failure paths' code (it ran at half speed).
        fallible = self.fallible
        try:
            while True:
                gf, gi, rates, spaces, model, table, draws, out, events = self._bundles()
                if fallible:
                    status = K.run_events_fallible(gf, gi, rates, spaces, model, table, draws, out, events,
                                                   self._fail_bundle())  # fmt: skip
                else:  # without the per-tool records (the first 9 and 5 arrays)
                    status = K.run_events(gf, gi, rates[:9], spaces[:5], model, table, draws, out, events)
                if status == L.DONE:
                    self.finished = True
                    self.stopped_at_horizon = bool(self.gi[L.STOPPED])
                    if self.gi[L.UNSTABLE] == L.UNSTABLE_IN_FLIGHT:
                        self.unstable_reason = f"more than {self.scenario.max_in_flight} requests in flight"
                    self._flush_full()
                    self._check_stuck()
                    return True
                if status == L.PAUSED:
                    self.stopped_at_horizon = bool(self.gi[L.STOPPED])
                    self._flush_full()
                    return False
                if status == L.NEED_ARRIVALS:
                    self._refill_arrivals(int(self.gi[L.STATUS_ARG]))
                elif status == L.NEED_WORK:
                    self._refill("work", int(self.gi[L.STATUS_ARG]), self._tools_bound() * int(self.gi[L.ATT_BOUND]))
                elif status == L.NEED_DECISIONS:
                    self._refill("dec", int(self.gi[L.STATUS_ARG]), self._tools_bound() * int(self.gi[L.DEC_MULT]) + 1)
                elif status == L.NEED_ATTRIBUTES:
                    self._refill("attr", int(self.gi[L.STATUS_ARG]), 1)
                elif status == L.FLUSH:
                    self._flush_full()
                elif status == L.GROW:
                    self._grow()
                elif status in (L.GROW_HEAPS, L.GROW_EVENTS, L.GROW_FAILS):
                    self._grow_for_failures(status, int(self.gi[L.STATUS_ARG]))
                else:
                    raise SimulationError(
                        f"{self.scenario.source}: max_events: the replication reached its limit of "
                        f"{self.scenario.max_events} events at simulated time {self.now:.6g} s; shorten horizon_s, "
                        "lower the rates, or raise max_events"
                    )
        finally:
            self.wall_s += time.perf_counter() - started

    def _tools_bound(self) -> int:
        """The most tools an event may start (kernel._room's bound)."""
        return (self.n_sys + 1) * int(self.gi[L.MAX_NODES])

    def _grow_for_failures(self, status: int, need: int) -> None:
        """Grow what kernel._room_fallible found too small to ``need`` entries at least (doubling)."""
        if status == L.GROW_HEAPS:
            self._alloc_heaps(max(need, 2 * self.rh_kf.shape[1]))
        elif status == L.GROW_EVENTS:
            size = max(need, 2 * self.ev_kf.shape[0])
            self.ev_kf = _grown(self.ev_kf, (size,))
            self.ev_ki = _grown(self.ev_ki, (size, L.EV_COLS), np.int64)
            self.ev_pf = _grown(self.ev_pf, (size, 1))
        else:
            self.fail_buf = _grown(self.fail_buf, (self.fail_buf.shape[0], max(need, 2 * self.fail_buf.shape[1])))

    def _grow(self) -> None:
        n_sys = self.n_sys
        if n_sys + 1 > self.req_f.shape[0]:
            self._alloc_requests(2 * self.req_f.shape[0])
        if (n_sys + 1) * int(self.gi[L.MAX_NODES]) > self.tool_i.shape[0]:
            self._alloc_tools(2 * self.tool_i.shape[0])
        if L.FLUSH_EVERY + n_sys + 1 > self.lat_buf.shape[1]:
            bigger = np.zeros((self.lat_buf.shape[0], 2 * self.lat_buf.shape[1]))
            bigger[:, : self.lat_buf.shape[1]] = self.lat_buf
            self.lat_buf = bigger

    def _flush_full(self) -> None:
        """Fold every full batch of latencies into its sketch, as the engine does when a buffer reaches the batch."""
        for t in range(len(self.types)):
            n = int(self.lat_n[t])
            done = 0
            while n - done >= L.FLUSH_EVERY:
                self.sketches[t].add_many(self.lat_buf[t, done : done + L.FLUSH_EVERY].tolist())
                done += L.FLUSH_EVERY
            if done:
                self.lat_buf[t, : n - done] = self.lat_buf[t, done:n]
                self.lat_n[t] = n - done

    def _check_stuck(self) -> None:
        """Simulation._check_stuck."""
        if self.unstable_reason:
            return
        counts = self.counts
        if not self.stopped_at_horizon and self.n_sys:
            stuck = [t.name for t in self.types if counts[t.index, L.C_INFLIGHT]]
            self.unstable_reason = f"requests of {', '.join(stuck)} never finished ({self.n_sys} in flight at the end)"
            return
        silent = [
            t.name
            for t in self.types
            if counts[t.index, L.C_ARRIVALS]
            and not self.sketches[t.index].count
            and not self.lat_n[t.index]
            and not counts[t.index, L.C_FAILED]
            and not counts[t.index, L.C_TIMED_OUT]
        ]
        if silent:
            self.unstable_reason = f"no request of {', '.join(silent)} completed in the measurement window"

    # ---------------------------------------------------------------------------------------------- the summary

    def _close_window(self, now: float) -> None:
        gf, gi, rates, spaces, _, _, _, out, _ = self._bundles()
        K.close_window(gf, gi, rates, spaces, out, now)

    def flush(self) -> None:
        """Move buffered latencies into the sketches."""
        self._flush_full()
        for t, sketch in enumerate(self.sketches):
            n = int(self.lat_n[t])
            sketch.add_many(self.lat_buf[t, :n].tolist())
            self.lat_n[t] = 0
        for t, sketch in enumerate(self.fail_sketches):  # the engine's failure buffers are folded only here
            n = int(self.fail_n[t])
            sketch.add_many(self.fail_buf[t, :n].tolist())
            self.fail_n[t] = 0

    # ------------------------------------------------------------------------------------------ saving and resuming

    def state_dict(self) -> dict[str, Any]:
        """The whole run's state as msgpack-serialisable data (:mod:`simfleet.worker.des.compiled_state`).

        Only :meth:`from_state` of this class reads it (it is not the Python engine's state format).
        """
        return save_state(self)

    @classmethod
    def from_state(cls, scenario: Scenario, state: dict[str, Any]) -> CompiledSimulation:
        """A run that continues exactly where the one that produced ``state`` (:meth:`state_dict`) stopped."""
        check_state(state, scenario.name)
        sim = cls(scenario, int(state["seed"]), int(state["replication"]))
        restore_state(sim, state)
        return sim

    def summary(self) -> ReplicationSummary:
        """The replication's figures, as :meth:`Simulation.summary <simfleet.worker.des.engine.Simulation.summary>`."""
        from simfleet.worker.des.summary import build_summary

        self.flush()
        return build_summary(self)  # type: ignore[arg-type]


LOOPS = ("plain", "failures")
"""The kernel's two event loops: for scenarios that cannot fail, and for those that can."""


def warm(loops: tuple[str, ...] = LOOPS) -> float:
    """Compile the kernel's ``loops`` into numba's on-disk cache (or load them from there); the seconds it took.

    Each loop compiles on its own (about 18 s and 50 s here), so two processes can warm them side by side.
    """
    from simfleet.worker.des.scenario import parse_scenario

    started = time.perf_counter()
    plain = parse_scenario({
        "name": "warm", "horizon_s": 10.0,
        "resources": {"cpu": {"capacity": 1.0}, "mem": {"kind": "space", "capacity": 2}},
        "tools": {"job": {"work": {"cpu": {"dist": "exponential", "mean": 0.5}}, "space": {"mem": 1}}},
        "request_types": {"r": {"rate_per_min": 60, "nodes": {"job": {"tool": "job"}}}},
    })  # fmt: skip
    failing = parse_scenario({**plain.to_dict(), "tools": {"job": {
        "work": {"cpu": {"dist": "exponential", "mean": 0.5}}, "space": {"mem": 1}, "fail_prob": 0.2,
        "timeout_s": 1.0, "retries": 1, "backoff_s": 0.1}}})  # fmt: skip
    for loop, scenario in zip(LOOPS, (plain, failing), strict=True):
        if loop in loops:
            sim = CompiledSimulation(scenario, 1)
            sim.run(5.0)
            sim.run()
            sim.summary()
    return time.perf_counter() - started


if __name__ == "__main__":  # `python -m simfleet.worker.des.compiled --warm [plain|failures]`: what `make unit` runs
    import sys

    chosen = tuple(sys.argv[2:]) or LOOPS
    if sys.argv[1:2] != ["--warm"] or not set(chosen) <= set(LOOPS):
        sys.exit("usage: python -m simfleet.worker.des.compiled --warm [plain|failures ...]")
    print(f"DES kernel ({', '.join(chosen)}) ready in {warm(chosen):.1f} s (compiled, or loaded from numba's cache)")
