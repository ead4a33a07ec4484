"""``simfleet lifecycle run``: a local run of the fleet lifecycle model."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simfleet.producer.cli.options import bounded_int, positive_int
from simfleet.shared.lifecycle_contract import AC_TYPES, BACKENDS, LOG_MODES, MAX_DAYS, MP2_FOLDERS

if TYPE_CHECKING:
    from simfleet.shared.messages.lifecycle import JobSummary
    from simfleet.shared.messages.plan import Ensemble
    from simfleet.worker.lifecycle.run import RunReport


def register(commands: Any) -> None:
    """Add the ``run`` subcommand."""
    parser: argparse.ArgumentParser = commands.add_parser("run", help="run the lifecycle model locally")
    parser.add_argument("--inputs", type=Path, required=True, help="inputs directory (mp1, mp3, mp4, mp5, meta.yaml)")
    parser.add_argument("--days", type=bounded_int(1, MAX_DAYS), help="horizon in days (default: meta.yaml's)")
    parser.add_argument("--out", type=Path, help="write MP2 here as Parquet (mp2/, mp2_daily/)")
    parser.add_argument("--log", choices=LOG_MODES, default="full", help="per-airframe log or not")
    parser.add_argument("--chunk-days", type=positive_int, default=365, help="days per MP2 chunk handed to the sink")
    parser.add_argument("--backend", choices=BACKENDS, default="numpy", help="the lifecycle backend (default numpy)")
    parser.add_argument("--debug", action="store_true", help="check every invariant after each day")
    parser.add_argument("--json", action="store_true", help="print the run's report as JSON")
    parser.add_argument("--to-clickhouse", action="store_true", help="also write MP2 to ClickHouse (clickhouse_dsn)")
    parser.add_argument("--job-id", help="MP2 partition in ClickHouse (default: local-<version_date>-<random>)")
    parser.add_argument("--variants", type=Path, metavar="FILE",
                        help="run an ensemble: plan variants, replications, maintenance options (docs/planning.md)")
    parser.add_argument("--bands", type=Path, metavar="PATH.csv",
                        help="write per variant, type and day the target and the 5-95%% band of ops_current and "
                        "shortfall over replications (CSV)")  # fmt: skip
    parser.add_argument("--plot", type=Path, metavar="PATH.png",
                        help="plot ops_current against the target with the 5-95%% band, a panel per type (PNG)")
    parser.set_defaults(handler=_run)


def _export(args: argparse.Namespace, inputs: Any, report: Any, sink: Any, ensemble: Any) -> None:
    import uuid

    from simfleet.shared.clickhouse.export import describe
    from simfleet.shared.clickhouse.migrations import open_db
    from simfleet.shared.clickhouse.mp2 import export_ensemble_mp2

    job_id = args.job_id or f"local-{inputs.version_date}-{uuid.uuid4().hex[:8]}"
    with open_db() as ch:
        exported = export_ensemble_mp2(
            ch,
            job_id,
            sink.sinks[1].table("mp2"),
            sink.sinks[1].table("mp2_daily"),
            ensemble,
            airframes=report.airframes if report.log == "full" else None,
            days=report.days,
        )
    print(f"job {job_id} written to {ch.dsn.redacted}: {describe(exported)}", file=sys.stderr)


def print_summary(summary: RunReport | JobSummary) -> None:
    """The lines a person reads after a run (:func:`simfleet.producer.report.lifecycle_summary`)."""
    from simfleet.producer.report import lifecycle_summary

    print(lifecycle_summary(summary))


def _run(args: argparse.Namespace) -> int:
    from simfleet.shared.outputs import atomic_output

    ensemble = None
    if args.variants is not None:  # a bad file fails before the inputs are read
        from simfleet.worker.lifecycle.variants import load_variants

        ensemble = load_variants(args.variants)
    # The places are checked and staged before the inputs are even read; each appears whole at the end or not at all.
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(atomic_output(args.out, flag="--out", kind="folder", owned=MP2_FOLDERS)) \
            if args.out else None  # fmt: skip
        files = {flag: stack.enter_context(atomic_output(path, flag=flag, kind="file"))
                 for flag, path in (("--bands", args.bands), ("--plot", args.plot)) if path is not None}  # fmt: skip
        return _run_into(args, out, ensemble, files)


def _run_into(args: argparse.Namespace, out: Path | None, ensemble: Ensemble | None, files: dict[str, Path]) -> int:
    from simfleet.worker.lifecycle.inputs import load_inputs
    from simfleet.worker.lifecycle.planning import DailySink
    from simfleet.worker.lifecycle.run import run_local
    from simfleet.worker.lifecycle.sinks import MemorySink, NullSink, ParquetSink, Sink, TeeSink

    started = time.perf_counter()
    inputs = load_inputs(args.inputs, days=args.days, days_key="--days")
    if ensemble is not None:
        from simfleet.worker.lifecycle.variants import check_ensemble

        check_ensemble(ensemble, inputs.version_date, inputs.days, source=str(args.variants))
    load_s = time.perf_counter() - started
    sinks: list[Sink] = [ParquetSink(out) if out else NullSink()]
    if args.to_clickhouse:
        sinks.append(MemorySink())  # sinks[1]: what _export reads
    daily = DailySink()
    if files:
        sinks.append(daily)
    sink = TeeSink(*sinks) if len(sinks) > 1 else sinks[0]
    from simfleet.producer.progress import LateProgress

    progress = LateProgress()
    try:
        report = run_local(
            inputs,
            log=args.log,
            sink=sink,
            chunk_days=args.chunk_days,
            backend=args.backend,
            debug=args.debug,
            load_s=load_s,
            on_progress=progress,
            ensemble=ensemble,
        )
    finally:
        progress.close()
    if args.to_clickhouse:
        _export(args, inputs, report, sink, ensemble)
    if files:
        _write_bands(daily.table("mp2_daily"), ensemble, files)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        print()
        return 0
    print_summary(report)
    if args.out:
        print(f"MP2 written to {args.out} ({report.airframe_rows} airframe rows)")
    for flag, path in (("--bands", args.bands), ("--plot", args.plot)):
        if flag in files:
            print(f"{'bands' if flag == '--bands' else 'plot'} written to {path}")
    return 0


def _write_bands(daily: dict[str, Any], ensemble: Ensemble | None, files: dict[str, Path]) -> None:
    """The bands table (``--bands``, CSV) and its plot (``--plot``, PNG) into their staging paths."""
    from simfleet.worker.lifecycle.planning import bands

    table = bands(daily)
    names = [variant.name for variant in ensemble.variants] if ensemble is not None else ["base"]
    if "--bands" in files:
        write_bands_csv(table, names, files["--bands"])
    if "--plot" in files:
        from simfleet.producer.charts import plot_lifecycle_bands

        plot_lifecycle_bands(table, names, files["--plot"])


def write_bands_csv(table: dict[str, Any], names: list[str], path: Path) -> Path:
    """The bands as CSV: a header line, then one line per variant, type and day (the variant and type named)."""
    import csv

    columns = [name for name in table if name not in ("variant_id", "ac_type")]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant_id", "variant", "ac_type", *columns])
        for row in range(len(table["day"])):
            variant, ac_type = int(table["variant_id"][row]), int(table["ac_type"][row])
            writer.writerow([variant, names[variant], AC_TYPES[ac_type],
                             *(_cell(table[name][row]) for name in columns)])  # fmt: skip
    return path


def _cell(value: Any) -> str:
    """A CSV cell: whole numbers as such, fractions to 4 decimals, dates ISO."""
    import numpy as np

    if isinstance(value, float | np.floating):
        return f"{float(value):.4f}".rstrip("0").rstrip(".")
    return str(value)
