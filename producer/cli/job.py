"""``simfleet job status ID``: where a lifecycle job stands (state, owner, epoch, day, figures, result)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simfleet.producer.cli.lifecycle_run import print_summary


def register(families: Any) -> None:
    """Add the ``job`` command family."""
    parser: argparse.ArgumentParser = families.add_parser("job", help="lifecycle jobs on the fleet")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    status = commands.add_parser("status", help="state, owner, epoch, day and figures of a job")
    status.add_argument("job_id")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)
    export = commands.add_parser("export", help="write a job's MP2 again from its result checkpoints")
    export.add_argument("job_id")
    export.add_argument("--out", type=Path, help="as Parquet here (default: ClickHouse, clickhouse_dsn)")
    export.set_defaults(handler=_export)


def _status(args: argparse.Namespace) -> int:
    from simfleet.producer.fleet.client import Fleet

    fleet = Fleet.from_settings()
    try:
        job = fleet.job(args.job_id)
        progress = job.progress()
        record = job.record()
    finally:
        fleet.close()
    state = {
        "job_id": record.job_id,
        "state": record.state,
        "owner": record.owner,
        "epoch": record.epoch,
        "day": record.day,
        "days": progress.days,
        "airframes": record.airframes,
        "percent": progress.percent,
        "progress": progress.figures,
        "error": record.error,
        "result": record.result,
    }
    if args.json:
        json.dump(state, sys.stdout, indent=2)
        print()
        return 0
    owner = f", owner {record.owner}" if record.owner else ""
    print(f"job {record.job_id}: {record.state}, day {record.day}/{progress.days} ({progress.percent:.1f}%), "
          f"epoch {record.epoch}{owner}")  # fmt: skip
    figures = progress.figures
    if figures.get("days_per_s"):
        print(f"last chunk: {figures['days_per_s']:,.0f} days/s, {figures.get('rss_mb', 0):.0f} MiB resident"
              + (f", checkpoint {figures['checkpoint_bytes'] / 2**20:.1f} MiB in {figures['checkpoint_s']:.2f} s"
                 if "checkpoint_bytes" in figures else ""))  # fmt: skip
    if record.error:
        print(f"error: {record.error}")
    if record.result:
        print_summary(record.result)
        print(f"end to end: {record.result['end_to_end_s']:.2f} s")
    return 1 if record.state == "failed" else 0


def _export(args: argparse.Namespace) -> int:
    import redis

    from simfleet.shared.checkpoints import Checkpoints
    from simfleet.shared.clickhouse.client import portable_dsn
    from simfleet.shared.errors import SimfleetError
    from simfleet.shared.jobs import Jobs
    from simfleet.shared.settings import load_settings
    from simfleet.worker.stages import read_results, write_mp2

    settings = load_settings()
    client = redis.Redis.from_url(settings.result_backend)
    try:
        record = Jobs(client).get(args.job_id)
        if record is None:
            raise SimfleetError(f"no job {args.job_id!r} is known to this fleet (expired, or never submitted)")
        if not record.days:
            raise SimfleetError(f"job {args.job_id} was never loaded; nothing to export")
        chunks = read_results(Checkpoints.from_settings(settings, client), record.job_id, record.days)
    finally:
        client.close()
    sink = (
        {"kind": "parquet", "path": str(args.out.resolve())}
        if args.out
        else {"kind": "clickhouse", "dsn": portable_dsn(settings.clickhouse_dsn)}  # this process's own DSN
    )
    full = record.spec.get("log", "full") == "full"
    target = write_mp2(sink, record.job_id, chunks, airframes=record.airframes if full else None, days=record.days)
    rows = sum(len(chunk.airframe.get("day", ())) for chunk in chunks)
    print(f"job {record.job_id}: {rows} airframe rows and {len(chunks)} chunk(s) written to {target}")
    return 0
