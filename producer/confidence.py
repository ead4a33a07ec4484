"""Confident answers: SLA terms, their statistical pass/fail decision, and replications added until it is decided.

Every search of the DES (``des sla``, ``des capacity``, ``des bottleneck``) asks of a candidate (a rate, a capacity)
whether its SLA terms hold. A term is a request type's metric against a threshold: a latency metric (``mean``,
``p50``, ``p95``, ``p99``, seconds) is a ceiling (``deep-research:p95<30``), the success ratio (``success_ratio``:
completed / (completed + failed + timed out), per replication) is a floor (``deep-research:success_ratio>0.99``).
Its value at a candidate is estimated by the mean over replications of the per-replication metric, with a 95%
Student-t confidence interval. The decision is statistical:

- **pass** when the whole interval is on the good side: its upper end at or below a ceiling, its lower end at or
  above a floor;
- **fail** when the whole interval is on the bad side (its lower end above a ceiling, its upper end below a floor), or
  when a replication was unstable or had no figure for the term (completed nothing of that type; for a success
  ratio, finished nothing);
- **undecided** otherwise: the interval straddles the threshold.

Both kinds get worse as load rises (latency grows, the success ratio falls). Where a search compares terms or fits
how a term changes with load it uses the term's *badness* (:meth:`SlaTerm.badness`): value / threshold for a
ceiling, threshold / value for a floor, so that 1 is the threshold and larger is worse for every term.

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
from simfleet.worker.des.limits import FLOOR_METRICS, MAX_REPLICATIONS, SLA_METRICS, check_number

if TYPE_CHECKING:
    from simfleet.producer.sla import Evaluator
    from simfleet.shared.messages.des import ReplicationSummary
    from simfleet.worker.des.scenario import Scenario

Verdict = Literal["pass", "fail", "undecided"]

DEFAULT_MAX_REPLICATIONS = 20
"""The cap of replications at one candidate when no other is given (4 times the default 5 per probe)."""

_TERM = re.compile(
    r"^\s*(?P<type>[^:]+?)\s*:\s*(?P<metric>[A-Za-z0-9_]+)\s*(?P<op><=|<|>=|>)\s*(?P<value>[^\s]+?)\s*(?P<unit>s?)\s*$"
)


@dataclass(frozen=True)
class SlaTerm:
    """One SLA term: ``metric`` of ``request_type`` against ``threshold``.

    A latency metric (``mean``, ``p50``, ``p95``, ``p99``) is a ceiling in seconds: it must stay at or below the
    threshold. ``success_ratio`` is a floor, a ratio in (0, 1]: it must stay at or above the threshold.
    """

    request_type: str
    metric: str
    threshold: float
    """Seconds for a latency metric; a ratio in (0, 1] for ``success_ratio``."""

    @property
    def threshold_s(self) -> float:
        """The threshold under its former name (seconds for a latency metric; for ``success_ratio`` the ratio)."""
        return self.threshold

    @property
    def floor(self) -> bool:
        """Whether the metric must stay at or above the threshold (``success_ratio``) rather than at or below it."""
        return self.metric in FLOOR_METRICS

    @property
    def op(self) -> str:
        """The comparison the term asks for, as text writes it: ``<`` for a ceiling, ``>`` for a floor."""
        return ">" if self.floor else "<"

    @property
    def unit(self) -> str:
        """The metric's unit as text writes it after a figure: `` s`` for seconds, nothing for a ratio."""
        return "" if self.floor else " s"

    @property
    def text(self) -> str:
        """The term as the command line writes it: ``deep-research:p95<30``, ``deep-research:success_ratio>0.99``."""
        return f"{self.request_type}:{self.metric}{self.op}{self.threshold:g}"

    def describe(self) -> str:
        """Plain words: ``p95 of deep-research under 30 s``, ``success ratio of deep-research at least 0.99``."""
        if self.floor:
            return f"success ratio of {self.request_type} at least {self.threshold:g}"
        return f"{self.metric} of {self.request_type} under {self.threshold:g} s"

    def holds(self) -> str:
        """Plain words for the term holding: ``p95 of deep-research stays under 30 s``."""
        if self.floor:
            return f"success ratio of {self.request_type} stays at least {self.threshold:g}"
        return f"{self.metric} of {self.request_type} stays under {self.threshold:g} s"

    @property
    def worst(self) -> float:
        """The value that stands for no figure (unstable, nothing completed): +inf for a ceiling, -inf for a floor."""
        return -math.inf if self.floor else math.inf

    def value(self, summary: ReplicationSummary) -> float:
        """The term's metric in one replication (seconds, or a ratio); :attr:`worst` when there is no figure.

        No figure: the replication was unstable, or nothing of the type completed (a latency metric) or finished
        (the success ratio).
        """
        if not summary.stable:
            return self.worst
        figures = summary.types[self.request_type]
        if self.floor:
            figure = figures.figure(self.metric)
            finished = figures.completed + figures.failed + figures.timed_out
            if figure is None and finished > 0:  # a summary that counts outcomes without the ratio (older engines)
                figure = figures.completed / finished
        else:
            figure = figures.figure("mean_s" if self.metric == "mean" else f"{self.metric}_s")
        return self.worst if figure is None else float(figure)

    def badness(self, value: float) -> float:
        """``value`` on a scale where the threshold is 1 and larger is worse (grows with load, for either kind).

        value / threshold for a ceiling, threshold / value for a floor; infinite when the value is not finite, or a
        floor's value is 0 or less.
        """
        if not math.isfinite(value):
            return math.inf
        if self.floor:
            return self.threshold / value if value > 0 else math.inf
        return value / self.threshold

    def badness_width(self, value: Estimate) -> float:
        """The 95% half-width of ``value`` on the scale of :meth:`badness` (to first order).

        Infinite without a finite figure, 0 without an interval.
        """
        if not value.finite or (self.floor and value.mean <= 0):
            return math.inf
        half = value.ci95 or 0.0
        return self.threshold * half / value.mean**2 if self.floor else half / self.threshold

    def decide(self, value: Estimate) -> Verdict:
        """The statistical decision of this term on ``value`` (see the module's text)."""
        return decide(value, self.threshold, floor=self.floor)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: ``op`` is ``<`` (a ceiling) or ``>`` (a floor).

        ``threshold_s`` is the threshold in seconds, ``None`` for a success-ratio term (whose ``threshold`` is a ratio).
        """
        return {"request_type": self.request_type, "metric": self.metric, "op": self.op, "threshold": self.threshold,
                "threshold_s": None if self.floor else self.threshold, "text": self.text}  # fmt: skip


def parse_term(text: str, scenario: Scenario, *, flag: str = "--sla") -> SlaTerm:
    """A term's text checked against ``scenario``.

    ``TYPE:METRIC<SECONDS`` (also ``<=``, and a trailing ``s``), or ``TYPE:success_ratio>RATIO`` (also ``>=``).

    ``<`` and ``<=`` (``>`` and ``>=``) mean the same: a pass needs the whole 95% interval at or below (at or above)
    the threshold.

    Raises:
        ConfigError: a malformed term, an unknown request type or metric, a comparison the wrong way for the metric,
            or a threshold out of range (seconds above 0; a ratio in (0, 1]), naming ``flag`` and the term.
    """
    match = _TERM.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(f"{printable(repr(text))} is not an SLA term: write TYPE:METRIC<SECONDS or "
                          "TYPE:success_ratio>RATIO, e.g. deep-research:p95<30", key=flag)  # fmt: skip
    key = f"{flag} {text.strip()}"
    try:
        threshold = float(match["value"])
    except ValueError:
        threshold = math.nan
    term = SlaTerm(match["type"], match["metric"], threshold)
    if term.metric in SLA_METRICS:
        wanted = ">" if term.floor else "<"
        if not match["op"].startswith(wanted):
            what = "a floor: it must stay above the threshold" if term.floor else \
                "a ceiling: it must stay below the threshold"  # fmt: skip
            raise ConfigError(f"{term.metric} is {what}, so write {term.request_type}:{term.metric}{wanted}"
                              f"{match['value']}", key=key)  # fmt: skip
        if term.floor and match["unit"]:
            raise ConfigError("a success ratio is a ratio, not seconds: write it without 's'", key=key)
    return check_term(term, scenario, key=key)


def check_term(term: Any, scenario: Scenario, *, key: str = "slas") -> SlaTerm:
    """``term`` (an :class:`SlaTerm`, or its text) checked against ``scenario``.

    The text is ``TYPE:METRIC<SECONDS`` or ``TYPE:success_ratio>RATIO`` (see :func:`parse_term`).

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
    if term.metric not in SLA_METRICS:
        raise ConfigError(f"unknown metric {printable(repr(term.metric))}: one of {', '.join(SLA_METRICS)}",
                          key=key)  # fmt: skip
    what = "a success ratio in (0, 1]" if term.floor else "a number of seconds above 0"
    try:
        threshold = check_number(term.threshold, scenario.source, key, positive=True)
    except Exception as exc:  # the scenario's number check names the scenario file; here the flag is the source
        raise ConfigError(f"the threshold must be {what}, got {printable(repr(term.threshold))}",
                          key=key) from exc  # fmt: skip
    if term.floor and threshold > 1.0:
        raise ConfigError(f"the threshold must be {what} (0.99 is 99%), got {threshold:g}", key=key)
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
        """Whether the mean is a finite figure (every replication had a figure)."""
        return math.isfinite(self.mean)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for strict JSON: a figure that is not finite is ``None``."""
        finite = self.finite
        return {"mean": self.mean if finite else None, "ci95": self.ci95 if finite else None, "n": self.n}


def estimate(values: Iterable[float]) -> Estimate:
    """Mean and 95% half-width of per-replication values.

    An infinite value (no figure: unstable) makes the mean that infinity (the first one met; +inf without values).
    """
    from simfleet.worker.des.aggregate import scalar_stats

    present = list(values)
    worst = next((v for v in present if not math.isfinite(v)), None if present else math.inf)
    if worst is not None:
        return Estimate(worst if not math.isnan(worst) else math.inf, None, len(present))
    stat = scalar_stats(present)
    assert stat.mean is not None
    return Estimate(float(stat.mean), stat.ci95, stat.n)


def paired_difference(base: Sequence[float], other: Sequence[float]) -> Estimate:
    """``other − base`` replication by replication (common random numbers), with its 95% half-width."""
    return estimate([b - a for a, b in zip(base, other, strict=True)])


def decide(value: Estimate, threshold: float, *, floor: bool = False) -> Verdict:
    """The statistical decision of one term: pass, fail or undecided (see the module's text).

    ``floor``: the value must stay at or above ``threshold`` (a success ratio) instead of at or below it.
    """
    if not value.finite:
        return "fail"
    if value.ci95 is None:
        return "undecided"
    good, bad = (value.low >= threshold, value.high < threshold) if floor else \
        (value.high <= threshold, value.low > threshold)  # fmt: skip
    if good:
        return "pass"
    if bad:
        return "fail"
    return "undecided"


@dataclass(frozen=True)
class TermOutcome:
    """One term at one candidate: its estimate, and the decision."""

    term: SlaTerm
    value: Estimate
    verdict: Verdict
    reason: str | None = None
    """Why the value is not a finite figure: ``unstable``, ``no request completed`` or ``no request finished``."""

    @property
    def margin(self) -> float:
        """How far the interval's worse end is on the good side of the threshold, relative to it (negative: bad side).

        (threshold − upper end) / threshold for a ceiling, (lower end − threshold) / threshold for a floor; −inf
        without a finite figure.
        """
        if not self.value.finite:
            return -math.inf
        if self.term.floor:
            return (self.value.low - self.term.threshold) / self.term.threshold
        return (self.term.threshold - self.value.high) / self.term.threshold

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (``op``: ``<`` for a ceiling, ``>`` for a floor)."""
        return {"term": self.term.text, "op": self.term.op, "threshold": self.term.threshold, **self.value.to_dict(),
                "verdict": self.verdict, "reason": self.reason}  # fmt: skip


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
            missing = "no request finished" if term.floor else "no request completed"
            reason = "unstable" if not all(s.stable for s in summaries) else missing
        outcomes.append(TermOutcome(term, value, term.decide(value), reason))
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
        distance = abs(outcome.value.mean - outcome.term.threshold)
        wanted = math.inf if distance == 0 else n * (outcome.value.ci95 / distance) ** 2 * 1.2
        needed = max(needed, min(4 * n, math.ceil(wanted)))
    return min(cap, needed)


def _evaluated(evaluate: Evaluator, scenario: Scenario, count: int, seed: int, first: int) -> list[ReplicationSummary]:
    """``count`` replications from ``first`` on.

    An evaluator that returns another number is a bug, said at once (a round that added nothing would be asked
    again for ever).
    """
    summaries = list(evaluate(scenario, count, seed, first))
    if len(summaries) != count:
        raise ValueError(f"the evaluator returned {len(summaries)} replication summaries for {count} asked "
                         f"(replications {first} to {first + count - 1})")  # fmt: skip
    return summaries


def judge_candidate(
    evaluate: Evaluator, scenario: Scenario, seed: int, terms: Sequence[SlaTerm], precision: Precision
) -> Judged:
    """Run a candidate until its terms are decided or its replications reach the cap (see the module's text)."""
    summaries = _evaluated(evaluate, scenario, precision.initial, seed, 0)
    judged = judge(summaries, terms)
    while judged.verdict == "undecided" and judged.replications < precision.cap:
        more = next_count(judged, precision.cap) - judged.replications
        summaries.extend(_evaluated(evaluate, scenario, more, seed, judged.replications))
        judged = judge(summaries, terms)
    judged.capped = judged.verdict == "undecided"
    return judged
