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


ENSEMBLE_COLUMNS = {
    "mp2": ("variant_id", "replication", "repair_queued"),
    "mp2_daily": ("variant_id", "replication", "repair_queue", "unplanned_2_4"),
}
"""The MP2 columns of lifecycle ensembles (issue 17), added to existing databases by migration 5."""
MEMBER_KEY = ("variant_id", "replication")
"""The columns that tell the members of an ensemble apart (0, 0 for a single run)."""


def mp2_tables() -> list[TableSpec]:
    """MP2 per airframe and day, and per type and day, one partition per lifecycle job.

    A row is one airframe (or type) on one day of one member of the job's ensemble. Rows come ordered by
    ``(day, variant_id, replication, idx)`` (and ``ac_type``), which is the row key an export checks. The sorting
    key ends with the member columns because a database from before ensembles can only append them to its key
    (migration 5); a query for one variant reads its job's partition.
    """
    from simfleet.shared.lifecycle_contract import AIRFRAME_COLUMNS, DAILY_COLUMNS

    job = ColumnSpec("job_id", "String", "lifecycle job id (with its data version)")

    def columns(specs: Any) -> tuple[ColumnSpec, ...]:
        return (job, *(ColumnSpec(c.name, c.ch_type, c.description, c.unit, c.low, c.high) for c in specs))

    return [
        TableSpec(
            "mp2",
            "MP2: each airframe on each simulated day",
            columns(AIRFRAME_COLUMNS),
            order_by=("job_id", "day", "idx", *MEMBER_KEY),
            partition_by=("job_id",),
            row_key=("day", *MEMBER_KEY, "idx"),
        ),
        TableSpec(
            "mp2_daily",
            "MP2 aggregates: each aircraft type on each simulated day",
            columns(DAILY_COLUMNS),
            order_by=("job_id", "day", "ac_type", *MEMBER_KEY),
            partition_by=("job_id",),
            row_key=("day", *MEMBER_KEY, "ac_type"),
        ),
    ]


def mp2_tables_before_ensembles() -> list[TableSpec]:
    """The MP2 tables as migration 3 created them: without :data:`ENSEMBLE_COLUMNS`, keyed by day and idx/type.

    Migration 3 keeps creating these, so every database, old or new, reaches today's tables through migration 5.
    """
    tables = []
    for table in mp2_tables():
        dropped = ENSEMBLE_COLUMNS[table.name]
        columns = tuple(c for c in table.columns if c.name not in dropped)
        order_by = tuple(k for k in table.order_by if k not in dropped)
        tables.append(TableSpec(table.name, table.description, columns, order_by, table.partition_by,
                                tuple(k for k in table.row_key if k not in dropped)))  # fmt: skip
    return tables


def mp2_variants_table() -> TableSpec:
    """The variants of every ensemble job: one row per variant, one partition per job, replaced with its MP2."""
    return TableSpec(
        "mp2_variants",
        "MP2 variants: each plan variant of a lifecycle ensemble job (its MP2 rows carry variant_id)",
        (
            ColumnSpec("job_id", "String", "lifecycle job id (the partition of mp2 and mp2_daily)"),
            ColumnSpec("variant_id", "UInt16", "plan variant, as variant_id in mp2 and mp2_daily", "", 0),
            ColumnSpec("name", "String", "the variant's name in the variants file"),
            ColumnSpec("replications", "UInt16", "runs of the variant (replication 0 .. replications - 1)", "", 1),
            ColumnSpec("seed", "UInt64", "the ensemble's seed (with the replication, fixes every random draw)", "", 0),
            ColumnSpec("definition", "String", "the variant as JSON (docs/lifecycle.md, Planning), with the "
                       "maintenance options it runs with per type (the ensemble's defaults filled in)"),
        ),
        order_by=("job_id", "variant_id"),
        partition_by=("job_id",),
        row_key=("variant_id",),
    )


def managed_tables() -> list[TableSpec]:
    """Every table simfleet exports to, in field_id assignment order."""
    return [*input_tables(), *DES_TABLES, *mp2_tables(), mp2_variants_table()]
