"""Honest reports: the warnings a DES answer carries, and where the waiting happens.

The searches and the ``des`` commands call these on what they already have (the scenario, the SLA terms, the
replications' summaries) and print each warning as one plain line. Nothing here needs Celery or Redis.

- :func:`no_load`: each request type's latency when it is alone in the system, from a short pilot run.
- :func:`threshold_warnings`: a latency SLA threshold at or below that no-load latency (no rate can meet it).
- :func:`sample_warnings`: a quantile estimated from too few completed requests per replication.
- :func:`failure_warnings`: a success-ratio term whose type never failed (the term cannot bind).
- :func:`saturation`: a run that looks stable but is near saturation (growing backlog, a resource at 95% or
  more, or a tail many times its no-load value with a wide interval).
- :func:`waiting_by_resource`, :func:`bottleneck_text`: where the tools wait, and the bottleneck candidate.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from simfleet.producer.confidence import SlaTerm, estimate
from simfleet.worker.des.limits import MAX_EVENTS

if TYPE_CHECKING:
    from simfleet.shared.messages.des import ReplicationSummary, Stat, StudyAggregate
    from simfleet.worker.des.scenario import Scenario

NoLoad = dict[str, dict[str, float]]
"""Per request type, per metric (``mean``, ``p50``, ``p95``, ``p99``): the no-load latency in seconds."""

PILOT_REQUESTS = 1_000
"""Requests per type in the no-load pilot: the fewest at which :func:`sample_warnings` trusts a p99."""
PILOT_EVENTS = 200_000
"""A type with so many tool runs per request that 1,000 requests would pass this many events gets fewer (200 at
least: a p95 is still trusted)."""
PILOT_SPACING = 50.0
"""The pilot's arrivals are this many times a request's serial no-load run time apart."""
BEYOND_QUANTILE = 10
"""A quantile q is meaningful from n ≥ this / (1 − q) completed requests: so many lie beyond it."""
GROWTH_FACTOR, GROWTH_MARGIN = 1.5, 3.0
"""A backlog grows when every replication ends its window with more than 1.5 × its mean in system + 3 requests."""
BUSY_LIMIT = 0.95
"""A rate resource at or above this mean utilisation is near saturation."""
TAIL_FACTOR, TAIL_SPREAD = 10.0, 0.2
"""A p95 at least 10 times its no-load value, with a 95% half-width above 20% of it, is near saturation."""

_QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
_FIGURE = {"mean": "mean_s", "p50": "p50_s", "p95": "p95_s", "p99": "p99_s"}
_cache: dict[tuple[str, int], NoLoad] = {}


def _alone(scenario: Scenario, request_type: str) -> Scenario:
    """The pilot of one type: it alone, deterministic arrivals far enough apart that no two requests meet."""
    rtype = scenario.request_types[request_type]
    runs = scenario.template_runs(request_type)
    serial_s = sum(n * scenario.holding_time_s(tool, rtype.weight, request_type) for tool, n in runs.items())
    # A node's retries wait their backoffs too (at most the last, longest one each time).
    serial_s += sum(node.policy.retries * node.policy.backoff.delay_s(node.policy.retries)
                    for node in rtype.all_nodes())  # fmt: skip
    gap_s = PILOT_SPACING * serial_s if serial_s > 0 else 1.0
    parts = 1 + math.ceil(sum(n * max(1, len(scenario.tools[tool].work)) for tool, n in runs.items()))
    requests = max(200, min(PILOT_REQUESTS, PILOT_EVENTS // parts))
    pilot_type = dataclasses.replace(rtype, arrival="deterministic", rate_per_min=60.0 / gap_s, process=None)
    return dataclasses.replace(
        scenario,
        request_types={request_type: pilot_type},
        horizon_s=(requests + 0.5) * gap_s,
        warmup_s=0.0,
        drain=True,
        max_in_flight=1_000_000,
        max_events=MAX_EVENTS,
        sla=None,
    )


def no_load(scenario: Scenario, seed: int = 0) -> NoLoad:
    """Each request type's mean, p50, p95 and p99 latency (seconds) with no contention.

    How the requests are alone: each type runs by itself (the other types removed) with deterministic arrivals
    spaced :data:`PILOT_SPACING` (50) times the sum of its tools' no-load run times
    (:meth:`~simfleet.worker.des.scenario.Scenario.holding_time_s`), so a request meets another only when its own
    run takes 50 times its mean. :data:`PILOT_REQUESTS` (1,000) requests per type (fewer, down to 200, for a type
    whose 1,000 requests would pass :data:`PILOT_EVENTS` events), one replication of the real engine with ``seed``.
    The answer is cached per scenario content and seed.
    """
    from simfleet.worker.des.engine import run_replication

    key = (json.dumps(scenario.to_dict(), sort_keys=True, default=str), seed)
    if key not in _cache:
        figures: NoLoad = {}
        for name in scenario.request_types:
            latency = run_replication(_alone(scenario, name), seed, 0).types[name]
            figures[name] = {metric: float(latency.figure(figure) or 0.0) for metric, figure in _FIGURE.items()}
        if len(_cache) >= 32:
            _cache.pop(next(iter(_cache)))
        _cache[key] = figures
    return _cache[key]


def threshold_warnings(scenario: Scenario, terms: Sequence[SlaTerm], no_load_figures: NoLoad) -> list[str]:
    """One line per latency term whose threshold is at or below its metric's no-load value: no rate can meet it.

    A success-ratio term (a floor, not a latency) gets no line: the no-load pilot says nothing about it.
    """
    warnings = []
    for term in terms:
        if term.floor:
            continue
        alone = no_load_figures.get(term.request_type, {}).get(term.metric)
        if term.request_type in scenario.request_types and alone is not None and term.threshold_s <= alone:
            warnings.append(
                f"no rate can meet {term.metric} of {term.request_type} < {term.threshold_s:g} s: even alone its "
                f"{term.metric} is {alone:.3g} s"
            )
    return warnings


def sample_warnings(items: Sequence[SlaTerm | str], summaries: Sequence[ReplicationSummary]) -> list[str]:
    """One line per quantile estimated from fewer than 10 / (1 − q) completed requests in some replication.

    ``items`` are SLA terms (their type and metric), or metric names (``p95``) checked for every request type.
    The count is the fewest completed requests of the type in any replication; means need no such count.
    """
    if not summaries:
        return []
    pairs: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, SlaTerm):
            pairs.append((item.request_type, item.metric))
        else:
            pairs.extend((name, item) for name in summaries[0].types)
    warnings = []
    for request_type, metric in dict.fromkeys(pairs):
        q = _QUANTILES.get(metric)
        if q is None or request_type not in summaries[0].types:
            continue
        needed = math.ceil(BEYOND_QUANTILE / (1.0 - q) - 1e-9)
        fewest = min(s.types[request_type].completed for s in summaries)
        if fewest < needed:
            warnings.append(
                f"{metric} of {request_type} comes from as few as {fewest} completed requests in a replication; "
                f"a {metric} needs at least {needed} ({BEYOND_QUANTILE} beyond it): a longer horizon_s gives them"
            )
    return warnings


def failure_warnings(terms: Sequence[SlaTerm], summaries: Sequence[ReplicationSummary]) -> list[str]:
    """One line per success-ratio term whose type had no failed or timed-out request in any stable replication.

    Such a term is met wherever the system is stable: the answer then rests on the latency terms, or on stability
    alone, and the line says so rather than let the term look like a binding constraint.
    """
    stable = [s for s in summaries if s.stable]
    warnings = []
    for term in terms:
        if not term.floor or not stable or term.request_type not in stable[0].types:
            continue
        if all(s.types[term.request_type].failed + s.types[term.request_type].timed_out == 0 for s in stable):
            warnings.append(
                f"no request of {term.request_type} failed or timed out in any stable replication here, so its "
                f"success ratio was 1 and {term.text} held wherever the system was stable: the scenario models no "
                "failures of it (fail_prob, timeout_s)"
            )
    return warnings


def saturation(summaries: Sequence[ReplicationSummary], no_load_figures: NoLoad | None = None) -> list[str]:
    """Lines saying why stable replications are near saturation; empty when they are not (or were unstable).

    Three rules, each checked over all the replications:

    - *growing backlog*: with at least two replications, every one ended its measurement window with more than
      1.5 × its time-averaged number in system + 3 requests in the system. In a steady state the count at the
      window's end is a draw from the same distribution as the time average, so all replications landing that far
      above it means the backlog (and the latency) was still growing when the window closed;
    - *a busy resource*: a rate resource's mean utilisation is at or above 0.95;
    - *a runaway tail* (with ``no_load_figures``): a type's p95 is at least 10 times its no-load p95 and its 95%
      half-width is above 20% of it.

    An unstable study is already reported as such, so it gets no line here.
    """
    if not summaries or not all(s.stable for s in summaries):
        return []
    warnings = []
    if len(summaries) >= 2 and all(
        s.in_system_at_window_end > GROWTH_FACTOR * s.little.mean_in_system + GROWTH_MARGIN for s in summaries
    ):
        ends = estimate(float(s.in_system_at_window_end) for s in summaries).mean
        mean = estimate(s.little.mean_in_system for s in summaries).mean
        warnings.append(
            f"near saturation: the requests in the system kept growing (on average {ends:.1f} at the end of the "
            f"measurement window against {mean:.1f} over it, in every replication), so latency was still rising"
        )
    for name in summaries[0].resources:
        if summaries[0].resources[name].kind != "rate":
            continue
        busy = estimate(s.resources[name].utilisation for s in summaries).mean
        if busy >= BUSY_LIMIT:
            warnings.append(f"near saturation: {name} is {busy:.1%} busy on average (at or above {BUSY_LIMIT:.0%})")
    for name, alone in (no_load_figures or {}).items():
        if name not in summaries[0].types or alone.get("p95", 0.0) <= 0:
            continue
        p95 = estimate(float(s.types[name].p95_s or math.inf) for s in summaries)
        if p95.finite and p95.ci95 is not None and p95.mean >= TAIL_FACTOR * alone["p95"] and (
                p95.ci95 > TAIL_SPREAD * p95.mean):  # fmt: skip
            warnings.append(
                f"near saturation: p95 of {name} is {p95.mean:.3g} ±{p95.ci95:.2g} s, {p95.mean / alone['p95']:.0f} "
                f"times its no-load {alone['p95']:.3g} s, and its interval is wide"
            )
    return warnings


def wide_tails(summaries: Sequence[ReplicationSummary]) -> bool:
    """Whether some type's p95 has a 95% half-width above 20% of its mean (over stable replications).

    Only then can the runaway-tail rule of :func:`saturation` fire, so only then is :func:`no_load` worth its pilot.
    """
    if len(summaries) < 2 or not all(s.stable for s in summaries):
        return False
    for name in summaries[0].types:
        p95 = estimate(float(s.types[name].p95_s or math.inf) for s in summaries)
        if p95.finite and p95.ci95 is not None and p95.ci95 > TAIL_SPREAD * p95.mean:
            return True
    return False


def _mean(stat: Stat | None) -> float:
    return 0.0 if stat is None or stat.mean is None else float(stat.mean)


def waiting_by_resource(agg: StudyAggregate, scenario: Scenario | None = None) -> dict[str, float]:
    """Per resource, the mean number of tools held back there (tools), over the measurement window.

    Tools queued for a slot (``max_active``) or for space count as waiting (``mean_waiting``). On a shared rate
    resource a tool is also held back by sharing: it is served but slower than alone. By Little's law the mean
    consumers are the tools' arrival rate × their time there, and utilisation × capacity / (a tool's speed alone)
    is the same rate × their time alone; the difference is the tools delayed by sharing, added to the waiting. The
    speed alone is ``min(capacity, per_tool_cap)`` from ``scenario`` (the capacity when no scenario is given).
    """
    waiting = {}
    for name, figures in agg.resources.items():
        held = _mean(figures.get("mean_waiting"))
        if "mean_consumers" in figures:
            capacity = _mean(figures.get("capacity"))
            speed = capacity
            resource = scenario.resources.get(name) if scenario is not None else None
            if resource is not None and resource.per_tool_cap is not None:
                speed = min(capacity, resource.per_tool_cap)
            alone = _mean(figures.get("utilisation")) * capacity / speed if speed > 0 else 0.0
            held += max(0.0, _mean(figures.get("mean_consumers")) - alone)
        waiting[name] = held
    return waiting


def bottleneck_text(agg: StudyAggregate, scenario: Scenario | None = None) -> str:
    """A plain sentence: where the waiting happens (the bottleneck candidate), and the most used resource if other.

    The candidate is the resource with the most tools held back (:func:`waiting_by_resource`), with one exception
    read from ``scenario``: when that is a space resource whose holders also wait at a rate resource (calls that hold
    memory while queued for the NPU), the waiting for space comes from there, and the candidate is that rate
    resource. ``des bottleneck`` measures the answer (one more step of each resource); this is one run's reading.
    """
    waiting = waiting_by_resource(agg, scenario)
    candidate = bottleneck_candidate(waiting, scenario)
    if candidate is None:
        return "no queue forms: on average fewer than 0.01 tools wait at any resource"
    where = max(waiting, key=lambda name: waiting[name])
    text = f"the waiting happens at {where} ({waiting[where]:.2f} tools held back on average, queued or slowed by "
    text += "sharing)"
    behind = candidate if candidate != where else None
    if behind is not None:
        text += (
            f", but {where} is held by tools that themselves wait at {behind} ({waiting[behind]:.2f} held back): "
            f"{behind} is the bottleneck candidate"
        )
        where = behind
    else:
        text += ": the bottleneck candidate"
    busy = {name: _mean(figures.get("utilisation")) for name, figures in agg.resources.items()}
    busiest = max(busy, key=lambda name: busy[name])
    if busiest != where:
        text += (
            f"; {busiest} is the most used ({busy[busiest]:.2f}) but only {waiting[busiest]:.2f} tools wait there: "
            "busy is not the bottleneck"
        )
    return text


def bottleneck_candidate(waiting: dict[str, float], scenario: Scenario | None = None) -> str | None:
    """The resource :func:`bottleneck_text` names from ``waiting`` (:func:`waiting_by_resource`); ``None``: no queue."""
    if not waiting or max(waiting.values()) < 0.01:
        return None
    where = max(waiting, key=lambda name: waiting[name])
    behind = _held_behind(scenario, where, waiting) if scenario is not None else None
    return behind or where


def _held_behind(scenario: Scenario, space: str, waiting: dict[str, float]) -> str | None:
    """The rate resource where the holders of ``space`` wait most (``None``: not a space resource, or none waits)."""
    resource = scenario.resources.get(space)
    if resource is None or resource.kind != "space":
        return None
    holders = [tool for tool in scenario.tools.values() if tool.space.get(space, 0.0) > 0]
    used = {name: waiting.get(name, 0.0) for tool in holders for name in tool.work}
    used = {name: level for name, level in used.items() if level >= 0.01}
    return max(used, key=lambda name: used[name]) if used else None
