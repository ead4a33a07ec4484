"""DES scenarios: resources, tool templates, request types as DAGs, run control, and an optional SLA question.

A scenario is read from YAML (or from the same structure as plain data, which is how it travels in messages) and
validated completely before any run: every error names the file and the dotted key path. Units are part of the
key names: seconds (``horizon_s``), requests per minute (``rate_per_min``); capacities are work units per second
(rate resources) or space units (space resources), and work amounts are work units.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simfleet.shared.errors import ConfigError, ScenarioError
from simfleet.worker.des.distributions import Distribution
from simfleet.worker.des.limits import (
    DEFAULT_MAX_EVENTS,
    FLOOR_METRICS,
    MAX_QUANTITY,
    check_number,
)


@dataclass(frozen=True)
class Resource:
    """A shared resource: ``rate`` (processor sharing of a capacity) or ``space`` (held while a tool runs)."""

    name: str
    kind: str = "rate"
    capacity: float = 1.0
    per_tool_cap: float | None = None
    max_active: int | None = None
    unit: str = ""
    step: float | None = None
    """The resource's natural increment of capacity (a core, a slot, a GiB) for the capacity searches."""
    join_overhead: float = 0.0
    """Work units added to a tool's work on this (rate) resource each time it joins it with work to do."""

    @property
    def effective_capacity(self) -> float:
        """The most work per second the resource can deliver, given ``max_active`` and ``per_tool_cap``."""
        if self.max_active is not None and self.per_tool_cap is not None:
            return min(self.capacity, self.max_active * self.per_tool_cap)
        return self.capacity


@dataclass(frozen=True)
class Backoff:
    """The wait before retry k (k = 1, 2, ...) of a failed attempt: ``min(max_s, base_s × factor^(k−1))`` seconds."""

    base_s: float = 0.0
    factor: float = 1.0
    max_s: float = math.inf

    def delay_s(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first), at most ``MAX_QUANTITY`` (1e12 s)."""
        if self.factor == 1.0 or self.base_s == 0.0:
            return min(self.max_s, self.base_s)
        # Checked in logarithms first: base × factor^(k−1) overflows a float long before a thousand retries of 10.
        if math.log(self.base_s) + (retry - 1) * math.log(self.factor) >= math.log(MAX_QUANTITY):
            return min(self.max_s, MAX_QUANTITY)
        return min(self.max_s, self.base_s * self.factor ** (retry - 1))

    def to_data(self) -> float | dict[str, float]:
        """The plain form :func:`parse_scenario` reads (a number when fixed)."""
        if self.factor == 1.0 and math.isinf(self.max_s):
            return self.base_s
        data: dict[str, float] = {"base_s": self.base_s, "factor": self.factor}
        if not math.isinf(self.max_s):
            data["max_s"] = self.max_s
        return data


ON_FAILURE = ("fail", "skip", "fallback")


@dataclass(frozen=True)
class FailurePolicy:
    """What happens to the attempts of a tool at a node: failure, timeout, retries, and the last resort.

    Attributes:
        fail_prob: probability that an attempt fails at its completion (its work was done, and is wasted).
        timeout_s: an attempt still unfinished this long after it started is cancelled (``None``: never).
        retries: how many times a failed or timed-out attempt is tried again (fresh work each time).
        backoff: the wait before each retry.
        on_failure: ``fail`` (the request fails), ``skip`` (the node counts as done) or ``fallback``.
        fallback: the template run in the node's place when ``on_failure`` is ``fallback``.
    """

    fail_prob: float = 0.0
    timeout_s: float | None = None
    retries: int = 0
    backoff: Backoff = Backoff()
    on_failure: str = "fail"
    fallback: str | None = None

    @property
    def can_fail(self) -> bool:
        """Whether an attempt under this policy can end other than by finishing its work."""
        return self.fail_prob > 0.0 or self.timeout_s is not None

    def expected_attempts(self) -> float:
        """Mean attempts per run of the node, counting failures only (a timeout can only shorten the work)."""
        p = self.fail_prob
        return float(self.retries + 1) if p >= 1.0 else (1.0 - p ** (self.retries + 1)) / (1.0 - p)

    def to_data(self) -> dict[str, Any]:
        """The keys :func:`parse_scenario` reads, those that differ from the defaults."""
        data: dict[str, Any] = {}
        if self.fail_prob:
            data["fail_prob"] = self.fail_prob
        if self.timeout_s is not None:
            data["timeout_s"] = self.timeout_s
        if self.retries:
            data["retries"] = self.retries
        if self.backoff != Backoff():
            data["backoff_s"] = self.backoff.to_data()
        if self.on_failure == "fallback":
            data["on_failure"] = {"fallback": self.fallback}
        elif self.on_failure != "fail":
            data["on_failure"] = self.on_failure
        return data


POLICY_KEYS = ("fail_prob", "timeout_s", "retries", "backoff_s", "on_failure")
"""The keys of a failure policy, in a tool template (its defaults) or a node (overriding them)."""


@dataclass(frozen=True)
class ToolTemplate:
    """What one run of a tool needs: work per rate resource and space held per space resource.

    ``per`` names, for some rate resources, a request attribute that the work drawn there is multiplied by;
    ``policy`` is the failure policy of the tool wherever a node does not override it (and when it runs as a
    fallback).
    """

    name: str
    work: dict[str, Distribution] = field(default_factory=dict)
    space: dict[str, float] = field(default_factory=dict)
    description: str = ""
    per: dict[str, str] = field(default_factory=dict)
    policy: FailurePolicy = FailurePolicy()


@dataclass(frozen=True)
class Node:
    """A node of a request type's DAG: a tool template, the nodes that must finish first, and how it may fail.

    ``prob`` is the probability that the node runs at all in a request (else it counts as done at once);
    ``policy`` is its failure policy (the template's, with the node's own keys over it).
    """

    name: str
    tool: str
    after: tuple[str, ...] = ()
    prob: float = 1.0
    policy: FailurePolicy = FailurePolicy()
    overrides: tuple[str, ...] = ()
    """The policy keys the node itself set (the rest come from the template); kept for the plain-data form."""


@dataclass(frozen=True)
class Variant:
    """One DAG a request of a type may take, chosen at arrival with probability proportional to ``weight``."""

    name: str
    weight: float
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class RequestType:
    """A kind of request: its DAG (nodes in a deterministic topological order) and its arrival process.

    A type either has one DAG (``nodes``) or several ``variants``. ``rate_per_min`` is its mean arrival rate; with
    a ``process`` (a schedule, an MMPP, a trace: :mod:`simfleet.worker.des.arrivals`) it is that process's mean rate
    and changing it scales the process. ``attributes`` are drawn once per request at arrival.
    """

    name: str
    rate_per_min: float
    nodes: tuple[Node, ...]
    arrival: str = "poisson"
    weight: float = 1.0
    description: str = ""
    priority: int = 0
    variants: tuple[Variant, ...] = ()
    attributes: dict[str, Distribution] = field(default_factory=dict)
    process: Any = None

    def dags(self) -> tuple[Variant, ...]:
        """The type's DAGs with their weights: its variants, or its one DAG (an unnamed variant of weight 1)."""
        return self.variants or (Variant("", 1.0, self.nodes),)

    def all_nodes(self) -> tuple[Node, ...]:
        """Every node of every DAG of the type."""
        return tuple(node for dag in self.dags() for node in dag.nodes)


@dataclass(frozen=True)
class SlaSpec:
    """The inverse question: the largest arrival rate at which ``metric`` of ``request_type`` meets ``threshold``.

    A latency metric (seconds) must stay at or below the threshold; ``success_ratio`` (a floor) at or above it.

    ``scale`` says what the searched rate is: ``type`` scales only ``request_type``'s rate, ``mix`` scales every
    type's rate together, keeping the proportions of the scenario (the searched rate is then the total).
    """

    request_type: str
    metric: str
    threshold: float
    """Seconds for a latency metric (the file's ``threshold_s``); a ratio in (0, 1] for ``success_ratio``."""
    replications: int = 5
    rel_tol: float = 0.01
    scale: str = "type"

    @property
    def threshold_s(self) -> float:
        """The threshold under its former name: seconds for a latency metric, the ratio for ``success_ratio``."""
        return self.threshold

    @property
    def floor(self) -> bool:
        """Whether the metric is a floor (``success_ratio``: it must stay at or above the threshold)."""
        return self.metric in FLOOR_METRICS


@dataclass(frozen=True)
class Scenario:
    """A complete, validated DES scenario."""

    name: str
    horizon_s: float
    resources: dict[str, Resource]
    tools: dict[str, ToolTemplate]
    request_types: dict[str, RequestType]
    warmup_s: float = 0.0
    drain: bool = True
    replications: int = 1
    seed: int = 0
    max_in_flight: int = 1_000_000
    max_events: int = DEFAULT_MAX_EVENTS
    sla: SlaSpec | None = None
    description: str = ""
    source: str = "<scenario>"

    @property
    def fallible(self) -> bool:
        """Whether any attempt can fail or time out (the model's failure outputs then mean something)."""
        return any(t.policy.can_fail for t in self.tools.values()) or any(
            node.policy.can_fail for rt in self.request_types.values() for node in rt.all_nodes()
        )

    def template_runs(self, type_name: str) -> dict[str, float]:
        """Mean runs of each tool template per request of ``type_name``.

        A node counts its variant's share, its ``prob``, its mean attempts (retries after failures) and, when all its
        attempts may fail, its fallback chain. Timeouts are not counted: they only shorten work.
        """
        rtype = self.request_types[type_name]
        total = math.fsum(dag.weight for dag in rtype.dags())
        runs: dict[str, float] = {}
        for dag in rtype.dags():
            for node in dag.nodes:
                self._add_runs(runs, node.tool, node.policy, dag.weight / total * node.prob)
        return runs

    def _add_runs(self, runs: dict[str, float], tool: str, policy: FailurePolicy, times: float) -> None:
        runs[tool] = runs.get(tool, 0.0) + times * policy.expected_attempts()
        if policy.on_failure == "fallback" and policy.fallback is not None and policy.fail_prob > 0.0:
            fallback = self.tools[policy.fallback]
            self._add_runs(runs, fallback.name, fallback.policy, times * policy.fail_prob ** (policy.retries + 1))

    def mean_work(self, tool: str, resource: str, type_name: str | None = None) -> float:
        """Mean work (work units) of one run of ``tool`` on ``resource``.

        The draw's mean times the mean of the request attribute it is ``per`` (of ``type_name``), plus the
        resource's ``join_overhead`` when there is work.
        """
        template = self.tools[tool]
        mean = template.work[resource].mean
        attribute = template.per.get(resource)
        if attribute is not None and type_name is not None:
            mean *= self.request_types[type_name].attributes[attribute].mean
        return mean + self.resources[resource].join_overhead if mean > 0 else mean

    def mean_work_per_request(self, type_name: str) -> dict[str, float]:
        """Mean work a request of ``type_name`` puts on each rate resource (work units)."""
        totals: dict[str, float] = {}
        for tool, runs in self.template_runs(type_name).items():
            for res in self.tools[tool].work:
                totals[res] = totals.get(res, 0.0) + runs * self.mean_work(tool, res, type_name)
        return totals

    def offered_load(self) -> dict[str, float]:
        """Utilisation each rate resource would have at the scenario's rates (ρ = λ·E[work] / capacity)."""
        load = {name: 0.0 for name, res in self.resources.items() if res.kind == "rate"}
        for rt in self.request_types.values():
            for res, work in self.mean_work_per_request(rt.name).items():
                load[res] += rt.rate_per_min / 60.0 * work / self.resources[res].effective_capacity
        return load

    def holding_time_s(self, tool: str, weight: float = 1.0, type_name: str | None = None) -> float:
        """The no-load run time of ``tool`` (seconds): how long it holds its space when it runs alone.

        Alone on each rate resource it progresses at ``min(capacity, weight × per_tool_cap)`` (the cap is per unit
        of weight, see docs/des.md); it works on all its resources at once and finishes with the slowest, so the
        estimate is the largest of ``mean work / that rate``. The largest of the means is at most the mean of the
        largest, and contention only lengthens a run, so a bound built on it is never below the true one.
        """
        longest = 0.0
        for name in self.tools[tool].work:
            res = self.resources[name]
            speed = res.capacity if res.per_tool_cap is None else min(res.capacity, weight * res.per_tool_cap)
            longest = max(longest, self.mean_work(tool, name, type_name) / speed)
        return longest

    def mean_use_per_request(self, type_name: str) -> dict[str, float]:
        """What a request of ``type_name`` asks of each resource, in units of its capacity × seconds.

        A rate resource: the mean work (work units, as :meth:`mean_work_per_request`). A space resource: the sum
        over the request's tool runs of demand × no-load holding time (:meth:`holding_time_s`), space-unit-seconds.
        Either way, λ × this / capacity is the share of the resource the type keeps busy (at least, for space).
        """
        rtype = self.request_types[type_name]
        use = self.mean_work_per_request(type_name)
        for tool_name, runs in self.template_runs(type_name).items():
            tool = self.tools[tool_name]
            if tool.space:
                held = self.holding_time_s(tool_name, rtype.weight, type_name)
                for res, demand in tool.space.items():
                    use[res] = use.get(res, 0.0) + runs * demand * held
        return use

    def capacity_bound_per_min(self, request_type: str | None = None) -> float:
        """The rate (requests/min) above which no scenario can be stable: the least of :meth:`bounds_per_min`."""
        return min(self.bounds_per_min(request_type).values(), default=math.inf)

    def bounds_per_min(self, request_type: str | None = None) -> dict[str, float]:
        """The rate (requests/min) each resource alone allows, for the resources the searched rate uses.

        Every resource bounds the rate at its capacity over the use per request (:meth:`mean_use_per_request`):
        a rate resource by its effective capacity over the mean work, a space resource held for each tool's whole
        run by capacity / (Σ demand × holding time), the holding time estimated from the tools' no-load run time.
        With ``request_type`` only that type's rate varies (the others keep theirs and take their share first);
        with ``None`` the whole mix scales and the bound is on the total rate.
        """
        bounds: dict[str, float] = {}
        total = sum(rt.rate_per_min for rt in self.request_types.values())
        uses = {name: self.mean_use_per_request(name) for name in self.request_types}
        for name, res in self.resources.items():
            capacity = res.effective_capacity if res.kind == "rate" else res.capacity
            if request_type is None:
                use = sum(rt.rate_per_min / total * uses[rt.name].get(name, 0.0) for rt in self.request_types.values())
                if use > 0:
                    bounds[name] = capacity / use * 60.0
                continue
            own = uses[request_type].get(name, 0.0)
            if own <= 0:
                continue
            others = sum(
                rt.rate_per_min / 60.0 * uses[rt.name].get(name, 0.0)
                for rt in self.request_types.values()
                if rt.name != request_type
            )
            bounds[name] = max(0.0, capacity - others) / own * 60.0
        return bounds

    def binding_resource(self, request_type: str | None = None) -> str | None:
        """The resource that sets :meth:`capacity_bound_per_min` (``None`` when nothing bounds the rate)."""
        bounds = self.bounds_per_min(request_type)
        return min(bounds, key=lambda name: bounds[name]) if bounds else None

    def with_rates(self, rates_per_min: dict[str, float]) -> Scenario:
        """A copy with some request types' rates replaced.

        Raises:
            ScenarioError: a rate that is not a number within the limits (a swept rate of 0, a probe rate that
                underflowed), naming the type's ``rate_per_min`` key.
        """
        for name, rate in rates_per_min.items():
            check_number(rate, self.source, f"request_types.{name}.rate_per_min", positive=True)
        types = {
            name: rt if name not in rates_per_min else _at_rate(rt, rates_per_min[name], self.horizon_s)
            for name, rt in self.request_types.items()
        }
        return dataclasses.replace(self, request_types=types)

    def with_rate(self, rate_per_min: float, request_type: str | None = None) -> Scenario:
        """A copy at a searched rate: one type's rate, or (``None``) the total rate of the mix at fixed proportions."""
        if request_type is not None:
            return self.with_rates({request_type: rate_per_min})
        total = sum(rt.rate_per_min for rt in self.request_types.values())
        return self.with_rates(
            {name: rt.rate_per_min / total * rate_per_min for name, rt in self.request_types.items()}
        )

    def with_capacity(self, resource: str, capacity: float) -> Scenario:
        """A copy in which ``resource`` has ``capacity``; its ``max_active`` (where set) scales in proportion.

        ``max_active`` becomes ``max(1, round(max_active × capacity / old capacity))``: a station of c servers of
        ``per_tool_cap`` each, given ``capacity = k × per_tool_cap``, becomes a station of k servers.

        Raises:
            ScenarioError: a capacity out of the limits, or below a tool's space demand on a space resource,
                naming ``resources.<name>.capacity``.
        """
        old = self.resources[resource]
        key = f"resources.{resource}.capacity"
        check_number(capacity, self.source, key, positive=True)
        if old.kind == "space":
            demand = max((t.space.get(resource, 0.0) for t in self.tools.values()), default=0.0)
            if demand > capacity:
                raise ScenarioError(f"{capacity:g} is below the largest space demand on {resource!r} ({demand:g})",
                                    source=self.source, key=key)  # fmt: skip
        max_active = old.max_active
        if max_active is not None:
            max_active = max(1, round(max_active * capacity / old.capacity))
        resources = dict(self.resources)
        resources[resource] = dataclasses.replace(old, capacity=capacity, max_active=max_active)
        return dataclasses.replace(self, resources=resources)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (msgpack/JSON-serialisable) that :func:`parse_scenario` turns back into this scenario."""
        data: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "horizon_s": self.horizon_s,
            "warmup_s": self.warmup_s,
            "drain": self.drain,
            "replications": self.replications,
            "seed": self.seed,
            "max_in_flight": self.max_in_flight,
            "max_events": self.max_events,
            "resources": {
                r.name: {
                    k: v
                    for k, v in (
                        ("kind", r.kind),
                        ("capacity", r.capacity),
                        ("per_tool_cap", r.per_tool_cap),
                        ("max_active", r.max_active),
                        ("unit", r.unit),
                        ("step", r.step),
                        ("join_overhead", r.join_overhead or None),
                    )
                    if v is not None and v != ""
                }
                for r in self.resources.values()
            },
            "tools": {t.name: _tool_data(t) for t in self.tools.values()},
            "request_types": {rt.name: _type_data(rt) for rt in self.request_types.values()},
        }
        if self.sla is not None:
            data["sla"] = dataclasses.asdict(self.sla)
        return data


def _at_rate(rtype: RequestType, rate_per_min: float, horizon_s: float) -> RequestType:
    """``rtype`` at a new mean rate: a process (schedule, MMPP, trace) is scaled by the ratio of the rates."""
    if rtype.process is None:
        return dataclasses.replace(rtype, rate_per_min=rate_per_min)
    process = rtype.process.with_scale(rtype.process.scale * rate_per_min / rtype.rate_per_min)
    return dataclasses.replace(rtype, rate_per_min=process.mean_rate_per_min(horizon_s), process=process)


def _tool_data(tool: ToolTemplate) -> dict[str, Any]:
    work: dict[str, Any] = {}
    for res, dist in tool.work.items():
        attribute = tool.per.get(res)
        work[res] = dist.to_dict() if attribute is None else {"per": attribute, "amount": dist.to_dict()}
    return {"description": tool.description, "work": work, "space": dict(tool.space), **tool.policy.to_data()}


def _policy_value(policy: FailurePolicy, key: str) -> Any:
    if key == "backoff_s":
        return policy.backoff.to_data()
    if key == "on_failure":
        return {"fallback": policy.fallback} if policy.on_failure == "fallback" else policy.on_failure
    return getattr(policy, key)


def _nodes_data(nodes: tuple[Node, ...]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for node in nodes:
        item: dict[str, Any] = {"tool": node.tool, "after": list(node.after)}
        if node.prob != 1.0:
            item["prob"] = node.prob
        item.update({key: _policy_value(node.policy, key) for key in node.overrides})
        data[node.name] = item
    return data


def _type_data(rtype: RequestType) -> dict[str, Any]:
    data: dict[str, Any] = {"description": rtype.description, "weight": rtype.weight}
    if rtype.process is None:
        data.update(rate_per_min=rtype.rate_per_min, arrival=rtype.arrival)
    else:
        data["arrival"] = rtype.process.to_dict()
    if rtype.priority:
        data["priority"] = rtype.priority
    if rtype.attributes:
        data["attributes"] = {name: dist.to_dict() for name, dist in rtype.attributes.items()}
    if rtype.variants:
        data["variants"] = {v.name: {"weight": v.weight, "nodes": _nodes_data(v.nodes)} for v in rtype.variants}
    else:
        data["nodes"] = _nodes_data(rtype.nodes)
    return data


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file (see :mod:`simfleet.worker.des.scenario_reader`).

    Raises:
        ScenarioError: naming the file and the key path of the first problem found.
    """
    from simfleet.worker.des.scenario_reader import read_scenario_file

    return read_scenario_file(path)


def parse_scenario(data: Any, source: str = "<scenario>", *, base_dir: Path | None = None) -> Scenario:
    """Validate plain scenario data (as loaded from YAML) and build a :class:`Scenario`.

    ``base_dir`` is the folder of the scenario file, where an arrival trace's ``file`` is read from; without it (a
    scenario that came in a message) a trace must be given inline, as ``times_s``: no path travels in a message.

    Raises:
        ScenarioError: naming ``source`` and the dotted key path of the first problem found.
    """
    from simfleet.worker.des.scenario_reader import read_scenario

    return read_scenario(data, source, base_dir=base_dir)


def as_scenario(value: object) -> Scenario:
    """A scenario from what the API accepts: a ``Scenario``, a scenario file (``str`` or a path) or its plain data.

    Raises:
        ConfigError: anything else (naming ``scenario``); ScenarioError: a file or dict that is not a valid scenario.
    """
    if isinstance(value, Scenario):
        return value
    if isinstance(value, dict):
        return parse_scenario(value)
    if isinstance(value, str | os.PathLike):
        return load_scenario(Path(value))
    raise ConfigError(f"must be a Scenario, a scenario file (str or Path) or its plain-data form (dict), got "
                      f"{type(value).__name__}", key="scenario")  # fmt: skip


def expected_events(scenario: Scenario) -> float:
    """About how many events one replication processes: each arrival, and each node's completion on each resource.

    A lower estimate for a drained run (the drain adds the completions of the requests still in flight).
    """
    total = 0.0
    for rt in scenario.request_types.values():
        parts = 0.0
        for tool, runs in scenario.template_runs(rt.name).items():
            template = scenario.tools[tool]
            parts += runs * (max(1, len(template.work)) + (template.policy.timeout_s is not None))
        total += rt.rate_per_min / 60.0 * scenario.horizon_s * (1 + parts)
    return total


def check_event_budget(scenario: Scenario, key: str = "horizon_s") -> None:
    """Refuse, before any run, a scenario whose expected events exceed its ``max_events``.

    Raises:
        ScenarioError: naming ``key`` (``horizon_s``, or the rate that was changed), the estimate and the limit.
    """
    estimate = expected_events(scenario)
    if estimate > scenario.max_events:
        raise ScenarioError(
            f"a replication would process about {estimate:.3g} events, above max_events ({scenario.max_events}): "
            "shorten horizon_s, lower the rates, or raise max_events",
            source=scenario.source,
            key=key,
        )
