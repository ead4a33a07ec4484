"""Ensembles: plan variants and replications of one fleet stacked into one environment, and their random draws.

A variant's changes are applied to the dense environment (:func:`variant_environment`); the members (variant x
replication) are then stacked (:func:`ensemble_environment`): every backend runs the stacked environment as one
fleet whose quota groups are (member, type), so each member follows exactly the rules of a single run of its
variant, and one member equals that single run row for row.

Random draws are a pure function of (seed, replication, day, idx, kind): a counter-based generator
(:func:`draw`, the SplitMix64 finaliser over a key made of those numbers), computed with integer arithmetic only, so
numpy, CuPy and numba give the same bits, whatever the order in which airframes are visited. Replication ``r`` of
every variant uses the same key, so variants meet the same luck where they ask the same question.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simfleet.shared.lifecycle_contract import AC_TYPES, MINUTES_PER_DAY, U16
from simfleet.shared.messages.plan import Change, Empirical, Ensemble, Lognormal, Maintenance, Variant
from simfleet.worker.lifecycle.environment import Environment

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

UNLIMITED = 2**31 - 1
"""``repair_slots`` of a shop without a limit."""
QUANTILES = 1024
"""A lognormal repair duration is one of this many equally likely quantiles of the law."""
FIXED_ONE = 1 << 16
"""Lognormal multipliers are fixed-point numbers: ``FIXED_ONE`` is 1.0."""
KIND_REMOVAL, KIND_DURATION = 1, 2
"""The two questions a day asks of the generator: is this flyer removed, how long does this repair last."""
SPREAD_NONE, SPREAD_FACTOR, SPREAD_DAYS = 0, 1, 2
"""What a group's ``spread_table`` holds: nothing, fixed-point multipliers of ``repair_time``, or durations."""
MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class GroupMaintenance:
    """The maintenance options of every group (member x type) of a stacked environment.

    Attributes:
        slots: repair slots per group (:data:`UNLIMITED` for none).
        hazard: per group, a flyer is removed when the 32-bit draw is below this (``floor(p * 2**32)``).
        spread_kind: :data:`SPREAD_NONE`, :data:`SPREAD_FACTOR` or :data:`SPREAD_DAYS` per group.
        spread_table: ``[groups, width]`` the quantile multipliers or the empirical durations.
        spread_len: per group, how many entries of its row are used.
        rng_key: per group, the key of its member's replication (:func:`replication_key`).
    """

    slots: I64
    hazard: I64
    spread_kind: I64
    spread_table: I64
    spread_len: I64
    rng_key: U64

    @property
    def limited(self) -> bool:
        """Whether any shop has fewer slots than unlimited."""
        return bool((self.slots < UNLIMITED).any())

    @property
    def removals(self) -> bool:
        """Whether any group removes flyers unplanned."""
        return bool((self.hazard > 0).any())

    @property
    def spread(self) -> bool:
        """Whether any group draws its repair durations."""
        return bool((self.spread_kind != SPREAD_NONE).any())


# ------------------------------------------------------------------------------------------------- random draws


def mix64(x: int) -> int:
    """The SplitMix64 finaliser on a Python integer (mod 2**64)."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def replication_key(seed: int, replication: int) -> int:
    """The generator's key of one replication of an ensemble."""
    return mix64(mix64(seed) ^ (replication + 1))


def mix64_array(x: Any, xp: Any = np) -> Any:
    """:func:`mix64` over an array of ``uint64`` (numpy or CuPy: unsigned arithmetic wraps)."""
    u = xp.uint64
    x = x + u(0x9E3779B97F4A7C15)
    x = (x ^ (x >> u(30))) * u(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> u(27))) * u(0x94D049BB133111EB)
    return x ^ (x >> u(31))


def draw(key: Any, day: int, idx: Any, kind: int, xp: Any = np) -> Any:
    """32 random bits (as ``uint64`` below 2**32) for each (key, day, idx) of a question ``kind``.

    ``day`` is the day index of the question (``s + 1`` for a repair started on day ``s``, so the pre-day-0
    start uses 0); ``idx`` the airframe's idx in its fleet (not the agent's position in a stack).
    """
    u = xp.uint64
    counter = (u(day) << u(32)) | (idx.astype(xp.uint64) << u(2)) | u(kind)
    return mix64_array(key ^ mix64_array(counter, xp), xp) >> u(32)


def draw_scalar(key: int, day: int, idx: int, kind: int) -> int:
    """:func:`draw` for one airframe, on Python integers (the oracle's and the tests' form)."""
    return mix64(key ^ mix64((day << 32) | (idx << 2) | kind)) >> 32


def pick(u32: npt.NDArray[np.integer] | int, length: npt.NDArray[np.integer] | int) -> npt.NDArray[np.int64] | int:
    """Which of ``length`` equally likely entries 32 random bits choose: ``(u32 * length) >> 32``."""
    return (u32 * length) >> 32


def lognormal_table(cv: float) -> list[int]:
    """The :data:`QUANTILES` fixed-point multipliers of a lognormal law of mean 1 and coefficient of variation ``cv``.

    Quantile ``j`` is taken at ``(j + 0.5) / QUANTILES``; with ``cv = 0`` every multiplier is exactly 1.
    """
    if cv == 0:
        return [FIXED_ONE] * QUANTILES
    sigma = math.sqrt(math.log1p(cv * cv))
    normal = statistics.NormalDist()
    return [
        round(FIXED_ONE * math.exp(sigma * normal.inv_cdf((j + 0.5) / QUANTILES) - sigma * sigma / 2))
        for j in range(QUANTILES)
    ]


def spread_duration(repair_time: int, kind: int, table: list[int] | I64, length: int, u32: int) -> int:
    """A repair's duration in days (the scalar form of the rule every backend applies)."""
    if kind == SPREAD_NONE:
        return repair_time
    entry = int(table[int(pick(u32, length))])
    if kind == SPREAD_DAYS:
        return entry
    return max(1, (repair_time * entry + FIXED_ONE // 2) >> 16)


# ------------------------------------------------------------------------------------------------ variants


def _rows(change: Change, d0: int, last: int) -> tuple[int, int]:
    """The day indices a change covers, first and last inclusive (validated dates lie inside 0..last)."""
    first = 0 if change.start is None else int(np.datetime64(change.start, "D").astype(np.int64)) - d0
    end = last if change.end is None else int(np.datetime64(change.end, "D").astype(np.int64)) - d0
    return max(first, 0), min(end, last)


def apply_changes(
    values: npt.NDArray[Any], changes: list[Change], column_type: I64, d0: int, *, low: int, high: int
) -> npt.NDArray[Any]:
    """``values[day, column]`` with ``changes`` applied in order (``column_type`` types each column).

    A new array of ``values``' dtype (``low .. high`` must fit it); only the rows and columns a change covers are
    computed, in ``int64``, so a change to one summer of MP5 costs that summer.
    """
    out = values.copy()
    last = out.shape[0] - 1
    for change in changes:
        columns = np.flatnonzero(column_type == AC_TYPES.index(change.ac_type)) if change.ac_type else slice(None)
        first, end = _rows(change, d0, last)
        if first > end:
            continue
        part = out[first : end + 1, columns].astype(np.int64)
        if change.factor is not None:
            part = np.floor(part * change.factor + 0.5).astype(np.int64)
        elif change.offset is not None:
            part = part + change.offset
        elif change.value is not None:
            part = np.full_like(part, change.value)
        elif change.values:
            dates = sorted(change.values)
            for k, date in enumerate(dates):
                start = int(np.datetime64(date, "D").astype(np.int64)) - d0 - first
                stop = end - first + 1 if k + 1 == len(dates) else (
                    int(np.datetime64(dates[k + 1], "D").astype(np.int64)) - d0 - first)  # fmt: skip
                part[max(start, 0) : max(stop, 0)] = change.values[date]
        out[first : end + 1, columns] = np.clip(part, low, high).astype(out.dtype)
    return out


def variant_environment(env: Environment, variant: Variant) -> Environment:
    """``env`` with a variant's changes to MP4 targets, MP5 minutes and MP1 repair times (unchanged arrays shared)."""
    changes: dict[str, object] = {}
    if variant.targets:
        changes["targets"] = apply_changes(env.targets, variant.targets, np.arange(env.n_types), env.d0,
                                           low=0, high=U16)  # fmt: skip
    if variant.minutes:
        changes["minutes"] = apply_changes(env.minutes, variant.minutes, env.type_code, env.d0, low=0,
                                           high=MINUTES_PER_DAY)  # fmt: skip
    if variant.repair_time:
        column = env.repair_time.reshape(1, -1)
        changes["repair_time"] = apply_changes(column, variant.repair_time, env.type_code, env.d0,
                                               low=1, high=U16)[0]  # fmt: skip
    return dataclasses.replace(env, **changes) if changes else env  # type: ignore[arg-type]


def _maintenance_row(options: Maintenance, key: int) -> tuple[int, int, int, list[int], int]:
    slots = UNLIMITED if options.repair_slots is None else options.repair_slots
    hazard = math.floor(options.removal_hazard * 2**32)
    if isinstance(options.spread, Lognormal):
        return slots, hazard, SPREAD_FACTOR, lognormal_table(options.spread.cv), key
    if isinstance(options.spread, Empirical):
        return slots, hazard, SPREAD_DAYS, list(options.spread.days), key
    return slots, hazard, SPREAD_NONE, [], key


def group_maintenance(ensemble: Ensemble) -> GroupMaintenance | None:
    """The options of every group, or ``None`` when every group runs today's model."""
    rows: list[tuple[int, int, int, list[int], int]] = []
    for variant in range(len(ensemble.variants)):
        for replication in range(ensemble.replications):
            key = replication_key(ensemble.seed, replication)
            rows.extend(_maintenance_row(ensemble.maintenance_of(variant, t), key) for t in AC_TYPES)
    if all(r[0] == UNLIMITED and r[1] == 0 and r[2] == SPREAD_NONE for r in rows):
        return None
    width = max(1, *(len(r[3]) for r in rows))
    table = np.zeros((len(rows), width), dtype=np.int64)
    for g, row in enumerate(rows):
        table[g, : len(row[3])] = row[3]
    return GroupMaintenance(
        slots=np.array([r[0] for r in rows], dtype=np.int64),
        hazard=np.array([r[1] for r in rows], dtype=np.int64),
        spread_kind=np.array([r[2] for r in rows], dtype=np.int64),
        spread_table=table,
        spread_len=np.array([len(r[3]) for r in rows], dtype=np.int64),
        rng_key=np.array([r[4] for r in rows], dtype=np.uint64),
    )


def ensemble_environment(env: Environment, ensemble: Ensemble | None) -> Environment:
    """The stacked environment of an ensemble over a single run's ``env`` (``env`` itself for today's job).

    Members are variant-major: member ``m`` is variant ``m // replications``, replication ``m % replications``.
    Variants that leave MP5 alone share its columns; ``minutes_col`` says which column each agent flies.
    """
    if ensemble is None:
        return env
    maintenance = group_maintenance(ensemble)
    if ensemble.members == 1 and maintenance is None:
        return variant_environment(env, ensemble.variants[0])
    variants = [variant_environment(env, v) for v in ensemble.variants]
    members = [(v, r) for v in range(len(variants)) for r in range(ensemble.replications)]
    tables: list[npt.NDArray[np.uint16]] = []
    offsets: list[int] = []
    for venv in variants:
        found = next((k for k, table in enumerate(tables) if table is venv.minutes), None)
        if found is None:
            tables.append(venv.minutes)
            found = len(tables) - 1
        offsets.append(found * env.n)
    types = len(AC_TYPES)

    def tiled(name: str) -> I64:
        return np.concatenate([getattr(variants[v], name) for v, _ in members])

    stacked = {name: tiled(name) for name in ("aircraft_number", "psn", "ll", "oh", "br", "repair_time",
                                              "partout_time", "assembly_time", "delivery_day", "status", "sne",
                                              "ppr", "repair_days")}  # fmt: skip
    return dataclasses.replace(
        env,
        type_code=np.concatenate([env.type_code + m * types for m in range(len(members))]),
        targets=np.concatenate([variants[v].targets for v, _ in members], axis=1),
        minutes=tables[0] if len(tables) == 1 else np.concatenate(tables, axis=1),
        members=len(members),
        replications=ensemble.replications,
        minutes_col=np.concatenate([np.arange(env.n) + offsets[v] for v, _ in members]),
        maintenance=maintenance,
        **stacked,  # type: ignore[arg-type]
    )
