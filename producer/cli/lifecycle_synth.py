"""``simfleet lifecycle synth``: write a synthetic inputs directory (meta.yaml plus MP1, MP3, MP4, MP5)."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import Any

from simfleet.producer.cli.options import bounded_int, seed_int
from simfleet.shared.flags import date_within
from simfleet.shared.lifecycle_contract import AC_TYPES, DATE_RANGE, MAX_DAYS, TABLES


def register(commands: Any) -> None:
    """Add the ``synth`` subcommand."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "synth", help="write a plausible synthetic fleet as an inputs directory"
    )
    parser.add_argument("--aircraft", type=_aircraft, default=279,
                        help="airframes (default 279, the reference fleet)")  # fmt: skip
    parser.add_argument("--days", type=bounded_int(1, MAX_DAYS), default=3650, help="horizon in days (default 3650)")
    parser.add_argument("--seed", type=seed_int, default=1, help="random seed; same seed, same files (default 1)")
    parser.add_argument(
        "--version-date",
        type=date_within(*DATE_RANGE),
        default=dt.date(2025, 1, 1),
        help="first simulated day, YYYY-MM-DD (default 2025-01-01)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the inputs directory to write (replaced whole)")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="table format")
    parser.set_defaults(handler=_synth)


def _aircraft(text: str) -> int:
    """An argparse type: a fleet size, 1 to the synthesizer's ``MAX_AIRCRAFT`` (loaded only to check a value)."""
    from simfleet.worker.lifecycle.synth import MAX_AIRCRAFT

    return bounded_int(1, MAX_AIRCRAFT)(text)


def _synth(args: argparse.Namespace) -> int:
    import numpy as np

    from simfleet.shared.outputs import atomic_output
    from simfleet.worker.lifecycle.inputs import write_inputs
    from simfleet.worker.lifecycle.synth import synthesize

    started = time.perf_counter()
    inputs_files = ["meta.yaml", *(f"{name}.{ext}" for name in TABLES for ext in ("csv", "parquet"))]
    with atomic_output(args.out, flag="--out", kind="folder", owned=inputs_files) as staging:
        inputs = synthesize(args.aircraft, args.days, args.seed, args.version_date, days_key="--days")
        write_inputs(inputs, staging, args.format)
    per_type = ", ".join(f"{int(np.sum(inputs.mp3['ac_type'] == ac_type))} {ac_type}" for ac_type in AC_TYPES)
    print(
        f"wrote {args.out}: {args.aircraft} aircraft ({per_type}), {args.days} days from {args.version_date}, "
        f"{len(inputs.mp5['date']):,} mp5 rows, {args.format}, seed {args.seed}, "
        f"{time.perf_counter() - started:.1f} s"
    )
    return 0
