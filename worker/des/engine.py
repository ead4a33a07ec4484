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
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush
from typing import IO, Any

from simfleet.shared.errors import SimulationError
from simfleet.shared.messages.des import ReplicationSummary
from simfleet.worker.des.limits import check_number
from simfleet.worker.des.resources import INF, RateResource, SpaceResource
from simfleet.worker.des.scenario import Scenario
from simfleet.worker.des.sketch import LatencySketch
from simfleet.worker.des.streams import ArrivalStream, WorkStream, make_generators

WARMUP, ARRIVAL, HORIZON = 0, 1, 2
FLUSH_EVERY = 4096
STATE_VERSION = 1

RequestObserver = Callable[[str, float, float, list[float]], None]
"""Called with (request type, arrival time, finish time, total work of each node run) for every counted request."""


class _Request:
    __slots__ = ("arrival", "left", "rid", "rtype", "spec", "waiting", "works")

    def __init__(self, rid: int, spec: _Type, arrival: float, waiting: list[int], left: int) -> None:
        self.rid = rid
        self.spec = spec
        self.rtype = spec.index
        self.arrival = arrival
        self.waiting = waiting
        self.left = left
        self.works: list[float] = []


class _Tool:
    __slots__ = ("node", "parts", "req", "space_pos", "template")

    def __init__(self, req: _Request, node: int, template: _Template) -> None:
        self.req = req
        self.node = node
        self.template = template
        self.parts = 0
        self.space_pos = 0


class _Template:
    __slots__ = ("index", "name", "parts", "space", "stream")

    def __init__(self, index: int, name: str, parts: tuple[int, ...], space: tuple[tuple[int, float], ...]) -> None:
        self.index = index
        self.name = name
        self.parts = parts
        self.space = space
        self.stream: WorkStream


class _Type:
    __slots__ = ("index", "name", "node_names", "preds", "roots", "succs", "templates", "weight")

    def __init__(self, index: int, scenario: Scenario, name: str, template_index: dict[str, int]) -> None:
        rt = scenario.request_types[name]
        position = {node.name: i for i, node in enumerate(rt.nodes)}
        self.index = index
        self.name = name
        self.weight = rt.weight
        self.node_names = tuple(node.name for node in rt.nodes)
        self.templates = tuple(template_index[node.tool] for node in rt.nodes)
        self.preds = tuple(len(node.after) for node in rt.nodes)
        succs: list[list[int]] = [[] for _ in rt.nodes]
        for i, node in enumerate(rt.nodes):
            for pred in node.after:
                succs[position[pred]].append(i)
        self.succs = tuple(tuple(s) for s in succs)
        self.roots = tuple(i for i, n in enumerate(self.preds) if n == 0)


class Simulation:
    """One replication of a scenario; call :meth:`run`, then :meth:`summary`.

    Args:
        scenario: the validated scenario.
        seed: the study seed.
        replication: the replication index; together with ``seed`` it fixes every random draw.
        trace: an open text file that receives one line per event (off when ``None``).
        observer: called for every counted completed request (for validation; off when ``None``).
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
        self.spaces = [SpaceResource(i, n, scenario.resources[n].capacity) for i, n in enumerate(space_names)]
        rate_index = {n: i for i, n in enumerate(rate_names)}
        space_index = {n: i for i, n in enumerate(space_names)}
        template_index = {n: i for i, n in enumerate(scenario.tools)}
        self.templates = [
            _Template(
                i,
                name,
                tuple(rate_index[r] for r in tool.work),
                tuple((space_index[r], amount) for r, amount in tool.space.items()),
            )
            for i, (name, tool) in enumerate(scenario.tools.items())
        ]
        self.types = [_Type(i, scenario, name, template_index) for i, name in enumerate(scenario.request_types)]
        for name, rt in scenario.request_types.items():
            # A scenario built in code, not parsed, must not reach a division by a zero rate either.
            check_number(rt.rate_per_min, scenario.source, f"request_types.{name}.rate_per_min", positive=True)
        arrival_rngs, work_rngs = make_generators(seed, replication, len(self.types), len(self.templates))
        self.arrivals = [
            ArrivalStream(rng, rt.rate_per_min / 60.0, rt.arrival == "poisson")
            for rng, rt in zip(arrival_rngs, scenario.request_types.values(), strict=True)
        ]
        for template, rng, tool in zip(self.templates, work_rngs, scenario.tools.values(), strict=True):
            template.stream = WorkStream(rng, list(tool.work.values()))
        offered = scenario.offered_load()
        self.offered_load = offered
        overloaded = sorted(name for name, rho in offered.items() if rho >= 1.0)
        self.unstable_reason: str | None = (
            f"offered load reaches capacity on {', '.join(overloaded)}" if overloaded else None
        )
        self.horizon_s = scenario.horizon_s
        self.warmup_s = scenario.warmup_s
        self.now = 0.0
        self.seq = 0
        self.events = 0
        self.next_rid = 0
        self.finished = False
        self.stopped_at_horizon = False
        self.heap: list[tuple[float, int, int, int]] = []
        self.ready: deque[_Tool] = deque()
        self.n_sys = 0
        self.sys_int = 0.0
        self.sys_t = 0.0
        self.inflight = [0] * len(self.types)
        self.counted_arrivals = [0] * len(self.types)
        self.lat_buffers: list[list[float]] = [[] for _ in self.types]
        self.sketches = [LatencySketch() for _ in self.types]
        self.window: dict[str, Any] = {}
        self.wall_s = 0.0
        self._schedule(self.warmup_s, WARMUP, -1)
        self._schedule(self.horizon_s, HORIZON, -1)
        for rtype in self.types:
            first = self.arrivals[rtype.index].next_gap()
            if first < self.horizon_s:
                self._schedule(first, ARRIVAL, rtype.index)

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
                        if not tool.parts:
                            self._finish_tool(tool, t_res)
                    if ready:
                        self._drain_ready(t_res)
                else:
                    if t_ev > limit:
                        return False
                    now, kind, _, payload = heappop(heap)
                    self.now = now
                    if kind == ARRIVAL:
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
        """An ended run in which a request type never completed a request is unstable, never a silent success.

        Two cases: requests still in flight with nothing left to happen (cannot happen with a valid DAG; a guard),
        and a type whose counted requests arrived but none finished before the run stopped (its latency figures
        would all be missing).
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
            if self.counted_arrivals[t.index] and not self.sketches[t.index].count and not self.lat_buffers[t.index]
        ]
        if silent:
            self.unstable_reason = f"no request of {', '.join(silent)} completed in the measurement window"

    def _arrive(self, type_index: int, now: float) -> None:
        rtype = self.types[type_index]
        stream = self.arrivals[type_index]
        buffer = stream.buffer
        # ArrivalStream.next_gap() inlined for the common Poisson case: this runs once per request.
        gap = buffer.pop() * stream.mean_gap_s if stream.poisson and buffer else stream.next_gap()
        following = now + gap
        seq = self.seq
        if following < self.horizon_s:
            heappush(self.heap, (following, ARRIVAL, seq, type_index))
            self.seq = seq + 1
        preds = rtype.preds
        req = _Request(self.next_rid, rtype, now, list(preds), len(preds))
        self.next_rid += 1
        n_sys = self.n_sys
        self.sys_int += n_sys * (now - self.sys_t)
        self.sys_t = now
        self.n_sys = n_sys + 1
        self.inflight[type_index] += 1
        if now >= self.warmup_s:
            self.counted_arrivals[type_index] += 1
        if self.trace:
            self.trace.write(f"{now:.9f} arrive {rtype.name} req={req.rid}\n")
        for node in rtype.roots:
            self._start(req, node, now)
        if self.ready:
            self._drain_ready(now)

    def _start(self, req: _Request, node: int, now: float) -> None:
        template = self.templates[req.spec.templates[node]]
        tool = _Tool(req, node, template)
        if template.space and not self._acquire_space(tool, now):
            if self.trace:
                self.trace.write(f"{now:.9f} wait-space req={req.rid} node={self._node_name(tool)}\n")
            return
        self._start_work(tool, now)

    def _acquire_space(self, tool: _Tool, now: float) -> bool:
        # Space resources are taken one at a time in a fixed order, so tools can never deadlock each other.
        space = tool.template.space
        while tool.space_pos < len(space):
            index, amount = space[tool.space_pos]
            if not self.spaces[index].acquire(tool, amount, now):
                return False
            tool.space_pos += 1
        return True

    def _start_work(self, tool: _Tool, now: float) -> None:
        template = tool.template
        works = template.stream.draw()
        weight = tool.req.spec.weight
        rates = self.rates
        seq = self.seq
        parts = 0
        for index, work in zip(template.parts, works, strict=True):
            if work > 0.0:
                rates[index].join(tool, work, weight, seq, now)
                seq += 1
                parts += 1
        self.seq = seq
        tool.parts = parts
        if self.observer is not None:
            tool.req.works.append(sum(works))
        if self.trace:
            self.trace.write(f"{now:.9f} start req={tool.req.rid} node={self._node_name(tool)} work={works}\n")
        if not parts:
            self.ready.append(tool)

    def _drain_ready(self, now: float) -> None:
        """Finish the tools that completed without work at ``now`` (and those their successors start)."""
        ready = self.ready
        while ready:
            self._finish_tool(ready.popleft(), now)

    def _finish_tool(self, tool: _Tool, now: float) -> None:
        """A tool's work is done: free its space, then finish its request or start the successors it unblocks."""
        if tool.template.space:
            for index, amount in tool.template.space:
                for admitted in self.spaces[index].release(amount, now):
                    admitted.space_pos += 1
                    if self._acquire_space(admitted, now):
                        self._start_work(admitted, now)
        req = tool.req
        req.left -= 1
        if self.trace:
            self.trace.write(f"{now:.9f} done req={req.rid} node={self._node_name(tool)}\n")
        if not req.left:
            self._request_done(req, now)
            return
        waiting = req.waiting
        for succ in req.spec.succs[tool.node]:
            waiting[succ] -= 1
            if not waiting[succ]:
                self._start(req, succ, now)

    def _request_done(self, req: _Request, now: float) -> None:
        self.sys_int += self.n_sys * (now - self.sys_t)
        self.sys_t = now
        self.n_sys -= 1
        self.inflight[req.rtype] -= 1
        if self.trace:
            self.trace.write(f"{now:.9f} finish req={req.rid} latency={now - req.arrival:.9f}\n")
        if req.arrival < self.warmup_s:
            return
        buffer = self.lat_buffers[req.rtype]
        buffer.append(now - req.arrival)
        if len(buffer) >= FLUSH_EVERY:
            self.sketches[req.rtype].add_many(buffer)
            buffer.clear()
        if self.observer is not None:
            self.observer(self.types[req.rtype].name, req.arrival, now, req.works)

    def _node_name(self, tool: _Tool) -> str:
        return tool.req.spec.node_names[tool.node]

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
        for buffer, sketch in zip(self.lat_buffers, self.sketches, strict=True):
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
