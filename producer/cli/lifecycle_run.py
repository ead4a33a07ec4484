"""``simfleet lifecycle run``: a local run of the fleet lifecycle model."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from worker.lifecycle.schema import STATUSES


def register(commands: Any) -> None:
    """Add the ``run`` subcommand."""
    parser: argparse.ArgumentParser = commands.add_parser("run", help="run the lifecycle model locally")
    parser.add_argument("--inputs", type=Path, required=True, help="inputs directory (mp1, mp3, mp4, mp5, meta.yaml)")
    parser.add_argument("--days", type=int, help="horizon in days (default: meta.yaml's)")
    parser.add_argument("--out", type=Path, help="write MP2 here as Parquet (mp2/, mp2_daily/)")
    parser.add_argument("--log", choices=("full", "aggregates"), default="full", help="per-airframe log or not")
    parser.add_argument("--chunk-days", type=int, default=365, help="days per MP2 chunk handed to the sink")
    parser.add_argument("--backend", default="numpy", help="numpy (default), cupy, flamegpu")
    parser.add_argument("--debug", action="store_true", help="check every invariant after each day")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from worker.lifecycle.inputs import load_inputs
    from worker.lifecycle.run import ParquetSink, Sink, run_local

    started = time.perf_counter()
    inputs = load_inputs(args.inputs, days=args.days)
    load_s = time.perf_counter() - started
    sink: Sink = ParquetSink(args.out) if args.out else Sink()
    report = run_local(
        inputs,
        log=args.log,
        sink=sink,
        chunk_days=args.chunk_days,
        backend=args.backend,
        debug=args.debug,
        load_s=load_s,
    )
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        print()
        return 0
    print(f"{report.airframes} airframes x {report.days} days, log {report.log}")
    print("transitions: " + ", ".join(f"{k} {v}" for k, v in report.transitions.items()))
    print("status at the end: " + ", ".join(f"{k} {STATUSES[k]} {v}" for k, v in report.status_counts_end.items()))
    print("days with a shortfall: " + ", ".join(f"{k} {v}" for k, v in report.shortfall_days.items()))
    print("time: " + ", ".join(f"{k} {v:.3f} s" for k, v in report.timings_s.items()))
    if args.out:
        print(f"MP2 written to {args.out} ({report.airframe_rows} airframe rows)")
    return 0
