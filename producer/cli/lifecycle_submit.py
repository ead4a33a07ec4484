"""``simfleet lifecycle submit``: a lifecycle job through the fleet's four stage queues, with a live progress bar.

The inputs directory is validated here, on this machine, and sent through the fleet's checkpoint store (or imported
into ClickHouse first, ``--via clickhouse``); nothing the workers receive is a path. ``--out DIR`` writes MP2 here,
on this machine, once the job is done (from the job's result checkpoints); without it MP2 goes to ClickHouse.
``--variants FILE`` runs an ensemble (plan variants x replications, docs/lifecycle.md "Planning"): the file is read
and checked against the inputs here, before anything is sent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from simfleet.producer.cli.lifecycle_run import print_summary
from simfleet.producer.cli.options import NoConsumerWarning, bounded_int, positive_float, work_id, work_interrupted
from simfleet.shared.errors import ConfigError, MessageError, printable
from simfleet.shared.lifecycle_contract import BACKENDS, LOG_MODES, MAX_DAYS, MP2_FOLDERS, U32
from simfleet.shared.messages import decode, to_wire
from simfleet.shared.messages.lifecycle import ClickHouseInputs, Inputs
from simfleet.shared.outputs import check_writable
from simfleet.shared.settings import PRIORITIES

NO_CONSUMER_AFTER_S = 3.0
"""How soon a submission says that no worker consumes its queue (it keeps waiting for one)."""


def register(commands: Any) -> None:
    """Add the ``submit`` subcommand."""
    parser: argparse.ArgumentParser = commands.add_parser("submit", help="run a lifecycle job on the fleet")
    parser.add_argument("--inputs", type=Path, help="inputs directory here (mp1, mp3, mp4, mp5, meta.yaml)")
    parser.add_argument(
        "--inputs-version",
        metavar="DATE/ID",
        help="read the inputs from ClickHouse instead: version_date/version_id (see db import-inputs)",
    )
    parser.add_argument(
        "--via",
        choices=["store", "clickhouse"],
        default="store",
        help="how an inputs directory reaches the workers: the checkpoint store (default) or a new ClickHouse version",
    )
    parser.add_argument(
        "--days", type=bounded_int(1, MAX_DAYS), help=f"horizon in days, 1 to {MAX_DAYS} (default: the inputs' own)"
    )
    parser.add_argument(
        "--chunk-days",
        type=bounded_int(1, MAX_DAYS),
        default=365,
        help=f"days per execute stage, 1 to {MAX_DAYS} (default 365)",
    )
    parser.add_argument(
        "--out", type=Path, help="after the job, write MP2 here, on this machine, as Parquet (mp2/, mp2_daily/)"
    )
    parser.add_argument(
        "--to-clickhouse",
        action="store_true",
        help="MP2 to ClickHouse (the workers' clickhouse_dsn; the default unless --out is given)",
    )
    parser.add_argument("--log", choices=LOG_MODES, default="full", help="per-airframe MP2 or not")
    parser.add_argument(
        "--variants",
        type=Path,
        metavar="FILE",
        help="run an ensemble: plan variants x replications and maintenance options (YAML, docs/lifecycle.md)",
    )
    parser.add_argument("--backend", choices=BACKENDS, help="lifecycle backend (default: the worker's)")
    parser.add_argument(
        "--no-persist",
        action="store_true",
        help="restore from checkpoints at every stage (the fallback mode) instead of keeping it live",
    )
    parser.add_argument(
        "--priority", choices=list(PRIORITIES), default="normal", help="queue priority on the fleet (default normal)"
    )
    parser.add_argument(
        "--job-id",
        type=work_id,
        help="the job's id: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit (default: a fresh one)",
    )
    parser.add_argument("--fleet", action="store_true", required=True, help="run on the fleet (required)")
    parser.add_argument("--timeout", type=positive_float, help="stop waiting after this many seconds (the job goes on)")
    parser.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON (it names the job_id)")
    parser.set_defaults(handler=_submit)  # fmt: skip


def inputs_of(args: argparse.Namespace) -> Path | Inputs:
    """An inputs directory or a ClickHouse version, from ``--inputs`` / ``--inputs-version``."""
    if (args.inputs is None) == (args.inputs_version is None):
        raise ConfigError("give exactly one of --inputs DIR and --inputs-version DATE/ID", key="--inputs")
    if args.inputs is not None:
        return Path(args.inputs)
    date, _, version_id = str(args.inputs_version).partition("/")
    try:
        return decode(ClickHouseInputs, {"version_date": dt.date.fromisoformat(date).isoformat(),
                                         "version_id": int(version_id)})  # fmt: skip
    except (ValueError, MessageError) as exc:
        raise ConfigError(f"expected DATE/ID such as 2025-07-04/1 (ID 0 to {U32}), got "
                          f"{printable(args.inputs_version)!r}", key="--inputs-version") from exc  # fmt: skip


def _submit(args: argparse.Namespace) -> int:
    from simfleet.producer.fleet.client import Fleet
    from simfleet.producer.progress import ProgressBar
    from simfleet.shared.celery_app import LIFECYCLE_LOAD, stage_queues

    if args.out and args.to_clickhouse:
        raise ConfigError("choose one: --out DIR (MP2 here, after the job) or --to-clickhouse", key="--out")
    if args.out:
        check_writable(args.out, flag="--out", owned=MP2_FOLDERS)  # before the job, not after it
    with Fleet.from_settings() as fleet:
        job = fleet.run_lifecycle(
            inputs=inputs_of(args), days=args.days, chunk_days=args.chunk_days, persistent=not args.no_persist,
            sink="none" if args.out else "clickhouse", backend=args.backend, log=args.log, priority=args.priority,
            job_id=args.job_id, via=args.via, ensemble=args.variants,  # decoded, then checked against the inputs
        )  # fmt: skip
        if args.no_wait:
            print(json.dumps({"job_id": job.id}) if args.json else job.id)
            return 0
        print(f"job {job.id} submitted", file=sys.stderr)
        warn = NoConsumerWarning(fleet, stage_queues(fleet.settings)[LIFECYCLE_LOAD], "simfleet worker --role gpu")
        bar = ProgressBar()

        def show(progress: Any) -> None:
            warn.check(progress.state == "queued")
            bar.update(progress.percent, progress.label)

        try:
            summary = job.wait(timeout=args.timeout, on_progress=show)
        except KeyboardInterrupt:
            work_interrupted(f"job {job.id}", f"simfleet job status {job.id}", f"simfleet job cancel {job.id}")
            return 130
        finally:
            bar.close()
        target = job.export(args.out) if args.out else summary.sink.target
    if args.json:
        json.dump(to_wire(summary), sys.stdout, indent=2)
        print()
        return 0
    print(f"job {summary.job_id} done on {summary.worker} in {summary.end_to_end_s:.2f} s end to end")
    print_summary(summary)
    if target:
        print(f"MP2 written to {target} ({summary.airframe_rows} airframe rows)")
    return 0
