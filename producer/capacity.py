"""Capacity search: the smallest (or cheapest) capacity of some resources at which every SLA term holds.

The SLA search asks what load a cluster carries; this asks the inverse of it: at the scenario's own load, how much
of some resources does the cluster need? Capacity comes in each resource's natural increment, its ``step`` (a slot,
a core, 8 GiB), so a candidate gives each searched resource ``m × step`` (``m`` whole, at least 1) and leaves the
other resources as they are; ``max_active`` scales with the capacity (:meth:`Scenario.with_capacity`).

**Decisions.** A candidate is judged by :mod:`simfleet.producer.confidence`: it passes when every term's 95%
interval lies at or below its threshold, and gets more replications (the next indices) while undecided, up to a
cap. Undecided at the cap counts as *not shown to pass*. Every candidate runs the same seed and replication indices
(common random numbers), so the differences between candidates are differences of capacity, not of luck.

**The assumption.** The SLA metrics do not get worse when capacity is added (they are monotone in each resource's
capacity). This is what queueing theory gives for these models (more servers or a faster server shorten every
queue), and it is what lets a search skip candidates: the answer is exact under it, and the probes are listed so
that a reader can check it.

**Lower limits.** No candidate below a resource's lower limit is probed: for a rate resource the smallest ``m``
whose effective capacity exceeds the work offered to it at the scenario's load (below it no run is stable); for a
space resource the smallest ``m`` that holds the largest single demand.

**One resource.** Probe the lower limit, then step up by growing increments (+1, +2, +4, ...) until a candidate
passes, then bisect between the last candidate that did not pass and the first that did. The answer is the smallest
passing ``m``, reported with the largest non-passing ``m`` below it (both with every term's interval).

**Several resources.** First, each resource's *floor*: the one-resource search above for it alone, with every other
resource at the top of the grid (``max_steps`` above its lower limit). By the assumption no candidate below a floor
can pass, since even the most of everything else does not make it pass; and when the top corner of the grid itself
does not pass, nothing in the grid can, and the search stops. Then candidates from the floors to the top are visited
cheapest first (cost: ``costs[r]`` per unit of capacity, default 1 per step; ties: fewer steps in all, then the
smaller steps of the resources in the order given), and a candidate whose every coordinate is at or below those of
a candidate that did not pass is skipped: it cannot pass either. The first candidate that passes is the cheapest of
the grid, since every cheaper one was below a floor, probed, or skipped. The probes grow with the number of grid
points between the floors and the answer's cost: keep the resources few.

**Stopping rules.** An answer (converged); or no candidate within ``max_steps`` steps above the lower limits passes
(no answer: the top of the range does not pass, or every candidate was ruled out); or ``max_probes`` probes (not
converged).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from simfleet.producer.confidence import (
    DEFAULT_MAX_REPLICATIONS,
    Decision,
    Precision,
    SlaTerm,
    check_term,
    judge_candidate,
)
from simfleet.shared.errors import ConfigError, printable
from simfleet.worker.des.limits import SEED_MAX, check_integer, check_number
from simfleet.worker.des.scenario import Scenario, as_scenario

if TYPE_CHECKING:
    from simfleet.producer.sla import Evaluator
    from simfleet.shared.messages.des import ReplicationSummary

Stop = Literal["answer", "max_steps", "max_probes"]

DEFAULT_MAX_STEPS = 32
"""How many steps above its lower limit a resource may be given when no other bound is set."""
DEFAULT_MAX_PROBES = 30
"""How many candidates a search probes at most when no other bound is set."""


def capacity_unit(scenario: Scenario, resource: str) -> str:
    """The unit of ``resource``'s capacity: work units per second (rate) or space units (space)."""
    res = scenario.resources[resource]
    if res.kind == "space":
        return res.unit or "space units"
    return f"{res.unit}/s" if res.unit else "work units/s"


@dataclass(frozen=True, kw_only=True)
class CapacityProbe(Decision):
    """One probed candidate: the steps of each searched resource, its cost and what was measured there."""

    steps: dict[str, int]
    capacities: dict[str, float]
    cost: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data for strict JSON (a figure that is not finite is ``None``, with the term's ``reason``)."""
        return {"steps": dict(self.steps), "capacities": dict(self.capacities), "cost": self.cost,
                **self.decision_dict()}  # fmt: skip


@dataclass
class CapacityResult:
    """The answer of a capacity search (see the module's text for what each part means)."""

    scenario: str
    terms: list[SlaTerm]
    resources: list[str]
    step: dict[str, float]
    units: dict[str, str]
    costs: dict[str, float]
    """Cost per unit of capacity of each searched resource."""
    lower: dict[str, int]
    """Each resource's lower limit, in steps."""
    rate_per_min: float
    replications: int
    max_replications: int
    max_steps: int
    max_probes: int
    stop: Stop
    answer: CapacityProbe | None
    below: CapacityProbe | None = None
    """One resource: the largest probed candidate below the answer that did not pass (None at the lower limit)."""
    probes: list[CapacityProbe] = field(default_factory=list)
    skipped: int = 0
    """Several resources: candidates cheaper than the answer skipped as dominated by one that did not pass."""
    floor: dict[str, int] = field(default_factory=dict)
    """Several resources: each one's smallest passing steps with every other resource at the top of the grid."""
    visited: dict[tuple[int, ...], CapacityProbe] = field(default_factory=dict, repr=False)
    """The probes by their steps (in resource order): a candidate is run once."""
    warnings: list[str] = field(default_factory=list)
    """Plain-words warnings about the answer (a success ratio that was always 1, a quantile estimated from too few
    requests per replication)."""

    @property
    def converged(self) -> bool:
        """Whether the search ended with its answer."""
        return self.stop == "answer"

    def _capacity_text(self, probe: CapacityProbe) -> str:
        return " + ".join(f"{name} {probe.capacities[name]:g} {self.units[name]} ({probe.steps[name]} step"
                          f"{'s' if probe.steps[name] != 1 else ''})" for name in self.resources)  # fmt: skip

    def statement(self) -> str:
        """The answer in plain words, with its confidence."""
        terms = " and ".join(t.describe() for t in self.terms)
        load = f"at {self.rate_per_min:.4g} requests/min"
        if self.answer is None:
            why = (f"within {self.max_steps} steps above the lower limits" if self.stop == "max_steps"
                   else f"in {self.max_probes} probes (not converged)")  # fmt: skip
            return f"no probed capacity met {terms} {load} with 95% confidence {why}"
        text = f"{self._capacity_text(self.answer)}, cost {self.answer.cost:.4g}, meets {terms} {load}"
        text += ", with 95% confidence"
        if len(self.resources) > 1:
            return (
                text
                + "; no cheaper combination does (each was probed, or has no more of any resource than one that did "
                "not pass)"
            )
        name = self.resources[0]
        if self.below is None:
            return text + f"; {self.answer.steps[name]} steps is the least that can be stable at this load"
        how = "is undecided at this precision" if self.below.verdict == "undecided" else "does not"
        return text + f"; {self.below.capacities[name]:g} {self.units[name]} {how}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for strict JSON; ``probes`` lists every probe in the order it ran."""
        return {
            "scenario": self.scenario,
            "terms": [t.to_dict() for t in self.terms],
            "resources": list(self.resources),
            "step": dict(self.step),
            "units": dict(self.units),
            "costs_per_unit": dict(self.costs),
            "lower_steps": dict(self.lower),
            "rate_per_min": self.rate_per_min,
            "replications": self.replications,
            "max_replications": self.max_replications,
            "max_steps": self.max_steps,
            "max_probes": self.max_probes,
            "converged": self.converged,
            "stop": self.stop,
            "answer": None if self.answer is None else self.answer.to_dict(),
            "below": None if self.below is None else self.below.to_dict(),
            "floor_steps": dict(self.floor),
            "skipped": self.skipped,
            "statement": self.statement(),
            "warnings": list(self.warnings),
            "probes": [p.to_dict() for p in self.probes],
        }


def check_resources(scenario: Scenario, resources: Sequence[str] | None, *, key: str = "resources") -> list[str]:
    """The searched resources: the names given, or every resource that declares a ``step``.

    Raises:
        ConfigError: an unknown resource, a name given twice, or a resource without a step (naming
            ``resources.<name>.step`` and ``key``), or no resource with a step at all.
    """
    if resources is None:
        names = [name for name, res in scenario.resources.items() if res.step is not None]
        if not names:
            raise ConfigError(f"no resource of {scenario.source} declares a step (its natural increment of "
                              "capacity): add one, e.g. 'step: 1' for whole slots", key=key)  # fmt: skip
        return names
    if isinstance(resources, str) or not isinstance(resources, Sequence) or not resources:
        raise ConfigError("expected a non-empty list of resource names", key=key)
    names = []
    for name in resources:
        if not isinstance(name, str) or name not in scenario.resources:
            raise ConfigError(f"unknown resource {printable(repr(name))} in {scenario.source} "
                              f"(declared: {', '.join(scenario.resources)})", key=key)  # fmt: skip
        if name in names:
            raise ConfigError(f"resource {name!r} is named twice", key=key)
        if scenario.resources[name].step is None:
            raise ConfigError(f"{name!r} declares no step, so it cannot be searched (named by {key}): add its "
                              "natural increment of capacity (a slot, a core, 8 GiB)", source=scenario.source,
                              key=f"resources.{name}.step")  # fmt: skip
        names.append(name)
    return names


def check_costs(
    scenario: Scenario, costs: Mapping[str, Any] | None, resources: Sequence[str], *, key: str = "costs"
) -> dict[str, float]:
    """Cost per unit of capacity of each searched resource: as given, else 1 per step.

    Raises:
        ConfigError: a cost for a resource not searched, or one that is not a finite number above 0, naming it.
    """
    if costs is not None and not isinstance(costs, Mapping):
        raise ConfigError("expected a mapping from resource name to cost per unit of capacity", key=key)
    given = dict(costs or {})
    sep = " " if key.startswith("--") else "."
    for name, value in given.items():
        if name not in resources:
            raise ConfigError(f"a cost for {printable(repr(name))}, which the search does not vary (searched: "
                              f"{', '.join(resources)})", key=f"{key}{sep}{name}")  # fmt: skip
        try:
            check_number(value, scenario.source, name, positive=True)
        except ConfigError:
            raise ConfigError(f"must be a finite number above 0, got {printable(repr(value))}",
                              key=f"{key}{sep}{name}") from None  # fmt: skip
    result = {}
    for name in resources:
        step = scenario.resources[name].step
        assert step is not None
        result[name] = float(given[name]) if name in given else 1.0 / step
    return result


def lower_steps(scenario: Scenario, resource: str) -> int:
    """The smallest ``m`` at which ``m × step`` of ``resource`` can be stable at the scenario's load (see module)."""
    res = scenario.resources[resource]
    assert res.step is not None
    if res.kind == "space":
        demand = max((t.space.get(resource, 0.0) for t in scenario.tools.values()), default=0.0)
        return max(1, math.ceil(demand / res.step - 1e-9))
    offered = sum(rt.rate_per_min / 60.0 * scenario.mean_work_per_request(rt.name).get(resource, 0.0)
                  for rt in scenario.request_types.values())  # fmt: skip
    m = max(1, math.floor(offered / res.step))
    while scenario.with_capacity(resource, m * res.step).resources[resource].effective_capacity <= offered:
        m += 1
    return m


def search_capacity(
    scenario: Scenario | str | Path | dict[str, Any],
    evaluate: Evaluator,
    *,
    slas: Sequence[SlaTerm | str] | None = None,
    resources: Sequence[str] | None = None,
    costs: Mapping[str, float] | None = None,
    replications: int = 5,
    max_replications: int | None = None,
    seed: int | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    max_probes: int = DEFAULT_MAX_PROBES,
) -> CapacityResult:
    """Find the smallest (one resource) or cheapest (several) capacity at which every SLA term holds.

    Args:
        scenario: the base scenario (or its YAML file, or its plain data); its rates are the load.
        evaluate: runs the replications of one candidate (locally, or on the fleet in parallel).
        slas: the terms (:class:`SlaTerm`, or ``"TYPE:METRIC<SECONDS"`` strings); default: the scenario's ``sla``
            block as one term.
        resources: the resources to vary (each must declare a ``step``); default: every resource with a step.
        costs: cost per unit of capacity of searched resources; default 1 per step.
        replications: replications per candidate to start with (at least 2).
        max_replications: the most replications an undecided candidate gets
            (default: 4x ``replications``, at least 20, as for the SLA search).
        seed: the study seed, the same at every candidate (default: the scenario's).
        max_steps: how many steps above its lower limit a resource may get.
        max_probes: give up (not converged) after this many probes.

    Raises:
        ConfigError: an argument out of range, naming it, before any candidate runs.
    """
    scenario = as_scenario(scenario)
    terms = _terms(scenario, slas)
    names = check_resources(scenario, resources)
    unit_costs = check_costs(scenario, costs, names)
    precision = Precision(replications, max(DEFAULT_MAX_REPLICATIONS, 4 * replications) if max_replications is None
                          else max_replications)  # fmt: skip
    seed = scenario.seed if seed is None else check_integer(seed, scenario.source, "seed", maximum=SEED_MAX)
    check_integer(max_steps, scenario.source, "max_steps", minimum=1, maximum=10_000)
    check_integer(max_probes, scenario.source, "max_probes", minimum=1, maximum=1000)
    lower = {name: lower_steps(scenario, name) for name in names}
    steps_of = {name: scenario.resources[name].step or 1.0 for name in names}
    result = CapacityResult(
        scenario.name, terms, names, steps_of, {n: capacity_unit(scenario, n) for n in names}, unit_costs, lower,
        sum(rt.rate_per_min for rt in scenario.request_types.values()), precision.initial, precision.cap, max_steps,
        max_probes, "max_probes", None,
    )  # fmt: skip
    cache = result.visited
    summaries: dict[tuple[int, ...], list[ReplicationSummary]] = {}

    def probe(point: tuple[int, ...]) -> CapacityProbe:
        if point not in cache:
            candidate = scenario
            for name, m in zip(names, point, strict=True):
                candidate = candidate.with_capacity(name, m * steps_of[name])
            judged = judge_candidate(evaluate, candidate, seed, terms, precision)
            summaries[point] = judged.summaries
            capacities = {name: m * steps_of[name] for name, m in zip(names, point, strict=True)}
            cost = sum(unit_costs[name] * capacities[name] for name in names)
            cache[point] = CapacityProbe(steps=dict(zip(names, point, strict=True)), capacities=capacities, cost=cost,
                                         **Decision.fields_of(judged))  # fmt: skip
            result.probes.append(cache[point])
        return cache[point]

    if len(names) == 1:
        _search_one(result, probe)
    else:
        _search_cheapest(result, probe)
    if result.answer is not None:
        from simfleet.producer.diagnostics import failure_warnings, sample_warnings

        point = tuple(result.answer.steps[name] for name in names)
        result.warnings = failure_warnings(terms, summaries[point]) + sample_warnings(terms, summaries[point])
    return result


def _terms(scenario: Scenario, slas: Sequence[SlaTerm | str] | None) -> list[SlaTerm]:
    """The search's terms, checked against the scenario; the ``sla`` block's term when none are given."""
    if slas is None:
        spec = scenario.sla
        if spec is None:
            raise ConfigError(f"give SLA terms ('TYPE:METRIC<SECONDS' or 'TYPE:success_ratio>RATIO'): "
                              f"{scenario.source} has no sla block", key="slas")  # fmt: skip
        return [SlaTerm(spec.request_type, spec.metric, spec.threshold)]
    if isinstance(slas, str | SlaTerm) or not isinstance(slas, Sequence) or not slas:
        raise ConfigError("expected a non-empty list of SLA terms ('TYPE:METRIC<SECONDS' or "
                          "'TYPE:success_ratio>RATIO')", key="slas")  # fmt: skip
    return [check_term(term, scenario, key=f"slas[{i}]") for i, term in enumerate(slas)]


def _smallest_passing(
    result: CapacityResult, passes: Callable[[int], bool], low: int, top: int
) -> tuple[int | None, int | None, Stop | None]:
    """Growing steps up from ``low`` until a pass, then bisection (see the module's text).

    Returns the smallest passing ``m``, the largest failing one below it, and why the search stopped short (``None``
    when it found the answer).
    """
    failing: int | None = None
    passing: int | None = None
    m, increment = low, 1
    while passing is None:
        if len(result.probes) >= result.max_probes:
            return None, failing, "max_probes"
        if passes(m):
            passing = m
        elif m >= top:
            return None, m, "max_steps"
        else:
            failing, m, increment = m, min(top, m + increment), 2 * increment
    while failing is not None and passing - failing > 1:
        if len(result.probes) >= result.max_probes:
            return None, failing, "max_probes"
        middle = (failing + passing) // 2
        if passes(middle):
            passing = middle
        else:
            failing = middle
    return passing, failing, None


def _search_one(result: CapacityResult, probe: Callable[[tuple[int, ...]], CapacityProbe]) -> None:
    """One resource: the smallest passing number of steps (see the module's text)."""
    low = result.lower[result.resources[0]]
    passing, failing, stop = _smallest_passing(result, lambda m: probe((m,)).passed, low, low + result.max_steps)
    if stop is not None or passing is None:
        result.stop = stop or "max_steps"
        return
    result.stop = "answer"
    result.answer = probe((passing,))
    result.below = None if failing is None else probe((failing,))


def _search_cheapest(result: CapacityResult, probe: Callable[[tuple[int, ...]], CapacityProbe]) -> None:
    """Several resources: each one's floor with the others at the top, then cheapest first above the floors."""
    names = result.resources
    top = tuple(result.lower[name] + result.max_steps for name in names)
    for i, name in enumerate(names):

        def passes(m: int, i: int = i) -> bool:
            return probe((*top[:i], m, *top[i + 1 :])).passed

        floor, _, stop = _smallest_passing(result, passes, result.lower[name], top[i])
        if stop is not None or floor is None:
            result.stop = stop or "max_steps"
            return
        result.floor[name] = floor
    not_passing = [point for point, found in result.visited.items() if not found.passed]
    for point in _cheapest_first(result):
        if any(all(c <= d for c, d in zip(point, bad, strict=True)) for bad in not_passing):
            result.skipped += 1
            continue
        if point not in result.visited and len(result.probes) >= result.max_probes:
            return
        found = probe(point)
        if found.passed:
            result.stop = "answer"
            result.answer = found
            return
        not_passing.append(point)
    result.stop = "max_steps"


def _cheapest_first(result: CapacityResult) -> Iterator[tuple[int, ...]]:
    """Every grid point, in increasing (cost, total steps, steps in resource order), lazily (a heap of the frontier).

    Every point's cost exceeds that of the point one step lower in any resource, so a point is always reached from a
    cheaper one already yielded; the heap holds only the frontier.
    """
    names = result.resources
    top = tuple(result.lower[n] + result.max_steps for n in names)
    lower = tuple(result.floor.get(n, result.lower[n]) for n in names)
    unit = [result.costs[n] * result.step[n] for n in names]

    def key(point: tuple[int, ...]) -> tuple[float, int, tuple[int, ...]]:
        return round(sum(u * m for u, m in zip(unit, point, strict=True)), 9), sum(point), point

    frontier = [(key(lower), lower)]
    seen = {lower}
    while frontier:
        _, point = heapq.heappop(frontier)
        yield point
        for i in range(len(point)):
            if point[i] < top[i]:
                after = (*point[:i], point[i] + 1, *point[i + 1 :])
                if after not in seen:
                    seen.add(after)
                    heapq.heappush(frontier, (key(after), after))


def capacity_rows(result: CapacityResult) -> list[dict[str, Any]]:
    """One row per probe, in the order they ran: capacities (with units in the column names), cost, each term.

    A figure that is not finite is empty, with the term's reason (``unstable``) beside it.
    """
    rows = []
    for i, probe in enumerate(result.probes):
        row: dict[str, Any] = {"probe": i + 1}
        for name in result.resources:
            row[f"{name}_steps"] = probe.steps[name]
            row[f"{name}_capacity ({result.units[name]})"] = probe.capacities[name]
        row.update({"cost": probe.cost, "verdict": probe.verdict, "replications": probe.replications})
        for outcome in probe.to_dict()["terms"]:
            unit = " (s)" if outcome["op"] == "<" else ""  # a success ratio (op ">") has no unit
            row[f"{outcome['term']} mean{unit}"] = outcome["mean"]
            row[f"{outcome['term']} ci95{unit}"] = outcome["ci95"]
            row[f"{outcome['term']} verdict"] = outcome["verdict"]
            row[f"{outcome['term']} reason"] = outcome["reason"]
        rows.append(row)
    return rows
