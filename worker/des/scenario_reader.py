"""Reading DES scenarios: plain data (from YAML, or from a message) checked key by key into a :class:`Scenario`.

Every error names the file (``source``) and the dotted key path of the first problem found, before anything runs.
:func:`~simfleet.worker.des.scenario.parse_scenario` and :func:`~simfleet.worker.des.scenario.load_scenario` are the
public entry points; this module holds the checks of each part: resources, tool templates with their failure
policies, request types with their DAGs, variants, attributes and arrival processes, and the SLA question.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import networkx as nx

from simfleet.shared.errors import ScenarioError, printable
from simfleet.shared.user_files import read_yaml
from simfleet.worker.des.distributions import Distribution, parse_distribution
from simfleet.worker.des.limits import (
    DEFAULT_MAX_EVENTS,
    FLOOR_METRICS,
    MAX_DEPTH,
    MAX_EVENTS,
    MAX_FILE_BYTES,
    MAX_NODES_PER_TYPE,
    MAX_PRIORITY,
    MAX_QUANTITY,
    MAX_REPLICATIONS,
    MAX_RETRIES,
    MAX_YAML_NODES,
    SEED_MAX,
    SLA_METRICS,
    check_integer,
    check_number,
    show,
)
from simfleet.worker.des.scenario import (
    POLICY_KEYS,
    Backoff,
    FailurePolicy,
    Node,
    RequestType,
    Resource,
    Scenario,
    SlaSpec,
    ToolTemplate,
    Variant,
    check_event_budget,
)


def read_scenario_file(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file.

    Raises:
        ScenarioError: naming the file and the key path of the first problem found.
    """
    return read_scenario(
        read_yaml(path, what="scenario file", max_bytes=MAX_FILE_BYTES, max_depth=MAX_DEPTH, max_nodes=MAX_YAML_NODES,
                  error=ScenarioError),
        source=str(path),
        base_dir=Path(path).parent,
    )  # fmt: skip


class _Reader:
    """Typed access to one mapping of the scenario, with errors that name the key path."""

    def __init__(self, data: Any, source: str, path: str, allowed: set[str]) -> None:
        if not isinstance(data, dict):
            raise ScenarioError(f"expected a mapping, got {type(data).__name__}", source=source, key=path or None)
        self.data, self.source, self.path = data, source, path
        unknown = sorted(show(k) if not isinstance(k, str) else k for k in set(data) - allowed)
        if unknown:
            raise ScenarioError(
                f"unknown key {printable(repr(unknown[0]))} (allowed: {', '.join(sorted(allowed))})",
                source=source,
                key=self.key(unknown[0]),
            )

    def refuse_null(self, name: str, what: str) -> None:
        """A key given as ``null`` is an error (leave the key out for its default), never read as absent."""
        if name in self.data and self.data[name] is None:
            raise self.error(name, f"is null: give {what}, or leave the key out for its default")

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, message: str) -> ScenarioError:
        return ScenarioError(message, source=self.source, key=self.key(name))

    def number(
        self, name: str, default: float | None = None, *, positive: bool = False, upper: float = MAX_QUANTITY
    ) -> float:
        self.refuse_null(name, "a number")
        value = self.data.get(name, default)
        if value is None:
            raise self.error(name, "is required (a number)")
        return check_number(value, self.source, self.key(name), positive=positive, upper=upper)

    def integer(self, name: str, default: int | None = None, *, minimum: int = 0, maximum: int | None = None) -> int:
        self.refuse_null(name, "an integer")
        value = self.data.get(name, default)
        if maximum is None:
            return check_integer(value, self.source, self.key(name), minimum=minimum)
        return check_integer(value, self.source, self.key(name), minimum=minimum, maximum=maximum)

    def text(self, name: str, default: str | None = None, choices: tuple[str, ...] = ()) -> str:
        value = self.data.get(name, default)
        if not isinstance(value, str):
            raise self.error(name, f"expected a string, got {show(value)}")
        if choices and value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}, got {show(value)}")
        return value

    def mapping(self, name: str, *, required: bool = True) -> dict[Any, Any]:
        value = self.data.get(name)
        if value is None and not required:
            return {}
        if not isinstance(value, dict) or (required and not value):
            raise self.error(name, "expected a non-empty mapping")
        return value


def read_scenario(data: Any, source: str = "<scenario>", *, base_dir: Path | None = None) -> Scenario:
    """Validate plain scenario data (as loaded from YAML) and build a :class:`Scenario`.

    ``base_dir`` is the folder of the scenario file, where an arrival trace's ``file`` is read from; without it (a
    scenario that came in a message) a trace must be given inline, as ``times_s``: no path travels in a message.

    Raises:
        ScenarioError: naming ``source`` and the dotted key path of the first problem found.
    """
    top = _Reader(
        data,
        source,
        "",
        {
            "name",
            "description",
            "horizon_s",
            "warmup_s",
            "drain",
            "replications",
            "seed",
            "max_in_flight",
            "max_events",
            "resources",
            "tools",
            "request_types",
            "sla",
        },
    )
    horizon_s = top.number("horizon_s", positive=True)
    warmup_s = top.number("warmup_s", 0.0)
    if warmup_s >= horizon_s:
        raise top.error("warmup_s", f"must be below horizon_s ({horizon_s}), got {warmup_s}")
    drain = top.data.get("drain", True)
    if not isinstance(drain, bool):
        raise top.error("drain", f"expected true or false, got {drain!r}")
    resources = {str(name): _parse_resource(str(name), spec, source) for name, spec in top.mapping("resources").items()}
    tools = {str(name): _parse_tool(str(name), spec, resources, source) for name, spec in top.mapping("tools").items()}
    _check_fallbacks(tools, source)
    types = {
        str(name): _parse_request_type(str(name), spec, tools, source, horizon_s, base_dir)
        for name, spec in top.mapping("request_types").items()
    }
    _check_attributes(tools, types, source)
    sla = _parse_sla(top.data["sla"], types, source) if top.data.get("sla") is not None else None
    scenario = Scenario(
        name=top.text("name", Path(source).stem),
        description=top.text("description", ""),
        horizon_s=horizon_s,
        warmup_s=warmup_s,
        drain=drain,
        replications=top.integer("replications", 1, minimum=1, maximum=MAX_REPLICATIONS),
        seed=top.integer("seed", 0, maximum=SEED_MAX),
        max_in_flight=top.integer("max_in_flight", 1_000_000, minimum=1),
        max_events=top.integer("max_events", DEFAULT_MAX_EVENTS, minimum=1, maximum=MAX_EVENTS),
        resources=resources,
        tools=tools,
        request_types=types,
        sla=sla,
        source=source,
    )
    check_event_budget(scenario)
    return scenario


def _parse_resource(name: str, spec: Any, source: str) -> Resource:
    r = _Reader(spec, source, f"resources.{name}",
                {"kind", "capacity", "per_tool_cap", "max_active", "unit", "step", "join_overhead"})  # fmt: skip
    kind = r.text("kind", "rate", ("rate", "space"))
    capacity = r.number("capacity", positive=True)
    per_tool_cap = max_active = None
    if kind == "space":
        for key in ("per_tool_cap", "max_active", "join_overhead"):
            if key in r.data:
                raise r.error(key, "only applies to rate resources")
    else:
        if "per_tool_cap" in r.data:
            per_tool_cap = r.number("per_tool_cap", positive=True)
        if "max_active" in r.data:
            max_active = r.integer("max_active", minimum=1)
    if r.data.get("unit") is not None and not isinstance(r.data["unit"], str):
        raise r.error("unit", "expected a string")
    step = r.number("step", positive=True) if "step" in r.data else None
    overhead = r.number("join_overhead", 0.0)
    return Resource(name, kind, capacity, per_tool_cap, max_active, r.text("unit", ""), step, overhead)


def _parse_tool(name: str, spec: Any, resources: dict[str, Resource], source: str) -> ToolTemplate:
    r = _Reader(spec, source, f"tools.{name}", {"work", "space", "description", *POLICY_KEYS})
    work: dict[str, Distribution] = {}
    per: dict[str, str] = {}
    for raw, amount in r.mapping("work", required=False).items():
        res = str(raw)
        key = f"tools.{name}.work.{res}"
        if res not in resources:
            raise ScenarioError(f"unknown resource {res!r} (declared: {', '.join(resources)})", source=source, key=key)
        if resources[res].kind != "rate":
            raise ScenarioError(f"{res!r} is a space resource: list it under 'space'", source=source, key=key)
        if isinstance(amount, dict) and "per" in amount:
            scaled = _Reader(amount, source, key, {"per", "amount"})
            per[res] = scaled.text("per")
            if "amount" not in amount:
                raise scaled.error("amount", "is required: the work per unit of the attribute")
            work[res] = parse_distribution(amount["amount"], source, f"{key}.amount")
        else:
            work[res] = parse_distribution(amount, source, key)
    space: dict[str, float] = {}
    space_reader = _Reader(r.mapping("space", required=False), source, f"tools.{name}.space", set(resources))
    for res in space_reader.data:
        resource = resources[res]
        if resource.kind != "space":
            raise space_reader.error(res, f"{res!r} is a rate resource: list it under 'work'")
        demand = space_reader.number(res)
        if demand > resource.capacity:
            raise space_reader.error(res, f"demand {demand} exceeds the capacity of {res!r} ({resource.capacity})")
        space[str(res)] = demand
    # Stable resource order makes the per-template draw order, hence the run, independent of YAML key order.
    return ToolTemplate(name, dict(sorted(work.items())), dict(sorted(space.items())), r.text("description", ""),
                        dict(sorted(per.items())), _parse_policy(r, FailurePolicy())[0])  # fmt: skip


def _parse_policy(r: _Reader, base: FailurePolicy) -> tuple[FailurePolicy, tuple[str, ...]]:
    """The failure keys of a tool template or a node over ``base``; also the keys that were given."""
    given = tuple(key for key in POLICY_KEYS if key in r.data)
    for key in given:
        r.refuse_null(key, "a value")
    fields: dict[str, Any] = {}
    if "fail_prob" in r.data:
        fields["fail_prob"] = r.number("fail_prob", upper=1.0)
    if "timeout_s" in r.data:
        fields["timeout_s"] = r.number("timeout_s", positive=True)
    if "retries" in r.data:
        fields["retries"] = r.integer("retries", minimum=0, maximum=MAX_RETRIES)
    if "backoff_s" in r.data:
        fields["backoff"] = _parse_backoff(r)
    if "on_failure" in r.data:
        value = r.data["on_failure"]
        if isinstance(value, dict):
            fallback = _Reader(value, r.source, r.key("on_failure"), {"fallback"})
            fields["on_failure"], fields["fallback"] = "fallback", fallback.text("fallback")
        elif value in ("fail", "skip"):
            fields["on_failure"], fields["fallback"] = value, None
        else:
            raise r.error("on_failure", f"must be fail, skip or {{fallback: TEMPLATE}}, got {show(value)}")
    return dataclasses.replace(base, **fields), given


def _parse_backoff(r: _Reader) -> Backoff:
    value = r.data["backoff_s"]
    if not isinstance(value, dict):
        return Backoff(base_s=r.number("backoff_s"))
    b = _Reader(value, r.source, r.key("backoff_s"), {"base_s", "factor", "max_s"})
    factor = b.number("factor", 1.0, positive=True)
    if factor < 1.0:
        raise b.error("factor", f"must be at least 1 (the backoff grows or stays), got {factor!r}")
    max_s = b.number("max_s") if "max_s" in b.data else math.inf
    return Backoff(base_s=b.number("base_s"), factor=factor, max_s=max_s)


def _check_fallbacks(tools: dict[str, ToolTemplate], source: str) -> None:
    """Every fallback names a declared template, and no chain of template fallbacks comes back to where it began."""
    for name, tool in tools.items():
        _check_fallback(tool.policy, tools, source, f"tools.{name}.on_failure.fallback")
    for name, tool in tools.items():  # every fallback named is declared: now the chains can be walked
        chain = [name]
        policy = tool.policy
        while policy.on_failure == "fallback" and policy.fallback is not None:
            if policy.fallback in chain:
                path = " -> ".join([*chain, policy.fallback])
                raise ScenarioError(f"the fallbacks form a cycle: {path}", source=source,
                                    key=f"tools.{name}.on_failure.fallback")  # fmt: skip
            chain.append(policy.fallback)
            policy = tools[policy.fallback].policy


def _check_fallback(policy: FailurePolicy, tools: dict[str, ToolTemplate], source: str, key: str) -> None:
    if policy.on_failure == "fallback" and policy.fallback not in tools:
        raise ScenarioError(f"unknown tool template {show(policy.fallback)} (declared: {_names(tools)})",
                            source=source, key=key)  # fmt: skip


def _reachable_tools(node: Node, tools: dict[str, ToolTemplate]) -> list[str]:
    """The templates a node may run: its own, then its fallback chain."""
    names = [node.tool]
    policy = node.policy
    while policy.on_failure == "fallback" and policy.fallback is not None and policy.fallback not in names:
        names.append(policy.fallback)
        policy = tools[policy.fallback].policy
    return names


def _check_attributes(tools: dict[str, ToolTemplate], types: dict[str, RequestType], source: str) -> None:
    """A tool whose work is ``per`` an attribute runs only in request types that declare that attribute."""
    for rtype in types.values():
        for node in rtype.all_nodes():
            for tool in _reachable_tools(node, tools):
                for res, attribute in tools[tool].per.items():
                    if attribute not in rtype.attributes:
                        declared = _names(rtype.attributes) or "none"
                        raise ScenarioError(
                            f"attribute {show(attribute)} is not declared by request type {show(rtype.name)}, which "
                            f"runs this tool at node {show(node.name)} (its attributes: {declared})",
                            source=source,
                            key=f"tools.{tool}.work.{res}.per",
                        )


def _parse_request_type(
    name: str, spec: Any, tools: dict[str, ToolTemplate], source: str, horizon_s: float, base_dir: Path | None
) -> RequestType:
    path = f"request_types.{name}"
    keys = {"rate_per_min", "arrival", "weight", "nodes", "variants", "description", "priority", "attributes"}
    r = _Reader(spec, source, path, keys)
    arrival = r.data.get("arrival", "poisson")
    process = None
    if isinstance(arrival, dict):
        from simfleet.worker.des.arrivals import parse_process

        if "rate_per_min" in r.data:
            raise r.error("rate_per_min", "comes from the arrival process: leave it out (scale the process with "
                          "its 'scale' key)")  # fmt: skip
        process = parse_process(arrival, source=source, key=r.key("arrival"), horizon_s=horizon_s, base_dir=base_dir)
        rate = process.mean_rate_per_min(horizon_s)
        if not rate > 0:
            raise r.error("arrival", f"the process brings no arrival before horizon_s ({horizon_s:g} s)")
        arrival = str(arrival.get("process"))
    else:
        rate = r.number("rate_per_min", positive=True)
        arrival = r.text("arrival", "poisson", ("poisson", "deterministic"))
    if ("nodes" in r.data) == ("variants" in r.data):
        raise r.error("nodes", "give either nodes (one DAG) or variants (several DAGs with weights), not both"
                      if "nodes" in r.data else "is required (or variants: several DAGs with weights)")  # fmt: skip
    variants: tuple[Variant, ...] = ()
    nodes: tuple[Node, ...] = ()
    if "nodes" in r.data:
        nodes = _parse_dag(r.mapping("nodes"), tools, source, r.key("nodes"))
    else:
        parsed = []
        for variant_name, variant_spec in r.mapping("variants").items():
            v = _Reader(variant_spec, source, r.key(f"variants.{variant_name}"), {"weight", "nodes"})
            parsed.append(Variant(str(variant_name), v.number("weight", positive=True),
                                  _parse_dag(v.mapping("nodes"), tools, source, v.key("nodes"))))  # fmt: skip
        variants = tuple(parsed)
    attributes = {
        str(attr): parse_distribution(dist, source, r.key(f"attributes.{attr}"))
        for attr, dist in r.mapping("attributes", required=False).items()
    }
    return RequestType(
        name=name,
        rate_per_min=rate,
        nodes=nodes,
        arrival=arrival,
        weight=r.number("weight", 1.0, positive=True),
        description=r.text("description", ""),
        priority=r.integer("priority", 0, minimum=-MAX_PRIORITY, maximum=MAX_PRIORITY),
        variants=variants,
        attributes=attributes,
        process=process,
    )


def _parse_dag(nodes_spec: dict[Any, Any], tools: dict[str, ToolTemplate], source: str, path: str) -> tuple[Node, ...]:
    if len(nodes_spec) > MAX_NODES_PER_TYPE:
        raise ScenarioError(f"{len(nodes_spec)} nodes; a request type has at most {MAX_NODES_PER_TYPE}",
                            source=source, key=path)  # fmt: skip
    graph: nx.DiGraph = nx.DiGraph()
    nodes: dict[str, Node] = {}
    for node_name, node_spec in nodes_spec.items():
        nr = _Reader(node_spec, source, f"{path}.{node_name}", {"tool", "after", "prob", *POLICY_KEYS})
        tool = nr.text("tool")
        if tool not in tools:
            raise nr.error("tool", f"unknown tool template {show(tool)} (declared: {_names(tools)})")
        after = nr.data.get("after", [])
        if isinstance(after, str):
            after = [after]
        if not isinstance(after, list):
            raise nr.error("after", f"expected a list of node names, got {show(after)}")
        seen: set[str] = set()
        for pred in after:
            if not isinstance(pred, str | int) or isinstance(pred, bool):
                raise nr.error("after", f"expected node names, got {show(pred)}")
            if pred not in nodes_spec:
                raise nr.error("after", f"unknown node {show(pred)} (nodes: {_names(nodes_spec)})")
            if str(pred) in seen:
                raise nr.error("after", f"node {show(pred)} is listed twice")
            seen.add(str(pred))
        policy, overrides = _parse_policy(nr, tools[tool].policy)
        _check_fallback(policy, tools, source, nr.key("on_failure.fallback"))
        prob = nr.number("prob", 1.0, upper=1.0)
        nodes[str(node_name)] = Node(str(node_name), tool, tuple(str(p) for p in after), prob, policy, overrides)
        graph.add_node(str(node_name))
        graph.add_edges_from((str(p), str(node_name)) for p in after)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        names = " -> ".join([str(u) for u, _ in cycle] + [str(cycle[0][0])])
        raise ScenarioError(f"the DAG has a cycle: {names}", source=source, key=f"{path}.{cycle[0][1]}.after")
    order = list(nx.lexicographical_topological_sort(graph))
    return tuple(nodes[n] for n in order)


def _parse_sla(spec: Any, types: dict[str, RequestType], source: str) -> SlaSpec:
    """The ``sla`` block, its threshold read by the metric's kind.

    A latency metric takes ``threshold_s`` (seconds; ``threshold`` is read the same, as :meth:`Scenario.to_dict`
    writes it); ``success_ratio`` takes ``threshold``, a ratio in (0, 1].
    """
    allowed = {"request_type", "metric", "threshold", "threshold_s", "replications", "rel_tol", "scale"}
    r = _Reader(spec, source, "sla", allowed)
    request_type = r.text("request_type")
    if request_type not in types:
        raise r.error("request_type", f"unknown request type {show(request_type)} (declared: {_names(types)})")
    metric = r.text("metric", "p95", SLA_METRICS)
    if metric in FLOOR_METRICS:
        if "threshold_s" in r.data:
            raise r.error("threshold_s", f"{metric} is a ratio, not seconds: give sla.threshold (in (0, 1], e.g. "
                                         "0.99) instead")  # fmt: skip
        threshold = r.number("threshold", positive=True, upper=1.0)
    elif "threshold" in r.data:
        if "threshold_s" in r.data:
            raise r.error("threshold", "give threshold_s or threshold (both seconds for a latency metric), not both")
        threshold = r.number("threshold", positive=True)
    else:
        threshold = r.number("threshold_s", positive=True)
    return SlaSpec(
        request_type=request_type,
        metric=metric,
        threshold=threshold,
        replications=r.integer("replications", 5, minimum=1, maximum=MAX_REPLICATIONS),
        rel_tol=_rel_tol(r),
        scale=r.text("scale", "type", ("type", "mix")),
    )


def _rel_tol(r: _Reader) -> float:
    rel_tol = r.number("rel_tol", 0.01, positive=True)
    if rel_tol >= 1.0:
        raise r.error("rel_tol", f"must be below 1 (a relative width), got {rel_tol!r}")
    return rel_tol


def _names(names: Any, limit: int = 10) -> str:
    """Up to ``limit`` declared names, for an error message."""
    listed = [printable(str(n), 40) for n in list(names)[: limit + 1]]
    return ", ".join(listed[:limit]) + (", ..." if len(listed) > limit else "")
