"""Forward runs to a precision: replications are added until every reported figure is known to a relative precision.

**The figures.** What the study table reports per request type and overall (``(all types)``): the mean over
replications of the per-replication ``mean_s``, ``p50_s``, ``p95_s`` and ``p99_s`` latencies and of
``throughput_per_min`` (each a :class:`~simfleet.shared.messages.des.Stat` of the aggregate). A figure is *precise*
when the half-width of its 95% Student-t interval is at most ``precision`` times the absolute value of its mean. A
figure whose mean is missing (no request of the type completed) or zero has no relative precision: it is left out of
the rule and listed under ``skipped`` with the reason. ``max_s`` is not a target (a maximum has no stable mean to
converge to), nor are the resource figures.

**Rounds.** The first round runs replications ``0 .. initial-1``; each later round runs the next indices (replication
``i`` is the same run wherever it runs, so the answer equals running all of them at once, bit for bit). On the fleet a
round is one study published with ``first`` at the count so far, so its replications run in parallel; locally the
process pool runs it.

**Batch rule.** For each figure not yet within the target, its standard deviation s is estimated from the
replications so far, and its count is the smallest n at which ``t(0.975, n-1) · s / √n`` would be within the target,
plus 10% to spare; the next total is the largest of these counts (in practice the widest figure's). The Student-t
quantile of the *new* count is used, not of the current one (at 2 replications t is 12.7, so the plain rule
n·(h/target)² would ask for about 40 times too many). The next total is at least one more than the count so far and
at most four times it (a standard deviation from few replications is rough, so a far target is approached in a few
growing rounds rather than one blind leap), and never above the cap. A figure with a mean but no interval yet (one
replication had a value) asks for the fourfold round.

**Stopping.** Stop when every figure is precise (``reached``), when the cap is reached (not reached: the widest
figure's relative half-width is the answer's precision), or at once when a replication was unstable (``unstable``):
the figures of a saturated system do not converge, so more replications would not help.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simfleet.shared.errors import ConfigError, printable
from simfleet.worker.des.limits import MAX_REPLICATIONS, SEED_MAX

if TYPE_CHECKING:
    from simfleet.producer.sla import Evaluator
    from simfleet.shared.messages.des import LatencyAggregate, ReplicationSummary, StudyAggregate
    from simfleet.worker.des.scenario import Scenario

DEFAULT_MAX_REPLICATIONS = 200
"""The cap of a run to a precision when none is given."""

FIGURES = {"mean_s": "mean", "p50_s": "p50", "p95_s": "p95", "p99_s": "p99", "throughput_per_min": "throughput"}
"""The figures held to the precision (a ``LatencyAggregate`` field each) and their names in plain words."""

OVERALL = "(all types)"
"""How the study table names the figures over every request type."""

MAX_GROWTH = 4
"""A round brings the replications to at most this many times the count so far."""

SPARE = 1.1
"""The count the batch rule asks for is taken with this factor to spare."""

OnRound = Callable[[int, int, int, "FigurePrecision | None"], None]
"""Called before each round with its number (from 1), first replication index and count, and the widest figure so far
(``None`` before the first round)."""


@dataclass(frozen=True)
class FigurePrecision:
    """One figure of the aggregate and how precisely it is known."""

    request_type: str
    """A request type, or ``(all types)``."""
    figure: str
    """A ``LatencyAggregate`` field: ``mean_s``, ``p50_s``, ``p95_s``, ``p99_s`` or ``throughput_per_min``."""
    value: float | None
    ci95: float | None
    std: float | None
    n: int
    """Replications that had a value."""

    @property
    def relative(self) -> float | None:
        """The half-width relative to the value: infinite without an interval, ``None`` when the value is 0 or missing.

        A figure of 0, or of no value, has no relative precision.
        """
        if self.value is None or self.value == 0:
            return None
        return math.inf if self.ci95 is None else self.ci95 / abs(self.value)

    @property
    def skip_reason(self) -> str | None:
        """Why the figure has no relative precision: ``no request completed`` or ``its value is 0``."""
        if self.value is None:
            return "no request completed"
        return "its value is 0" if self.value == 0 else None

    @property
    def label(self) -> str:
        """Plain words: ``p99 of web-search``, ``throughput of all types``."""
        of = "all types" if self.request_type == OVERALL else self.request_type
        return f"{FIGURES[self.figure]} of {of}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for strict JSON (an infinite relative half-width is ``None``)."""
        relative = self.relative
        shown = relative if relative is not None and math.isfinite(relative) else None
        return {"request_type": self.request_type, "figure": self.figure, "value": self.value, "ci95": self.ci95,
                "n": self.n, "relative_ci95": shown}  # fmt: skip


def figures(result: StudyAggregate) -> list[FigurePrecision]:
    """Every figure held to the precision, per request type (in declaration order) and then overall."""
    blocks: list[tuple[str, LatencyAggregate]] = [*result.types.items(), (OVERALL, result.overall)]
    out = []
    for name, block in blocks:
        for figure in FIGURES:
            stat = getattr(block, figure)
            out.append(FigurePrecision(name, figure, stat.mean, stat.ci95, stat.std, stat.n))
    return out


@dataclass
class PreciseResult:
    """A forward run to a precision: the aggregate of every replication that ran, and how precise it is."""

    aggregate: StudyAggregate
    summaries: list[ReplicationSummary]
    """Replications ``0 .. n-1``, in index order."""
    precision: float
    """The target: every figure's 95% half-width at most this fraction of its value."""
    cap: int
    rounds: list[int] = field(default_factory=list)
    """Replications run in each round, in order (their sum is :attr:`replications`)."""
    reached: bool = False
    unstable: bool = False
    """A replication was unstable: the run stopped there (the figures of a saturated system do not converge)."""
    widest: FigurePrecision | None = None
    """The figure with the largest relative half-width (``None`` when no figure has a relative precision)."""
    skipped: list[FigurePrecision] = field(default_factory=list)
    """Figures without a relative precision (missing, or 0), left out of the rule."""

    @property
    def replications(self) -> int:
        """Replications run in all."""
        return len(self.summaries)

    def message(self) -> str:
        """What the run reached, in one line: ``precision 2% reached after 24 replications (widest: ...)``."""
        target = f"precision {_percent(self.precision)}"
        runs = f"{self.replications} replication{'s' if self.replications != 1 else ''}"
        rounds = f"{len(self.rounds)} round{'s' if len(self.rounds) != 1 else ''}"
        widest = self.widest
        if self.unstable:
            return f"{target} not reached: the system is unstable at this load (in {runs}), so its figures do not " \
                "converge; lower the load or add capacity"  # fmt: skip
        if widest is None or widest.relative is None:
            return f"{target} not reached: no figure has a value to be relative to after {runs}"
        if self.reached:
            return f"{target} reached after {runs} in {rounds} (widest: {widest.label}, ±{_percent(widest.relative)})"
        return f"{target} not reached at the cap of {self.cap} replications: {widest.label} is " \
            f"±{_percent(widest.relative)}"  # fmt: skip

    def notes(self) -> list[str]:
        """One line per figure left out of the rule."""
        return [f"not held to the precision: {f.label} ({f.skip_reason})" for f in self.skipped]

    def to_dict(self) -> dict[str, Any]:
        """The precision part of ``des run --precision --json`` (beside the aggregate)."""
        return {
            "target": self.precision,
            "reached": self.reached,
            "unstable": self.unstable,
            "replications": self.replications,
            "max_replications": self.cap,
            "rounds": list(self.rounds),
            "widest": None if self.widest is None else self.widest.to_dict(),
            "skipped": [{**f.to_dict(), "reason": f.skip_reason} for f in self.skipped],
            "message": self.message(),
        }


def _percent(fraction: float) -> str:
    """``0.02`` as ``2%``, ``0.0191`` as ``1.9%``, ``inf`` as ``inf%``."""
    return f"{100 * fraction:.2g}%" if 100 * fraction < 10 else f"{100 * fraction:.3g}%"


def check_precision(value: Any, *, key: str = "precision") -> float:
    """``value`` as a target precision: a finite number strictly between 0 and 1 (a fraction of the figure's value).

    Raises:
        ConfigError: anything else, naming ``key``.
    """
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 < value < 1
    if not ok:
        raise ConfigError(f"must be a fraction strictly between 0 and 1 (0.02 is 2%), got {printable(repr(value))}",
                          key=key)  # fmt: skip
    return float(value)


def _whole(value: Any, low: int, high: int, key: str, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"must be a whole number from {low}{what} to {high}, got {printable(repr(value))}", key=key)
    return value


def next_total(figure: FigurePrecision, replications: int, precision: float, cap: int) -> int:
    """The replications to have after the next round for ``figure`` to be within ``precision`` (the batch rule)."""
    from scipy import stats

    most = min(cap, MAX_GROWTH * replications)
    least = min(cap, replications + 1)
    if figure.std is None or figure.value is None or figure.n < 2:
        return most
    target = precision * abs(figure.value)
    # t(n-1) > z, so the normal count is a lower bound; t falls with n, so step up to the first count that fits.
    n = max(figure.n, math.ceil((float(stats.norm.ppf(0.975)) * figure.std / target) ** 2))
    while n < most and float(stats.t.ppf(0.975, n - 1)) * figure.std / math.sqrt(n) > target:
        n += 1
    extra = math.ceil(n * SPARE) - figure.n
    return max(least, min(most, replications + extra))


def run_to_precision(
    scenario: Scenario,
    evaluate: Evaluator,
    *,
    precision: float,
    seed: int,
    initial: int,
    cap: int = DEFAULT_MAX_REPLICATIONS,
    on_round: OnRound | None = None,
) -> PreciseResult:
    """Run replications of ``scenario`` in rounds until every figure is within ``precision`` (the module's text).

    Args:
        scenario: the scenario.
        evaluate: runs a round's replications (locally, or one study on the fleet): see ``Evaluator``.
        precision: the target, a fraction strictly between 0 and 1 (0.02: each 95% half-width within 2% of its value).
        seed: the study seed.
        initial: replications of the first round, 2 (an interval needs two) to ``MAX_REPLICATIONS``.
        cap: the most replications in all, ``initial`` to ``MAX_REPLICATIONS``.
        on_round: told of each round before it runs (see :data:`OnRound`).

    Raises:
        ConfigError: an argument out of its range, naming it; nothing was run.
    """
    from simfleet.worker.des.aggregate import aggregate

    precision = check_precision(precision)
    seed = _whole(seed, 0, SEED_MAX, "seed", "")
    initial = _whole(initial, 2, MAX_REPLICATIONS, "initial", " (an interval needs two replications)")
    cap = _whole(cap, initial, MAX_REPLICATIONS, "cap", f" (the first round's {initial})")
    summaries: list[ReplicationSummary] = []
    rounds: list[int] = []
    total = initial
    widest: FigurePrecision | None = None
    while True:
        count = total - len(summaries)
        if on_round is not None:
            on_round(len(rounds) + 1, len(summaries), count, widest)
        summaries.extend(evaluate(scenario, count, seed, len(summaries)))
        rounds.append(count)
        result = aggregate(summaries)
        ranked = figures(result)
        held = [f for f in ranked if f.relative is not None]
        widest = max(held, key=lambda f: f.relative or 0.0, default=None)
        answer = PreciseResult(result, summaries, precision, cap, rounds, unstable=not result.stable, widest=widest,
                               skipped=[f for f in ranked if f.relative is None])  # fmt: skip
        answer.reached = widest is not None and result.stable and all((f.relative or 0.0) <= precision for f in held)
        if answer.reached or answer.unstable or widest is None or len(summaries) >= cap:
            return answer
        total = max(next_total(f, len(summaries), precision, cap) for f in held if (f.relative or 0.0) > precision)
