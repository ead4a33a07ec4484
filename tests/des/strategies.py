"""Hypothesis strategies for DES scenarios: random models for the conformance of the two engines."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

FAIL_PROBS = st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0])
TIMEOUTS = st.sampled_from([None, None, 0.05, 0.3, 2.0])
BACKOFFS = st.sampled_from([None, 0.0, 0.2, {"base_s": 0.1, "factor": 2.0, "max_s": 0.5},
                            {"base_s": 0.05, "factor": 3.0}])  # fmt: skip


def failure_policy(draw: Any, fallbacks: list[str]) -> dict[str, Any]:
    """A random failure policy: fail_prob, timeout_s, retries with every backoff form, and fail, skip or a fallback
    to one of ``fallbacks``."""
    policy: dict[str, Any] = {}
    if fail_prob := draw(FAIL_PROBS):
        policy["fail_prob"] = fail_prob
    if (timeout := draw(TIMEOUTS)) is not None:
        policy["timeout_s"] = timeout
    if retries := draw(st.sampled_from([0, 0, 1, 3])):
        policy["retries"] = retries
        if (backoff := draw(BACKOFFS)) is not None:
            policy["backoff_s"] = backoff
    on_failure = draw(st.sampled_from(["fail", "skip", "fallback"] if fallbacks else ["fail", "skip"]))
    if on_failure == "fallback":
        policy["on_failure"] = {"fallback": draw(st.sampled_from(fallbacks))}
    elif on_failure == "skip" or draw(st.booleans()):
        policy["on_failure"] = on_failure
    return policy


@st.composite
def random_scenarios(draw: Any, failures: bool = False) -> dict[str, Any]:
    """Random scenarios: up to three rate resources (with caps, FIFO limits and join overheads) and two space
    resources, zero-work tools, work scaled by attributes (``per``), random DAGs with branch probabilities, variants,
    weights and priorities, attributes, every kind of arrival (Poisson, deterministic, schedule, MMPP, trace), warmup,
    drain or not, and a small in-flight guard. With ``failures``, tools and nodes get failure policies
    (:func:`failure_policy`; a tool falls back only to a later one, so chains have no cycle, a node to any)."""
    resources: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 3))):
        rate: dict[str, Any] = {"capacity": draw(st.sampled_from([0.5, 1.0, 3.0]))}
        if draw(st.booleans()):
            rate["per_tool_cap"] = draw(st.sampled_from([0.25, 1.0]))
        if draw(st.booleans()):
            rate["max_active"] = draw(st.integers(1, 3))
        if draw(st.integers(0, 3)) == 0:
            rate["join_overhead"] = draw(st.sampled_from([0.01, 0.1]))
        resources[f"r{index}"] = rate
    for index in range(draw(st.integers(0, 2))):
        resources[f"s{index}"] = {"kind": "space", "capacity": draw(st.sampled_from([1, 2, 5]))}
    rates = [n for n in resources if n.startswith("r")]
    spaces = [n for n in resources if n.startswith("s")]
    amounts = st.sampled_from([
        0.0, 0.2, {"dist": "exponential", "mean": 0.3}, {"dist": "uniform", "low": 0.0, "high": 0.4},
        {"dist": "lognormal", "mean": 0.2, "cv": 1.5}, {"dist": "empirical", "values": [0.0, 0.1, 0.5]},
    ])  # fmt: skip
    # Every type has both attributes (a tool may be scaled by either, whichever type runs it).
    attribute_dists = st.sampled_from([1.5, {"dist": "exponential", "mean": 1.0},
                                       {"dist": "empirical", "values": [0.0, 1.0, 2.0]}])  # fmt: skip
    scaled = draw(st.booleans())
    tools: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 4))):
        work: dict[str, Any] = {}
        for r in draw(st.lists(st.sampled_from(rates), max_size=3, unique=True)):
            amount = draw(amounts)
            per = draw(st.sampled_from([None, "size", "depth"])) if scaled else None
            work[r] = amount if per is None else {"per": per, "amount": amount}
        tool: dict[str, Any] = {"work": work}
        held = draw(st.lists(st.sampled_from(spaces), max_size=2, unique=True)) if spaces else []
        if held:
            tool["space"] = {s: min(draw(st.sampled_from([1, 1.5])), resources[s]["capacity"]) for s in held}
        tools[f"t{index}"] = tool
    if failures:
        names = list(tools)
        for index, name in enumerate(names):
            if draw(st.integers(0, 3)):
                tools[name].update(failure_policy(draw, names[index + 1 :]))

    def dag() -> dict[str, Any]:
        nodes: dict[str, Any] = {}
        for n in range(draw(st.integers(1, 5))):
            node: dict[str, Any] = {"tool": draw(st.sampled_from(list(tools)))}
            if nodes:
                node["after"] = draw(st.lists(st.sampled_from(list(nodes)), max_size=3, unique=True))
            if draw(st.integers(0, 3)) == 0:
                node["prob"] = draw(st.sampled_from([0.0, 0.3, 0.8]))
            overrides = failure_policy(draw, list(tools)) if failures and draw(st.integers(0, 2)) == 0 else {}
            if overrides:  # a node overrides some keys of its tool's policy
                for key in draw(st.lists(st.sampled_from(sorted(overrides)), min_size=1, unique=True)):
                    node[key] = overrides[key]
            nodes[f"n{n}"] = node
        return nodes

    types: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 3))):
        rtype: dict[str, Any] = {
            "weight": draw(st.sampled_from([1.0, 2.0, 0.5])),
            "priority": draw(st.integers(0, 2)),
        }
        arrival = draw(st.sampled_from(["poisson", "deterministic", "poisson", "schedule", "mmpp", "trace"]))
        if arrival == "schedule":
            rtype["arrival"] = {"process": "schedule", "repeat_s": 60.0,
                                "windows": [{"start_s": 0.0, "rate_per_min": 90}, {"start_s": 30.0, "rate_per_min": 0}]}
        elif arrival == "mmpp":
            rtype["arrival"] = {"process": "mmpp", "rates_per_min": [20, 120], "mean_sojourn_s": [20, 5]}
        elif arrival == "trace":
            gaps = draw(st.lists(st.sampled_from([0.0, 0.5, 2.0]), min_size=1, max_size=200))
            rtype["arrival"] = {"process": "trace", "times_s": [sum(gaps[:i + 1]) for i in range(len(gaps))]}
        else:
            rtype.update(rate_per_min=draw(st.sampled_from([10, 40, 90])), arrival=arrival)  # fmt: skip
        if scaled:
            rtype["attributes"] = {"size": draw(attribute_dists), "depth": draw(attribute_dists)}
        if draw(st.integers(0, 2)) == 0:
            rtype["variants"] = {"a": {"weight": 2, "nodes": dag()}, "b": {"weight": 1, "nodes": dag()}}
        else:
            rtype["nodes"] = dag()
        types[f"y{index}"] = rtype
    return {
        "name": "random-with-failures" if failures else "random-without-failures",
        "horizon_s": draw(st.sampled_from([60.0, 300.0])),
        "warmup_s": draw(st.sampled_from([0.0, 20.0])),
        "drain": draw(st.booleans()),
        "max_in_flight": draw(st.sampled_from([30, 1_000_000])),
        "resources": resources,
        "tools": tools,
        "request_types": types,
    }
