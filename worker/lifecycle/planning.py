"""What fleet planners read from an ensemble run, and the inverse question (docs/planning.md).

From the per type and day MP2 table (``mp2_daily``) of an ensemble run:

- :func:`bands`: per variant, type and day, the target and the mean, 5th and 95th percentile over replications of
  ``ops_current`` and of ``shortfall`` (aircraft);
- :func:`replication_totals`: per variant, replication and type, the shortfall days, shortfall aircraft-days, the
  worst year's shortfall days and the mean of ``ops_current``.

And the two searches of the inverse question, each a sequence of rounds where one round is ONE ensemble run whose
variants are the round's candidates (the base plan with one option changed), every probe recorded:

- :func:`smallest_repair_slots`: per type, the fewest repair slots whose worst year has at most N shortfall days;
- :func:`largest_target_factor`: the largest factor on every MP4 target whose worst year has at most N type-days
  of shortfall (both types' shortfall days added).

Percentiles are numpy's default ("linear", type 7 of Hyndman and Fan): the value at rank ``q (R - 1)`` of the R
sorted replications, interpolated linearly between neighbours; with one replication mean, 5th and 95th percentile
are all the replication's value. A year is 365 days from D0 (day indices ``365 y .. 365 y + 364``); the last year
of a horizon that is not a multiple of 365 days is counted as it is (fewer days).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from simfleet.shared.errors import ConfigError
from simfleet.shared.lifecycle_contract import AC_TYPES, LifecycleInputs
from simfleet.shared.messages.plan import MAX_MEMBERS, Change, Ensemble, Variant
from simfleet.worker.lifecycle.sinks import MemorySink

Columns = dict[str, npt.NDArray[Any]]
F64 = npt.NDArray[np.float64]

YEAR_DAYS = 365
"""The length of a planning year (days from D0)."""
PERCENTILES = (5.0, 95.0)
"""The band of :func:`bands` (percent)."""
STATISTICS = ("mean", "p95")
"""How a search sums up replications: their mean, or their 95th percentile (the bad luck a planner guards against)."""

__all__ = [
    "STATISTICS",
    "YEAR_DAYS",
    "DailySink",
    "FactorProbe",
    "FactorSearch",
    "Grid",
    "RoundRun",
    "SlotProbe",
    "SlotSearch",
    "bands",
    "base_plan",
    "grid",
    "largest_target_factor",
    "replication_totals",
    "smallest_repair_slots",
    "year_shortfall_days",
]  # fmt: skip


# ------------------------------------------------------------------------------------------------ the tables


@dataclass(frozen=True)
class Grid:
    """A per type and day column laid out as ``[variant, replication, type, day]``.

    Attributes:
        variants, replications, days: the sizes (``days`` from the first day of the table).
        first_day: the table's first day index (0 for a run from D0).
        dates: the date of each day.
    """

    variants: int
    replications: int
    days: int
    first_day: int
    dates: npt.NDArray[np.datetime64]
    _where: tuple[npt.NDArray[np.int64], ...]

    def __call__(self, daily: Columns, column: str) -> npt.NDArray[np.int64]:
        """``daily[column]`` as ``[variant, replication, type, day]`` int64."""
        out = np.zeros((self.variants, self.replications, len(AC_TYPES), self.days), dtype=np.int64)
        out[self._where] = np.asarray(daily[column], dtype=np.int64)
        return out


def grid(daily: Columns) -> Grid:
    """The layout of an ``mp2_daily`` table (any row order; a single run is variant 0, replication 0).

    Raises:
        ValueError: the table is empty, or does not hold every (variant, replication, type, day) exactly once.
    """
    if not daily or not len(daily.get("day", ())):
        raise ValueError("the mp2_daily table is empty (was the run's sink a MemorySink, over at least one day?)")
    rows = len(daily["day"])
    zeros = np.zeros(rows, dtype=np.int64)
    variant = np.asarray(daily.get("variant_id", zeros), dtype=np.int64)
    replication = np.asarray(daily.get("replication", zeros), dtype=np.int64)
    ac_type = np.asarray(daily["ac_type"], dtype=np.int64)
    day = np.asarray(daily["day"], dtype=np.int64)
    first = int(day.min())
    shape = (int(variant.max()) + 1, int(replication.max()) + 1, len(AC_TYPES), int(day.max()) - first + 1)
    where = (variant, replication, ac_type, day - first)
    seen = np.zeros(shape, dtype=np.int64)
    np.add.at(seen, where, 1)
    if rows != seen.size or not (seen == 1).all():
        raise ValueError(f"the mp2_daily table has {rows} rows, not one per variant x replication x type x day "
                         f"({' x '.join(map(str, shape))})")  # fmt: skip
    dates = np.zeros(shape[3], dtype="datetime64[D]")
    if "date" in daily:
        dates[day - first] = np.asarray(daily["date"], dtype="datetime64[D]")
    return Grid(*shape[:2], shape[3], first, dates, where)


def _percentiles(values: F64, axis: int) -> tuple[F64, F64, F64]:
    low, high = np.percentile(values, PERCENTILES, axis=axis)  # numpy's default method: "linear" (type 7)
    return values.mean(axis=axis), low, high


def bands(daily: Columns) -> Columns:
    """Per (variant, type, day): the target and the spread over replications of ``ops_current`` and ``shortfall``.

    Columns (one row per variant, type and day, in that order): ``variant_id``, ``ac_type`` (0 mi8, 1 mi17),
    ``day``, ``date``, ``ops_target`` (aircraft; the same in every replication of a variant),
    ``ops_current_mean``, ``ops_current_p5``, ``ops_current_p95``, ``shortfall_mean``, ``shortfall_p5``,
    ``shortfall_p95`` (aircraft, float). Percentiles as in the module's docstring.
    """
    layout = grid(daily)
    v, t, d = layout.variants, len(AC_TYPES), layout.days
    out: Columns = {
        "variant_id": np.repeat(np.arange(v), t * d).astype(np.uint16),
        "ac_type": np.tile(np.repeat(np.arange(t), d), v).astype(np.uint8),
        "day": np.tile(np.arange(d) + layout.first_day, v * t).astype(np.uint16),
        "date": np.tile(layout.dates, v * t),
        "ops_target": layout(daily, "ops_target")[:, 0].reshape(-1),
    }
    for column in ("ops_current", "shortfall"):
        mean, low, high = _percentiles(layout(daily, column).astype(np.float64), axis=1)
        out[f"{column}_mean"], out[f"{column}_p5"], out[f"{column}_p95"] = (a.reshape(-1) for a in (mean, low, high))
    return out


def year_shortfall_days(daily: Columns) -> npt.NDArray[np.int64]:
    """Days with a shortfall (``shortfall > 0``) per ``[variant, replication, type, year]`` (years of 365 days)."""
    layout = grid(daily)
    short = layout(daily, "shortfall") > 0
    years = math.ceil(layout.days / YEAR_DAYS)
    pad = years * YEAR_DAYS - layout.days
    padded = np.concatenate([short, np.zeros((*short.shape[:3], pad), dtype=bool)], axis=3)
    counts: npt.NDArray[np.int64] = padded.reshape(*short.shape[:3], years, YEAR_DAYS).sum(axis=4).astype(np.int64)
    return counts


def replication_totals(daily: Columns) -> Columns:
    """Per (variant, replication, type), in that order: what each replication did over the horizon.

    Columns: ``variant_id``, ``replication``, ``ac_type``; ``shortfall_days`` (days with shortfall > 0),
    ``shortfall_aircraft_days`` (the sum of ``shortfall``, aircraft x days), ``worst_year_shortfall_days`` (the
    most shortfall days of one 365-day year from D0, the last partial year as it is), ``ops_current_mean``
    (aircraft, the mean over the days).
    """
    layout = grid(daily)
    v, r, t = layout.variants, layout.replications, len(AC_TYPES)
    shortfall = layout(daily, "shortfall")
    return {
        "variant_id": np.repeat(np.arange(v), r * t).astype(np.uint16),
        "replication": np.tile(np.repeat(np.arange(r), t), v).astype(np.uint16),
        "ac_type": np.tile(np.arange(t), v * r).astype(np.uint8),
        "shortfall_days": (shortfall > 0).sum(axis=3).reshape(-1),
        "shortfall_aircraft_days": shortfall.sum(axis=3).reshape(-1),
        "worst_year_shortfall_days": year_shortfall_days(daily).max(axis=3).reshape(-1),
        "ops_current_mean": layout(daily, "ops_current").mean(axis=3).reshape(-1),
    }


class DailySink(MemorySink):
    """Keeps the per type and day chunks only (``table("mp2_daily")``): what :func:`bands` and the searches read."""

    keeps_rows = False  # days x groups rows, not days x airframes: the memory rule need not count them

    def write(self, first_day: int, airframe: Columns, daily: Columns) -> None:
        """Keep the chunk's ``mp2_daily`` part."""
        super().write(first_day, {}, daily)


# ------------------------------------------------------------------------------------------------ the searches


def base_plan(ensemble: Ensemble | None, *, source: str = "<variants>") -> Ensemble:
    """The base of a search: a variants file's maintenance, replications and seed, and its one variant (or none).

    Raises:
        ConfigError: the ensemble has more than one variant (key ``variants``).
    """
    if ensemble is None:
        return Ensemble()
    if len(ensemble.variants) != 1:
        raise ConfigError(f"a search starts from one plan: expected one variant (the base) or none, got "
                          f"{len(ensemble.variants)}", source=source, key="variants")  # fmt: skip
    return ensemble


def _statistic(values: npt.NDArray[Any], statistic: str) -> F64:
    """Over replications (axis 1 of ``[candidate, replication, ...]``): the mean, or the 95th percentile."""
    values = np.asarray(values, dtype=np.float64)
    out: F64 = values.mean(axis=1) if statistic == "mean" else np.percentile(values, 95.0, axis=1)
    return out


@dataclass
class RoundRun:
    """One round of a search: one ensemble run of ``candidates`` variants x ``replications``."""

    round: int
    candidates: int
    replications: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


Runner = Callable[[Ensemble], Columns]


def _runner(inputs: LifecycleInputs, days: int | None, backend: str, chunk_days: int) -> Runner:
    """One ensemble run over ``inputs``, its ``mp2_daily`` table (per type only, kept in memory)."""
    from simfleet.worker.lifecycle.run import run_local

    def run(ensemble: Ensemble) -> Columns:
        sink = DailySink()
        run_local(inputs, days=days, log="aggregates", sink=sink, backend=backend, chunk_days=chunk_days,
                  ensemble=ensemble)  # fmt: skip
        return sink.table("mp2_daily")

    return run


def _round(run: Runner, base: Ensemble, variants: list[Variant], number: int, rounds: list[RoundRun]) -> F64:
    """Run ``variants`` on the base's maintenance, replications and seed; ``[variant, replication, type, year]``.

    One ensemble run, or several when variants x replications exceed :data:`MAX_MEMBERS`.
    """
    per_run = max(1, MAX_MEMBERS // base.replications)
    parts = []
    for first in range(0, len(variants), per_run):
        ensemble = msgspec.structs.replace(base, variants=variants[first : first + per_run])
        started = time.perf_counter()
        parts.append(year_shortfall_days(run(ensemble)))
        rounds.append(RoundRun(number, len(ensemble.variants), base.replications, time.perf_counter() - started))
    return np.concatenate(parts, axis=0).astype(np.float64)


@dataclass
class SlotProbe:
    """One repair-slot count of one type, as run.

    Attributes:
        round: the round (1: doubling, 2: the bracket).
        ac_type: the type.
        slots: the type's repair slots in this candidate.
        worst_year: per replication, the worst year's shortfall days of the type.
        value: their mean (or 95th percentile, the search's ``statistic``).
        passed: ``value <= max_shortfall_days``.
    """

    round: int
    ac_type: str
    slots: int
    worst_year: list[int]
    value: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


@dataclass
class SlotSearch:
    """The answer of :func:`smallest_repair_slots`.

    Attributes:
        max_shortfall_days: N, the most shortfall days one year may hold (per type).
        statistic: ``mean`` or ``p95`` over replications.
        fleet: airframes of each type (slots at or above it are the same as unlimited).
        answer: per type, the fewest slots meeting N; ``None`` when even unlimited slots do not.
        probes: every candidate run, in order.
        runs: the ensemble runs, in order.
    """

    max_shortfall_days: int
    statistic: str
    replications: int
    fleet: dict[str, int]
    answer: dict[str, int | None]
    probes: list[SlotProbe] = field(default_factory=list)
    runs: list[RoundRun] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"question": "repair-slots", **asdict(self)}


def _doubling(size: int) -> list[int]:
    """1, 2, 4, ... below ``size``, then ``size`` (at least one candidate)."""
    out = [1 << k for k in range(max(size, 1).bit_length()) if 1 << k < size]
    return [*out, max(size, 1)]


def _fleet_sizes(inputs: LifecycleInputs) -> dict[str, int]:
    """Airframes per type (MP3's rows), counted without building the run's environment."""
    types = np.asarray(inputs.mp3["ac_type"])
    return {name: int(np.count_nonzero(types == name)) for name in AC_TYPES}


def _check_search(max_shortfall_days: int, statistic: str) -> None:
    if isinstance(max_shortfall_days, bool) or not isinstance(max_shortfall_days, int) or max_shortfall_days < 0:
        raise ConfigError(f"expected a whole number of days >= 0, got {max_shortfall_days!r}",
                          key="max_shortfall_days")  # fmt: skip
    if statistic not in STATISTICS:
        raise ConfigError(f"expected one of {', '.join(STATISTICS)}, got {statistic!r}", key="statistic")


def smallest_repair_slots(
    inputs: LifecycleInputs,
    max_shortfall_days: int,
    *,
    base: Ensemble | None = None,
    days: int | None = None,
    backend: str = "numpy",
    statistic: str = "mean",
    chunk_days: int = 365,
    run: Runner | None = None,
) -> SlotSearch:
    """Per type, the fewest repair slots with at most ``max_shortfall_days`` shortfall days in the worst year.

    The types are independent in this model (quota and shop are per type), so one candidate (a variant) sets a
    slot count for every type at once and one run probes each type's list in parallel. Round 1 runs 1, 2, 4, ...
    up to the type's fleet size (``n`` slots for ``n`` airframes is the same as unlimited); round 2 runs every
    integer strictly between the last failing and the first passing count (only for types with such a gap). The
    answer is the smallest passing count of the bracket, which assumes more slots never lengthen the shortfall
    (the usual case, not a law: the order in which repairs start changes with the slots; every probe is listed so
    a counter-example shows). A type that fails even with
    as many slots as airframes has answer ``None``. With replications, a count passes when the ``statistic`` of
    the replications' worst-year shortfall days (``mean``, or ``p95``: their 95th percentile) is at most N.

    Args:
        inputs: validated inputs.
        max_shortfall_days: N (days, >= 0).
        base: the base plan and options (:func:`base_plan`): its maintenance (spreads, hazards), replications,
            seed and plan changes apply to every candidate; its ``repair_slots`` are what the search replaces.
        days: the horizon (default: the inputs').
        backend: the lifecycle backend.
        statistic: ``mean`` or ``p95`` over replications.
        chunk_days: days per MP2 chunk.
        run: replaces the ensemble run (tests).

    Raises:
        ConfigError: a bad argument, or the base has several variants.
    """
    _check_search(max_shortfall_days, statistic)
    base = base_plan(base)
    run = run or _runner(inputs, days, backend, chunk_days)
    fleet = _fleet_sizes(inputs)
    result = SlotSearch(max_shortfall_days, statistic, base.replications, fleet, {})
    plan = base.variants[0]
    known: dict[str, tuple[int, int | None]] = {}  # per type: (largest failing, smallest passing) so far

    def probe(number: int, lists: dict[str, list[int]]) -> None:
        width = max(len(values) for values in lists.values())
        picks = [{name: values[min(i, len(values) - 1)] for name, values in lists.items()} for i in range(width)]
        variants = [msgspec.structs.replace(plan, name="slots " + " ".join(f"{n}={s}" for n, s in pick.items()),
                                            maintenance={n: msgspec.structs.replace(base.maintenance_of(0, n),
                                                                                    repair_slots=s)
                                                         for n, s in pick.items()})
                    for pick in picks]  # fmt: skip
        worst = _round(run, base, variants, number, result.runs).max(axis=3)  # [candidate, replication, type]
        values = _statistic(worst, statistic)
        for t, name in enumerate(AC_TYPES):
            passing = known.get(name, (0, None))[1]
            for i, slots in enumerate(lists[name]):
                passed = bool(values[i, t] <= max_shortfall_days)
                result.probes.append(SlotProbe(number, name, slots, [int(w) for w in worst[i, :, t]],
                                               float(values[i, t]), passed))  # fmt: skip
                if passed and (passing is None or slots < passing):
                    passing = slots
            below = [p.slots for p in result.probes if p.ac_type == name and not p.passed
                     and (passing is None or p.slots < passing)]  # fmt: skip
            known[name] = (max(below, default=0), passing)

    probe(1, {name: _doubling(fleet[name]) for name in AC_TYPES})
    gaps = {name: list(range(failing + 1, passing)) for name, (failing, passing) in known.items()
            if passing is not None and passing - failing > 1}  # fmt: skip
    if gaps:
        probe(2, {name: gaps.get(name) or [_settled(known[name], fleet[name])] for name in AC_TYPES})
        result.probes = [p for p in result.probes if p.round == 1 or p.ac_type in gaps]
    result.answer = {name: known[name][1] for name in AC_TYPES}
    return result


def _settled(known: tuple[int, int | None], fleet: int) -> int:
    """A type with nothing left to search still runs in round 2 (every variant sets both types): its answer."""
    return known[1] if known[1] is not None else max(fleet, 1)


@dataclass
class FactorProbe:
    """One target factor, as run.

    Attributes:
        round: the round.
        factor: the factor on every MP4 target.
        worst_year: per replication, the worst year's shortfall type-days (both types' shortfall days added).
        by_type: per type, the ``statistic`` of its own worst year's shortfall days (for reading, not the test).
        value: the ``statistic`` over replications of ``worst_year``.
        passed: ``value <= max_shortfall_days``.
    """

    round: int
    factor: float
    worst_year: list[int]
    by_type: dict[str, float]
    value: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


@dataclass
class FactorSearch:
    """The answer of :func:`largest_target_factor`.

    Attributes:
        answer: the largest passing factor found (0 when every probe failed: a fleet with no target never falls
            short); ``None`` when even ``max_factor`` passes.
        bracket: ``(largest passing, smallest failing)`` after each round, the failing end ``None`` while no
            probe has failed; each lies inside the previous one.
        converged: the final bracket is narrower than ``tolerance``.
    """

    max_shortfall_days: int
    statistic: str
    replications: int
    tolerance: float
    answer: float | None = None
    converged: bool = False
    bracket: list[tuple[float, float | None]] = field(default_factory=list)
    probes: list[FactorProbe] = field(default_factory=list)
    runs: list[RoundRun] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        plain = asdict(self)
        plain["bracket"] = [list(b) for b in self.bracket]
        return {"question": "target-factor", **plain}


def largest_target_factor(
    inputs: LifecycleInputs,
    max_shortfall_days: int,
    *,
    base: Ensemble | None = None,
    days: int | None = None,
    backend: str = "numpy",
    statistic: str = "mean",
    per_round: int = 8,
    tolerance: float = 0.01,
    start: float = 2.0,
    max_factor: float = 64.0,
    chunk_days: int = 365,
    run: Runner | None = None,
) -> FactorSearch:
    """The largest factor on every MP4 target (both types) whose worst year has at most N shortfall type-days.

    A year's shortfall type-days are both types' days with a shortfall in that year, added; the worst year is the
    year with the most (365-day years from D0). A factor multiplies each day's target, rounded half up (a
    ``factor`` change over the whole horizon, after the base plan's own changes). Factor 0 always passes (no
    target, no shortfall). The search keeps a bracket (largest passing, smallest failing) and runs ``per_round``
    factors per round in one ensemble run: while nothing has failed, evenly spaced up to ``upper`` (first
    ``start``), doubling ``upper`` each round until a factor fails or ``max_factor`` passes; then ``per_round``
    evenly spaced factors strictly inside the bracket, until it is narrower than ``tolerance``. Each round's
    bracket lies inside the previous one; it assumes a larger factor never shortens the shortfall (every probe is
    listed, so a non-monotone answer can be seen).

    Args:
        inputs: validated inputs.
        max_shortfall_days: N (type-days, >= 0).
        base: the base plan and options (:func:`base_plan`): its maintenance, replications, seed and plan changes
            apply to every candidate.
        days: the horizon (default: the inputs').
        backend: the lifecycle backend.
        statistic: ``mean`` or ``p95`` of the replications' worst years.
        per_round: factors per round (candidates of one ensemble run), >= 2.
        tolerance: the bracket's width at which the search stops (> 0).
        start: the first upper end (> 0).
        max_factor: the largest factor tried (>= ``start``).
        chunk_days: days per MP2 chunk.
        run: replaces the ensemble run (tests).

    Raises:
        ConfigError: a bad argument, or the base has several variants.
    """
    _check_search(max_shortfall_days, statistic)
    if isinstance(per_round, bool) or not isinstance(per_round, int) or per_round < 2:
        raise ConfigError(f"expected an integer >= 2, got {per_round!r}", key="per_round")
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ConfigError(f"expected a number > 0, got {tolerance!r}", key="tolerance")
    if not (math.isfinite(start) and 0 < start <= max_factor and math.isfinite(max_factor)):
        raise ConfigError(f"expected 0 < start <= max_factor (finite), got {start!r} and {max_factor!r}",
                          key="start")  # fmt: skip
    base = base_plan(base)
    run = run or _runner(inputs, days, backend, chunk_days)
    result = FactorSearch(max_shortfall_days, statistic, base.replications, tolerance)
    plan = base.variants[0]
    low, high, upper, number = 0.0, None, start, 0
    while high is None or high - low >= tolerance:
        number += 1
        if high is None:
            factors = [low + (upper - low) * (i + 1) / per_round for i in range(per_round)]
        else:
            factors = [low + (high - low) * (i + 1) / (per_round + 1) for i in range(per_round)]
        variants = [msgspec.structs.replace(plan, name=f"targets x{f:.6g}",
                                            targets=[*plan.targets, Change(factor=f)]) for f in factors]  # fmt: skip
        years = _round(run, base, variants, number, result.runs)  # [candidate, replication, type, year]
        total = years.sum(axis=2).max(axis=2)  # [candidate, replication]
        values = _statistic(total, statistic)
        by_type = _statistic(years.max(axis=3), statistic)
        for i, f in enumerate(factors):
            passed = bool(values[i] <= max_shortfall_days)
            result.probes.append(FactorProbe(number, f, [int(w) for w in total[i]],
                                             {n: float(by_type[i, t]) for t, n in enumerate(AC_TYPES)},
                                             float(values[i]), passed))  # fmt: skip
        failed = [f for f, v in zip(factors, values, strict=True) if v > max_shortfall_days]
        if failed:
            high = min(failed)
        low = max([low, *(f for f, v in zip(factors, values, strict=True) if v <= max_shortfall_days
                          and (high is None or f < high))])  # fmt: skip
        result.bracket.append((low, high))
        if high is None:
            if upper >= max_factor:
                result.answer, result.converged = None, False
                return result
            upper = min(upper * 2, max_factor)
    result.answer, result.converged = low, True
    return result

