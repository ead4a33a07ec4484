"""MP2 as a backend produces it: one :class:`DayRecord` per simulated day, assembled into typed columns per chunk.

A record keeps references to the day's arrays (in the backend's internal order); the backend never changes an array
in place once a record refers to it, so nothing is copied per day. :meth:`Mp2Log.take` stacks the days of a chunk,
puts each column in idx order with one gather, and casts it to the dtype of :mod:`simfleet.worker.lifecycle.schema`.
With the per-airframe log off, a record's arrays are dropped at once: memory does not grow with days x airframes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simfleet.shared.lifecycle_contract import AC_TYPES, AIRFRAME_COLUMNS, DAILY_COLUMNS, TRANSITIONS
from simfleet.worker.lifecycle.backends.base import Columns
from simfleet.worker.lifecycle.environment import NO_DATE, Environment

AIRFRAME_STATE = (
    "status_id",
    "next_status",
    "daily_flight",
    "sne",
    "ppr",
    "repair_days",
    "partout_date",
    "assembly_date",
    "active_date",
)
"""Per-airframe MP2 columns that come from the day's arrays (the rest are static or the day itself)."""


@dataclass(frozen=True)
class DayRecord:
    """What one simulated day produced.

    Attributes:
        day: the day index s.
        status_id, next_status, daily_flight, sne, ppr, repair_days, partout_date, assembly_date, active_date: the
            per-airframe arrays (internal order; dates as day numbers).
        quota: MP4 target per type for D+1.
        shortfall: quota per type for D+1 that no eligible airframe could fill.
        counts: ``[7, n_types]`` airframes per status on D.
        transitions: ``[8, n_types]`` transitions decided on D, in :data:`TRANSITIONS` order.
        repair_queued: per airframe, whether it waited for a repair slot on D (``None``: no one did).
        queue: per group, airframes waiting for a repair slot on D (``None``: none).
        unplanned: per group, unplanned removals decided on D (``None``: none).
    """

    day: int
    status_id: Any
    next_status: Any
    daily_flight: Any
    sne: Any
    ppr: Any
    repair_days: Any
    partout_date: Any
    assembly_date: Any
    active_date: Any
    quota: list[int]
    shortfall: list[int]
    counts: npt.NDArray[np.int64]
    transitions: npt.NDArray[np.int64]
    repair_queued: Any = None
    queue: npt.NDArray[np.int64] | None = None
    unplanned: npt.NDArray[np.int64] | None = None


class Mp2Log:
    """Collects day records until the next :meth:`take`.

    Args:
        env: the run's environment (static columns, D0, MP4 targets).
        inverse: internal position of each idx (gathers internal order back into idx order).
        full: keep the per-airframe log (``False``: per-type aggregates only).
    """

    def __init__(self, env: Environment, inverse: npt.NDArray[np.intp], *, full: bool) -> None:
        self.env, self.inverse, self.full = env, inverse, full
        self._days: list[DayRecord] = []
        self._daily: list[DayRecord] = []

    def add(self, record: DayRecord) -> None:
        """Take one day (the per-type figures are laid out as rows only at :meth:`take`)."""
        if self.full:
            self._days.append(record)
        self._daily.append(record)

    def take(self) -> tuple[Columns, Columns]:
        """MP2 of the days added since the last take: (per airframe and day, per type and day)."""
        airframe = self._airframe() if self._days else {}
        daily: Columns = {}
        if self._daily:
            records, groups = self._daily, self.env.n_types
            day = np.array([r.day for r in records], dtype=np.int64)
            quota = np.array([r.quota for r in records], dtype=np.int64)
            shortfall = np.array([r.shortfall for r in records], dtype=np.int64)
            counts = np.stack([r.counts for r in records])  # [days, 7, groups]
            transitions = np.stack([r.transitions for r in records])  # [days, 8, groups]
            zero = np.zeros(groups, dtype=np.int64)
            queue = np.stack([zero if r.queue is None else r.queue for r in records])
            unplanned = np.stack([zero if r.unplanned is None else r.unplanned for r in records])
            daily = daily_columns(self.env, day, quota - shortfall, shortfall, counts, transitions, queue, unplanned)
        self._days, self._daily = [], []
        return airframe, daily

    def _airframe(self) -> Columns:
        env, n = self.env, self.env.n
        days = np.array([record.day for record in self._days])
        raw: Columns = {}
        for name in AIRFRAME_STATE:
            stacked = np.stack([_host(getattr(record, name)) for record in self._days])
            raw[name] = np.take(stacked, self.inverse, axis=1).ravel()
        if all(record.repair_queued is None for record in self._days):  # no repair shop: nobody ever waits
            raw["repair_queued"] = np.zeros(len(days) * n, dtype=np.uint8)
        else:
            zeros = np.zeros(n, dtype=bool)
            stacked = np.stack([zeros if r.repair_queued is None else _host(r.repair_queued) for r in self._days])
            raw["repair_queued"] = np.take(stacked, self.inverse, axis=1).ravel()
        raw["day"] = np.repeat(days, n)
        raw["date"] = raw["day"] + env.d0
        raw["psn"] = np.tile(env.psn, len(days))
        raw["aircraft_number"] = np.tile(env.aircraft_number, len(days))
        for name, values in agent_columns(env).items():
            raw[name] = np.tile(values, len(days))
        return _typed(raw, AIRFRAME_COLUMNS)


def agent_columns(env: Environment) -> dict[str, npt.NDArray[np.int64]]:
    """Per agent: ``idx`` in its fleet, ``ac_type``, and its member's ``variant_id`` and ``replication``."""
    agent = np.arange(env.n, dtype=np.int64)
    member = agent // env.airframes if env.n else agent
    return {
        "idx": agent % max(env.airframes, 1),
        "ac_type": env.type_code % len(AC_TYPES),
        "variant_id": member // env.replications,
        "replication": member % env.replications,
    }


def daily_columns(
    env: Environment,
    day: npt.NDArray[np.int64],
    granted: npt.NDArray[np.int64],
    shortfall: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    transitions: npt.NDArray[np.int64],
    queue: npt.NDArray[np.int64] | None = None,
    unplanned: npt.NDArray[np.int64] | None = None,
) -> Columns:
    """MP2 per type and day, rows ordered by (day, group), in schema order and dtype.

    ``day`` holds the days; ``granted``, ``shortfall``, ``queue`` and ``unplanned`` are [days, groups], ``counts``
    [days, 7, groups] and ``transitions`` [days, 8, groups] (a group is a type of one member of an ensemble; the
    types of a single run). Every backend lays out its aggregates through this one function.
    """
    types = env.n_types
    group = np.arange(types, dtype=np.int64)
    member = group // len(AC_TYPES)
    zero = np.zeros((len(day), types), dtype=np.int64)
    raw: Columns = {
        "day": np.repeat(day, types),
        "ac_type": np.tile(group % len(AC_TYPES), len(day)),
        "variant_id": np.tile(member // env.replications, len(day)),
        "replication": np.tile(member % env.replications, len(day)),
        "repair_queue": (zero if queue is None else queue).ravel(),
        "unplanned_2_4": (zero if unplanned is None else unplanned).ravel(),
        "ops_target": env.targets[day].ravel(),
        "ops_current": counts[:, 2].ravel(),
        "granted": granted.ravel(),
        "shortfall": shortfall.ravel(),
    }
    raw["date"] = raw["day"] + env.d0
    for code in range(7):
        raw[f"count_{code}"] = counts[:, code].ravel()
    for kind, (a, b) in enumerate(TRANSITIONS):
        raw[f"trans_{a}_{b}"] = transitions[:, kind].ravel()
    return _typed(raw, DAILY_COLUMNS)


def _host(values: Any) -> npt.NDArray[Any]:
    return np.asarray(values.get() if hasattr(values, "get") else values)


def _typed(raw: Columns, columns: Any) -> Columns:
    """Columns in schema order and dtype; day numbers equal to NO_DATE become NaT."""
    out: Columns = {}
    for column in columns:
        values = raw[column.name]
        if column.dtype == "datetime64[D]":
            days = values.astype(np.int64)
            days[days == NO_DATE] = np.iinfo(np.int64).min
            out[column.name] = days.view("datetime64[D]")
        else:
            out[column.name] = values.astype(column.dtype)
    return out
