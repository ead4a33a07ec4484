"""``simfleet job status|list|cancel|delete|export``: lifecycle jobs on the fleet, from any machine.

An ensemble job's status names what it simulates (``2 variants x 3 replications x 60 airframes``); its export holds
every member's MP2 rows (``variant_id``, ``replication``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from simfleet.producer.cli.lifecycle_run import print_summary
from simfleet.producer.cli.options import positive_int, work_id
from simfleet.shared.messages import to_wire


def register(families: Any) -> None:
    """Add the ``job`` command family."""
    parser: argparse.ArgumentParser = families.add_parser("job", help="lifecycle jobs on the fleet")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    status = commands.add_parser("status", help="state, owner, epoch, day and figures of a job")
    status.add_argument("job_id", type=work_id, help="the job's id (printed when it was submitted)")
    status.add_argument("--json", action="store_true", help="print the state, figures and result as JSON")
    status.set_defaults(handler=_status)
    listing = commands.add_parser("list", help="the newest jobs, one line each")
    listing.add_argument("--limit", type=positive_int, default=50, help="how many, newest first (default 50)")
    listing.add_argument("--json", action="store_true", help="print the rows as JSON")
    listing.set_defaults(handler=_list)
    cancel = commands.add_parser("cancel", help="stop a job (its owner stops at its next write)")
    cancel.add_argument("job_id", type=work_id, help="the job's id")
    cancel.set_defaults(handler=_cancel)
    delete = commands.add_parser("delete", help="remove an ended job's record and checkpoints")
    delete.add_argument("job_id", type=work_id, help="the job's id (it must have ended)")
    delete.set_defaults(handler=_delete)
    export = commands.add_parser("export", help="write a done job's MP2 from its result checkpoints")
    export.add_argument("job_id", type=work_id, help="the job's id (it must be done)")
    export.add_argument("--out", type=Path, help="as Parquet in this new folder, here (default: ClickHouse)")
    export.set_defaults(handler=_export)


def _status(args: argparse.Namespace) -> int:
    from simfleet.producer.fleet.client import Fleet
    from simfleet.producer.fleet.lifecycle import ensemble_size

    with Fleet.from_settings() as fleet:
        job = fleet.job(args.job_id)
        progress = job.progress()
        record = job.record()
    state = {
        "job_id": record.job_id,
        "state": record.state,
        "owner": record.owner,
        "epoch": record.epoch,
        "day": progress.simulated_day,
        "checkpointed_day": record.day,
        "days": record.days,
        "airframes": record.airframes,
        "percent": progress.percent,
        "progress": to_wire(progress.figures),
        "failure": to_wire(record.failure),
        "result": to_wire(record.result),
        "spec": to_wire(record.spec),
    }
    if args.json:
        json.dump(state, sys.stdout, indent=2)
        print()
        return 0 if record.state != "failed" else 1
    owner = f", owner {record.owner}" if record.owner else ""
    checkpointed = f", checkpointed day {record.day}" if record.day != progress.simulated_day else ""
    print(f"job {record.job_id}: {record.state}, day {progress.simulated_day}/{record.days} ({progress.percent:.1f}%)"
          f"{checkpointed}, epoch {record.epoch}{owner}")  # fmt: skip
    if progress.ensemble is not None:
        print(f"ensemble: {ensemble_size(*progress.ensemble, progress.airframes)}")
    figures = progress.figures
    if figures is not None and figures.days_per_s:
        line = f"last chunk: {figures.days_per_s:,.0f} days/s, {figures.rss_mb:.0f} MiB resident"
        if figures.checkpoint_bytes is not None and figures.checkpoint_s is not None:
            line += f", checkpoint {figures.checkpoint_bytes / 2**20:.1f} MiB in {figures.checkpoint_s:.2f} s"
        print(line)
    if record.failure is not None:
        print(f"{record.state}: {record.failure.error_type} in {record.failure.stage or '-'}: {record.failure.message}")
    if record.result is not None:
        print_summary(record.result)
        print(f"end to end: {record.result.end_to_end_s:.2f} s")
    return 1 if record.state == "failed" else 0


def _list(args: argparse.Namespace) -> int:
    from simfleet.producer.fleet.client import Fleet

    with Fleet.from_settings() as fleet:
        records = fleet.jobs(limit=args.limit)
    rows = [{"job_id": r.job_id, "state": r.state, "day": r.simulated_day, "checkpointed_day": r.day, "days": r.days,
             "airframes": r.airframes, "owner": r.owner, "epoch": r.epoch, "created": r.created}
            for r in records]  # fmt: skip
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    for row in rows:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(str(row["created"]))))
        print(f"{row['job_id']}  {row['state']:<10} day {row['day']:>6}/{row['days']:<6} {created}  {row['owner']}")
    if not rows:
        print("no jobs recorded")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from simfleet.producer.fleet.client import Fleet

    with Fleet.from_settings() as fleet:
        job = fleet.job(args.job_id)
        if job.cancel():
            print(f"job {job.id} cancelled; its owner stops at its next write")
            return 0
        print(f"job {job.id} had already ended ({job.record().state})")
        return 1


def _delete(args: argparse.Namespace) -> int:
    from simfleet.producer.fleet.client import Fleet

    with Fleet.from_settings() as fleet:
        removed = fleet.job(args.job_id).delete()
    print(f"job {args.job_id} deleted with {removed} checkpoint blob(s)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from simfleet.producer.fleet.client import Fleet

    with Fleet.from_settings() as fleet:
        job = fleet.job(args.job_id)
        record = job.record()
        target = job.export(args.out)
    chunks = len(record.spec.chunk_ends())
    rows = record.airframes * record.spec.members * record.days if record.spec.log == "full" else 0
    print(f"job {record.job_id}: {rows} airframe rows and {chunks} chunk(s) written to {target}")
    return 0
