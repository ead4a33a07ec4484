"""Saving and resuming a replication: the engine state as plain, msgpack-serialisable data.

Everything that decides the rest of the run is saved: the clock and sequence counters, the event heap (timers and
retries included), every rate resource's virtual clock, heap and waiting queue, every space resource's holdings and
queue, the requests and tools in flight (with their attempts, failure draws and what they joined each resource with),
the generator states with their unused blocks of draws (arrivals, work, decisions, attributes, arrival processes), and
the accumulators (time integrals, wasted work, outcome and node counts, latency buffers and sketches). Resuming from
it gives exactly the output of an uninterrupted run; only ``wall_s`` differs.

Tools are referred to by their position in the saved ``tools`` list, requests by id. A cancelled tool may still sit
in a heap (it is dropped lazily); it is saved like any other, with its flag, so the heaps come back entry for entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simfleet.shared.errors import SimulationError
from simfleet.shared.messages import decode, to_wire
from simfleet.shared.messages.des import SketchData
from simfleet.worker.des.sketch import LatencySketch
from simfleet.worker.des.streams import ArrivalStream, WorkStream, generator_state, restore_generator

if TYPE_CHECKING:
    from simfleet.worker.des.engine import Simulation
    from simfleet.worker.des.entities import Request, Tool

VERSION = 2


def _reachable(sim: Simulation) -> tuple[list[Tool], list[Request]]:
    """Every tool and request the state refers to, in a deterministic order of discovery."""
    found: list[Tool] = [entry[2] for rate in sim.rates for entry in rate.heap]
    found += [entry[2] for rate in sim.rates for entry in rate.queue]
    found += [entry[2] for space in sim.spaces for entry in space.queue]
    found += [tool for req in sim.live.values() for tool in req.tools.values()]
    found += list(sim.timers.values())
    tools: dict[int, Tool] = {}
    for tool in found:
        tools.setdefault(id(tool), tool)
    requests: dict[int, Request] = {}
    for tool in tools.values():
        requests.setdefault(tool.req.rid, tool.req)
    for req in sim.live.values():
        requests.setdefault(req.rid, req)
    for item in sim.pending.values():
        requests.setdefault(item[0].rid, item[0])
    return list(tools.values()), sorted(requests.values(), key=lambda r: r.rid)


def _stream_state(stream: Any) -> dict[str, Any]:
    if isinstance(stream, ArrivalStream):
        return {"rng": generator_state(stream.rng), "buffer": list(stream.buffer)}
    state: dict[str, Any] = stream.state()
    return state


def _work_state(stream: WorkStream) -> dict[str, Any]:
    return {"rng": generator_state(stream.rng), "buffers": [list(b) for b in stream.buffers], "left": stream.left}


def _restore_work(stream: WorkStream, saved: dict[str, Any]) -> None:
    restore_generator(stream.rng, saved["rng"])
    stream.buffers = [list(b) for b in saved["buffers"]]
    stream.left = saved["left"]


def _request_record(r: Request, position: dict[int, int]) -> list[Any]:
    attrs = [[k, v] for k, v in r.attrs.items()]
    tools = [position[id(t)] for t in r.tools.values()]
    return [r.rid, r.rtype, r.dag.index, r.arrival, list(r.waiting), r.left, list(r.works), r.counted, r.dead, attrs,
            tools]  # fmt: skip


def save_state(sim: Simulation) -> dict[str, Any]:
    """Capture ``sim`` between two events (after :meth:`Simulation.run` returned)."""
    from simfleet.worker.des.entities import Attempt

    if sim.ready:
        raise SimulationError("a DES state can only be saved between events")
    tools, requests = _reachable(sim)
    position = {id(tool): i for i, tool in enumerate(tools)}

    def tool_record(t: Tool) -> list[Any]:
        record: list[Any] = [t.req.rid, t.node, t.template.index, t.parts, t.space_pos, t.cancelled]
        if isinstance(t, Attempt):
            record.append([t.uid, t.attempt, t.is_fallback, t.fails, t.started,
                           [[i, vf] for i, vf in t.at.items()], [list(j) for j in t.joined]])  # fmt: skip
        return record

    return {
        "version": VERSION,
        "scenario": sim.scenario.name,
        "seed": sim.seed,
        "replication": sim.replication,
        "now": sim.now,
        "seq": sim.seq,
        "events": sim.events,
        "next_rid": sim.next_rid,
        "next_uid": sim.next_uid,
        "finished": sim.finished,
        "stopped_at_horizon": sim.stopped_at_horizon,
        "unstable_reason": sim.unstable_reason,
        "heap": [list(entry) for entry in sim.heap],
        "next_times": list(sim.next_times),
        "requests": [_request_record(r, position) for r in requests],
        "live": list(sim.live),
        "tools": [tool_record(t) for t in tools],
        "timers": [[uid, position[id(t)]] for uid, t in sim.timers.items()],
        "pending": [[uid, item[0].rid, *item[1:]] for uid, item in sim.pending.items()],
        "rates": [
            {
                "vclock": r.vclock,
                "t_last": r.t_last,
                "wsum": r.wsum,
                "n": r.n,
                "vrate": r.vrate,
                "heap": [[vf, seq, position[id(tool)], w] for vf, seq, tool, w in r.heap],
                "queue": [[p, seq, position[id(tool)], work, w] for p, seq, tool, work, w in r.queue],
                "dead_q": r.dead_q,
                "wasted": r.wasted,
                "integrals": [r.busy_int, r.n_int, r.q_int],
                "maxima": [r.max_n, r.max_q],
            }
            for r in sim.rates
        ],
        "spaces": [
            {
                "used": s.used,
                "t_last": s.t_last,
                "queue": [[p, order, position[id(tool)], amount] for p, order, tool, amount in s.queue],
                "order": s.order,
                "dead": s.dead,
                "integrals": [s.used_int, s.q_int],
                "maxima": [s.max_used, s.max_q],
            }
            for s in sim.spaces
        ],
        "arrivals": [_stream_state(a) for a in sim.arrivals],
        "work": [_work_state(t.stream) for t in sim.templates],
        "types": [
            {
                "decisions": {"rng": generator_state(t.decisions.rng), "buffer": list(t.decisions.buffer)},
                "attributes": None if t.attr_stream is None else _work_state(t.attr_stream),
            }
            for t in sim.types
        ],
        "n_sys": sim.n_sys,
        "sys_int": sim.sys_int,
        "sys_t": sim.sys_t,
        "inflight": list(sim.inflight),
        "counted_inflight": list(sim.counted_inflight),
        "counted_arrivals": list(sim.counted_arrivals),
        "outcomes": [list(o) for o in sim.outcomes],
        "node_stats": [[list(n) for n in t] for t in sim.node_stats],
        "lat_buffers": [list(b) for b in sim.lat_buffers],
        "fail_buffers": [list(b) for b in sim.fail_buffers],
        "sketches": [to_wire(s.to_data()) for s in sim.sketches],
        "fail_sketches": [to_wire(s.to_data()) for s in sim.fail_sketches],
        "window": sim.window,
        "wall_s": sim.wall_s,
    }


def load_state(sim: Simulation, state: dict[str, Any]) -> None:
    """Overwrite a freshly built ``sim`` (same scenario, seed, replication) with a saved state."""
    from simfleet.worker.des.entities import Attempt, Request, Tool

    if state.get("version") != VERSION:
        raise SimulationError(f"unsupported DES state version {state.get('version')!r} (expected {VERSION})")
    if state["scenario"] != sim.scenario.name:
        raise SimulationError(f"state is of scenario {state['scenario']!r}, not {sim.scenario.name!r}")
    for name in ("now", "seq", "events", "next_rid", "next_uid", "finished", "stopped_at_horizon",
                 "unstable_reason"):  # fmt: skip
        setattr(sim, name, state[name])
    sim.heap[:] = [tuple(entry) for entry in state["heap"]]
    sim.next_times[:] = state["next_times"]
    requests: dict[int, Request] = {}
    for rid, rtype, dag, arrival, waiting, left, works, counted, dead, attrs, _ in state["requests"]:
        spec = sim.types[rtype]
        req = Request(rid, spec, spec.dags[dag], arrival, counted)
        req.waiting, req.left, req.works, req.dead = list(waiting), left, list(works), dead
        req.attrs = {k: v for k, v in attrs}
        requests[rid] = req
    tools: list[Tool] = []
    for record in state["tools"]:
        rid, node, template_index, parts, space_pos, cancelled = record[:6]
        req = requests[rid]
        template = sim.templates[template_index]
        tool: Tool
        if len(record) > 6:
            uid, attempt, is_fallback, fails, started, at, joined = record[6]
            policy = template.policy if is_fallback else req.dag.policies[node]
            attempt_tool = Attempt(uid, req, node, template, policy, attempt, is_fallback)
            attempt_tool.fails, attempt_tool.started = fails, started
            attempt_tool.at = {int(i): vf for i, vf in at}
            attempt_tool.joined = [(int(i), w) for i, w in joined]
            tool = attempt_tool
        else:
            tool = Tool(req, node, template)
        tool.parts, tool.space_pos, tool.cancelled = parts, space_pos, cancelled
        tools.append(tool)
    for record in state["requests"]:
        req = requests[record[0]]
        req.tools = {t.uid: t for t in (tools[i] for i in record[10]) if isinstance(t, Attempt)}
    sim.live = {rid: requests[rid] for rid in state["live"]}
    sim.timers = {}
    for uid, i in state["timers"]:
        timed = tools[i]
        assert isinstance(timed, Attempt)
        sim.timers[uid] = timed
    sim.pending = {uid: (requests[rid], node, template, fallback, attempt)
                   for uid, rid, node, template, fallback, attempt in state["pending"]}  # fmt: skip
    for rate, saved in zip(sim.rates, state["rates"], strict=True):
        rate.vclock, rate.t_last, rate.wsum, rate.n, rate.vrate = (
            saved["vclock"], saved["t_last"], saved["wsum"], saved["n"], saved["vrate"]
        )
        rate.heap[:] = [(vf, seq, tools[i], w) for vf, seq, i, w in saved["heap"]]
        rate.queue[:] = [(p, seq, tools[i], work, w) for p, seq, i, work, w in saved["queue"]]
        rate.dead_q, rate.wasted = saved["dead_q"], saved["wasted"]
        rate.busy_int, rate.n_int, rate.q_int = saved["integrals"]
        rate.max_n, rate.max_q = saved["maxima"]
    for space, saved in zip(sim.spaces, state["spaces"], strict=True):
        space.used, space.t_last = saved["used"], saved["t_last"]
        space.queue[:] = [(p, order, tools[i], amount) for p, order, i, amount in saved["queue"]]
        space.order, space.dead = saved["order"], saved["dead"]
        space.used_int, space.q_int = saved["integrals"]
        space.max_used, space.max_q = saved["maxima"]
    for stream, saved in zip(sim.arrivals, state["arrivals"], strict=True):
        if isinstance(stream, ArrivalStream):
            restore_generator(stream.rng, saved["rng"])
            stream.buffer = list(saved["buffer"])
        else:
            stream.restore(saved)
    for template, saved in zip(sim.templates, state["work"], strict=True):
        _restore_work(template.stream, saved)
    for rtype, saved in zip(sim.types, state["types"], strict=True):
        restore_generator(rtype.decisions.rng, saved["decisions"]["rng"])
        rtype.decisions.buffer = list(saved["decisions"]["buffer"])
        if rtype.attr_stream is not None:
            _restore_work(rtype.attr_stream, saved["attributes"])
    sim.n_sys, sim.sys_int, sim.sys_t = state["n_sys"], state["sys_int"], state["sys_t"]
    sim.inflight = list(state["inflight"])
    sim.counted_inflight = list(state["counted_inflight"])
    sim.counted_arrivals = list(state["counted_arrivals"])
    sim.outcomes = [list(o) for o in state["outcomes"]]
    sim.node_stats = [[list(n) for n in t] for t in state["node_stats"]]
    sim.lat_buffers = [list(b) for b in state["lat_buffers"]]
    sim.fail_buffers = [list(b) for b in state["fail_buffers"]]
    sim.sketches = [_sketch(s) for s in state["sketches"]]
    sim.fail_sketches = [_sketch(s) for s in state["fail_sketches"]]
    sim.window = dict(state["window"])
    sim.wall_s = state["wall_s"]


def _sketch(data: Any) -> LatencySketch:
    return LatencySketch.from_data(decode(SketchData, data, what="DES state sketch"))
