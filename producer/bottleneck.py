"""Bottlenecks and sensitivity: which resource to add first, measured rather than guessed from utilisation.

The busiest resource is not always the bottleneck: memory held by calls queued for an NPU looks full while one more
GiB would change nothing. So :func:`find_bottlenecks` measures it. It runs the scenario's replications (the *base*),
then, for every resource that declares a capacity ``step``, the same replications (same seed, same indices: common
random numbers) with that resource given one more step. Per resource it reports the measured utilisation, the mean
number of tools waiting at it, and for every watched latency metric the paired difference (with one more step minus
the base, replication by replication) with its 95% interval. A change is *significant* when its interval excludes 0.

The watched metrics are the SLA terms given, else the scenario's ``sla`` block, else p95 of every request type (with
no threshold). Ranking, what to add first:

1. resources whose one more step significantly improves a watched metric (lowers a latency, raises a success
   ratio), by the improvement of the *worst term* (the one nearest to or furthest beyond its threshold in the base,
   by its badness: metric / threshold for a latency, threshold / metric for a success ratio) relative to its
   threshold, then by the largest relative improvement of any term; without thresholds, by the largest improvement
   relative to the metric's base value;
2. then every other resource (no significant improvement, no step, unstable with one more step), by mean waiting.

The bottleneck is the top-ranked resource when its improvement is significant. A ranking needs a stable base: when
a base replication is unstable, no step is measured and the result says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simfleet.producer.confidence import Estimate, SlaTerm, check_term, estimate, paired_difference
from simfleet.producer.fleet.arguments import whole
from simfleet.shared.errors import ConfigError
from simfleet.shared.messages.study import SEED_MAX
from simfleet.worker.des.limits import FLOOR_METRICS, MAX_REPLICATIONS

if TYPE_CHECKING:
    from simfleet.producer.sla import Evaluator
    from simfleet.shared.messages.des import ReplicationSummary
    from simfleet.worker.des.scenario import Resource, Scenario

NO_STEP_NOTE = "declare a step to measure its sensitivity"
UNSTABLE_NOTE = "unstable with one more step"


@dataclass(frozen=True)
class Watched:
    """A metric whose change is measured: a request type's ``metric``, with its SLA threshold if any.

    A latency metric (seconds) improves as it falls; ``success_ratio`` (a ratio, an SLA floor) improves as it rises.
    """

    request_type: str
    metric: str
    threshold: float | None = None
    """Seconds for a latency metric, a ratio for ``success_ratio``; ``None`` without an SLA term."""

    @property
    def threshold_s(self) -> float | None:
        """The threshold under its former name (for ``success_ratio``, the ratio)."""
        return self.threshold

    @property
    def floor(self) -> bool:
        """Whether the metric is a floor (``success_ratio``): larger is better."""
        return self.metric in FLOOR_METRICS

    @property
    def unit(self) -> str:
        """The metric's unit: ``s``, or ``ratio`` for a success ratio."""
        return "ratio" if self.floor else "s"

    @property
    def term(self) -> SlaTerm | None:
        """The SLA term watched, ``None`` without a threshold."""
        return None if self.threshold is None else SlaTerm(self.request_type, self.metric, self.threshold)

    @property
    def text(self) -> str:
        """``deep-research:p95<30`` or ``deep-research:success_ratio>0.99``; ``deep-research:p95`` without threshold."""
        term = self.term
        return f"{self.request_type}:{self.metric}" if term is None else term.text

    def describe(self) -> str:
        """Plain words: ``p95 of deep-research``, ``success ratio of deep-research``."""
        return f"{'success ratio' if self.floor else self.metric} of {self.request_type}"

    def value(self, summary: ReplicationSummary) -> float:
        """The metric in one replication (seconds, or a ratio); not finite without a figure (:meth:`SlaTerm.value`)."""
        return SlaTerm(self.request_type, self.metric, math.inf).value(summary)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: ``op`` is ``<`` (a latency ceiling) or ``>`` (a success-ratio floor).

        ``threshold_s`` is ``None`` for a success ratio (its ``threshold`` is a ratio).
        """
        return {"text": self.text, "request_type": self.request_type, "metric": self.metric,
                "op": ">" if self.floor else "<", "threshold": self.threshold,
                "threshold_s": None if self.floor else self.threshold}  # fmt: skip


@dataclass(frozen=True)
class Sensitivity:
    """One watched metric with one more step of a resource: base, changed, and their paired difference."""

    watched: Watched
    base: Estimate
    changed: Estimate
    change: Estimate | None
    """``changed − base`` replication by replication, in the metric's unit; ``None`` when a changed replication was
    unstable."""

    @property
    def significant(self) -> bool:
        """Whether the change's 95% interval excludes 0."""
        change = self.change
        if change is None or not change.finite or change.ci95 is None:
            return False
        return change.high < 0 or change.low > 0

    @property
    def improvement(self) -> float:
        """How much the metric improves, relative to its threshold (else to its base value); 0 unless significant.

        A latency improves as it drops, a success ratio as it rises.
        """
        if not self.significant or self.change is None:
            return 0.0
        gain = self.change.mean if self.watched.floor else -self.change.mean
        if gain <= 0:
            return 0.0
        scale = self.watched.threshold if self.watched.threshold is not None else self.base.mean
        return gain / scale if scale > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for strict JSON (an unstable change is ``null``)."""
        return {
            "term": self.watched.text,
            "base_s": self.base.to_dict(),
            "with_step_s": self.changed.to_dict(),
            "change_s": None if self.change is None else self.change.to_dict(),
            "significant": self.significant,
            "relative_improvement": self.improvement,
        }


@dataclass
class ResourceReport:
    """One resource: measured use in the base and, with a step, the sensitivity of every watched metric."""

    resource: Resource
    utilisation: Estimate
    waiting: Estimate
    """Mean number of tools waiting at the resource (for a slot of ``max_active``, or for space)."""
    sensitivities: list[Sensitivity] = field(default_factory=list)
    stable_with_step: bool | None = None
    """Whether every replication with one more step was stable; ``None`` when not measured."""
    note: str | None = None
    summaries: list[ReplicationSummary] = field(default_factory=list, repr=False)
    """The replications with one more step (their indices are the base's)."""

    @property
    def name(self) -> str:
        """The resource's name."""
        return self.resource.name

    @property
    def improves(self) -> bool:
        """Whether one more step significantly improves some watched metric."""
        return any(s.improvement > 0 for s in self.sensitivities)

    def lead(self, worst: Watched | None) -> Sensitivity | None:
        """The change that ranks the resource: the worst term's if it improves, else the largest improvement."""
        improving = [s for s in self.sensitivities if s.improvement > 0]
        if not improving:
            return None
        for s in improving:
            if s.watched == worst:
                return s
        return max(improving, key=lambda s: s.improvement)

    def step_text(self) -> str:
        """``one more step (+1 NPU-s)``: the step in the resource's unit."""
        step = self.resource.step
        if step is None:
            return "one more step"
        return f"one more step (+{step:g} {self.resource.unit})" if self.resource.unit else f"one more step (+{step:g})"

    def to_dict(self, rank: int) -> dict[str, Any]:
        """Plain data for strict JSON."""
        res = self.resource
        return {
            "rank": rank,
            "resource": res.name,
            "kind": res.kind,
            "unit": res.unit,
            "capacity": res.capacity,
            "step": res.step,
            "utilisation": self.utilisation.to_dict(),
            "mean_waiting": self.waiting.to_dict(),
            "stable_with_step": self.stable_with_step,
            "note": self.note,
            "sensitivities": [s.to_dict() for s in self.sensitivities],
        }


@dataclass
class BottleneckResult:
    """The base's figures and every resource's sensitivity, ranked: what to add first comes first."""

    scenario: str
    seed: int
    replications: int
    watched: list[Watched]
    base: list[Estimate]
    """Every watched metric in the base, in the order of ``watched``."""
    resources: list[ResourceReport]
    """Ranked (see the module's text)."""
    stable: bool
    unstable_reason: str | None = None
    summaries: list[ReplicationSummary] = field(default_factory=list, repr=False)
    """The base replications (indices 0..n-1)."""

    @property
    def worst(self) -> Watched | None:
        """The watched term nearest to (or furthest beyond) its threshold in the base; ``None`` without thresholds.

        Terms are compared by their badness (:meth:`SlaTerm.badness`), so a floor and a ceiling compare alike.
        """
        pairs = [(term, w, b) for w, b in zip(self.watched, self.base, strict=True) if (term := w.term) is not None]
        if not pairs:
            return None
        return max(pairs, key=lambda p: p[0].badness(p[2].mean))[1]

    @property
    def bottleneck(self) -> ResourceReport | None:
        """The resource to add first: the top-ranked one, when one more step of it significantly helps."""
        if self.resources and self.resources[0].improves:
            return self.resources[0]
        return None

    @property
    def most_waiting(self) -> ResourceReport | None:
        """Where the waiting happens: the resource with the most tools waiting on average (``None``: none waits)."""
        waiting = [r for r in self.resources if r.waiting.finite and r.waiting.mean > 0]
        return max(waiting, key=lambda r: r.waiting.mean) if waiting else None

    @property
    def busiest(self) -> ResourceReport | None:
        """The resource with the highest measured utilisation."""
        return max(self.resources, key=lambda r: r.utilisation.mean) if self.resources else None

    def headline(self) -> str:
        """The answer in plain words, with its 95% interval and where the waiting happens."""
        lines = []
        if not self.stable:
            lines.append(f"the scenario is unstable at its rates ({self.unstable_reason}): a bottleneck ranking "
                         "needs a stable base; lower the rate, or size the resources with "
                         "`simfleet des capacity`")  # fmt: skip
        top = self.bottleneck
        if top is not None:
            lead = top.lead(self.worst)
            assert lead is not None and lead.change is not None
            if lead.watched.floor:
                lines.append(f"add {top.name} first: {top.step_text()} raises {lead.watched.describe()} by "
                             f"{lead.change.mean:.3g} (±{lead.change.ci95 or 0.0:.2g}, 95%)")  # fmt: skip
            else:
                lines.append(f"add {top.name} first: {top.step_text()} cuts {lead.watched.describe()} by "
                             f"{-lead.change.mean:.3g} s (±{lead.change.ci95 or 0.0:.2g} s, 95%)")  # fmt: skip
        elif self.stable:
            if any(r.resource.step is not None for r in self.resources):
                lines.append(f"no single step changes a watched metric significantly at {self.replications} "
                             "replications (more replications narrow the intervals)")  # fmt: skip
            else:
                lines.append(f"no resource declares a step: {NO_STEP_NOTE} (resources.<name>.step)")
        waiting, busiest = self.most_waiting, self.busiest
        if waiting is not None:
            where = f"tools wait mostly at {waiting.name} ({waiting.waiting.mean:.3g} waiting on average)"
            if top is not None and waiting is not top and waiting.sensitivities and not waiting.improves:
                where += f", yet one more step of {waiting.name} changes no watched metric significantly"
            lines.append(where)
        if top is not None and busiest not in (None, top, waiting) and busiest.sensitivities and not busiest.improves:
            lines.append(f"{busiest.name} looks busiest (utilisation {busiest.utilisation.mean:.0%}) but one more "
                         "step of it changes no watched metric significantly")  # fmt: skip
        return "; ".join(lines)

    def table(self) -> str:
        """The ranked resources as a text table, then the headline."""
        from simfleet.producer.report import text_table

        header = ["rank", "resource", "utilisation", "waiting", "step"]
        units = ["", "", "share, ±95%", "tools, ±95%", ""]
        for watched in self.watched:
            header.append(f"change of {watched.text}")
            units.append(f"{watched.unit}, ±95%")
        header.append("note")
        units.append("")
        body = []
        for rank, report in enumerate(self.resources, start=1):
            res = report.resource
            row = [str(rank), res.name, _shown(report.utilisation, ".2f"), _shown(report.waiting, ".3g"),
                   "-" if res.step is None else f"+{res.step:g} {res.unit}".rstrip()]  # fmt: skip
            by_term = {s.watched: s for s in report.sensitivities}
            for watched in self.watched:
                sens = by_term.get(watched)
                if sens is None:
                    row.append("-")
                elif sens.change is None:
                    row.append("unstable")
                else:
                    row.append(_shown(sens.change, "+.3g") + (" *" if sens.significant else ""))
            row.append(report.note or "")
            body.append(row)
        base = ", ".join(f"{w.describe()} {_shown(b, '.3g')}{'' if w.floor else ' s'}"
                         for w, b in zip(self.watched, self.base, strict=True))  # fmt: skip
        head = (f"scenario {self.scenario}: {self.replications} replications per run, seed {self.seed}, the same "
                f"replication indices in every run (common random numbers)\nbase: {base}\n"
                "* the change's 95% interval excludes 0 (significant)")  # fmt: skip
        return f"{head}\n\n{text_table(header, body, units)}\n\n{self.headline()}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for strict JSON (figures that are not finite are ``null``)."""
        top = self.bottleneck
        waiting = self.most_waiting
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "replications": self.replications,
            "stable": self.stable,
            "unstable_reason": self.unstable_reason,
            "watched": [w.to_dict() for w in self.watched],
            "base": [{"term": w.text, **b.to_dict()} for w, b in zip(self.watched, self.base, strict=True)],
            "bottleneck": None if top is None else top.name,
            "most_waiting_at": None if waiting is None else waiting.name,
            "headline": self.headline(),
            "resources": [r.to_dict(rank) for rank, r in enumerate(self.resources, start=1)],
        }

    def rows(self) -> list[dict[str, Any]]:
        """One CSV row per resource and watched metric (a resource without a step: empty change columns)."""
        rows = []
        for rank, report in enumerate(self.resources, start=1):
            by_term = {s.watched: s for s in report.sensitivities}
            for watched, base in zip(self.watched, self.base, strict=True):
                sens = by_term.get(watched)
                change = sens.change if sens is not None else None
                rows.append({
                    "rank": rank, "resource": report.name, "kind": report.resource.kind,
                    "unit": report.resource.unit, "capacity": report.resource.capacity,
                    "step": report.resource.step, "utilisation": _figure(report.utilisation.mean),
                    "utilisation_ci95": report.utilisation.ci95, "mean_waiting_tools": _figure(report.waiting.mean),
                    "mean_waiting_tools_ci95": report.waiting.ci95, "term": watched.text,
                    "base_s": _figure(base.mean), "base_ci95_s": base.ci95,
                    "with_step_s": None if sens is None else _figure(sens.changed.mean),
                    "change_s": None if change is None else _figure(change.mean),
                    "change_ci95_s": None if change is None else change.ci95,
                    "significant": None if sens is None else sens.significant, "note": report.note,
                })  # fmt: skip
        return rows


def _shown(value: Estimate, spec: str) -> str:
    """``mean ±half-width`` of an estimate; ``unstable`` when it is not a finite figure."""
    if not value.finite:
        return "unstable"
    return f"{value.mean:{spec}}" + ("" if value.ci95 is None else f" ±{value.ci95:.2g}")


def _figure(value: float) -> float | None:
    return value if math.isfinite(value) else None


def watched_metrics(scenario: Scenario, slas: Sequence[SlaTerm | str] | None, *, key: str = "slas") -> list[Watched]:
    """The metrics to watch: ``slas`` (checked, naming ``key``), else the scenario's sla block, else every p95.

    Raises:
        ConfigError: an SLA term naming an unknown request type or metric, or a bad threshold.
    """
    if slas is not None:
        if isinstance(slas, str | SlaTerm) or not isinstance(slas, Sequence):
            raise ConfigError("must be a list of SLA terms (SlaTerm, or 'TYPE:METRIC<SECONDS' and "
                              "'TYPE:success_ratio>RATIO' strings)", key=key)  # fmt: skip
        terms = [check_term(term, scenario, key=key) for term in slas]
        if terms:
            return list(dict.fromkeys(Watched(t.request_type, t.metric, t.threshold) for t in terms))
    if scenario.sla is not None:
        return [Watched(scenario.sla.request_type, scenario.sla.metric, scenario.sla.threshold)]
    return [Watched(name, "p95") for name in scenario.request_types]


def check_arguments(
    scenario: Scenario, slas: Sequence[SlaTerm | str] | None, replications: object, seed: object
) -> tuple[list[Watched], int, int]:
    """The watched metrics, replications and seed of a bottleneck study, checked before anything runs.

    Raises:
        ConfigError: a bad SLA term (key ``slas``), fewer than 2 replications (an interval needs two), or a seed
            out of range, naming the argument.
    """
    watched = watched_metrics(scenario, slas)
    count = whole(replications, key="replications", low=2, high=MAX_REPLICATIONS)
    chosen = whole(scenario.seed if seed is None else seed, key="seed", low=0, high=SEED_MAX)
    return watched, count, chosen


def find_bottlenecks(
    scenario: Scenario,
    evaluate: Evaluator,
    *,
    slas: Sequence[SlaTerm | str] | None = None,
    replications: int = 10,
    seed: int | None = None,
) -> BottleneckResult:
    """Measure every resource's use and sensitivity and rank what to add first (see the module's text).

    Args:
        scenario: the scenario, at its own rates.
        evaluate: runs replications ``first..first+n-1`` (locally or on the fleet; see ``producer/sla.py``).
        slas: the terms to watch (``SlaTerm``, ``"type:p95<30"`` or ``"type:success_ratio>0.99"``); default the
            scenario's sla block, else
            p95 of every request type.
        replications: per run, at least 2; the base and every stepped run use the same indices.
        seed: the study seed (default: the scenario's).

    Raises:
        ConfigError: a bad argument, naming it (nothing has run).
    """
    watched, replications, seed = check_arguments(scenario, slas, replications, seed)
    base = list(evaluate(scenario, replications, seed, 0))
    base_values = [[w.value(s) for s in base] for w in watched]
    stable = all(s.stable for s in base)
    reports = []
    for name, resource in scenario.resources.items():
        report = ResourceReport(
            resource,
            estimate(s.resources[name].utilisation for s in base),
            estimate(s.resources[name].mean_waiting for s in base),
        )
        if resource.step is None:
            report.note = NO_STEP_NOTE
        elif not stable:
            report.note = "not measured: the base is unstable"
        else:
            stepped = scenario.with_capacity(name, resource.capacity + resource.step)
            report.summaries = list(evaluate(stepped, replications, seed, 0))
            report.stable_with_step = all(s.stable for s in report.summaries)
            if not report.stable_with_step:
                report.note = UNSTABLE_NOTE
            for w, values in zip(watched, base_values, strict=True):
                changed = [w.value(s) for s in report.summaries]
                change = paired_difference(values, changed) if report.stable_with_step else None
                report.sensitivities.append(Sensitivity(w, estimate(values), estimate(changed), change))
        reports.append(report)
    result = BottleneckResult(
        scenario=scenario.name,
        seed=seed,
        replications=replications,
        watched=watched,
        base=[estimate(values) for values in base_values],
        resources=reports,
        stable=stable,
        unstable_reason=next((s.unstable_reason for s in base if not s.stable), None),
        summaries=base,
    )
    result.resources = _ranked(reports, result.worst)
    return result


def _ranked(reports: list[ResourceReport], worst: Watched | None) -> list[ResourceReport]:
    """Improving resources first (worst term's relative improvement, then the largest), then the rest by waiting."""

    def key(report: ResourceReport) -> tuple[int, float, float, float]:
        waiting = report.waiting.mean if report.waiting.finite else 0.0
        if not report.improves:
            return (1, 0.0, 0.0, -waiting)
        on_worst = next((s.improvement for s in report.sensitivities if s.watched == worst), 0.0)
        return (0, -on_worst, -max(s.improvement for s in report.sensitivities), -waiting)

    return sorted(reports, key=key)


__all__ = [
    "BottleneckResult",
    "ResourceReport",
    "Sensitivity",
    "Watched",
    "check_arguments",
    "find_bottlenecks",
    "watched_metrics",
]
