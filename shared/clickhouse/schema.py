"""The ClickHouse tables of simfleet, declared once: columns with types, units and descriptions, keys, partitions.

Types are as narrow as the data allows (UInt8 status, UInt16 days, UInt32 minutes, Date). Sorting keys start with
the job, study or data version, then the day. Every result table is partitioned by its job/study (inputs by their
data version) so that an export replaces exactly one partition atomically: that is what makes exports idempotent.
The input tables follow the column contract of :mod:`simfleet.worker.lifecycle.inputs`; the MP2 tables follow
:mod:`simfleet.worker.lifecycle.schema`; each column's description and unit go to the field_id dictionary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ColumnSpec:
    """One column: ClickHouse type, meaning, unit, and the value range an export checks before inserting."""

    name: str
    type: str
    description: str
    unit: str = ""
    low: float | None = None
    high: float | None = None

    @property
    def nullable(self) -> bool:
        """Whether the column accepts NULL."""
        return self.type.startswith("Nullable(")


@dataclass(frozen=True)
class TableSpec:
    """One table: its columns in order, sorting key, partition key and what a row is."""

    name: str
    description: str
    columns: tuple[ColumnSpec, ...]
    order_by: tuple[str, ...]
    partition_by: tuple[str, ...]
    row_key: tuple[str, ...] = field(default=())

    @property
    def key(self) -> tuple[str, ...]:
        """The columns that identify a row (unique within an export)."""
        return self.row_key or self.order_by

    def column(self, name: str) -> ColumnSpec:
        """The column called ``name``."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name!r}")

    def create_sql(self, database: str) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for this table (MergeTree)."""
        columns = ",\n  ".join(f"`{c.name}` {c.type}" for c in self.columns)
        partition = self.partition_by[0] if len(self.partition_by) == 1 else f"({', '.join(self.partition_by)})"
        return (
            f"CREATE TABLE IF NOT EXISTS {database}.{self.name} (\n  {columns}\n) ENGINE = MergeTree\n"
            f"PARTITION BY {partition}\nORDER BY ({', '.join(self.order_by)})\n"
            f"COMMENT '{self.description.replace(chr(39), '')}'"
        )


def _int_type(high: int) -> str:
    if high <= 2**8 - 1:
        return "UInt8"
    if high <= 2**16 - 1:
        return "UInt16"
    return "UInt32"


VERSION_COLUMNS = (
    ColumnSpec("version_date", "Date", "data version: the first simulated day D0 of the inputs", "date"),
    ColumnSpec("version_id", "UInt32", "data version number within version_date", "", 0, 2**32 - 1),
)


def input_tables() -> list[TableSpec]:
    """MP1, MP3, MP4, MP5 as the upstream ETL provides them, keyed by data version."""
    from simfleet.shared.lifecycle_contract import COLUMNS

    keys = {
        "mp1": ("partno", "ac_type"),
        "mp3": ("aircraft_number",),
        "mp4": ("date", "ac_type"),
        "mp5": ("date", "aircraft_number"),
    }
    titles = {
        "mp1": "MP1 normatives per part number and aircraft type",
        "mp3": "MP3 initial state per airframe",
        "mp4": "MP4 daily plan: aircraft of each type that must be in operation",
        "mp5": "MP5 planned daily flight per aircraft (a missing row means 0 minutes)",
    }
    tables = []
    for name, columns in COLUMNS.items():
        specs = list(VERSION_COLUMNS)
        for column in columns:
            if column.kind == "date":
                ch_type = "Date"
            elif column.kind == "ac_type":
                ch_type = "LowCardinality(String)"
            else:
                ch_type = _int_type(column.high)
            if column.nullable:
                ch_type = f"Nullable({ch_type})"
            low, high = (0, column.high) if column.kind == "int" else (None, None)
            description = f"{titles[name].split(':')[0]}: {column.name}"
            specs.append(ColumnSpec(column.name, ch_type, description, column.unit, low, high))
        tables.append(
            TableSpec(
                name,
                titles[name],
                tuple(specs),
                order_by=("version_date", "version_id", *keys[name]),
                partition_by=("version_date", "version_id"),
            )
        )
    return tables


F64 = "Float64"
NF64 = "Nullable(Float64)"
LATENCY = (
    ColumnSpec("arrived", "UInt64", "requests arriving in [warmup, horizon)", "requests", 0),
    ColumnSpec("completed", "UInt64", "counted requests completed successfully", "requests", 0),
    ColumnSpec("unfinished", "UInt64", "counted requests in flight when the run stopped", "requests", 0),
    ColumnSpec("mean_s", NF64, "mean latency of the successful requests", "s", 0),
    ColumnSpec("p50_s", NF64, "median latency (DDSketch, 0.5% relative accuracy)", "s", 0),
    ColumnSpec("p95_s", NF64, "95th percentile latency", "s", 0),
    ColumnSpec("p99_s", NF64, "99th percentile latency", "s", 0),
    ColumnSpec("max_s", NF64, "largest latency", "s", 0),
    ColumnSpec("throughput_per_min", F64, "counted completions per minute of the measurement window", "1/min", 0),
)
FAILURES = (
    ColumnSpec("failed", "UInt64", "counted requests that failed (a node's last attempt failed)", "requests", 0),
    ColumnSpec("timed_out", "UInt64", "counted requests that failed on a timeout", "requests", 0),
    ColumnSpec("success_ratio", NF64, "completed / (completed + failed + timed out)", "", 0, 1),
    ColumnSpec("goodput_per_min", F64, "successful completions per minute of the measurement window", "1/min", 0),
)
"""The DES model v2 outcome columns of ``des_replications`` (added to existing databases by migration 4)."""
WASTED = ColumnSpec("wasted_work_per_s", NF64, "work per second of failed, timed-out and cancelled attempts (rate)",
                    "work units/s", 0)  # fmt: skip
"""The DES model v2 column of ``des_resources``."""

DES_TABLES = [
    TableSpec(
        "des_replications",
        "DES: one row per replication and request type ('(all)' = every type)",
        (
            ColumnSpec("study_id", "String", "DES study id (the fleet's study, or a local run's id)"),
            ColumnSpec("scenario", "LowCardinality(String)", "scenario name"),
            ColumnSpec("seed", "UInt64", "study seed", "", 0),
            ColumnSpec("replication", "UInt32", "replication index (with seed, fixes every random draw)", "", 0),
            ColumnSpec("request_type", "LowCardinality(String)", "request type, or (all)"),
            ColumnSpec("rate_per_min", F64, "arrival rate of the type (total for (all))", "1/min", 0),
            *LATENCY,
            *FAILURES,
            ColumnSpec("stable", "UInt8", "1 when the replication was stable", "", 0, 1),
            ColumnSpec("events", "UInt64", "events processed by the replication", "events", 0),
            ColumnSpec("wall_s", F64, "wall-clock time of the replication", "s", 0),
        ),
        order_by=("study_id", "replication", "request_type"),
        partition_by=("study_id",),
    ),
    TableSpec(
        "des_resources",
        "DES: one row per replication and resource",
        (
            ColumnSpec("study_id", "String", "DES study id"),
            ColumnSpec("scenario", "LowCardinality(String)", "scenario name"),
            ColumnSpec("replication", "UInt32", "replication index", "", 0),
            ColumnSpec("resource", "LowCardinality(String)", "resource name"),
            ColumnSpec("kind", "LowCardinality(String)", "rate (processor sharing) or space (held)"),
            ColumnSpec("capacity", F64, "capacity (work units per second, or space units)", "", 0),
            ColumnSpec("offered_load", NF64, "lambda * mean work / capacity (rate resources)", "", 0),
            ColumnSpec("utilisation", F64, "time-averaged share of capacity in use over [warmup, horizon]", "", 0),
            ColumnSpec("mean_busy", F64, "time-averaged consumers (rate) or space in use (space)", "", 0),
            ColumnSpec("max_busy", F64, "largest number of consumers, or largest space in use", "", 0),
            ColumnSpec("mean_waiting", F64, "time-averaged tools waiting for admission", "tools", 0),
            ColumnSpec("max_waiting", "UInt32", "largest number of waiting tools", "tools", 0),
            WASTED,
        ),
        order_by=("study_id", "replication", "resource"),
        partition_by=("study_id",),
    ),
    TableSpec(
        "des_aggregates",
        "DES: one row per study figure: mean, std and 95% Student-t half-width over replications",
        (
            ColumnSpec("study_id", "String", "DES study id"),
            ColumnSpec("scenario", "LowCardinality(String)", "scenario name"),
            ColumnSpec("replications", "UInt32", "replications aggregated", "", 0),
            ColumnSpec("scope", "LowCardinality(String)", "type, resource, little or run"),
            ColumnSpec("name", "LowCardinality(String)", "request type or resource name ((all), - for little/run)"),
            ColumnSpec("figure", "LowCardinality(String)", "figure name, e.g. p95_s or utilisation"),
            ColumnSpec("mean", NF64, "mean over replications"),
            ColumnSpec("std", NF64, "sample standard deviation over replications"),
            ColumnSpec("ci95", NF64, "95% Student-t half-width of the mean"),
            ColumnSpec("n", "UInt32", "replications with a value", "", 0),
            ColumnSpec("merged", NF64, "value from the merged sketches (latency quantiles only)"),
        ),
        order_by=("study_id", "scope", "name", "figure"),
        partition_by=("study_id",),
    ),
]


def mp2_tables() -> list[TableSpec]:
    """MP2 per airframe and day, and per type and day, one partition per lifecycle job."""
    from simfleet.shared.lifecycle_contract import AIRFRAME_COLUMNS, DAILY_COLUMNS

    job = ColumnSpec("job_id", "String", "lifecycle job id (with its data version)")

    def columns(specs: Any) -> tuple[ColumnSpec, ...]:
        return (job, *(ColumnSpec(c.name, c.ch_type, c.description, c.unit, c.low, c.high) for c in specs))

    return [
        TableSpec(
            "mp2",
            "MP2: each airframe on each simulated day",
            columns(AIRFRAME_COLUMNS),
            order_by=("job_id", "day", "idx"),
            partition_by=("job_id",),
            row_key=("day", "idx"),
        ),
        TableSpec(
            "mp2_daily",
            "MP2 aggregates: each aircraft type on each simulated day",
            columns(DAILY_COLUMNS),
            order_by=("job_id", "day", "ac_type"),
            partition_by=("job_id",),
            row_key=("day", "ac_type"),
        ),
    ]


def managed_tables() -> list[TableSpec]:
    """Every table simfleet exports to, in field_id assignment order."""
    return [*input_tables(), *DES_TABLES, *mp2_tables()]
