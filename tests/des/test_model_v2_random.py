"""Random scenarios with every model v2 feature: the run ends, its outcomes add up, and a run saved and resumed
anywhere equals the uninterrupted one."""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simfleet.worker.des.engine import Simulation
from simfleet.worker.des.scenario import parse_scenario

from .helpers import without_wall_clock

RESOURCES = {
    "cpu": {"capacity": 2.0, "max_active": 2, "per_tool_cap": 1.0},
    "net": {"capacity": 1.0, "join_overhead": 0.02},
    "mem": {"kind": "space", "capacity": 2},
}


@st.composite
def tools(draw: Any) -> dict[str, Any]:
    made: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 4))):
        work: dict[str, Any] = {}
        for resource in draw(st.lists(st.sampled_from(["cpu", "net"]), min_size=0, max_size=2, unique=True)):
            amount: Any = draw(st.sampled_from([0.1, 0.3, {"dist": "exponential", "mean": 0.2}]))
            work[resource] = {"per": "size", "amount": amount} if draw(st.booleans()) else amount
        tool: dict[str, Any] = {"work": work}
        if draw(st.booleans()):
            tool["space"] = {"mem": 1}
        if draw(st.booleans()):
            tool["fail_prob"] = draw(st.sampled_from([0.1, 0.5, 1.0]))
        if draw(st.booleans()):
            tool["timeout_s"] = draw(st.sampled_from([0.05, 0.3, 2.0]))
        if draw(st.booleans()):
            tool["retries"] = draw(st.integers(1, 3))
            tool["backoff_s"] = draw(st.sampled_from([0.0, 0.1, {"base_s": 0.05, "factor": 2.0, "max_s": 0.2}]))
        if index and draw(st.booleans()):
            tool["on_failure"] = draw(st.sampled_from(["skip", "fail", {"fallback": f"t{index - 1}"}]))
        made[f"t{index}"] = tool
    return made


@st.composite
def dags(draw: Any, tool_names: list[str]) -> dict[str, Any]:
    nodes: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 4))):
        node: dict[str, Any] = {"tool": draw(st.sampled_from(tool_names))}
        earlier = list(nodes)
        if earlier:
            node["after"] = draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True))
        if draw(st.booleans()):
            node["prob"] = draw(st.sampled_from([0.0, 0.5, 1.0]))
        if draw(st.booleans()):
            node["retries"] = draw(st.integers(0, 2))
        nodes[f"n{index}"] = node
    return nodes


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    made_tools = draw(tools())
    names = list(made_tools)
    types: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 2))):
        rtype: dict[str, Any] = {"priority": draw(st.integers(0, 2)),
                                 "attributes": {"size": {"dist": "exponential", "mean": 1.0}}}  # fmt: skip
        arrival = draw(st.sampled_from(["poisson", "deterministic", "mmpp", "schedule"]))
        if arrival == "mmpp":
            rtype["arrival"] = {"process": "mmpp", "rates_per_min": [20, 120], "mean_sojourn_s": [20, 5]}
        elif arrival == "schedule":
            rtype["arrival"] = {"process": "schedule", "repeat_s": 60.0,
                                "windows": [{"start_s": 0.0, "rate_per_min": 90}, {"start_s": 30.0, "rate_per_min": 0}]}
        else:
            rtype.update(rate_per_min=draw(st.sampled_from([20, 60])), arrival=arrival)
        if draw(st.booleans()):
            rtype["variants"] = {"a": {"weight": 2, "nodes": draw(dags(names))},
                                 "b": {"weight": 1, "nodes": draw(dags(names))}}  # fmt: skip
        else:
            rtype["nodes"] = draw(dags(names))
        types[f"r{index}"] = rtype
    return {"name": "random-v2", "horizon_s": 120.0, "warmup_s": 10.0, "drain": draw(st.booleans()),
            "max_in_flight": 5_000, "resources": RESOURCES, "tools": made_tools, "request_types": types}  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=scenarios(), cut=st.floats(0.0, 130.0))
def test_random_v2_scenarios_end_add_up_and_resume_exactly(data, cut):
    scenario = parse_scenario(data)
    whole = Simulation(scenario, seed=3)
    assert whole.run()
    summary = whole.summary()
    for figures in (*summary.types.values(), summary.overall):
        assert figures.completed + figures.failed + figures.timed_out + figures.unfinished == figures.arrived
    if summary.stable and scenario.drain:
        assert summary.in_flight == 0
    part = Simulation(scenario, seed=3)
    part.run(until_s=cut)
    resumed = Simulation.from_state(scenario, msgpack.unpackb(msgpack.packb(part.state_dict()), strict_map_key=False))
    resumed.run()
    assert without_wall_clock(resumed.summary()) == without_wall_clock(summary)
