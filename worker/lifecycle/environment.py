"""The dense environment of a lifecycle run, built once from validated inputs.

Airframes are numbered by ``idx``, the dense rank of ``aircraft_number``. Everything a day's step reads is an array:
per airframe the static limits (effective ``ll``/``oh``/``br``: the MP3 override when set, else MP1), the MP1 times,
the delivery day; the plan as ``targets[day, type]`` for days 0..days (the extra day is "tomorrow" on the last day)
and the flight as ``minutes[day, idx]`` for days 0..days (0 where MP5 has no row). Dates are kept as day numbers
(days since 1970-01-01, as numpy's ``datetime64[D]``); :data:`NO_DATE` stands for "no date".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simfleet.shared.lifecycle_contract import AC_TYPES, LifecycleInputs

NO_DATE = np.int64(-(2**31))
"""The day number of a date that is not set (rendered as NaT)."""

I64 = npt.NDArray[np.int64]


def day_numbers(dates: npt.NDArray[np.generic]) -> I64:
    """``datetime64[D]`` to day numbers, NaT to :data:`NO_DATE`."""
    values = np.asarray(dates, dtype="datetime64[D]")
    out = values.astype(np.int64)
    out[np.isnat(values)] = NO_DATE
    return out


@dataclass(frozen=True)
class Environment:
    """Everything static about a run.

    Attributes:
        d0: day number of D0 (``version_date``).
        days: horizon in days.
        aircraft_number, psn, type_code: per idx (``type_code`` indexes :data:`AC_TYPES`).
        ll, oh, br: effective limits per idx (minutes).
        repair_time, partout_time, assembly_time: per idx (days).
        delivery_day: per idx, the day number of the delivery date (:data:`NO_DATE` if none).
        status, sne, ppr, repair_days: the initial state from MP3, per idx.
        targets: ``[days + 1, n_types]`` MP4 ``ops_target``.
        minutes: ``[days + 1, n]`` MP5 ``daily_minutes`` (0 where missing), uint16 (at most 1440) to keep
            100,000 airframes x 10 years under a gigabyte.
    """

    d0: int
    days: int
    aircraft_number: I64
    psn: I64
    type_code: I64
    ll: I64
    oh: I64
    br: I64
    repair_time: I64
    partout_time: I64
    assembly_time: I64
    delivery_day: I64
    status: I64
    sne: I64
    ppr: I64
    repair_days: I64
    targets: I64
    minutes: npt.NDArray[np.uint16]

    @property
    def n(self) -> int:
        """Number of airframes."""
        return int(self.aircraft_number.shape[0])

    @property
    def n_types(self) -> int:
        """Number of aircraft types."""
        return len(AC_TYPES)


def _type_codes(ac_type: npt.NDArray[np.generic]) -> I64:
    codes = np.full(len(ac_type), -1, dtype=np.int64)
    for code, name in enumerate(AC_TYPES):
        codes[np.asarray(ac_type) == name] = code
    return codes


def _ranks(sorted_numbers: I64, numbers: npt.NDArray[np.integer]) -> npt.NDArray[np.intp]:
    """The idx of each aircraft number.

    A lookup table when the numbers are small (fast over MP5's days x airframes rows), else a binary search.
    """
    top = int(sorted_numbers[-1]) if len(sorted_numbers) else 0
    if top < 50_000_000:
        table = np.zeros(top + 1, dtype=np.intp)
        table[sorted_numbers] = np.arange(len(sorted_numbers))
        ranks: npt.NDArray[np.intp] = table[numbers]
        return ranks
    return np.searchsorted(sorted_numbers, numbers)


def build_environment(inputs: LifecycleInputs, days: int | None = None) -> Environment:
    """Dense arrays from validated inputs (``days`` may shorten the horizon)."""
    days = inputs.days if days is None else days
    mp1, mp3, mp4, mp5 = inputs.mp1, inputs.mp3, inputs.mp4, inputs.mp5
    order = np.argsort(np.asarray(mp3["aircraft_number"], dtype=np.int64), kind="stable")
    acn = np.asarray(mp3["aircraft_number"], dtype=np.int64)[order]
    types = _type_codes(mp3["ac_type"])[order]
    partno = np.asarray(mp3["partno"], dtype=np.int64)[order]
    # MP1 row of each airframe, by (partno, type).
    mp1_key = np.asarray(mp1["partno"], dtype=np.int64) * 16 + _type_codes(mp1["ac_type"])
    mp1_order = np.argsort(mp1_key, kind="stable")
    row = mp1_order[np.searchsorted(mp1_key[mp1_order], partno * 16 + types)]

    def limit(name: str) -> I64:
        override = np.asarray(mp3[name], dtype=np.int64)[order]
        return np.where(override >= 0, override, np.asarray(mp1[name], dtype=np.int64)[row])

    d0 = int(np.datetime64(inputs.version_date, "D").astype(np.int64))
    targets = np.zeros((days + 1, len(AC_TYPES)), dtype=np.int64)
    day = day_numbers(mp4["date"]) - d0
    keep = (day >= 0) & (day <= days)
    targets[day[keep], _type_codes(mp4["ac_type"])[keep]] = np.asarray(mp4["ops_target"], dtype=np.int64)[keep]
    minutes = np.zeros((days + 1, len(acn)), dtype=np.uint16)
    day = day_numbers(mp5["date"]) - d0
    idx = _ranks(acn, np.asarray(mp5["aircraft_number"]))
    keep = (day >= 0) & (day <= days)
    minutes[day[keep], idx[keep]] = np.asarray(mp5["daily_minutes"])[keep]
    return Environment(
        d0=d0,
        days=days,
        aircraft_number=acn,
        psn=np.asarray(mp3["psn"], dtype=np.int64)[order],
        type_code=types,
        ll=limit("ll"),
        oh=limit("oh"),
        br=limit("br"),
        repair_time=np.asarray(mp1["repair_time"], dtype=np.int64)[row],
        partout_time=np.asarray(mp1["partout_time"], dtype=np.int64)[row],
        assembly_time=np.asarray(mp1["assembly_time"], dtype=np.int64)[row],
        delivery_day=day_numbers(mp3["delivery_date"])[order],
        status=np.asarray(mp3["status_id"], dtype=np.int64)[order],
        sne=np.asarray(mp3["sne"], dtype=np.int64)[order],
        ppr=np.asarray(mp3["ppr"], dtype=np.int64)[order],
        repair_days=np.asarray(mp3["repair_days"], dtype=np.int64)[order],
        targets=targets,
        minutes=minutes,
    )
