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

from simfleet.shared.lifecycle_contract import AIRFRAME_COLUMNS, DAILY_COLUMNS, TRANSITIONS
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
        self._daily: list[tuple[int, list[int], list[int], npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []

    def add(self, record: DayRecord) -> None:
        """Take one day (the per-type figures are laid out as rows only at :meth:`take`)."""
        if self.full:
            self._days.append(record)
        self._daily.append((record.day, record.quota, record.shortfall, record.counts, record.transitions))

    def take(self) -> tuple[Columns, Columns]:
        """MP2 of the days added since the last take: (per airframe and day, per type and day)."""
        airframe = self._airframe() if self._days else {}
        daily: Columns = {}
        if self._daily:
            day = np.array([entry[0] for entry in self._daily], dtype=np.int64)
            quota = np.array([entry[1] for entry in self._daily], dtype=np.int64)
            shortfall = np.array([entry[2] for entry in self._daily], dtype=np.int64)
            counts = np.stack([entry[3] for entry in self._daily])  # [days, 7, types]
            transitions = np.stack([entry[4] for entry in self._daily])  # [days, 8, types]
            daily = daily_columns(self.env, day, quota - shortfall, shortfall, counts, transitions)
        self._days, self._daily = [], []
        return airframe, daily

    def _airframe(self) -> Columns:
        env, n = self.env, self.env.n
        days = np.array([record.day for record in self._days])
        raw: Columns = {}
        for name in AIRFRAME_STATE:
            stacked = np.stack([_host(getattr(record, name)) for record in self._days])
            raw[name] = np.take(stacked, self.inverse, axis=1).ravel()
        raw["day"] = np.repeat(days, n)
        raw["idx"] = np.tile(np.arange(n), len(days))
        raw["date"] = raw["day"] + env.d0
        raw["psn"] = np.tile(env.psn, len(days))
        raw["aircraft_number"] = np.tile(env.aircraft_number, len(days))
        raw["ac_type"] = np.tile(env.type_code, len(days))
        return _typed(raw, AIRFRAME_COLUMNS)


def daily_columns(
    env: Environment,
    day: npt.NDArray[np.int64],
    granted: npt.NDArray[np.int64],
    shortfall: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    transitions: npt.NDArray[np.int64],
) -> Columns:
    """MP2 per type and day, rows ordered by (day, type), in schema order and dtype.

    ``day`` holds the days; ``granted`` and ``shortfall`` are [days, types], ``counts`` [days, 7, types] and
    ``transitions`` [days, 8, types]. Every backend lays out its aggregates through this one function.
    """
    types = env.n_types
    raw: Columns = {
        "day": np.repeat(day, types),
        "ac_type": np.tile(np.arange(types), len(day)),
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
