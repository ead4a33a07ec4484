"""The event loop of the request-latency simulator.

One :class:`Simulation` is one replication: a pure function of (scenario, seed, replication index). Events are the
arrivals of each request type (merged in one heap), the warmup and horizon markers, and the completions of rate
resources. A resource's next completion is not kept in the heap (it moves whenever a consumer joins or leaves);
each resource publishes it in ``next_times`` and the loop takes the earliest of those and of the heap's top. Ties
are broken in a fixed order: resource completions before heap events at the same instant (a request arriving just
as another finishes sees the freed capacity), lower resource index first, then heap events by (time, kind priority,
insertion sequence). Completed requests leave nothing behind but their latency in a buffer flushed into sketches,
so memory depends on the requests in flight, not on the requests simulated.

Run control follows DES_MODEL.md: arrivals stop at ``horizon_s``; requests arriving before ``warmup_s`` are simulated
but not counted; with ``drain`` the run continues until every request finished, otherwise it stops at the horizon.
A system whose offered load reaches a rate resource's capacity, or whose requests in flight exceed
``max_in_flight``, is reported unstable and stops at the horizon (or at once, on the in-flight guard).
Time averages (utilisation, consumers, waiting, requests in system) cover the window [warmup, horizon].

Model v2 (docs/des.md, "Failures, priorities, branches"): a node's attempt may fail at its completion (``fail_prob``,
decided by a draw when the attempt starts), or time out (a ``TIMEOUT`` event ``timeout_s`` after it started, waiting
included; a completion at that very instant wins, since resource completions come first). A failed or timed-out
attempt is retried after its backoff (a ``RETRY`` event; at once when the backoff is 0) with fresh work; after the last
one the node's ``on_failure`` decides: skip it, run its fallback template in its place, or fail the request, which
cancels its other tools. A cancelled tool gives back what it held at once. A timer or retry that no longer matters
(its attempt finished, its request failed) is dropped when it comes up and is not counted as an event.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush
from typing import IO, Any

from simfleet.shared.errors import SimulationError
from simfleet.shared.messages.des import NODE_FIGURES, ReplicationSummary
from simfleet.worker.des.entities import Attempt, Request, Template, Tool, TypeSpec
from simfleet.worker.des.limits import check_number
from simfleet.worker.des.resources import INF, RateResource, SpaceResource
from simfleet.worker.des.scenario import FailurePolicy, Scenario
from simfleet.worker.des.sketch import LatencySketch
from simfleet.worker.des.slicing import Sliced
from simfleet.worker.des.streams import ArrivalStream, UniformStream, WorkStream, make_generators

WARMUP, ARRIVAL, HORIZON, TIMEOUT, RETRY = 0, 1, 2, 3, 4
FLUSH_EVERY = 4096
ATTEMPTS, FAILED, TIMED_OUT, FALLBACKS, SKIPPED, BRANCH_SKIPPED = range(len(NODE_FIGURES))
COMPLETED_OK, FAILED_OUTCOME, TIMED_OUT_OUTCOME = 0, 1, 2

RequestObserver = Callable[[str, float, float, list[float]], None]
"""Called with (request type, arrival time, finish time, total work of each node run) for every counted request
that completed successfully."""


class Simulation(Sliced):
    """One replication of a scenario; call :meth:`run`, then :meth:`summary`.

    Args:
        scenario: the validated scenario.
        seed: the study seed.
        replication: the replication index; together with ``seed`` it fixes every random draw.
        trace: an open text file that receives one line per event (off when ``None``).
        observer: called for every counted, successfully completed request (for validation; off when ``None``).
    """

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        replication: int = 0,
        *,
        trace: IO[str] | None = None,
        observer: RequestObserver | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.replication = replication
        self.trace = trace
        self.observer = observer
        rate_names = [n for n, r in scenario.resources.items() if r.kind == "rate"]
        space_names = [n for n, r in scenario.resources.items() if r.kind == "space"]
        self.next_times: list[float] = [INF] * max(1, len(rate_names))
        self.rates = [
            RateResource(i, n, r.capacity, r.per_tool_cap, r.max_active, self.next_times)
            for i, (n, r) in enumerate((n, scenario.resources[n]) for n in rate_names)
        ]
        self.overheads = [scenario.resources[n].join_overhead for n in rate_names]
        self.spaces = [SpaceResource(i, n, scenario.resources[n].capacity) for i, n in enumerate(space_names)]
        rate_index = {n: i for i, n in enumerate(rate_names)}
        space_index = {n: i for i, n in enumerate(space_names)}
        template_index = {n: i for i, n in enumerate(scenario.tools)}
        self.templates = [
            Template(
                i,
                name,
                tuple(rate_index[r] for r in tool.work),
                tuple((space_index[r], amount) for r, amount in tool.space.items()),
                tuple((list(tool.work).index(r), attribute) for r, attribute in tool.per.items()),
                tool.policy,
            )
            for i, (name, tool) in enumerate(scenario.tools.items())
        ]
        self.template_index = template_index
        self.fallible = scenario.fallible
        # Attempts keep what they joined each resource with when it may be wasted, observed, or carries an overhead.
        self.keep_joined = self.fallible or observer is not None or any(self.overheads)
        self.types = [TypeSpec(i, scenario, name, template_index, self.keep_joined)
                      for i, name in enumerate(scenario.request_types)]  # fmt: skip
        for name, rt in scenario.request_types.items():
            # A scenario built in code, not parsed, must not reach a division by a zero rate either.
            check_number(rt.rate_per_min, scenario.source, f"request_types.{name}.rate_per_min", positive=True)
        arrival_rngs, work_rngs, v2_rngs = make_generators(seed, replication, len(self.types), len(self.templates))
        self.arrivals: list[Any] = []
        for rtype, rng, rt, (decisions, attributes, modulation) in zip(
            self.types, arrival_rngs, scenario.request_types.values(), v2_rngs, strict=True
        ):
            if rt.process is None:
                self.arrivals.append(ArrivalStream(rng, rt.rate_per_min / 60.0, rt.arrival == "poisson"))
            else:
                from simfleet.worker.des.arrivals import ProcessStream

                self.arrivals.append(ProcessStream(rt.process, rng, modulation))
            rtype.decisions = UniformStream(decisions)
            if rt.attributes:
                rtype.attr_stream = WorkStream(attributes, list(rt.attributes.values()))
        for template, rng, tool in zip(self.templates, work_rngs, scenario.tools.values(), strict=True):
            template.stream = WorkStream(rng, list(tool.work.values()))
        offered = scenario.offered_load()
        self.offered_load = offered
        overloaded = sorted(name for name, rho in offered.items() if rho >= 1.0)
        self.unstable_reason: str | None = (
            f"offered load reaches capacity on {', '.join(overloaded)}" if overloaded else None
        )
        for rate in self.rates:
            rate.track = self.fallible
        self.horizon_s = scenario.horizon_s
        self.warmup_s = scenario.warmup_s
        self.now = 0.0
        self.seq = 0
        self.events = 0
        self.next_rid = 0
        self.next_uid = 0
        self.finished = False
        self.stopped_at_horizon = False
        self.heap: list[tuple[float, int, int, int]] = []
        self.ready: deque[Tool | tuple[Request, int]] = deque()
        self.live: dict[int, Request] = {}
        self.timers: dict[int, Attempt] = {}
        self.pending: dict[int, tuple[Request, int, int, bool, int]] = {}
        self.n_sys = 0
        self.sys_int = 0.0
        self.sys_t = 0.0
        self.inflight = [0] * len(self.types)
        self.counted_inflight = [0] * len(self.types)
        self.counted_arrivals = [0] * len(self.types)
        self.outcomes = [[0, 0] for _ in self.types]  # counted requests failed, timed out
        self.node_stats = [[[0] * len(NODE_FIGURES) for _ in t.node_keys] for t in self.types]
        self.lat_buffers: list[list[float]] = [[] for _ in self.types]
        self.sketches = [LatencySketch() for _ in self.types]
        self.fail_buffers: list[list[float]] = [[] for _ in self.types]
        self.fail_sketches = [LatencySketch() for _ in self.types]
        self.window: dict[str, Any] = {}
        self.wall_s = 0.0
        self._schedule(self.warmup_s, WARMUP, -1)
        self._schedule(self.horizon_s, HORIZON, -1)
        for rtype in self.types:
            first = self._next_arrival(rtype.index, 0.0)
            if first < self.horizon_s:
                self._schedule(first, ARRIVAL, rtype.index)

    def _next_arrival(self, type_index: int, now: float) -> float:
        stream = self.arrivals[type_index]
        if isinstance(stream, ArrivalStream):
            return now + stream.next_gap()
        time_s: float = stream.next_time(now)
        return time_s

    def _schedule(self, when: float, kind: int, payload: int) -> None:
        heappush(self.heap, (when, kind, self.seq, payload))
        self.seq += 1

    @property
    def next_event_s(self) -> float:
        """The simulated time of the next event (infinite when nothing is left to happen).

        A caller that runs the replication in slices of simulated time (:meth:`run` with ``until_s``) starts its
        next slice no earlier than this, so a drain that jumps far ahead (tools served at 1e-9 units/s) costs one
        slice, not billions of empty ones.
        """
        t_res = min(self.next_times) if self.next_times else INF
        t_ev = self.heap[0][0] if self.heap else INF
        return min(t_res, t_ev)

    # ---------------------------------------------------------------------------------------------------- the loop

    def run(self, until_s: float | None = None) -> bool:
        """Process events up to simulated time ``until_s`` (all of them when ``None``).

        Returns:
            True when the replication has ended, False when it paused at ``until_s`` (call again to go on).
        """
        started = time.perf_counter()
        heap = self.heap
        next_times = self.next_times
        rates = self.rates
        ready = self.ready
        limit = INF if until_s is None else until_s
        max_in_flight = self.scenario.max_in_flight
        max_events = self.scenario.max_events
        events = self.events
        single = len(next_times) == 1
        try:
            while not self.finished:
                t_res = next_times[0] if single else min(next_times)
                t_ev = heap[0][0] if heap else INF
                if t_res <= t_ev:
                    if t_res == INF:
                        self.finished = True
                        break
                    if t_res > limit:
                        return False
                    self.now = t_res
                    for tool in rates[0 if single else next_times.index(t_res)].complete(t_res):
                        tool.parts -= 1
                        if not tool.parts and not tool.cancelled:
                            self._finish_tool(tool, t_res)
                    if ready:
                        self._drain_ready(t_res)
                else:
                    if t_ev > limit:
                        return False
                    now, kind, _, payload = heappop(heap)
                    if kind >= TIMEOUT and not self._due(kind, payload):
                        continue  # a timer of a finished attempt, a retry of a failed request: not an event
                    self.now = now
                    if kind == TIMEOUT:
                        self._timeout(payload, now)
                    elif kind == RETRY:
                        self._retry(payload, now)
                    elif kind == ARRIVAL:
                        self._arrive(payload, now)
                        if self.n_sys > max_in_flight:
                            self.unstable_reason = f"more than {max_in_flight} requests in flight"
                            self._close_window(now)
                            self.finished = True
                    elif kind == WARMUP:
                        self._open_window(now)
                    else:
                        self._close_window(now)
                        if not self.scenario.drain or self.unstable_reason:
                            self.stopped_at_horizon = True
                            self.finished = True
                events += 1
                if events >= max_events:
                    raise SimulationError(
                        f"{self.scenario.source}: max_events: the replication reached its limit of {max_events} "
                        f"events at simulated time {self.now:.6g} s; shorten horizon_s, lower the rates, or raise "
                        "max_events"
                    )
            self._check_stuck()
            return True
        finally:
            self.events = events
            self.wall_s += time.perf_counter() - started

    def _check_stuck(self) -> None:
        """An ended run in which a request type never finished a request is unstable, never a silent success.

        Two cases: requests still in flight with nothing left to happen (cannot happen with a valid DAG; a guard),
        and a type whose counted requests arrived but none finished, successfully or not, before the run stopped
        (its latency figures would all be missing).
        """
        if self.unstable_reason:
            return
        if not self.stopped_at_horizon and self.n_sys:
            stuck = [t.name for t in self.types if self.inflight[t.index]]
            self.unstable_reason = f"requests of {', '.join(stuck)} never finished ({self.n_sys} in flight at the end)"
            return
        silent = [
            t.name
            for t in self.types
            if self.counted_arrivals[t.index]
            and not self.sketches[t.index].count
            and not self.lat_buffers[t.index]
            and not sum(self.outcomes[t.index])
        ]
        if silent:
            self.unstable_reason = f"no request of {', '.join(silent)} completed in the measurement window"

    def _due(self, kind: int, payload: int) -> bool:
        """Whether a timer or a retry still matters."""
        if kind == TIMEOUT:
            return payload in self.timers
        pending = self.pending.get(payload)
        if pending is not None and pending[0].dead:  # a retry of a request that failed meanwhile
            del self.pending[payload]
            return False
        return pending is not None

    def _arrive(self, type_index: int, now: float) -> None:
        rtype = self.types[type_index]
        stream = self.arrivals[type_index]
        if isinstance(stream, ArrivalStream):
            buffer = stream.buffer
            # ArrivalStream.next_gap() inlined for the common Poisson case: this runs once per request.
            following = now + (buffer.pop() * stream.mean_gap_s if stream.poisson and buffer else stream.next_gap())
        else:
            following = stream.next_time(now)
        seq = self.seq
        if following < self.horizon_s:
            heappush(self.heap, (following, ARRIVAL, seq, type_index))
            self.seq = seq + 1
        counted = now >= self.warmup_s
        req = Request(self.next_rid, rtype, rtype.dags[0] if len(rtype.dags) == 1 else rtype.pick(), now, counted)
        if rtype.attr_stream is not None:
            req.attrs = dict(zip(rtype.attr_names, rtype.attr_stream.draw(), strict=True))
        if self.fallible:
            self.live[req.rid] = req
        self.next_rid += 1
        n_sys = self.n_sys
        self.sys_int += n_sys * (now - self.sys_t)
        self.sys_t = now
        self.n_sys = n_sys + 1
        self.inflight[type_index] += 1
        if counted:
            self.counted_arrivals[type_index] += 1
            self.counted_inflight[type_index] += 1
        if self.trace:
            self.trace.write(f"{now:.9f} arrive {rtype.name} req={req.rid}\n")
        for node in req.dag.roots:
            self._start(req, node, now)
        if self.ready:
            self._drain_ready(now)

    def _count(self, req: Request, node: int, figure: int) -> None:
        if req.counted:
            self.node_stats[req.rtype][req.dag.offset + node][figure] += 1

    def _start(self, req: Request, node: int, now: float) -> None:
        """A node's predecessors are done: run it (or, when its branch draw says no, count it done at once)."""
        dag = req.dag
        template = self.templates[dag.templates[node]]
        if not dag.plain[node]:
            prob = dag.probs[node]
            if prob < 1.0 and req.spec.decisions.draw() >= prob:
                self._count(req, node, BRANCH_SKIPPED)
                if self.trace:
                    self.trace.write(f"{now:.9f} branch-skip req={req.rid} node={dag.node_names[node]}\n")
                self.ready.append((req, node))
                return
            if dag.fallible[node] or self.keep_joined:
                self._attempt(req, node, template, dag.policies[node], 0, False, now)
                return
        # _attempt() inlined for a node that always runs and cannot fail: this runs once per node of every request.
        tool = Tool(req, node, template)
        if req.counted:
            self.node_stats[req.rtype][dag.offset + node][ATTEMPTS] += 1
        if template.space and not self._acquire_space(tool, now):
            if self.trace:
                self.trace.write(f"{now:.9f} wait-space req={req.rid} node={self._node_name(tool)}\n")
            return
        self._start_work(tool, now)

    def _attempt(self, req: Request, node: int, template: Template, policy: FailurePolicy, attempt: int,
                 is_fallback: bool, now: float) -> None:  # fmt: skip
        uid = self.next_uid
        self.next_uid = uid + 1
        tool = Attempt(uid, req, node, template, policy, attempt, is_fallback)
        if self.fallible:
            req.tools[uid] = tool
        self._count(req, node, ATTEMPTS)
        if policy.fail_prob > 0.0:
            tool.fails = req.spec.decisions.draw() < policy.fail_prob
        if policy.timeout_s is not None:
            self.timers[uid] = tool
            self._schedule(now + policy.timeout_s, TIMEOUT, uid)
        if template.space and not self._acquire_space(tool, now):
            if self.trace:
                self.trace.write(f"{now:.9f} wait-space req={req.rid} node={self._node_name(tool)}\n")
            return
        self._start_work(tool, now)

    def _acquire_space(self, tool: Tool, now: float) -> bool:
        # Space resources are taken one at a time in a fixed order, so tools can never deadlock each other.
        space = tool.template.space
        priority = tool.req.spec.priority
        while tool.space_pos < len(space):
            index, amount = space[tool.space_pos]
            if not self.spaces[index].acquire(tool, amount, priority, now):
                return False
            tool.space_pos += 1
        return True

    def _start_work(self, tool: Any, now: float) -> None:
        template = tool.template
        works = template.stream.draw()
        if template.per:
            attrs = tool.req.attrs
            for position, attribute in template.per:
                works[position] *= attrs[attribute]
        spec = tool.req.spec
        weight = spec.weight
        priority = spec.priority
        rates = self.rates
        seq = self.seq
        parts = 0
        if self.keep_joined:
            # What each part joined with is kept for what a cancellation or a failure wastes, and for the observer.
            overheads = self.overheads
            joined = tool.joined
            for index, work in zip(template.parts, works, strict=True):
                if work > 0.0:
                    work += overheads[index]
                    rates[index].join(tool, work, weight, priority, seq, now)
                    joined.append((index, work))
                    seq += 1
            parts = len(joined)
            if self.observer is not None:
                tool.req.works.append(sum(w for _, w in joined))
        else:
            for index, work in zip(template.parts, works, strict=True):
                if work > 0.0:
                    rates[index].join(tool, work, weight, priority, seq, now)
                    seq += 1
                    parts += 1
        self.seq = seq
        tool.parts = parts
        if self.keep_joined:
            tool.started = True
        if self.trace:
            self.trace.write(f"{now:.9f} start req={tool.req.rid} node={self._node_name(tool)} work={works}\n")
        if not parts:
            self.ready.append(tool)

    def _drain_ready(self, now: float) -> None:
        """Finish the tools that completed without work at ``now`` (and those their successors start)."""
        ready = self.ready
        while ready:
            item = ready.popleft()
            if isinstance(item, Tool):
                if not item.cancelled:
                    self._finish_tool(item, now)
            elif not item[0].dead:
                self._node_done(item[0], item[1], now)

    def _release_space(self, tool: Tool, held: int, now: float) -> None:
        """Give back the first ``held`` space holdings of ``tool`` and start the tools that this admits."""
        for index, amount in tool.template.space[:held]:
            for admitted in self.spaces[index].release(amount, now):
                self._admitted(admitted, now)

    def _admitted(self, tool: Tool, now: float) -> None:
        tool.space_pos += 1
        if self._acquire_space(tool, now):
            self._start_work(tool, now)

    def _finish_tool(self, tool: Any, now: float) -> None:
        """A tool's work is done: free its space, then count its node done, or its attempt failed."""
        if tool.template.space:
            self._release_space(tool, len(tool.template.space), now)
        req = tool.req
        if self.fallible:
            del req.tools[tool.uid]
            if tool.policy.timeout_s is not None:
                del self.timers[tool.uid]
            if tool.fails:
                self._attempt_failed(tool, now)
                return
        if self.trace:
            self.trace.write(f"{now:.9f} done req={req.rid} node={self._node_name(tool)}\n")
        # _node_done() inlined: this runs once per node of every request.
        req.left -= 1
        if not req.left:
            self._request_done(req, COMPLETED_OK, now)
            return
        waiting = req.waiting
        for succ in req.dag.succs[tool.node]:
            waiting[succ] -= 1
            if not waiting[succ]:
                self._start(req, succ, now)

    def _attempt_failed(self, tool: Attempt, now: float) -> None:
        """An attempt finished its work and failed (its ``fail_prob`` draw): all it did is wasted."""
        req = tool.req
        tool.cancelled = True
        for index, work in tool.joined:
            self.rates[index].wasted += work
        self._count(req, tool.node, FAILED)
        if self.trace:
            self.trace.write(f"{now:.9f} fail req={req.rid} node={self._node_name(tool)}\n")
        self._attempt_over(tool, FAILED_OUTCOME, now)

    def _node_done(self, req: Request, node: int, now: float) -> None:
        """A node counts as done: finish its request, or start the successors it unblocks."""
        req.left -= 1
        if not req.left:
            self._request_done(req, COMPLETED_OK, now)
            return
        waiting = req.waiting
        for succ in req.dag.succs[node]:
            waiting[succ] -= 1
            if not waiting[succ]:
                self._start(req, succ, now)

    def _cancel(self, tool: Attempt, now: float) -> None:
        """Take an unfinished attempt off everything it holds or waits for; its work done so far is wasted."""
        tool.cancelled = True
        req = tool.req
        del req.tools[tool.uid]
        self.timers.pop(tool.uid, None)
        weight = req.spec.weight
        for index, work in tool.joined:
            rate = self.rates[index]
            rate.wasted += rate.cancel(tool, work, weight, now)
        space = tool.template.space
        if space:
            if tool.space_pos < len(space):
                for admitted in self.spaces[space[tool.space_pos][0]].cancel_waiting(now):
                    self._admitted(admitted, now)
            self._release_space(tool, tool.space_pos, now)

    def _timeout(self, uid: int, now: float) -> None:
        tool = self.timers[uid]
        self._cancel(tool, now)
        self._count(tool.req, tool.node, TIMED_OUT)
        if self.trace:
            self.trace.write(f"{now:.9f} timeout req={tool.req.rid} node={self._node_name(tool)}\n")
        self._attempt_over(tool, TIMED_OUT_OUTCOME, now)
        if self.ready:
            self._drain_ready(now)

    def _attempt_over(self, tool: Attempt, outcome: int, now: float) -> None:
        """An attempt failed or timed out: retry it, or apply the node's ``on_failure``."""
        req, node, policy = tool.req, tool.node, tool.policy
        if tool.attempt < policy.retries:
            delay = policy.backoff.delay_s(tool.attempt + 1)
            if delay <= 0.0:
                self._attempt(req, node, tool.template, policy, tool.attempt + 1, tool.is_fallback, now)
                return
            uid = self.next_uid
            self.next_uid = uid + 1
            self.pending[uid] = (req, node, tool.template.index, tool.is_fallback, tool.attempt + 1)
            self._schedule(now + delay, RETRY, uid)
            if self.trace:
                self.trace.write(f"{now:.9f} backoff req={req.rid} node={self._node_name(tool)} s={delay:.9f}\n")
            return
        if policy.on_failure == "skip":
            self._count(req, node, SKIPPED)
            self._node_done(req, node, now)
        elif policy.on_failure == "fallback" and policy.fallback is not None:
            self._count(req, node, FALLBACKS)
            fallback = self.templates[self.template_index[policy.fallback]]
            self._attempt(req, node, fallback, fallback.policy, 0, True, now)
        else:
            self._request_failed(req, outcome, now)

    def _retry(self, uid: int, now: float) -> None:
        req, node, template_index, is_fallback, attempt = self.pending.pop(uid)
        template = self.templates[template_index]
        policy = template.policy if is_fallback else req.dag.policies[node]
        self._attempt(req, node, template, policy, attempt, is_fallback, now)
        if self.ready:
            self._drain_ready(now)

    def _request_failed(self, req: Request, outcome: int, now: float) -> None:
        """The request fails: its other attempts are cancelled, and it leaves.

        Its pending retries are dropped when they come up (:meth:`_due`), not looked for among every pending retry.
        """
        req.dead = True
        for tool in list(req.tools.values()):
            self._cancel(tool, now)
        self._request_done(req, outcome, now)

    def _request_done(self, req: Request, outcome: int, now: float) -> None:
        self.sys_int += self.n_sys * (now - self.sys_t)
        self.sys_t = now
        self.n_sys -= 1
        self.inflight[req.rtype] -= 1
        if self.fallible:
            del self.live[req.rid]
        if self.trace:
            what = ("finish", "failed", "timed-out")[outcome]
            self.trace.write(f"{now:.9f} {what} req={req.rid} latency={now - req.arrival:.9f}\n")
        if not req.counted:
            return
        self.counted_inflight[req.rtype] -= 1
        if outcome != COMPLETED_OK:
            self.outcomes[req.rtype][outcome - 1] += 1
            self.fail_buffers[req.rtype].append(now - req.arrival)
            return
        buffer = self.lat_buffers[req.rtype]
        buffer.append(now - req.arrival)
        if len(buffer) >= FLUSH_EVERY:
            self.sketches[req.rtype].add_many(buffer)
            buffer.clear()
        if self.observer is not None:
            self.observer(self.types[req.rtype].name, req.arrival, now, req.works)

    def _node_name(self, tool: Tool) -> str:
        name = tool.req.dag.node_names[tool.node]
        return name if not tool.is_fallback else f"{name}[{tool.template.name}]"

    # ------------------------------------------------------------------------------------------ measurement window

    def _all_resources(self) -> list[RateResource | SpaceResource]:
        return [*self.rates, *self.spaces]

    def _snapshot(self, now: float) -> dict[str, Any]:
        for resource in self._all_resources():
            resource.advance(now)
        self.sys_int += self.n_sys * (now - self.sys_t)
        self.sys_t = now
        return {
            "t": now,
            "rates": [list(r.integrals()) for r in self.rates],
            "spaces": [list(s.integrals()) for s in self.spaces],
            "sys": self.sys_int,
            "n": self.n_sys,
        }

    def _open_window(self, now: float) -> None:
        self.window["start"] = self._snapshot(now)
        for resource in self._all_resources():
            resource.reset_maxima()
        if self.trace:
            self.trace.write(f"{now:.9f} warmup-end\n")

    def _close_window(self, now: float) -> None:
        if "end" in self.window:
            return
        if "start" not in self.window:
            self._open_window(now)
        self.window["end"] = self._snapshot(now)
        if self.trace:
            self.trace.write(f"{now:.9f} horizon in_flight={self.n_sys}\n")

    def flush(self) -> None:
        """Move buffered latencies into the sketches."""
        for buffers, sketches in ((self.lat_buffers, self.sketches), (self.fail_buffers, self.fail_sketches)):
            for buffer, sketch in zip(buffers, sketches, strict=True):
                sketch.add_many(buffer)
                buffer.clear()

    def summary(self) -> ReplicationSummary:
        """The replication's figures (see :mod:`simfleet.worker.des.summary`)."""
        from simfleet.worker.des.summary import build_summary

        self.flush()
        return build_summary(self)

    def state_dict(self) -> dict[str, Any]:
        """The whole engine state as msgpack-serialisable data (see :mod:`simfleet.worker.des.state`)."""
        from simfleet.worker.des.state import save_state

        return save_state(self)

    @classmethod
    def from_state(
        cls,
        scenario: Scenario,
        state: dict[str, Any],
        *,
        trace: IO[str] | None = None,
        observer: RequestObserver | None = None,
    ) -> Simulation:
        """A simulation that continues exactly where the one that produced ``state`` stopped."""
        from simfleet.worker.des.state import load_state

        sim = cls(scenario, int(state["seed"]), int(state["replication"]), trace=trace, observer=observer)
        load_state(sim, state)
        return sim


def run_replication(
    scenario: Scenario, seed: int, replication: int = 0, *, trace: IO[str] | None = None
) -> ReplicationSummary:
    """Run one replication to its end and return its summary."""
    sim = Simulation(scenario, seed, replication, trace=trace)
    sim.run()
    return sim.summary()


def little_error(summary: ReplicationSummary) -> float:
    """Relative gap between the measured L and λW of a summary (Little's law check)."""
    little = summary.little
    lam_w = little.lambda_w
    return abs(little.mean_in_system - lam_w) / lam_w if lam_w else math.nan
