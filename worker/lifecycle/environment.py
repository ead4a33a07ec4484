"""The dense environment of a lifecycle run, built once from validated inputs.

Airframes are numbered by ``idx``, the dense rank of ``aircraft_number``. Everything a day's step reads is an array:
per airframe the static limits (effective ``ll``/``oh``/``br``: the MP3 override when set, else MP1), the MP1 times,
the delivery day; the plan as ``targets[day, type]`` for days 0..days (the extra day is "tomorrow" on the last day)
and the flight as ``minutes[day, idx]`` for days 0..days (0 where MP5 has no row). Dates are kept as day numbers
(days since 1970-01-01, as numpy's ``datetime64[D]``); :data:`NO_DATE` stands for "no date".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from simfleet.shared.errors import ConfigError
from simfleet.shared.lifecycle_contract import AC_TYPES, AIRFRAME_COLUMNS, LifecycleInputs

if TYPE_CHECKING:
    from simfleet.worker.lifecycle.ensemble import GroupMaintenance

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
        members: for an ensemble (:mod:`~simfleet.worker.lifecycle.ensemble`), the runs stacked in this
            environment: every per-airframe array then holds ``members`` copies of the fleet, member after member
            (agent ``k`` is airframe ``k % airframes`` of member ``k // airframes``), ``type_code`` is the *group*
            ``member * len(AC_TYPES) + type`` and ``targets`` has a column per group. 1 for a single run.
        replications: replications per variant (member ``m`` is variant ``m // replications``).
        minutes_col: for an ensemble, the column of ``minutes`` each agent flies (variants that change MP5 have
            their own columns); ``None``: agent ``k`` flies column ``k``.
        maintenance: per group, the options of docs/lifecycle.md "Planning" (repair slots, drawn durations,
            unplanned removals); ``None`` is today's model (unlimited shop, MP1 durations, no removals).
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
    members: int = 1
    replications: int = 1
    minutes_col: I64 | None = None
    maintenance: GroupMaintenance | None = None

    @property
    def n(self) -> int:
        """Number of agents: airframes x members."""
        return int(self.aircraft_number.shape[0])

    @property
    def airframes(self) -> int:
        """Airframes of the fleet (of one member)."""
        return self.n // self.members

    @property
    def n_types(self) -> int:
        """Number of quota groups: aircraft types x members (the aircraft types of a single run)."""
        return int(self.targets.shape[1])

    @property
    def agent_minutes_col(self) -> npt.NDArray[np.intp]:
        """The column of ``minutes`` each agent flies."""
        if self.minutes_col is None:
            return np.arange(self.n, dtype=np.intp)
        return self.minutes_col.astype(np.intp)


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
    if top < max(4 * len(sorted_numbers), 1 << 20):  # the table stays within a few times the fleet's own arrays
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


# ------------------------------------------------------------------------------------------------- memory rule

MINUTES_BYTES = 2
"""Per airframe and day of the horizon (days + 1): the ``minutes`` array of the environment (uint16)."""
MP2_ROW_BYTES = sum(np.dtype(column.dtype).itemsize for column in AIRFRAME_COLUMNS)
"""One per-airframe MP2 row in its typed columns."""
CHUNK_BYTES_PER_ROW = 40 + 2 * MP2_ROW_BYTES
"""Per airframe and day of a chunk while it is logged: the day's state arrays a backend keeps (about 40 bytes),
the chunk's typed columns and the copy a sink makes of them (Parquet, ClickHouse)."""
STATE_BYTES_PER_AIRFRAME = 1024
"""Per airframe, whatever the horizon: the static limits, the state and its scratch arrays."""


def available_memory_bytes() -> int | None:
    """Memory this process may still take, in bytes; ``None`` where it cannot be read (not Linux).

    ``MemAvailable`` of ``/proc/meminfo``, lowered to the room left under a cgroup v2 limit when there is one (the
    limit less the memory charged, not counting inactive page cache).
    """
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        used = (cgroup / "memory.current").read_text().strip()
        if limit.isdigit() and used.isdigit():
            stats = dict(line.split() for line in (cgroup / "memory.stat").read_text().splitlines() if " " in line)
            reclaimable = int(stats.get("inactive_file", "0"))  # page cache the kernel drops before refusing us
            found.append(max(int(limit) - int(used) + reclaimable, 0))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def run_memory_bytes(airframes: int, days: int, *, chunk_days: int, log: str, keep_rows: bool) -> int:
    """The memory rule of a run: what ``airframes`` x ``days`` needs at its peak, in bytes (an estimate).

    The environment's flight plan (``MINUTES_BYTES`` per airframe and day), one chunk of the per-airframe log
    while it is logged (``CHUNK_BYTES_PER_ROW`` per airframe and day of the chunk; nothing with ``log="aggregates"``),
    every MP2 row twice when the sink keeps them all (ClickHouse export), and ``STATE_BYTES_PER_AIRFRAME``.
    """
    full = log == "full"
    needed = airframes * (days + 1) * MINUTES_BYTES + airframes * STATE_BYTES_PER_AIRFRAME
    if full:
        needed += airframes * min(chunk_days, days) * CHUNK_BYTES_PER_ROW
        if keep_rows:
            needed += airframes * days * 2 * MP2_ROW_BYTES
    return needed


def check_memory(needed: int, what: str, *, key: str, advice: str) -> None:
    """Refuse work that needs more than :func:`available_memory_bytes`, before anything is allocated.

    Raises:
        ConfigError: naming ``key`` (the setting to lower), the estimate, the memory available and ``advice``.
    """
    available = available_memory_bytes()
    if available is not None and needed > available:
        raise _too_much(needed, available, what, key=key, advice=advice)


def check_run_memory(airframes: int, days: int, *, chunk_days: int, log: str, keep_rows: bool) -> None:
    """:func:`check_memory` for a run, with the longest horizon that fits named (see :func:`run_memory_bytes`).

    Raises:
        ConfigError: naming ``days``.
    """
    needed = run_memory_bytes(airframes, days, chunk_days=chunk_days, log=log, keep_rows=keep_rows)
    available = available_memory_bytes()
    if available is None or needed <= available:
        return
    fits = 0
    low, high = 0, days
    while low <= high:
        middle = (low + high) // 2
        if run_memory_bytes(airframes, middle, chunk_days=chunk_days, log=log, keep_rows=keep_rows) <= available:
            fits, low = middle, middle + 1
        else:
            high = middle - 1
    advice = f"at most {fits} days fit" + (", more with a smaller --chunk-days or --log aggregates" if log == "full"
                                           else "")  # fmt: skip
    raise _too_much(needed, available, f"{airframes} airframes x {days} days", key="days", advice=advice)


def _too_much(needed: int, available: int, what: str, *, key: str, advice: str) -> ConfigError:
    """The refusal of work needing ``needed`` bytes where ``available`` are left (one reading of the memory)."""
    return ConfigError(
        f"{what} needs about {needed / 2**30:.1f} GiB, more than the {available / 2**30:.1f} GiB of memory "
        f"available; {advice}",
        key=key,
    )
