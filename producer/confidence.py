"""Confident answers: SLA terms, their statistical pass/fail decision, and replications added until it is decided.

Every search of the DES (``des sla``, ``des capacity``, ``des bottleneck``) asks of a candidate (a rate, a capacity)
whether its SLA terms hold. A term is a request type's latency metric against a threshold
(``deep-research:p95<30``). Its value at a candidate is estimated by the mean over replications of the
per-replication metric, with a 95% Student-t confidence interval. The decision is statistical:

- **pass** when the upper end of the interval is at or below the threshold;
- **fail** when the lower end is above it, or when a replication was unstable or completed nothing of that type;
- **undecided** otherwise: the interval straddles the threshold.

A candidate passes when every term passes, fails when any term fails, and is undecided otherwise. An undecided
candidate gets more replications, with the next indices (replication ``i`` is the same run at every candidate:
common random numbers), until it is decided or its replications reach the cap; then it is *undecided at this
precision*, and the searches say so rather than guess.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from simfleet.shared.errors import ConfigError, printable
from simfleet.worker.des.limits import MAX_REPLICATIONS, METRICS, check_number

if TYPE_CHECKING:
    from simfleet.producer.sla import Evaluator
    from simfleet.shared.messages.des import ReplicationSummary
    from simfleet.worker.des.scenario import Scenario

Verdict = Literal["pass", "fail", "undecided"]

DEFAULT_MAX_REPLICATIONS = 20
"""The cap of replications at one candidate when no other is given (4 times the default 5 per probe)."""

_TERM = re.compile(r"^\s*(?P<type>[^:]+?)\s*:\s*(?P<metric>[A-Za-z0-9_]+)\s*(?P<op><=|<)\s*(?P<value>[^\s]+?)\s*s?\s*$")


@dataclass(frozen=True)
class SlaTerm:
    """One SLA term: ``metric`` of ``request_type`` (seconds) must stay at or below ``threshold_s``."""

    request_type: str
    metric: str
    threshold_s: float

    @property
    def text(self) -> str:
        """The term as the command line writes it: ``deep-research:p95<30``."""
        return f"{self.request_type}:{self.metric}<{self.threshold_s:g}"

    def describe(self) -> str:
        """Plain words: ``p95 of deep-research under 30 s``."""
        return f"{self.metric} of {self.request_type} under {self.threshold_s:g} s"

    def value(self, summary: ReplicationSummary) -> float:
        """The term's metric in one replication, seconds; infinite when unstable or nothing of the type completed."""
        if not summary.stable:
            return math.inf
        figure = summary.types[self.request_type].figure("mean_s" if self.metric == "mean" else f"{self.metric}_s")
        return math.inf if figure is None else float(figure)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"request_type": self.request_type, "metric": self.metric, "threshold_s": self.threshold_s,
                "text": self.text}  # fmt: skip


def parse_term(text: str, scenario: Scenario, *, flag: str = "--sla") -> SlaTerm:
    """``TYPE:METRIC<SECONDS`` (also ``<=``, and a trailing ``s``) checked against ``scenario``.

    Raises:
        ConfigError: a malformed term, an unknown request type or metric, or a threshold that is not a number
            above 0, naming ``flag`` and the term.
    """
    match = _TERM.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(f"{printable(repr(text))} is not an SLA term: write TYPE:METRIC<SECONDS, "
                          "e.g. deep-research:p95<30", key=flag)  # fmt: skip
    try:
        threshold = float(match["value"])
    except ValueError:
        threshold = math.nan
    return check_term(SlaTerm(match["type"], match["metric"], threshold), scenario, key=f"{flag} {text.strip()}")


def check_term(term: Any, scenario: Scenario, *, key: str = "slas") -> SlaTerm:
    """``term`` (an :class:`SlaTerm`, or its ``TYPE:METRIC<SECONDS`` text) checked against ``scenario``.

    Raises:
        ConfigError: an unknown request type or metric, or a bad threshold, naming ``key``.
    """
    if isinstance(term, str):
        return parse_term(term, scenario, flag=key)
    if not isinstance(term, SlaTerm):
        raise ConfigError(f"expected an SlaTerm or a 'TYPE:METRIC<SECONDS' string, got {type(term).__name__}",
                          key=key)  # fmt: skip
    if term.request_type not in scenario.request_types:
        raise ConfigError(f"unknown request type {printable(repr(term.request_type))} in {scenario.source} "
                          f"(declared: {', '.join(scenario.request_types)})", key=key)  # fmt: skip
    if term.metric not in METRICS:
        hint = " (success_ratio comes with the DES model v2)" if term.metric == "success_ratio" else ""
        raise ConfigError(f"unknown metric {printable(repr(term.metric))}: one of {', '.join(METRICS)}{hint}",
                          key=key)  # fmt: skip
    try:
        check_number(term.threshold_s, scenario.source, key, positive=True)
    except Exception as exc:  # the scenario's number check names the scenario file; here the flag is the source
        raise ConfigError(f"the threshold must be a number of seconds above 0, got "
                          f"{printable(repr(term.threshold_s))}", key=key) from exc  # fmt: skip
    return term


@dataclass(frozen=True)
class Estimate:
    """A figure's mean over replications with its 95% Student-t half-width (``None`` below 2 replications)."""

    mean: float
    ci95: float | None
    n: int

    @property
    def low(self) -> float:
        """The lower end of the 95% interval (the mean when there is no interval)."""
        return self.mean - (self.ci95 or 0.0)

    @property
    def high(self) -> float:
        """The upper end of the 95% interval (the mean when there is no interval)."""
        return self.mean + (self.ci95 or 0.0)

    @property
    def finite(self) -> bool:
        """Whether the mean is a finite figure (no replication was unstable)."""
        return math.isfinite(self.mean)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for strict JSON: a figure that is not finite is ``None``."""
        finite = self.finite
        return {"mean": self.mean if finite else None, "ci95": self.ci95 if finite else None, "n": self.n}


def estimate(values: Iterable[float]) -> Estimate:
    """Mean and 95% half-width of per-replication values; an infinite value (unstable) makes the mean infinite."""
    from simfleet.worker.des.aggregate import scalar_stats

    present = list(values)
    if not present or not all(math.isfinite(v) for v in present):
        return Estimate(math.inf, None, len(present))
    stat = scalar_stats(present)
    assert stat.mean is not None
    return Estimate(float(stat.mean), stat.ci95, stat.n)


def paired_difference(base: Sequence[float], other: Sequence[float]) -> Estimate:
    """``other − base`` replication by replication (common random numbers), with its 95% half-width."""
    return estimate([b - a for a, b in zip(base, other, strict=True)])


def decide(value: Estimate, threshold: float) -> Verdict:
    """The statistical decision of one term: pass, fail or undecided (see the module's text)."""
    if not value.finite:
        return "fail"
    if value.ci95 is None:
        return "undecided"
    if value.high <= threshold:
        return "pass"
    if value.low > threshold:
        return "fail"
    return "undecided"


@dataclass(frozen=True)
class TermOutcome:
    """One term at one candidate: its estimate, and the decision."""

    term: SlaTerm
    value: Estimate
    verdict: Verdict
    reason: str | None = None
    """Why the value is not a finite figure: ``unstable`` or ``no request completed``."""

    @property
    def margin(self) -> float:
        """How far the interval's upper end is from the threshold, relative to it (negative: above it)."""
        return (self.term.threshold_s - self.value.high) / self.term.threshold_s if self.value.finite else -math.inf

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"term": self.term.text, **self.value.to_dict(), "verdict": self.verdict, "reason": self.reason}


@dataclass
class Judged:
    """A candidate judged against every term: its summaries (replications ``0..n-1``) and the outcome."""

    summaries: list[ReplicationSummary]
    terms: list[TermOutcome]
    capped: bool = False
    """Undecided with its replications at the cap: undecided at this precision."""

    @property
    def verdict(self) -> Verdict:
        """Pass when every term passes, fail when any fails, else undecided."""
        verdicts = {t.verdict for t in self.terms}
        if "fail" in verdicts:
            return "fail"
        return "pass" if verdicts == {"pass"} else "undecided"

    @property
    def replications(self) -> int:
        """Replications run at this candidate."""
        return len(self.summaries)

    @property
    def stable(self) -> bool:
        """Whether every replication was stable."""
        return all(s.stable for s in self.summaries)

    @property
    def binding(self) -> TermOutcome:
        """The term nearest to breaking (or the first that broke): smallest margin, first in order on a tie."""
        return min(self.terms, key=lambda t: t.margin)


@dataclass(frozen=True, kw_only=True)
class Decision:
    """What a search keeps of a judged candidate (a probed rate, a capacity): the decision and each term's interval."""

    verdict: Verdict
    terms: list[TermOutcome]
    replications: int
    capped: bool = False
    """Undecided with its replications at the cap: undecided at this precision (not shown to pass)."""
    stable: bool = True

    @staticmethod
    def fields_of(judged: Judged) -> dict[str, Any]:
        """The decision's fields from a judged candidate."""
        return {"verdict": judged.verdict, "terms": judged.terms, "replications": judged.replications,
                "capped": judged.capped, "stable": judged.stable}  # fmt: skip

    @property
    def passed(self) -> bool:
        """Whether every term passed (with 95% confidence)."""
        return self.verdict == "pass"

    @property
    def binding(self) -> TermOutcome:
        """The term nearest to breaking, or the first that broke."""
        return min(self.terms, key=lambda t: t.margin)

    def decision_dict(self) -> dict[str, Any]:
        """The decision as plain data for strict JSON (each term's figures ``None`` where not finite)."""
        return {
            "verdict": self.verdict,
            "passed": self.passed,
            "undecided_at_cap": self.capped,
            "replications": self.replications,
            "stable": self.stable,
            "binding": self.binding.term.text,
            "terms": [t.to_dict() for t in self.terms],
        }


def judge(summaries: list[ReplicationSummary], terms: Sequence[SlaTerm]) -> Judged:
    """Every term's estimate and decision over ``summaries``."""
    outcomes = []
    for term in terms:
        values = [term.value(s) for s in summaries]
        value = estimate(values)
        reason = None
        if not value.finite:
            reason = "unstable" if not all(s.stable for s in summaries) else "no request completed"
        outcomes.append(TermOutcome(term, value, decide(value, term.threshold_s), reason))
    return Judged(list(summaries), outcomes)


@dataclass(frozen=True)
class Precision:
    """How many replications a candidate gets: ``initial`` first, more while undecided, at most ``cap``."""

    initial: int = 5
    cap: int = DEFAULT_MAX_REPLICATIONS

    def __post_init__(self) -> None:
        if not isinstance(self.initial, int) or isinstance(self.initial, bool) or not 2 <= self.initial <= \
                MAX_REPLICATIONS:  # fmt: skip
            raise ConfigError(f"must be a whole number from 2 to {MAX_REPLICATIONS} (an interval needs two "
                              f"replications), got {printable(repr(self.initial))}", key="replications")  # fmt: skip
        if not isinstance(self.cap, int) or isinstance(self.cap, bool) or not self.initial <= self.cap <= \
                MAX_REPLICATIONS:  # fmt: skip
            raise ConfigError(f"must be a whole number from the replications per probe ({self.initial}) to "
                              f"{MAX_REPLICATIONS}, got {printable(repr(self.cap))}",
                              key="max_replications")  # fmt: skip


def next_count(judged: Judged, cap: int) -> int:
    """How many replications the undecided candidate should have next (at least double, at most 4x, the cap).

    Each undecided term's half-width shrinks like 1/sqrt(n); the count at which it would clear the threshold is
    n x (half-width / distance to the threshold)^2, taken with 20% to spare.
    """
    n = judged.replications
    needed = 2 * n
    for outcome in judged.terms:
        if outcome.verdict != "undecided" or outcome.value.ci95 is None:
            continue
        distance = abs(outcome.value.mean - outcome.term.threshold_s)
        wanted = math.inf if distance == 0 else n * (outcome.value.ci95 / distance) ** 2 * 1.2
        needed = max(needed, min(4 * n, math.ceil(wanted)))
    return min(cap, needed)


def judge_candidate(
    evaluate: Evaluator, scenario: Scenario, seed: int, terms: Sequence[SlaTerm], precision: Precision
) -> Judged:
    """Run a candidate until its terms are decided or its replications reach the cap (see the module's text)."""
    summaries = list(evaluate(scenario, precision.initial, seed, 0))
    judged = judge(summaries, terms)
    while judged.verdict == "undecided" and judged.replications < precision.cap:
        more = next_count(judged, precision.cap) - judged.replications
        summaries.extend(evaluate(scenario, more, seed, judged.replications))
        judged = judge(summaries, terms)
    judged.capped = judged.verdict == "undecided"
    return judged
