"""MP2, the output of the lifecycle model: its columns, types and units, written once.

Two tables: per airframe and day (``mp2``) and per aircraft type and day (``mp2_daily``). Backends produce them as
columnar chunks (a dict of numpy arrays per table); sinks write them; the ClickHouse tables (with field_ids) are
derived from the same lists by :func:`clickhouse_tables`.
"""

from __future__ import annotations

from dataclasses import dataclass

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


AIRFRAME_COLUMNS: tuple[Mp2Column, ...] = (
    Mp2Column("day", "uint16", "UInt16", "days", "day index s (0 = version_date)"),
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
)

DAILY_COLUMNS: tuple[Mp2Column, ...] = (
    Mp2Column("day", "uint16", "UInt16", "days", "day index s"),
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
)
