"""``simfleet lifecycle submit``: a lifecycle job through the fleet's four stage queues, with a live progress bar."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from simfleet.producer.cli.lifecycle_run import print_summary
from simfleet.shared.errors import ConfigError
from simfleet.shared.lifecycle_contract import LOG_MODES
from simfleet.shared.settings import PRIORITIES


def register(commands: Any) -> None:
    """Add the ``submit`` subcommand."""
    parser: argparse.ArgumentParser = commands.add_parser("submit", help="run a lifecycle job on the fleet")
    parser.add_argument("--inputs", type=Path, help="inputs directory (mp1, mp3, mp4, mp5, meta.yaml)")
    parser.add_argument("--inputs-version", metavar="DATE/ID",
                        help="read the inputs from ClickHouse instead: version_date/version_id (see db import-inputs)")
    parser.add_argument("--days", type=int, help="horizon in days (default: the inputs' own)")
    parser.add_argument("--chunk-days", type=int, default=365, help="days per execute stage (default 365)")
    parser.add_argument("--out", type=Path, help="write MP2 here as Parquet (mp2/, mp2_daily/) instead of ClickHouse")
    parser.add_argument("--to-clickhouse", action="store_true",
                        help="write MP2 to ClickHouse (clickhouse_dsn; the default when --out is not given)")
    parser.add_argument("--log", choices=LOG_MODES, default="full", help="per-airframe MP2 or not")
    parser.add_argument("--backend", help="lifecycle backend (default: the worker's gpu_worker.backend)")
    parser.add_argument("--no-persist", action="store_true",
                        help="restore from checkpoints at every stage (the fallback mode) instead of keeping it live")
    parser.add_argument("--priority", choices=list(PRIORITIES), default="normal")
    parser.add_argument("--fleet", action="store_true", required=True, help="run on the fleet (required)")
    parser.add_argument("--timeout", type=float, help="give up waiting after this many seconds")
    parser.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON (it names the job_id)")
    parser.set_defaults(handler=_submit)  # fmt: skip


def inputs_of(args: argparse.Namespace) -> str | Path | dict[str, Any]:
    """An inputs directory or a ClickHouse version, from ``--inputs`` / ``--inputs-version``."""
    if (args.inputs is None) == (args.inputs_version is None):
        raise ConfigError("give exactly one of --inputs DIR and --inputs-version DATE/ID", key="inputs")
    if args.inputs is not None:
        return Path(args.inputs)
    date, _, version_id = str(args.inputs_version).partition("/")
    try:
        dt.date.fromisoformat(date)
        number = int(version_id)
    except ValueError as exc:
        raise ConfigError(f"expected DATE/ID such as 2025-07-04/1, got {args.inputs_version!r}", key="inputs") from exc
    return {"kind": "clickhouse", "version_date": date, "version_id": number}


def _submit(args: argparse.Namespace) -> int:
    from simfleet.producer.fleet.client import Fleet
    from simfleet.producer.progress import ProgressBar

    fleet = Fleet.from_settings()
    try:
        sink = {"kind": "clickhouse"} if args.to_clickhouse else None
        if args.out and args.to_clickhouse:
            raise ConfigError("choose one sink: --out DIR or --to-clickhouse", key="sink")
        job = fleet.run_lifecycle(
            inputs=inputs_of(args),
            days=args.days,
            chunk_days=args.chunk_days,
            persistent=not args.no_persist,
            out=args.out,
            sink=sink,
            backend=args.backend,
            log=args.log,
            priority=args.priority,
        )
        if args.no_wait:
            print(json.dumps({"job_id": job.id}) if args.json else job.id)
            return 0
        print(f"job {job.id} submitted", file=sys.stderr)
        bar = ProgressBar()

        def show(progress: Any) -> None:
            bar.update(progress.percent, progress.label)

        try:
            summary = job.result(timeout=args.timeout, on_progress=show)
        finally:
            bar.close()
    finally:
        fleet.close()
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
        return 0
    print(f"job {summary['job_id']} done on {summary['worker']} in {summary['end_to_end_s']:.2f} s end to end")
    print_summary(summary)
    if summary["sink"].get("target"):
        print(f"MP2 written to {summary['sink']['target']} ({summary['airframe_rows']} airframe rows)")
    return 0
