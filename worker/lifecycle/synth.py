"""Synthetic fleets: plausible lifecycle inputs of any size, following LIFECYCLE_MODEL.md's "Reference points".

The reference fleet is 279 airframes, 163 Mi-8 and 116 Mi-17, over 3,650 days; a fleet of N airframes keeps the
type proportion and scales the plan by N / 279. What is drawn, and why:

- MP1: three part numbers per type; repair 120-240 days per part number (180 on average), partout 7, assembly 30;
  ll 1.8 M / 1.08 M minutes, oh 270,000, br 1.55 M / 0.97 M (Mi-8 / Mi-17).
- MP3: about 42% inactive (1), 55% in operation (2), 3% in repair (4), and 1.5% not yet delivered (0, taken from
  the inactive share) with a delivery date inside the horizon. ``ppr`` is uniform in [0, oh) (in repair: just past
  oh); ``sne`` is ``ppr`` plus a uniform number of earlier overhaul intervals, so ages spread from new to near the
  life limit and a share of the fleet reaches ``br`` or ``ll`` at its next overhaul within ten years. About 2% carry
  an MP3 life-limit extension (``ll`` override, +10%).
- MP5: every aircraft every day, 70-155 minutes, constant within a calendar month: an aircraft's own level times a
  season peaking in July, plus monthly noise.
- MP4: per type and calendar month, about 52% of the type's airframes, higher in summer, with occasional surges that
  leave the plan short of eligible airframes.

Every draw comes from one ``numpy.random.default_rng(seed)`` in a fixed order: same arguments, same arrays.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import numpy.typing as npt

from simfleet.shared.errors import ConfigError
from simfleet.shared.lifecycle_contract import AC_TYPES, DATE_RANGE, U16, U32, LifecycleInputs, Table
from simfleet.worker.lifecycle.environment import check_memory
from simfleet.worker.lifecycle.validation import check_horizon

IntArray = npt.NDArray[np.int64]
REFERENCE_FLEET = {"mi8": 163, "mi17": 116}
PARTNOS_PER_TYPE = 3
PARTNO_BASE = {"mi8": 8_100_000, "mi17": 17_100_000}
LIMITS_MIN = {"mi8": (1_800_000, 270_000, 1_550_000), "mi17": (1_080_000, 270_000, 970_000)}
"""(ll, oh, br) in minutes of flight per type."""
REPAIR_DAYS_RANGE = (120, 240)
PARTOUT_DAYS, ASSEMBLY_DAYS = 7, 30
START_MIX = {0: 0.015, 2: 0.55, 4: 0.03}
"""Initial share per status; status 1 (inactive) takes the rest, about 42%."""
MIN_FLEET_WITH_DELIVERY = 10
"""Fleets of at least this size get at least one delivery (status 0)."""
FLIGHT_MIN_RANGE = (70, 155)
LL_EXTENSION_SHARE = 0.02
MAX_AIRCRAFT = (U32 - 100_000) // 5
"""The largest synthetic fleet: its ``psn`` (100,000 + 5 per airframe) and aircraft numbers must fit ``UInt32``."""
BYTES_PER_MP5_ROW = 64
"""The memory rule of a synthetic fleet: its MP5 (aircraft x (days + 1) rows) as arrays, then as the Arrow table
written out, about 64 bytes a row at the peak; a fleet needing more than the memory available is refused first."""


def synthesize(aircraft: int, days: int, seed: int, version_date: dt.date = dt.date(2025, 1, 1), *,
               days_key: str = "days") -> LifecycleInputs:  # fmt: skip
    """Make a plausible fleet of ``aircraft`` airframes with a plan for ``days`` days from ``version_date``.

    Args:
        aircraft: airframes in MP3 (at least 1).
        days: the horizon; MP4 and MP5 have rows for the days + 1 dates D0 .. D0 + days.
        seed: seed of the one random generator every draw comes from.
        version_date: D0, the first simulated day.
        days_key: how the caller names ``days`` in errors (``--days`` on the command line).

    Returns:
        Inputs that pass :func:`~simfleet.worker.lifecycle.validation.validate_inputs`. MP5 holds aircraft x
        (days + 1) rows sorted by (date, aircraft_number), its integer columns ``int32``.

    Raises:
        ConfigError: ``aircraft`` is not an integer 1 .. :data:`MAX_AIRCRAFT`, ``days`` is not a horizon within
            the limits (:func:`~simfleet.worker.lifecycle.validation.check_horizon`), or the fleet needs more memory
            than is available (:data:`BYTES_PER_MP5_ROW`).
    """
    if isinstance(aircraft, bool) or not isinstance(aircraft, int) or not 1 <= aircraft <= MAX_AIRCRAFT:
        raise ConfigError(f"expected an integer 1..{MAX_AIRCRAFT}, got {aircraft!r}", key="aircraft")
    check_horizon(version_date, days, key=days_key)
    rows = aircraft * (days + 1)
    check_memory(rows * BYTES_PER_MP5_ROW, f"{aircraft} aircraft x {days} days ({rows:,} mp5 rows)", key=days_key,
                 advice="ask for fewer --aircraft or --days")  # fmt: skip
    rng = np.random.default_rng(seed)
    n_mi8 = round(aircraft * REFERENCE_FLEET["mi8"] / sum(REFERENCE_FLEET.values()))
    type_code = rng.permutation(np.repeat(np.array([0, 1]), [n_mi8, aircraft - n_mi8]))
    aircraft_number = 10_000 + np.cumsum(rng.integers(1, 4, aircraft))
    psn = 100_000 + rng.permutation(aircraft) * 5 + rng.integers(0, 5, aircraft)

    mp1 = _normatives(rng)
    mp1_row = type_code * PARTNOS_PER_TYPE + rng.integers(0, PARTNOS_PER_TYPE, aircraft)
    mp3 = {"psn": psn, "aircraft_number": aircraft_number, "partno": mp1["partno"][mp1_row]}
    mp3.update(_initial_state(rng, type_code, mp1, mp1_row, version_date, days))

    dates = np.datetime64(version_date, "D") + np.arange(days + 1)
    months = dates.astype("datetime64[M]")
    month_index = (months - months[0]).astype(np.int64)
    month_starts = np.searchsorted(month_index, np.arange(month_index[-1] + 1))
    calendar_month = months[month_starts].astype(np.int64) % 12
    season = 1.0 + 0.18 * np.cos(2 * np.pi * (calendar_month - 6) / 12)
    mp4 = _plan(rng, type_code, dates, month_index, season)
    mp5 = _flights(rng, aircraft_number, dates, month_index, season)
    return LifecycleInputs(version_date, days, mp1, mp3, mp4, mp5)


def _normatives(rng: np.random.Generator) -> Table:
    rows = len(AC_TYPES) * PARTNOS_PER_TYPE
    types = np.repeat(np.array(AC_TYPES), PARTNOS_PER_TYPE)
    limits = np.array([LIMITS_MIN[ac_type] for ac_type in types], dtype=np.int64)
    return {
        "partno": np.array([PARTNO_BASE[ac_type] for ac_type in types], dtype=np.int64)
        + np.tile(np.arange(PARTNOS_PER_TYPE), len(AC_TYPES)),
        "ac_type": types,
        "ll": limits[:, 0],
        "oh": limits[:, 1],
        "br": limits[:, 2],
        "repair_time": rng.integers(REPAIR_DAYS_RANGE[0], REPAIR_DAYS_RANGE[1] + 1, rows),
        "partout_time": np.full(rows, PARTOUT_DAYS, dtype=np.int64),
        "assembly_time": np.full(rows, ASSEMBLY_DAYS, dtype=np.int64),
    }


def _initial_state(
    rng: np.random.Generator, type_code: IntArray, mp1: Table, mp1_row: IntArray, version_date: dt.date, days: int
) -> Table:
    aircraft = len(type_code)
    counts = {status: round(aircraft * share) for status, share in START_MIX.items()}
    counts[0] = math.ceil(aircraft * START_MIX[0]) if aircraft >= MIN_FLEET_WITH_DELIVERY else 0
    counts[1] = aircraft - sum(counts.values())
    status = rng.permutation(np.repeat(np.array(sorted(counts)), [counts[s] for s in sorted(counts)]))
    ll, oh, br = (np.asarray(mp1[field], dtype=np.int64)[mp1_row] for field in ("ll", "oh", "br"))
    repair_time = np.asarray(mp1["repair_time"], dtype=np.int64)[mp1_row]

    in_repair = status == 4
    ppr = np.where(in_repair, oh - rng.integers(0, 2_000, aircraft), rng.integers(0, oh))
    overhauls_max = np.where(in_repair, (br - oh) // oh, (br - 1) // oh)
    overhauls = np.floor(rng.random(aircraft) * (overhauls_max + 1)).astype(np.int64)
    interval = np.floor(oh * rng.uniform(0.85, 1.0, aircraft)).astype(np.int64)
    sne = np.minimum(ppr + overhauls * interval, ll - 1)
    sne = np.where(in_repair, np.minimum(sne, br - 1), sne)
    repair_days = np.where(in_repair, np.floor(rng.random(aircraft) * repair_time).astype(np.int64), 0)
    age_days = (365 * (1 + sne / 45_000) + rng.integers(0, 365, aircraft)).astype(np.int64)
    d0 = np.datetime64(version_date, "D")
    mfg_date = d0 - age_days

    pending = status == 0
    delivery_offset = rng.integers(1, max(days, 2), aircraft)
    delivery_date = np.where(pending, d0 + delivery_offset, np.datetime64("NaT", "D"))
    mfg_date = np.where(pending, delivery_date - rng.integers(30, 180, aircraft), mfg_date)
    mfg_date = np.maximum(mfg_date, np.datetime64(DATE_RANGE[0], "D"))  # a version_date near 1970
    sne, ppr = np.where(pending, 0, sne), np.where(pending, 0, ppr)
    extended = rng.random(aircraft) < LL_EXTENSION_SHARE
    return {
        "ac_type": np.array(AC_TYPES)[type_code],
        "status_id": status.astype(np.int64),
        "sne": sne,
        "ppr": ppr,
        "repair_days": repair_days,
        "ll": np.where(extended, ll + ll // 10, -1),
        "oh": np.full(aircraft, -1, dtype=np.int64),
        "br": np.full(aircraft, -1, dtype=np.int64),
        "mfg_date": mfg_date.astype("datetime64[D]"),
        "delivery_date": delivery_date.astype("datetime64[D]"),
    }


def _plan(
    rng: np.random.Generator,
    type_code: IntArray,
    dates: npt.NDArray[np.datetime64],
    month_index: IntArray,
    season: npt.NDArray[np.float64],
) -> Table:
    months = len(season)
    fleet = np.bincount(type_code, minlength=len(AC_TYPES))
    share = 0.52 + 0.25 * (season[None, :] - 1.0) + rng.normal(0.0, 0.03, (len(AC_TYPES), months))
    share += np.where(rng.random((len(AC_TYPES), months)) < 0.06, 0.2, 0.0)
    target = np.clip(np.rint(share * fleet[:, None]), 0, U16).astype(np.int64)
    return {
        "date": np.repeat(dates, len(AC_TYPES)),
        "ac_type": np.tile(np.array(AC_TYPES), len(dates)),
        "ops_target": target[:, month_index].T.ravel(),
    }


def _flights(
    rng: np.random.Generator,
    aircraft_number: IntArray,
    dates: npt.NDArray[np.datetime64],
    month_index: IntArray,
    season: npt.NDArray[np.float64],
) -> Table:
    aircraft = len(aircraft_number)
    level = rng.uniform(90.0, 120.0, aircraft).astype(np.float32)
    noise = rng.normal(0.0, 8.0, (len(season), aircraft)).astype(np.float32)
    monthly = np.rint(season.astype(np.float32)[:, None] * level[None, :] + noise)
    minutes = np.clip(monthly, *FLIGHT_MIN_RANGE).astype(np.int32)
    return {
        "date": np.repeat(dates, aircraft),
        "aircraft_number": np.tile(aircraft_number.astype(np.int32), len(dates)),
        "daily_minutes": minutes[month_index].ravel(),
    }
