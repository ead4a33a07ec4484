"""Saving and resuming a replication: the engine state as plain, msgpack-serialisable data.

Everything that decides the rest of the run is saved: the clock and sequence counters, the event heap, every rate
resource's virtual clock, heap and FIFO queue, every space resource's holdings and queue, the requests and tools in
flight, the generator states with their unused blocks of draws, and the accumulators (time integrals, latency
buffers and sketches). Resuming from it gives exactly the output of an uninterrupted run; only ``wall_s`` differs.
Tools are referred to by their position in the saved ``tools`` list, requests by id.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from simfleet.shared.errors import SimulationError
from simfleet.shared.messages import decode, to_wire
from simfleet.shared.messages.des import SketchData
from simfleet.worker.des.sketch import LatencySketch
from simfleet.worker.des.streams import generator_state, restore_generator

if TYPE_CHECKING:
    from simfleet.worker.des.engine import Simulation, _Tool


def _in_flight_tools(sim: Simulation) -> list[_Tool]:
    seen: dict[int, _Tool] = {}
    for rate in sim.rates:
        for _, _, tool, _ in rate.heap:
            seen.setdefault(id(tool), tool)
        for tool, _, _, _ in rate.queue:
            seen.setdefault(id(tool), tool)
    for space in sim.spaces:
        for tool, _ in space.queue:
            seen.setdefault(id(tool), tool)
    return sorted(seen.values(), key=lambda t: (t.req.rid, t.node))


def save_state(sim: Simulation) -> dict[str, Any]:
    """Capture ``sim`` between two events (after :meth:`Simulation.run` returned)."""
    tools = _in_flight_tools(sim)
    position = {id(tool): i for i, tool in enumerate(tools)}
    requests = {tool.req.rid: tool.req for tool in tools}
    return {
        "version": 1,
        "scenario": sim.scenario.name,
        "seed": sim.seed,
        "replication": sim.replication,
        "now": sim.now,
        "seq": sim.seq,
        "events": sim.events,
        "next_rid": sim.next_rid,
        "finished": sim.finished,
        "stopped_at_horizon": sim.stopped_at_horizon,
        "unstable_reason": sim.unstable_reason,
        "heap": [list(entry) for entry in sim.heap],
        "next_times": list(sim.next_times),
        "requests": [
            [r.rid, r.rtype, r.arrival, list(r.waiting), r.left, list(r.works)]
            for r in sorted(requests.values(), key=lambda r: r.rid)
        ],
        "tools": [[t.req.rid, t.node, t.template.index, t.parts, t.space_pos] for t in tools],
        "rates": [
            {
                "vclock": r.vclock,
                "t_last": r.t_last,
                "wsum": r.wsum,
                "n": r.n,
                "vrate": r.vrate,
                "heap": [[vf, seq, position[id(tool)], w] for vf, seq, tool, w in r.heap],
                "queue": [[position[id(tool)], work, w, seq] for tool, work, w, seq in r.queue],
                "integrals": [r.busy_int, r.n_int, r.q_int],
                "maxima": [r.max_n, r.max_q],
            }
            for r in sim.rates
        ],
        "spaces": [
            {
                "used": s.used,
                "t_last": s.t_last,
                "queue": [[position[id(tool)], amount] for tool, amount in s.queue],
                "integrals": [s.used_int, s.q_int],
                "maxima": [s.max_used, s.max_q],
            }
            for s in sim.spaces
        ],
        "arrivals": [{"rng": generator_state(a.rng), "buffer": list(a.buffer)} for a in sim.arrivals],
        "work": [
            {
                "rng": generator_state(t.stream.rng),
                "buffers": [list(b) for b in t.stream.buffers],
                "left": t.stream.left,
            }
            for t in sim.templates
        ],
        "n_sys": sim.n_sys,
        "sys_int": sim.sys_int,
        "sys_t": sim.sys_t,
        "inflight": list(sim.inflight),
        "counted_arrivals": list(sim.counted_arrivals),
        "lat_buffers": [list(b) for b in sim.lat_buffers],
        "sketches": [to_wire(s.to_data()) for s in sim.sketches],
        "window": sim.window,
        "wall_s": sim.wall_s,
    }


def load_state(sim: Simulation, state: dict[str, Any]) -> None:
    """Overwrite a freshly built ``sim`` (same scenario, seed, replication) with a saved state."""
    from simfleet.worker.des.engine import _Request, _Tool

    if state.get("version") != 1:
        raise SimulationError(f"unsupported DES state version {state.get('version')!r} (expected 1)")
    if state["scenario"] != sim.scenario.name:
        raise SimulationError(f"state is of scenario {state['scenario']!r}, not {sim.scenario.name!r}")
    for name in ("now", "seq", "events", "next_rid", "finished", "stopped_at_horizon", "unstable_reason"):
        setattr(sim, name, state[name])
    sim.heap[:] = [tuple(entry) for entry in state["heap"]]
    sim.next_times[:] = state["next_times"]
    requests = {
        rid: _Request(rid, sim.types[rtype], arrival, list(waiting), left)
        for rid, rtype, arrival, waiting, left, _ in state["requests"]
    }
    for rid, _, _, _, _, works in state["requests"]:
        requests[rid].works = list(works)
    tools = []
    for rid, node, template, parts, space_pos in state["tools"]:
        tool = _Tool(requests[rid], node, sim.templates[template])
        tool.parts, tool.space_pos = parts, space_pos
        tools.append(tool)
    for rate, saved in zip(sim.rates, state["rates"], strict=True):
        rate.vclock, rate.t_last, rate.wsum, rate.n, rate.vrate = (
            saved["vclock"], saved["t_last"], saved["wsum"], saved["n"], saved["vrate"]
        )
        rate.heap[:] = [(vf, seq, tools[i], w) for vf, seq, i, w in saved["heap"]]
        rate.queue = deque((tools[i], work, w, seq) for i, work, w, seq in saved["queue"])
        rate.busy_int, rate.n_int, rate.q_int = saved["integrals"]
        rate.max_n, rate.max_q = saved["maxima"]
    for space, saved in zip(sim.spaces, state["spaces"], strict=True):
        space.used, space.t_last = saved["used"], saved["t_last"]
        space.queue = deque((tools[i], amount) for i, amount in saved["queue"])
        space.used_int, space.q_int = saved["integrals"]
        space.max_used, space.max_q = saved["maxima"]
    for stream, saved in zip(sim.arrivals, state["arrivals"], strict=True):
        restore_generator(stream.rng, saved["rng"])
        stream.buffer = list(saved["buffer"])
    for template, saved in zip(sim.templates, state["work"], strict=True):
        restore_generator(template.stream.rng, saved["rng"])
        template.stream.buffers = [list(b) for b in saved["buffers"]]
        template.stream.left = saved["left"]
    sim.n_sys, sim.sys_int, sim.sys_t = state["n_sys"], state["sys_int"], state["sys_t"]
    sim.inflight = list(state["inflight"])
    sim.counted_arrivals = list(state["counted_arrivals"])
    sim.lat_buffers = [list(b) for b in state["lat_buffers"]]
    sim.sketches = [LatencySketch.from_data(decode(SketchData, s, what="DES state sketch")) for s in state["sketches"]]
    sim.window = dict(state["window"])
    sim.wall_s = state["wall_s"]
