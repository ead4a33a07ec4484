"""The lifecycle data contract: input columns and row keys, the MP2 schema, the state fields; written once.

Everything that reads, checks, simulates, stores or exports a lifecycle job's data imports its names from here: the
input loaders and their validation, the backends, the checkpoints of a job's state, the ClickHouse tables (with their
field_ids) and the exports. It depends on nothing but numpy, so every layer can import it.

Input tables are columnar: a ``dict`` of column name to a one-dimensional numpy array, all of one length. Integers
are signed arrays (``int64`` from every loader; the synthetic MP5 uses ``int32``), a missing value in a nullable column
is ``-1``; dates are ``datetime64[D]`` (``NaT`` when missing); ``ac_type`` is a numpy unicode array.

MP2, the output, is two tables: per airframe and day (``mp2``) and per aircraft type and day (``mp2_daily``).
Backends produce them as columnar chunks; sinks write them; the ClickHouse tables are derived from the same lists.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# numpy is named only for the type checker: the command line's parser reads these constants without importing it.
Table: TypeAlias = "dict[str, npt.NDArray[np.generic]]"

AC_TYPES = ("mi8", "mi17")
"""Known aircraft types, in the order backends number them (``mi8`` is 0)."""

TABLES = ("mp1", "mp3", "mp4", "mp5")
U8, U16, U32 = 2**8 - 1, 2**16 - 1, 2**32 - 1
MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class Column:
    """One column of an input table.

    Attributes:
        name: the column name in files and in the columnar table.
        kind: ``int``, ``date`` or ``ac_type``.
        unit: what an integer counts (``minutes``, ``days``) or what it identifies; empty for dates and types.
        high: the largest valid integer (the low end is 0).
        nullable: a missing value is allowed (``-1`` / ``NaT`` in memory, an empty cell in files).
    """

    name: str
    kind: Literal["int", "date", "ac_type"]
    unit: str = ""
    high: int = U32
    nullable: bool = False

    def expected(self) -> str:
        """The expected form of a value, as error messages state it."""
        if self.kind == "date":
            first, last = DATE_RANGE
            return f"a date YYYY-MM-DD, {first} .. {last}" + (" or empty" if self.nullable else "")
        if self.kind == "ac_type":
            return "one of " + ", ".join(AC_TYPES)
        unit = f" ({self.unit})" if self.unit else ""
        return f"an integer 0..{self.high}{unit}" + (" or empty" if self.nullable else "")


COLUMNS: dict[str, tuple[Column, ...]] = {
    "mp1": (
        Column("partno", "int", "part number"),
        Column("ac_type", "ac_type"),
        Column("ll", "int", "minutes"),
        Column("oh", "int", "minutes"),
        Column("br", "int", "minutes"),
        Column("repair_time", "int", "days", U16),
        Column("partout_time", "int", "days", U16),
        Column("assembly_time", "int", "days", U16),
    ),
    "mp3": (
        Column("psn", "int", "serial number"),
        Column("aircraft_number", "int", "aircraft number"),
        Column("partno", "int", "part number"),
        Column("ac_type", "ac_type"),
        Column("status_id", "int", "status", 6),
        Column("sne", "int", "minutes"),
        Column("ppr", "int", "minutes"),
        Column("repair_days", "int", "days", U16),
        Column("ll", "int", "minutes", nullable=True),
        Column("oh", "int", "minutes", nullable=True),
        Column("br", "int", "minutes", nullable=True),
        Column("mfg_date", "date"),
        Column("delivery_date", "date", nullable=True),
    ),
    "mp4": (
        Column("date", "date"),
        Column("ac_type", "ac_type"),
        Column("ops_target", "int", "aircraft", U16),
    ),
    "mp5": (
        Column("date", "date"),
        Column("aircraft_number", "int", "aircraft number"),
        Column("daily_minutes", "int", "minutes", MINUTES_PER_DAY),
    ),
}
"""Every input table's columns, in file order; the one place their names, kinds and ranges are written."""

ROW_KEYS: dict[str, tuple[str, ...]] = {
    "mp1": ("partno", "ac_type"),
    "mp3": ("aircraft_number",),
    "mp4": ("date", "ac_type"),
    "mp5": ("date", "aircraft_number"),
}
"""The columns that name one row of each input table in error messages (one row per key in a valid table)."""


MAX_DAYS = 2**16 - 1
"""The longest horizon: MP2 stores day indices as ``UInt16``. The memory a horizon needs is checked separately."""

MP2_FOLDERS = ("mp2", "mp2_daily")
"""What an MP2 output folder holds as Parquet parts: the per-airframe log and the daily aggregates."""

DATE_RANGE = (dt.date(1970, 1, 1), dt.date(2149, 6, 6))
"""The dates ClickHouse's ``Date`` holds; every input date and every simulated day must fall within it."""

ENGINE_MINUTES_MAX = 2**31 - 1
"""The backends hold minutes of flight in ``int32``: every starting value (MP1 and MP3 ``ll``/``oh``/``br``, MP3
``sne``/``ppr``) plus a full day's flight on every day of the horizon (``MINUTES_PER_DAY * (days + 1)``) must fit."""


@dataclass(frozen=True)
class LifecycleInputs:
    """Inputs of one lifecycle job (validated when they come from :func:`load_inputs`).

    Attributes:
        version_date: D0, the first simulated day.
        days: the horizon in days (day indices 0 .. days-1).
        mp1: normatives per (partno, ac_type).
        mp3: initial state per airframe.
        mp4: daily plan in long form (date, ac_type, ops_target).
        mp5: daily flight in long form (date, aircraft_number, daily_minutes).
    """

    version_date: dt.date
    days: int
    mp1: Table
    mp3: Table
    mp4: Table
    mp5: Table

    def table(self, name: str) -> Table:
        """The table called ``name`` (``mp1``, ``mp3``, ``mp4`` or ``mp5``)."""
        tables: dict[str, Table] = {"mp1": self.mp1, "mp3": self.mp3, "mp4": self.mp4, "mp5": self.mp5}
        return tables[name]


# ------------------------------------------------------------------------------------------------------------ MP2

STATUSES = {
    0: "not delivered",
    1: "inactive",
    2: "operation",
    3: "serviceable",
    4: "repair",
    5: "reserve",
    6: "storage",
}
LOG_MODES = ("full", "aggregates")
"""What a run logs: MP2 per airframe and day and per type and day, or the per-type aggregates only."""
TRANSITIONS = ((2, 3), (2, 4), (2, 6), (3, 2), (5, 2), (1, 2), (4, 5), (0, 3))
"""The transitions counted per type and day, as (from, to)."""


@dataclass(frozen=True)
class Mp2Column:
    """One MP2 column: name, numpy dtype, ClickHouse type, unit and meaning."""

    name: str
    dtype: str
    ch_type: str
    unit: str
    description: str
    low: int | None = 0
    high: int | None = None


VARIANT_COLUMNS: tuple[Mp2Column, ...] = (
    Mp2Column("variant_id", "uint16", "UInt16", "", "plan variant (0 without variants; named in mp2_variants)"),
    Mp2Column("replication", "uint16", "UInt16", "", "replication of the variant (0 without replications)"),
)
"""The ensemble columns of both MP2 tables (zeros for a job of one deterministic run)."""

AIRFRAME_COLUMNS: tuple[Mp2Column, ...] = (
    Mp2Column("day", "uint16", "UInt16", "days", "day index s (0 = version_date)"),
    *VARIANT_COLUMNS,
    Mp2Column("idx", "uint32", "UInt32", "", "dense rank of aircraft_number"),
    Mp2Column("date", "datetime64[D]", "Date", "date", "the simulated day D = version_date + day", None),
    Mp2Column("psn", "uint32", "UInt32", "serial number", "airframe serial number"),
    Mp2Column("aircraft_number", "uint32", "UInt32", "aircraft number", "aircraft number"),
    Mp2Column("ac_type", "uint8", "UInt8", "", "aircraft type code: 0 mi8, 1 mi17", 0, 1),
    Mp2Column("status_id", "uint8", "UInt8", "status", "status spent on day D (0..6)", 0, 6),
    Mp2Column("next_status", "uint8", "UInt8", "status", "status for D+1 (0..6)", 0, 6),
    Mp2Column("daily_flight", "uint32", "UInt32", "minutes", "minutes flown on D (0 unless in operation)"),
    Mp2Column("sne", "uint32", "UInt32", "minutes", "flight since new at the end of D"),
    Mp2Column("ppr", "uint32", "UInt32", "minutes", "flight since last overhaul at the end of D"),
    Mp2Column("repair_days", "uint16", "UInt16", "days", "days spent in the current repair at the end of D"),
    Mp2Column("partout_date", "datetime64[D]", "Nullable(Date)", "date", "part-out date of the last repair", None),
    Mp2Column("assembly_date", "datetime64[D]", "Nullable(Date)", "date", "assembly date of the last repair", None),
    Mp2Column(
        "active_date", "datetime64[D]", "Nullable(Date)", "date", "start of the implied overhaul of a 1->2", None
    ),
    Mp2Column("repair_queued", "uint8", "UInt8", "", "1 when it spent D in status 4 waiting for a repair slot", 0, 1),
)

DAILY_COLUMNS: tuple[Mp2Column, ...] = (
    Mp2Column("day", "uint16", "UInt16", "days", "day index s"),
    *VARIANT_COLUMNS,
    Mp2Column("date", "datetime64[D]", "Date", "date", "the simulated day D", None),
    Mp2Column("ac_type", "uint8", "UInt8", "", "aircraft type code: 0 mi8, 1 mi17", 0, 1),
    Mp2Column("ops_target", "uint16", "UInt16", "aircraft", "MP4 target for D"),
    Mp2Column("ops_current", "uint32", "UInt32", "aircraft", "airframes in operation on D"),
    Mp2Column("granted", "uint32", "UInt32", "aircraft", "airframes granted operation for D+1"),
    Mp2Column("shortfall", "uint32", "UInt32", "aircraft", "target for D+1 that no eligible airframe could fill"),
    *(
        Mp2Column(f"count_{code}", "uint32", "UInt32", "aircraft", f"airframes in status {code} ({name}) on D")
        for code, name in STATUSES.items()
    ),
    *(
        Mp2Column(f"trans_{a}_{b}", "uint32", "UInt32", "aircraft", f"transitions {a}->{b} decided on D")
        for a, b in TRANSITIONS
    ),
    Mp2Column("repair_queue", "uint32", "UInt32", "aircraft", "airframes waiting for a repair slot on D"),
    Mp2Column("unplanned_2_4", "uint32", "UInt32", "aircraft", "of trans_2_4, the unplanned removals decided on D"),
)

# ---------------------------------------------------------------------------------------------------------- state

CORE_STATE_FIELDS = ("status", "sne", "ppr", "repair_days", "partout_date", "assembly_date", "active_date")
"""The agent variables of today's model (a backend without the planning options holds these only)."""
STATE_FIELDS = (*CORE_STATE_FIELDS, "repair_duration", "queued_since")
"""The agent variables of a backend's state (``state_dict``): int64 arrays in agent order (idx order, member after
member in an ensemble), dates as day numbers. ``repair_duration`` is the length of the repair under way (days);
``queued_since`` the day number an airframe joined the repair queue (``NO_DATE`` when it is not waiting). A state
written before these two existed loads with ``repair_time`` and no queue."""

BACKENDS = ("numpy", "cupy", "flamegpu", "numba")
"""The lifecycle backends a job may name (the worker's registry implements exactly these)."""
