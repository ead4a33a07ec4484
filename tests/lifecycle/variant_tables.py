"""Plan variants applied to the input tables, and one ensemble member run on the numpy backend, for the planning tests.

:func:`variant_inputs` is the tests' own reading of a :class:`~simfleet.shared.messages.plan.Variant`: it changes MP4,
MP5 and MP1 row by row (a dictionary per table), independently of
:func:`simfleet.worker.lifecycle.ensemble.variant_environment`, which changes the dense arrays. A single run of its
result is what each member of an ensemble must equal.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

import numpy as np

from simfleet.shared.lifecycle_contract import AC_TYPES, MINUTES_PER_DAY, U16, LifecycleInputs
from simfleet.shared.messages.plan import Change, Ensemble, Maintenance, Variant
from simfleet.worker.lifecycle.backends import get_backend
from simfleet.worker.lifecycle.ensemble import ensemble_environment
from simfleet.worker.lifecycle.environment import build_environment


def _day(value: Any) -> dt.date:
    return np.datetime64(value, "D").astype(dt.date)  # type: ignore[no-any-return]


def _changed(change: Change, current: int, date: dt.date | None) -> int:
    """One value after ``change`` (before clipping); ``date`` is the row's date (``None`` for MP1)."""
    if change.factor is not None:
        return math.floor(current * change.factor + 0.5)
    if change.offset is not None:
        return current + change.offset
    if change.value is not None:
        return change.value
    if change.values and date is not None:
        listed = [d for d in change.values if d <= date]
        return change.values[max(listed)] if listed else current
    return current


def _dates(change: Change, first: dt.date, last: dt.date) -> list[dt.date]:
    """The dates of the horizon's table rows (``first`` .. ``last``) that ``change`` covers."""
    start = max(change.start or first, first)
    end = min(change.end or last, last)
    return [start + dt.timedelta(days=k) for k in range((end - start).days + 1)]


def _apply(
    table: dict[Any, int], keys: list[Any], change: Change, date: dt.date | None, high: int, low: int = 0
) -> None:
    for key in keys:
        table[key] = min(max(_changed(change, table.get(key, 0), date), low), high)


def variant_inputs(inputs: LifecycleInputs, variant: Variant) -> LifecycleInputs:
    """``inputs`` with the variant's changes made to the rows of MP4, MP5 and MP1 (a new object; tables copied).

    A change covers the rows dated inside its range and the horizon (D0 .. D0 + days, the last being the "tomorrow"
    of the last day); a (date, type) or (date, aircraft) without a row starts from 0 and gets a row. Results are
    clipped to the column's limits (0 .. 65535 aircraft, 0 .. 1440 minutes, 1 .. 65535 days of repair).
    """
    first = inputs.version_date
    last = first + dt.timedelta(days=inputs.days)
    mp4 = {
        (_day(d), str(t)): int(q)
        for d, t, q in zip(inputs.mp4["date"], inputs.mp4["ac_type"], inputs.mp4["ops_target"], strict=True)
    }
    for change in variant.targets:
        types = [change.ac_type] if change.ac_type else list(AC_TYPES)
        for date in _dates(change, first, last):
            _apply(mp4, [(date, t) for t in types], change, date, U16)
    type_of = {int(a): str(t) for a, t in zip(inputs.mp3["aircraft_number"], inputs.mp3["ac_type"], strict=True)}
    mp5 = {
        (_day(d), int(a)): int(m)
        for d, a, m in zip(inputs.mp5["date"], inputs.mp5["aircraft_number"], inputs.mp5["daily_minutes"], strict=True)
    }
    for change in variant.minutes:
        aircraft = [a for a, t in type_of.items() if not change.ac_type or t == change.ac_type]
        for date in _dates(change, first, last):
            _apply(mp5, [(date, a) for a in aircraft], change, date, MINUTES_PER_DAY)
    repair_time = {row: int(v) for row, v in enumerate(inputs.mp1["repair_time"])}
    for change in variant.repair_time:
        if change.start or change.end or change.values:
            raise ValueError("a repair_time change takes no dates")
        rows = [r for r, t in enumerate(inputs.mp1["ac_type"]) if not change.ac_type or str(t) == change.ac_type]
        _apply(repair_time, rows, change, None, U16, low=1)
    mp1 = dict(inputs.mp1)
    mp1["repair_time"] = np.array([repair_time[r] for r in range(len(repair_time))], dtype=np.int64)
    return dataclasses.replace(
        inputs,
        mp1=mp1,
        mp4={
            "date": np.array([k[0] for k in mp4], dtype="datetime64[D]"),
            "ac_type": np.array([k[1] for k in mp4]),
            "ops_target": np.array(list(mp4.values()), dtype=np.int64),
        },
        mp5={
            "date": np.array([k[0] for k in mp5], dtype="datetime64[D]"),
            "aircraft_number": np.array([k[1] for k in mp5], dtype=np.int64),
            "daily_minutes": np.array(list(mp5.values()), dtype=np.int64),
        },
    )


Columns = dict[str, Any]


def run_ensemble(inputs: LifecycleInputs, ensemble: Ensemble, *, chunk_days: int = 50) -> tuple[Columns, Columns]:
    """MP2 (per airframe, per type and day) of an ensemble on the numpy backend, every invariant checked daily."""
    env = ensemble_environment(build_environment(inputs), ensemble)
    backend = get_backend("numpy", debug=True)
    backend.build(env)
    backend.create()
    chunks = []
    while backend.day < env.days:
        backend.step(chunk_days)
        chunks.append(backend.read_chunk())
    airframe = {k: np.concatenate([c[0][k] for c in chunks]) for k in chunks[0][0]}
    daily = {k: np.concatenate([c[1][k] for c in chunks]) for k in chunks[0][1]}
    return airframe, daily


def run_member(
    inputs: LifecycleInputs,
    maintenance: dict[str, Maintenance] | None = None,
    *,
    seed: int = 0,
    replication: int = 0,
    chunk_days: int = 50,
) -> tuple[Columns, Columns]:
    """MP2 of one member (replication ``replication`` of a single unchanged variant) on the numpy backend.

    Runs ``replication + 1`` replications and keeps the rows of the last one, as an ensemble holds them.
    """
    ensemble = Ensemble(
        variants=[Variant(name="v")], replications=replication + 1, seed=seed, maintenance=maintenance or {}
    )
    return select(*run_ensemble(inputs, ensemble, chunk_days=chunk_days), variant=0, replication=replication)


def select(airframe: Columns, daily: Columns, *, variant: int, replication: int) -> tuple[Columns, Columns]:
    """The rows of one member of an ensemble's MP2."""
    mine = (airframe["variant_id"] == variant) & (airframe["replication"] == replication)
    mine_daily = (daily["variant_id"] == variant) & (daily["replication"] == replication)
    return {k: v[mine] for k, v in airframe.items()}, {k: v[mine_daily] for k, v in daily.items()}
