"""Inverse search: the largest arrival rate at which every SLA term still holds, with 95% confidence.

**Decisions.** A probe (a rate) is judged by :mod:`simfleet.producer.confidence`: each term passes when its metric's
95% interval lies wholly on the good side of the threshold (at or below a latency ceiling, at or above a
success-ratio floor), fails when it lies wholly on the bad side (or a replication was unstable), and otherwise gets
more replications (the next indices: common random numbers) up to a cap, after which the probe is *undecided at this
precision*. A probe passes when every term passes and fails when one fails:
with several terms (one per request type) the mix scales every type together, and the first term to break decides.

**The answer** is never interpolated: the largest probed rate that passed (``best_passing``) and the smallest probed
rate above it that failed (``first_failing``), each with every term's interval; the probes between them, if any, are
undecided at this precision (``undecided``). A rate reported as passing passes with 95% confidence; a bracket is no
finer than the noise of the metric allows.

**Stopping rule.** The search stops when both ends exist and the gaps on either side of the undecided zone, from the
best passing rate up to the first undecided or failing one, and from the last undecided or passing one up to the
first failing rate, are each at most ``rel_tol`` of the best passing rate (``converged``; ``limited_by_precision``
when undecided probes lie between); or after ``max_probes`` probes (not converged).

**Choosing the probes.** Queueing theory says no rate above the capacity bound U (``Scenario.capacity_bound_per_min``)
is stable, and near saturation latency figures grow like 1 / (1 − λ/U). The search starts at U/2. While the bracket
has no undecided probe inside, it models the binding term's badness (metric / threshold for a latency ceiling,
threshold / metric for a success-ratio floor: 1 at the threshold, growing with load) as a + b / (1 − λ/U), fits a
and b to the two probes nearest the threshold (a = 0 while it has one), and probes just below and above the
predicted crossing (± 40% of the tolerance), falling back to bisection when the model does not fit. Once undecided
probes lie inside, it bisects the wider of the two gaps around them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from simfleet.producer.confidence import (
    DEFAULT_MAX_REPLICATIONS,
    Decision,
    Judged,
    Precision,
    SlaTerm,
    check_term,
    judge_candidate,
)
from simfleet.shared.errors import ConfigError, printable
from simfleet.shared.messages.des import ReplicationSummary
from simfleet.worker.des.limits import (
    FLOOR_METRICS,
    MAX_REPLICATIONS,
    SEED_MAX,
    SLA_METRICS,
    check_integer,
    check_number,
)
from simfleet.worker.des.scenario import Scenario, as_scenario


class Evaluator(Protocol):
    """Runs replications ``first`` .. ``first + replications - 1`` of a scenario with a seed; their summaries in order.

    Replication ``i`` of a seed is the same run wherever it runs, so a probe that needs more replications asks for
    the next indices, and every probe of a search uses the same indices (common random numbers).
    """

    def __call__(self, scenario: Scenario, replications: int, seed: int, first: int = 0, /) -> list[ReplicationSummary]:
        """The summaries of the replications, in index order."""
        ...


@dataclass(frozen=True, kw_only=True)
class Probe(Decision):
    """One probed rate and what was measured there: each term's interval and the decision."""

    rate_per_min: float

    @classmethod
    def of(cls, rate_per_min: float, judged: Judged) -> Probe:
        """The probe of a judged candidate."""
        return cls(rate_per_min=rate_per_min, **Decision.fields_of(judged))

    @property
    def metric_s(self) -> float:
        """The binding term's mean: seconds, or a ratio for a success-ratio term (not finite without a figure)."""
        return self.binding.value.mean

    @property
    def ci95_s(self) -> float | None:
        """The binding term's 95% half-width, in the metric's unit."""
        return self.binding.value.ci95

    @property
    def badness(self) -> float:
        """The binding term's mean where its threshold is 1 and larger is worse (:meth:`SlaTerm.badness`)."""
        return self.binding.term.badness(self.binding.value.mean)

    @property
    def badness_width(self) -> float:
        """The binding term's 95% half-width on the scale of :attr:`badness`."""
        return self.binding.term.badness_width(self.binding.value)

    @property
    def reason(self) -> str | None:
        """Why the binding term has no finite figure: ``unstable``, ``no request completed`` or ``finished``."""
        return self.binding.reason

    def to_dict(self) -> dict[str, Any]:
        """Plain data for strict JSON: a figure that is not finite is ``None``, with ``reason`` saying why.

        ``metric_s`` and ``ci95_s`` are the binding term's (a ratio, despite the name, when it is a success-ratio
        term); ``op`` says which way its threshold bounds it.
        """
        finite = math.isfinite(self.metric_s)
        return {
            "rate_per_min": self.rate_per_min,
            **self.decision_dict(),
            "metric_s": self.metric_s if finite else None,
            "ci95_s": self.ci95_s if finite else None,
            "op": self.binding.term.op,
            "reason": self.reason,
        }


@dataclass
class SlaResult:
    """The answer of an SLA search (see the module's text for what each part means)."""

    terms: list[SlaTerm]
    scale: str
    capacity_bound_per_min: float
    rel_tol: float
    replications: int
    max_replications: int
    best_passing: Probe | None
    first_failing: Probe | None
    converged: bool
    probes: list[Probe] = field(default_factory=list)
    undecided: list[Probe] = field(default_factory=list)
    """Probes between the two ends whose terms stayed undecided at the cap, in rate order."""
    warnings: list[str] = field(default_factory=list)
    """Plain-words warnings about the question itself (a threshold below the no-load latency, too few requests)."""

    @property
    def request_type(self) -> str:
        """The first term's request type."""
        return self.terms[0].request_type

    @property
    def metric(self) -> str:
        """The first term's metric."""
        return self.terms[0].metric

    @property
    def threshold_s(self) -> float:
        """The first term's threshold: seconds, or a ratio for a success-ratio term."""
        return self.terms[0].threshold

    @property
    def limited_by_precision(self) -> bool:
        """Converged with undecided probes between the ends: the bracket is as fine as the noise allows."""
        return self.converged and bool(self.undecided)

    @property
    def bracket_rel_width(self) -> float | None:
        """(first failing − best passing) / best passing, when both exist."""
        if self.best_passing is None or self.first_failing is None:
            return None
        return (self.first_failing.rate_per_min - self.best_passing.rate_per_min) / self.best_passing.rate_per_min

    def rate_name(self) -> str:
        """What the searched rate is the rate of."""
        return f"{self.request_type} requests/min" if self.scale == "type" else "requests/min of the whole mix"

    def statement(self) -> str:
        """The answer in plain words, with its confidence and precision."""
        terms = " and ".join(t.holds() for t in self.terms)
        lo, hi = self.best_passing, self.first_failing
        if lo is None:
            return f"no probed rate met the SLA with 95% confidence: {terms} at no rate down to " + (
                f"{min(p.rate_per_min for p in self.probes):.4g} {self.rate_name()}" if self.probes else "any rate"
            )
        text = f"{terms} up to {lo.rate_per_min:.4g} {self.rate_name()}, with 95% confidence"
        if hi is not None:
            text += f"; it fails from {hi.rate_per_min:.4g} (bracket {self.bracket_rel_width:.1%})"
        else:
            text += "; no probed rate failed"
        if self.undecided:
            rates = ", ".join(f"{p.rate_per_min:.4g}" for p in self.undecided)
            text += (f"; undecided at this precision ({self.max_replications} replications) at {rates}: the "
                     "metric's interval there straddles the threshold")  # fmt: skip
        return text

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output; ``probes`` lists every probe in the order it ran."""
        return {
            "request_type": self.request_type,
            "metric": self.metric,
            "op": self.terms[0].op,
            "threshold": self.terms[0].threshold,
            "threshold_s": self.terms[0].to_dict()["threshold_s"],
            "terms": [t.to_dict() for t in self.terms],
            "scale": self.scale,
            "capacity_bound_per_min": self.capacity_bound_per_min,
            "rel_tol": self.rel_tol,
            "replications": self.replications,
            "max_replications": self.max_replications,
            "best_passing": None if self.best_passing is None else self.best_passing.to_dict(),
            "first_failing": None if self.first_failing is None else self.first_failing.to_dict(),
            "undecided": [p.to_dict() for p in self.undecided],
            "converged": self.converged,
            "limited_by_precision": self.limited_by_precision,
            "bracket_rel_width": self.bracket_rel_width,
            "statement": self.statement(),
            "warnings": list(self.warnings),
            "probes": [p.to_dict() for p in self.probes],
        }


def metric_of(summary: ReplicationSummary, request_type: str, metric: str) -> float:
    """The SLA metric of one replication summary (seconds, or a ratio); not finite without a figure.

    See :meth:`SlaTerm.value`: +inf for a latency, −inf for a success ratio.
    """
    return SlaTerm(request_type, metric, 1.0).value(summary)


def search_sla(
    scenario: Scenario | str | Path | dict[str, Any],
    evaluate: Evaluator,
    *,
    slas: Sequence[SlaTerm | str] | None = None,
    request_type: str | None = None,
    metric: str = "p95",
    threshold_s: float | None = None,
    replications: int = 5,
    max_replications: int | None = None,
    seed: int = 0,
    rel_tol: float = 0.01,
    scale: str | None = None,
    max_probes: int = 20,
) -> SlaResult:
    """Find the largest rate (requests/min) at which every SLA term holds with 95% confidence.

    Args:
        scenario: the base scenario (or its YAML file, or its plain data); only the searched rate changes between
            probes.
        evaluate: runs the replications of one probe (locally, or on the fleet in parallel).
        slas: the terms (:class:`SlaTerm`, or ``"TYPE:METRIC<SECONDS"`` / ``"TYPE:success_ratio>RATIO"`` strings),
            one per request type at most; instead, one term by ``request_type``, ``metric`` and ``threshold_s``.
        request_type: the single term's request type.
        metric: the single term's metric: ``mean``, ``p50``, ``p95`` or ``p99`` (ceilings), or ``success_ratio``
            (a floor).
        threshold_s: the single term's threshold: seconds for a latency metric, a ratio in (0, 1] for
            ``success_ratio``.
        replications: replications per probe to start with (at least 2: an interval needs two).
        max_replications: the most replications one probe may get while undecided (default 4x ``replications``,
            at least 20).
        seed: the study seed, the same at every probe.
        rel_tol: the gaps of the bracket to reach, relative to the best passing rate.
        scale: ``type`` searches the single request type's own rate; ``mix`` the total rate of every type at fixed
            shares (the default, and the only choice, when terms name several types).
        max_probes: give up (``converged`` false) after this many probes.

    Raises:
        ConfigError: an argument out of range, naming it, before any probe runs.
    """
    scenario = as_scenario(scenario)
    terms = _terms(scenario, slas, request_type, metric, threshold_s)
    types = {t.request_type for t in terms}
    if scale is None:
        scale = "type" if len(types) == 1 else "mix"
    _check_arguments(scenario, replications, max_replications, seed, rel_tol, scale, max_probes)
    if scale == "type" and len(types) > 1:
        raise ConfigError(f"the terms name {len(types)} request types ({', '.join(sorted(types))}): only the whole "
                          "mix can be scaled (scale 'mix', or --mix)", key="scale")  # fmt: skip
    searched = terms[0].request_type if scale == "type" else None
    precision = Precision(replications, max_replications or max(DEFAULT_MAX_REPLICATIONS, 4 * replications))
    bound = _bound(scenario, searched)
    probes: list[Probe] = []

    judged: list[list[ReplicationSummary]] = []

    def run_probe(rate: float) -> None:
        probe_scenario = scenario.with_rate(rate, searched)
        outcome = judge_candidate(evaluate, probe_scenario, seed, terms, precision)
        judged.append(outcome.summaries)
        probes.append(Probe.of(rate, outcome))

    floor = _floor_rate(scenario, terms, searched)
    warnings: list[str] = []
    run_probe(bound / 2.0)
    while len(probes) < max_probes and not _closed(probes, rel_tol):
        rate = _next_rate(probes, bound, rel_tol)
        if rate < floor:
            warnings.append(f"no rate down to {min(p.rate_per_min for p in probes):.4g} requests/min met the SLA; "
                            f"below {floor:.4g} requests/min a replication of {scenario.horizon_s:g} s would expect "
                            f"fewer than {MIN_REQUESTS} requests, so the search stopped")  # fmt: skip
            break
        run_probe(rate)
    lo, hi, zone = _bracket(probes)
    answer = [judged[i] for i, probe in enumerate(probes) if probe is lo or probe is hi]
    warnings[:0] = question_warnings(scenario, terms, answer or judged[:1], seed)
    return SlaResult(terms, scale, bound, rel_tol, precision.initial, precision.cap, lo, hi, _closed(probes, rel_tol),
                     probes, zone, warnings)  # fmt: skip


def _terms(scenario: Scenario, slas: Sequence[SlaTerm | str] | None, request_type: Any, metric: Any,
           threshold_s: Any) -> list[SlaTerm]:  # fmt: skip
    """The search's terms, checked against the scenario, naming the argument of a bad one."""
    if slas is not None:
        if request_type is not None or threshold_s is not None:
            raise ConfigError("give either slas or request_type/metric/threshold_s, not both", key="slas")
        if isinstance(slas, str | SlaTerm) or not isinstance(slas, Sequence) or not slas:
            raise ConfigError("expected a non-empty list of SLA terms ('TYPE:METRIC<SECONDS' or "
                              "'TYPE:success_ratio>RATIO')", key="slas")  # fmt: skip
        terms = [check_term(term, scenario, key=f"slas[{i}]") for i, term in enumerate(slas)]
        seen: set[str] = set()
        for i, term in enumerate(terms):
            if term.request_type in seen:
                raise ConfigError(f"request type {term.request_type!r} has two terms: give one term per request type",
                                  key=f"slas[{i}]")  # fmt: skip
            seen.add(term.request_type)
        return terms
    if not isinstance(request_type, str) or request_type not in scenario.request_types:
        raise ConfigError(
            f"unknown request type {printable(repr(request_type))} (declared: {', '.join(scenario.request_types)})",
            source=scenario.source,
            key="request_type",
        )
    if metric not in SLA_METRICS:
        raise ConfigError(f"must be one of {', '.join(SLA_METRICS)}, got {printable(repr(metric))}",
                          source=scenario.source, key="metric")  # fmt: skip
    floor = metric in FLOOR_METRICS
    if threshold_s is None:
        raise ConfigError(f"is required ({'a ratio' if floor else 'seconds'})", source=scenario.source,
                          key="threshold_s")  # fmt: skip
    threshold = check_number(threshold_s, scenario.source, "threshold_s", positive=True)
    if floor and threshold > 1.0:
        raise ConfigError(f"a success ratio's threshold must be in (0, 1] (0.99 is 99%), got {threshold:g}",
                          source=scenario.source, key="threshold_s")  # fmt: skip
    return [SlaTerm(request_type, metric, threshold)]


MIN_REQUESTS = 10
"""A probe's window must expect at least this many requests of each term's type for its metrics to mean anything."""


def _floor_rate(scenario: Scenario, terms: list[SlaTerm], searched: str | None) -> float:
    """The searched rate below which a replication's window would expect fewer than ``MIN_REQUESTS`` of some type."""
    window_min = max(scenario.horizon_s - scenario.warmup_s, 1e-9) / 60.0
    total = sum(rt.rate_per_min for rt in scenario.request_types.values())
    floor = 0.0
    for term in terms:
        share = 1.0 if searched is not None else scenario.request_types[term.request_type].rate_per_min / total
        floor = max(floor, MIN_REQUESTS / window_min / share)
    return floor


def question_warnings(scenario: Scenario, terms: Sequence[SlaTerm], judged: Sequence[Sequence[ReplicationSummary]],
                      seed: int) -> list[str]:  # fmt: skip
    """Plain-words warnings about the question: thresholds no load can meet, ratios never below 1, small samples.

    A success-ratio term whose type never failed cannot bind; a quantile needs enough requests beyond it.

    ``judged`` holds the summaries of the candidates the answer rests on (the two ends of the bracket), on which a
    quantile's sample is checked (:mod:`simfleet.producer.diagnostics`).
    """
    from simfleet.producer.diagnostics import failure_warnings, no_load, sample_warnings, threshold_warnings

    warnings = threshold_warnings(scenario, terms, no_load(scenario, seed))
    warnings += failure_warnings(terms, [s for summaries in judged for s in summaries])
    seen = set(warnings)
    for summaries in judged:
        for line in sample_warnings(terms, summaries):
            if line not in seen:
                seen.add(line)
                warnings.append(line)
    return warnings


def _bound(scenario: Scenario, searched: str | None) -> float:
    """The capacity bound of the searched rate, refusing a search that cannot have an answer."""
    bound = scenario.capacity_bound_per_min(searched)
    what = f"{searched!r}" if searched is not None else "the mix"
    if math.isfinite(bound) and bound <= 0:
        raise ConfigError(
            f"the other request types already use the whole capacity of a resource that {what} needs, so no rate of "
            "it can be stable",
            source=scenario.source,
            key=f"request_types.{searched}" if searched else "request_types",
        )
    if not math.isfinite(bound):
        raise ConfigError(
            f"{what} puts no work on any rate resource, so no rate bound exists",
            source=scenario.source,
            key=f"request_types.{searched}" if searched else "request_types",
        )
    return bound


def _check_arguments(
    scenario: Scenario,
    replications: Any,
    max_replications: Any,
    seed: Any,
    rel_tol: Any,
    scale: Any,
    max_probes: Any,
) -> None:
    """Refuse a bad argument of :func:`search_sla` by name, before any probe runs."""
    source = scenario.source
    check_integer(replications, source, "replications", minimum=2, maximum=MAX_REPLICATIONS)
    if max_replications is not None:
        check_integer(max_replications, source, "max_replications", minimum=replications, maximum=MAX_REPLICATIONS)
    check_integer(seed, source, "seed", maximum=SEED_MAX)
    if check_number(rel_tol, source, "rel_tol", positive=True) >= 1.0:
        raise ConfigError(f"must be below 1, got {rel_tol!r}", source=source, key="rel_tol")
    if scale not in ("type", "mix"):
        raise ConfigError(f"must be 'type' or 'mix', got {printable(repr(scale))}", source=source, key="scale")
    check_integer(max_probes, source, "max_probes", minimum=1, maximum=1000)


def _bracket(probes: list[Probe]) -> tuple[Probe | None, Probe | None, list[Probe]]:
    """The best passing probe, the first failing one above it, and the undecided probes between them."""
    passing = [p for p in probes if p.verdict == "pass"]
    lo = max(passing, key=lambda p: p.rate_per_min) if passing else None
    floor = -math.inf if lo is None else lo.rate_per_min
    failing = [p for p in probes if p.verdict == "fail" and p.rate_per_min > floor]
    hi = min(failing, key=lambda p: p.rate_per_min) if failing else None
    ceiling = math.inf if hi is None else hi.rate_per_min
    zone = sorted((p for p in probes if p.verdict == "undecided" and floor < p.rate_per_min < ceiling),
                  key=lambda p: p.rate_per_min)  # fmt: skip
    return lo, hi, zone


def _gaps(lo: Probe, hi: Probe, zone: list[Probe]) -> tuple[tuple[float, float], tuple[float, float]]:
    """The rate intervals still open: from the best pass to the zone, and from the zone to the first fail."""
    below = zone[0].rate_per_min if zone else hi.rate_per_min
    above = zone[-1].rate_per_min if zone else lo.rate_per_min
    return (lo.rate_per_min, below), (above, hi.rate_per_min)


def _closed(probes: list[Probe], rel_tol: float) -> bool:
    lo, hi, zone = _bracket(probes)
    if lo is None or hi is None:
        return False
    limit = max(rel_tol * lo.rate_per_min, _noise_width(lo, hi, zone) / 2.0)
    return all(high - low <= limit for low, high in _gaps(lo, hi, zone))


def _noise_width(lo: Probe, hi: Probe, zone: list[Probe]) -> float:
    """The rate width the metric's noise blurs at the cap: its 95% half-width over the metric's slope in rate.

    Both are taken on the scale of the binding term's badness (1 at the threshold, growing with load), so that a
    success-ratio floor and a latency ceiling are measured alike. Undecided probes are where the interval at the cap
    straddles the threshold; a gap narrower than half this width would be bisected by probes that are undecided too,
    so the search does not chase it. 0 without undecided probes.
    """
    if not zone or not (math.isfinite(lo.badness) and math.isfinite(hi.badness)):
        return 0.0
    slope = (hi.badness - lo.badness) / (hi.rate_per_min - lo.rate_per_min)
    if slope <= 0:
        return 0.0
    half = [p.badness_width for p in zone if math.isfinite(p.badness_width)]
    return 2.0 * (sum(half) / len(half)) / slope if half else 0.0


def _predict(probes: list[Probe], bound: float, target: float = 1.0) -> float:
    """The rate where the binding term's badness reaches ``target`` under the model a + b / (1 − rate / bound).

    The badness (metric / threshold for a ceiling, threshold / metric for a floor) puts several terms on one scale
    (the threshold is at 1, larger is worse). The two finite probes nearest the target fix a and b; with a single
    probe a = 0 (pure queueing growth).
    """
    usable = [p for p in probes if p.stable and math.isfinite(p.badness) and p.rate_per_min < bound]
    points = sorted(((p.rate_per_min, p.badness) for p in usable), key=lambda point: abs(point[1] - target))
    if not points:
        return math.nan
    growth = [(1.0 / (1.0 - rate / bound), ratio) for rate, ratio in points]
    h1, m1 = growth[0]
    second = next(((h, m) for h, m in growth[1:] if h != h1), None)
    if second is None:
        a, b = 0.0, m1 / h1
    else:
        h2, m2 = second
        b = (m2 - m1) / (h2 - h1)
        a = m1 - b * h1
    if b <= 0:
        return math.nan
    growth_at_target = (target - a) / b
    return bound * (1.0 - 1.0 / growth_at_target) if growth_at_target > 1.0 else math.nan


def _half_width(probes: list[Probe]) -> float:
    """The binding term's 95% half-width on the badness scale, at the probe nearest the threshold (0 if none)."""
    finite = [p for p in probes if math.isfinite(p.badness) and p.ci95_s is not None]
    if not finite:
        return 0.0
    nearest = min(finite, key=lambda p: abs(p.badness - 1.0))
    return nearest.badness_width


def _next_rate(probes: list[Probe], bound: float, rel_tol: float) -> float:
    """The next rate to probe (see the module's text).

    Probes aim where a decision is expected with the replications a probe starts with: the rate where the model puts
    the metric one half-width below the threshold (to find a pass) or above it (to find a fail), so that few probes
    land where the interval straddles the threshold and needs the cap.
    """
    lo, hi, zone = _bracket(probes)
    half = min(_half_width(probes), 0.5)
    to_pass, to_fail = _predict(probes, bound, 1.0 - half), _predict(probes, bound, 1.0 + half)
    if lo is not None and hi is not None:
        if zone:  # bisect the wider of the gaps around the undecided zone
            low, high = max(_gaps(lo, hi, zone), key=lambda gap: gap[1] - gap[0])
            return (low + high) / 2.0
        low, high = lo.rate_per_min, hi.rate_per_min
        margin = 0.05 * (high - low)
        inside = [r for r in (to_pass, to_fail) if not math.isnan(r)]
        if not inside:
            return (low + high) / 2.0
        # The aimed rate that splits the bracket most evenly tells the most.
        rate = min((min(max(r, low + margin), high - margin) for r in inside), key=lambda r: abs(r - (low + high) / 2))
        return rate
    if hi is None:
        # Nothing failed yet: aim where the metric should fail, above every probe that did not fail, below the bound.
        top = max(p.rate_per_min for p in probes if p.verdict != "fail")
        rate = top * 2.0 if math.isnan(to_fail) else to_fail
        rate = max(rate, top * (1.0 + rel_tol))
        return rate if rate < bound else (top + bound) / 2.0
    # Nothing passed yet: aim where the metric should pass, below every probe that did not pass.
    bottom = min(p.rate_per_min for p in probes if p.verdict != "pass")
    return to_pass if 0.0 < to_pass < bottom * (1.0 - rel_tol) else bottom / 2.0
