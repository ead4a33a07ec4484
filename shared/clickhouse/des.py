"""DES studies to ClickHouse: replications, resources and aggregate figures, one partition per study."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from msgspec import structs

from simfleet.shared.clickhouse.client import ClickHouse
from simfleet.shared.clickhouse.export import ExportReport, export_partition
from simfleet.shared.clickhouse.schema import DES_TABLES, FAILURES, LATENCY
from simfleet.shared.messages.des import (
    LATENCY_FIGURES,
    LatencyAggregate,
    RateResourceFigures,
    ReplicationSummary,
    Stat,
    StudyAggregate,
)

TABLES = {t.name: t for t in DES_TABLES}
LATENCY_FIELDS = [c.name for c in (*LATENCY, *FAILURES)]


def replication_columns(
    study_id: str, summaries: Sequence[ReplicationSummary], rates_per_min: dict[str, float]
) -> dict[str, list[Any]]:
    """One row per replication and request type, plus one '(all)' row per replication."""
    rows: list[dict[str, Any]] = []
    for summary in sorted(summaries, key=lambda s: s.replication):
        blocks = [*summary.types.items(), ("(all)", summary.overall)]
        for name, block in blocks:
            rate = sum(rates_per_min.values()) if name == "(all)" else rates_per_min.get(name, 0.0)
            rows.append(
                {
                    "study_id": study_id,
                    "scenario": summary.scenario,
                    "seed": summary.seed,
                    "replication": summary.replication,
                    "request_type": name,
                    "rate_per_min": float(rate),
                    **{f: block.figure(f) for f in LATENCY_FIELDS},
                    "stable": int(summary.stable),
                    "events": summary.events,
                    "wall_s": float(summary.wall_s),
                }
            )
    return _columns(rows, [c.name for c in TABLES["des_replications"].columns])


def resource_columns(study_id: str, summaries: Sequence[ReplicationSummary]) -> dict[str, list[Any]]:
    """One row per replication and resource."""
    rows = []
    for summary in sorted(summaries, key=lambda s: s.replication):
        for name, res in summary.resources.items():
            rows.append(
                {
                    "study_id": study_id,
                    "scenario": summary.scenario,
                    "replication": summary.replication,
                    "resource": name,
                    "kind": res.kind,
                    "capacity": float(res.capacity),
                    "offered_load": res.offered_load if isinstance(res, RateResourceFigures) else None,
                    "utilisation": float(res.utilisation),
                    "mean_busy": float(res.mean_busy),
                    "max_busy": float(res.max_busy),
                    "mean_waiting": float(res.mean_waiting),
                    "max_waiting": res.max_waiting,
                    "wasted_work_per_s": res.wasted_work_per_s if isinstance(res, RateResourceFigures) else None,
                }
            )
    return _columns(rows, [c.name for c in TABLES["des_resources"].columns])


def aggregate_columns(study_id: str, aggregate: StudyAggregate) -> dict[str, list[Any]]:
    """One row per figure of the study aggregate, with the merged-sketch value for latency quantiles."""
    rows = []
    scopes: list[tuple[str, str, dict[str, Stat], dict[str, Any]]] = [
        *(("type", name, _stats(block), structs.asdict(block.merged)) for name, block in aggregate.types.items()),
        ("type", "(all)", _stats(aggregate.overall), structs.asdict(aggregate.overall.merged)),
        *(("resource", name, block, {}) for name, block in aggregate.resources.items()),
        ("little", "-", structs.asdict(aggregate.little), {}),
        ("run", "-", structs.asdict(aggregate.run), {}),
    ]
    for scope, name, block, merged in scopes:
        for figure, stat in block.items():
            rows.append(
                {
                    "study_id": study_id,
                    "scenario": aggregate.scenario,
                    "replications": aggregate.replications,
                    "scope": scope,
                    "name": name,
                    "figure": figure,
                    "mean": stat.mean,
                    "std": stat.std,
                    "ci95": stat.ci95,
                    "n": stat.n,
                    "merged": merged.get(figure) if figure != "completed" else None,
                }
            )
    return _columns(rows, [c.name for c in TABLES["des_aggregates"].columns])


def _stats(block: LatencyAggregate) -> dict[str, Stat]:
    """The latency figures' statistics of a block, by figure (its merged figures and sketch left out)."""
    return {name: block.figure(name) for name in LATENCY_FIGURES}


def _columns(rows: list[dict[str, Any]], names: list[str]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in names if name != "study_id"}


def export_des_study(
    ch: ClickHouse,
    study_id: str,
    summaries: Sequence[ReplicationSummary],
    aggregate: StudyAggregate,
    rates_per_min: dict[str, float],
) -> list[ExportReport]:
    """Write a study's three tables (each partition replaced as a whole: re-exporting leaves one copy)."""
    return [
        export_partition(
            ch, TABLES["des_replications"], (study_id,), replication_columns(study_id, summaries, rates_per_min)
        ),
        export_partition(ch, TABLES["des_resources"], (study_id,), resource_columns(study_id, summaries)),
        export_partition(ch, TABLES["des_aggregates"], (study_id,), aggregate_columns(study_id, aggregate)),
    ]
