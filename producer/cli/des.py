"""``simfleet des ...``: local and fleet DES runs, validation and sweeps; the searches are in ``des_search``."""

from __future__ import annotations

import argparse
import math
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simfleet.producer.cli import des_search
from simfleet.producer.cli.des_common import (
    check_request_type,
    engine_option,
    evaluator,
    fleet_batch,
    fleet_options,
    processes_int,
    rate_label,
    replications_int,
    staged,
)
from simfleet.producer.cli.options import (
    NoConsumerWarning,
    bounded_float,
    positive_float,
    seed_int,
    work_interrupted,
)
from simfleet.producer.precision import DEFAULT_MAX_REPLICATIONS as PRECISION_MAX_REPLICATIONS
from simfleet.shared.errors import ConfigError, printable
from simfleet.worker.des.limits import MAX_QUANTITY, METRICS, MIN_POSITIVE

if TYPE_CHECKING:
    from simfleet.producer.fleet.client import Fleet
    from simfleet.producer.fleet.study import Study
    from simfleet.producer.precision import FigurePrecision, PreciseResult
    from simfleet.producer.rate_sweep import SweepResult
    from simfleet.producer.sla import Evaluator
    from simfleet.shared.messages.des import ReplicationSummary, StudyAggregate
    from simfleet.worker.des.scenario import Scenario

# The engine, the statistics and the plots are imported by the commands that run them (inside the handlers), so that
# ``simfleet --help`` and the fleet's status commands start without scipy, networkx or matplotlib.


SWEEP_OUTPUTS = ("sweep.json", "sweep.csv", "latency_vs_rate.png", "utilisation_heatmap.png")
"""What ``des sweep --out`` writes; a folder holding anything else is refused (the output replaces it whole)."""


rate_float = bounded_float(MIN_POSITIVE, MAX_QUANTITY)
"""An argparse type: an arrival rate in requests/min, within the scenario limits (so never 0, NaN or infinite)."""
scale_float = bounded_float(1e-3, 100.0)
"""An argparse type: the horizon factor of ``des validate``."""


def precision_fraction(text: str) -> float:
    """An argparse type: a relative precision as a percentage (``2%``) or a fraction (``0.02``), above 0, below 100%."""
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw[:-1] if percent else raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage like 2% or a fraction like 0.02, "
                                         f"got {printable(text)!r}") from None  # fmt: skip
    value = value / 100 if percent else value
    if not (math.isfinite(value) and 0 < value < 1):
        raise argparse.ArgumentTypeError(f"must be above 0% and below 100% (2% or 0.02), got {printable(text)}")
    return value


def register(families: Any) -> None:
    """Add the ``des`` command family: ``run``, ``validate``, ``sla``, ``sweep``, ``capacity``, ``bottleneck``."""
    parser: argparse.ArgumentParser = families.add_parser("des", help="request-latency discrete-event simulator")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    run = commands.add_parser("run", help="run a scenario's replications locally, one process per core")
    run.add_argument("scenario", type=Path, help="the scenario file (YAML, see docs/scenarios.md)")
    run.add_argument(
        "--replications",
        type=replications_int,
        help="replications (default: the scenario's); with --precision, those of the first round",
    )
    run.add_argument(
        "--precision",
        type=precision_fraction,
        metavar="P",
        help="add replications in rounds until every latency and throughput figure's 95%% half-width "
        "is within P of its value (2%% or 0.02), or --max-replications",
    )
    run.add_argument("--max-replications", type=replications_int, metavar="N",
                     help=f"the cap of --precision (default {PRECISION_MAX_REPLICATIONS})")  # fmt: skip
    run.add_argument("--seed", type=seed_int, help="study seed (default: the scenario's)")
    cores = max(1, os.cpu_count() or 1)
    run.add_argument("--processes", type=processes_int, help=f"worker processes (default: one per core, {cores})")
    run.add_argument("--trace", type=Path, help="write replication 0's event trace to this file, one line per event "
                     "(replication 0 then runs on the Python engine, the one that writes traces: same figures)")
    run.add_argument("--json", action="store_true", help="print the aggregate as JSON")
    run.add_argument(
        "--to-clickhouse", action="store_true", help="also write the study to ClickHouse (settings' clickhouse_dsn)"
    )
    fleet_options(run)
    run.set_defaults(handler=_run)

    validate = commands.add_parser("validate", help="run the validation table of DES_MODEL.md")
    validate.add_argument(
        "--scale", type=scale_float, default=1.0, help="horizon factor of the statistical cases (0.001 to 100)"
    )
    validate.add_argument("--json", action="store_true", help="print the table's rows as JSON")
    engine_option(validate)
    validate.set_defaults(handler=_validate)

    sweep = commands.add_parser("sweep", help="the forward question at several arrival rates, with plots")
    sweep.add_argument("scenario", type=Path, help="the scenario file (YAML, see docs/scenarios.md)")
    sweep.add_argument("--rates", type=rate_float, nargs="+", required=True, help="arrival rates, requests/min")
    sweep.add_argument("--request-type", help="scale only this type's rate (default: the whole mix at fixed shares)")
    sweep.add_argument("--metric", choices=METRICS, default="p95", help="latency metric to plot")
    sweep.add_argument("--threshold", type=positive_float, help="SLA line on the plot, seconds")
    sweep.add_argument("--replications", type=replications_int, help="replications per rate (default: the scenario's)")
    sweep.add_argument("--seed", type=seed_int, help="study seed of every rate (default: the scenario's)")
    sweep.add_argument("--processes", type=processes_int, help="local worker processes (default: one per core)")
    sweep.add_argument("--out", type=Path, help="output folder (default runs/sweeps/<scenario>)")
    sweep.add_argument("--json", action="store_true", help="print the rows as JSON")
    fleet_options(sweep)
    sweep.set_defaults(handler=_sweep)
    des_search.register(commands)


def _run(args: argparse.Namespace) -> int:
    from simfleet.worker.des.aggregate import aggregate
    from simfleet.worker.des.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    seed = scenario.seed if args.seed is None else args.seed
    if args.trace is not None and args.fleet:
        raise ConfigError("the trace is written by a local run of replication 0: run without --fleet to write it",
                          key="--trace")  # fmt: skip
    fleet_batch(args)
    if args.precision is not None:
        return _run_to_precision(args, scenario, seed)
    if args.max_replications is not None:
        raise ConfigError("applies only with --precision (it caps the replications added to reach it)",
                          key="--max-replications")  # fmt: skip
    replications = scenario.replications if args.replications is None else args.replications
    if args.fleet:
        return _run_on_fleet(args, scenario, replications, seed)
    study_id = f"local-{uuid.uuid4().hex}"
    with staged(args.trace, "--trace", "file") as trace_path:
        summaries = _run_locally(args, scenario, replications, seed, trace_path)
    result = aggregate(summaries)
    _print_study(result, args.json, scenario)
    _warn_study(scenario, summaries, seed)
    if args.to_clickhouse:
        _to_clickhouse(scenario, study_id, summaries, result)
    return 0


def _warn(lines: list[str]) -> None:
    """Each warning as one ``warning: ...`` line on stderr (the figures stay on stdout)."""
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


def _warn_study(scenario: Scenario, summaries: list[ReplicationSummary], seed: int) -> None:
    """The honest-report warnings of a forward run: near saturation, quantiles from too few requests."""
    from simfleet.producer.diagnostics import no_load, sample_warnings, saturation, wide_tails

    alone = no_load(scenario, seed) if wide_tails(summaries) else None  # the pilot only where a tail rule could fire
    _warn([*saturation(summaries, alone), *sample_warnings(["p50", "p95", "p99"], summaries)])


def _run_locally(
    args: argparse.Namespace,
    scenario: Scenario,
    replications: int,
    seed: int,
    trace_path: Path | None,
    first: int = 0,
) -> list[ReplicationSummary]:
    """Replications ``first .. first+replications-1``; replication 0 in this process when its trace is written."""
    from simfleet.worker.des.engine import Simulation
    from simfleet.worker.des.runner import run_replications

    summaries: list[ReplicationSummary] = []
    end = first + replications
    if trace_path is not None and first == 0:
        with trace_path.open("w", encoding="utf-8") as trace:
            sim = Simulation(scenario, seed, 0, trace=trace)
            sim.run()
            summaries.append(sim.summary())
        first = 1
    if end > first:
        from simfleet.producer.progress import LateProgress

        progress = LateProgress()
        try:
            summaries.extend(run_replications(scenario, replications=end, seed=seed, processes=args.processes,
                                              first=first, on_progress=progress, engine=args.engine))  # fmt: skip
        finally:
            progress.close()
    return summaries


def _run_to_precision(args: argparse.Namespace, scenario: Scenario, seed: int) -> int:
    """``des run --precision``: rounds of replications until every figure is within it, locally or on the fleet.

    The trace (``--trace``, local runs) is replication 0's, run in the first round. Exit 1 when the precision was not
    reached (at the cap, or unstable), after the figures.
    """
    from simfleet.producer.precision import run_to_precision

    initial = max(2, scenario.replications) if args.replications is None else args.replications
    if initial < 2:
        raise ConfigError(f"must be at least 2 with --precision (an interval needs two replications), got {initial}",
                          key="--replications")  # fmt: skip
    cap = args.max_replications if args.max_replications is not None else max(initial, PRECISION_MAX_REPLICATIONS)
    if cap < initial:
        raise ConfigError(f"must be at least the first round's {initial} replications (--replications), got {cap}",
                          key="--max-replications")  # fmt: skip

    def on_round(number: int, first: int, count: int, widest: FigurePrecision | None) -> None:
        if number > 1 and widest is not None and widest.relative is not None:
            print(f"round {number}: {count} more replications ({first} to {first + count - 1}): {widest.label} is "
                  f"±{100 * widest.relative:.2g}%, the target {100 * args.precision:g}%", file=sys.stderr)  # fmt: skip

    options: dict[str, Any] = {"precision": args.precision, "seed": seed, "initial": initial, "cap": cap,
                               "on_round": on_round}  # fmt: skip
    if args.fleet:
        from simfleet.producer.fleet.client import Fleet

        fleet = Fleet.from_settings()
        studies: list[str] = []
        try:
            result = run_to_precision(scenario, _fleet_rounds(args, fleet, studies), **options)
        except _StoppedWaiting:
            return 130
        finally:
            fleet.close()
        study_id = studies[0]
    else:
        study_id = f"local-{uuid.uuid4().hex}"
        with staged(args.trace, "--trace", "file") as trace_path:

            def evaluate(probe: Scenario, replications: int, seed: int, first: int = 0) -> list[ReplicationSummary]:
                return _run_locally(args, probe, replications, seed, trace_path, first)

            result = run_to_precision(scenario, evaluate, **options)
    _print_precise(result, args.json, scenario)
    _warn_study(scenario, result.summaries, seed)
    if args.to_clickhouse:
        _to_clickhouse(scenario, study_id, result.summaries, result.aggregate)
    return 0 if result.reached else 1


def _print_precise(result: PreciseResult, as_json: bool, scenario: Scenario | None = None) -> None:
    """The aggregate and the precision line (stdout); with ``--json``, ``{"aggregate": ..., "precision": ...}``."""
    from simfleet.producer.report import json_text, study_table
    from simfleet.shared.messages import to_wire

    if as_json:
        print(json_text({"aggregate": to_wire(result.aggregate), "precision": result.to_dict()}))
        return
    print(study_table(result.aggregate, scenario))
    print()
    for note in result.notes():
        print(note)
    print(result.message())


class _StoppedWaiting(Exception):
    """Ctrl-C while a round's study ran on the fleet: the study goes on, the command says how to follow it."""


def _fleet_rounds(args: argparse.Namespace, fleet: Fleet, studies: list[str]) -> Evaluator:
    """An evaluator publishing each round as one study (``first`` at the count so far); its ids go into ``studies``."""

    def evaluate(probe: Scenario, replications: int, seed: int, first: int = 0) -> list[ReplicationSummary]:
        study = fleet.run_des(probe, replications=replications, seed=seed, priority=args.priority, first=first,
                              batch=args.batch, engine=args.engine)  # fmt: skip
        studies.append(study.id)
        print(f"study {study.id}: round {len(studies)}, replications {first} to {first + replications - 1} of "
              f"{probe.name} on the fleet", file=sys.stderr)  # fmt: skip
        if _follow(args, fleet, study, f"round {len(studies)}: ") is None:
            raise _StoppedWaiting
        return study.summaries(timeout=60)

    return evaluate


def _to_clickhouse(
    scenario: Scenario, study_id: str, summaries: list[ReplicationSummary], result: StudyAggregate
) -> None:
    from simfleet.shared.clickhouse.des import export_des_study
    from simfleet.shared.clickhouse.export import describe
    from simfleet.shared.clickhouse.migrations import open_db

    rates = {name: rt.rate_per_min for name, rt in scenario.request_types.items()}
    with open_db() as ch:
        reports = export_des_study(ch, study_id, summaries, result, rates)
    print(f"study {study_id} written to {ch.dsn.redacted}: {describe(reports)}", file=sys.stderr)


def _print_study(result: StudyAggregate, as_json: bool, scenario: Scenario | None = None) -> None:
    from simfleet.producer.report import json_text, study_table
    from simfleet.shared.messages import to_wire

    if as_json:
        print(json_text(to_wire(result)))
    else:
        print(study_table(result, scenario))


def _run_on_fleet(args: argparse.Namespace, scenario: Scenario, replications: int, seed: int) -> int:
    from simfleet.producer.fleet.client import Fleet

    fleet = Fleet.from_settings()
    try:
        study = fleet.run_des(scenario, replications=replications, seed=seed, priority=args.priority,
                              batch=args.batch, engine=args.engine)  # fmt: skip
        print(f"study {study.id}: {replications} replications of {scenario.name} on the fleet", file=sys.stderr)
        result = _follow(args, fleet, study)
        if result is None:
            return 130
        summaries = study.summaries(timeout=60)
    finally:
        fleet.close()
    _print_study(result, args.json, scenario)
    _warn_study(scenario, summaries, seed)
    if args.to_clickhouse:
        _to_clickhouse(scenario, study.id, summaries, result)
    return 0


def _follow(args: argparse.Namespace, fleet: Fleet, study: Study, label: str = "") -> StudyAggregate | None:
    """Wait for ``study`` with a progress bar (``label`` first on it); ``None`` after a Ctrl-C (the study goes on)."""
    from simfleet.producer.progress import ProgressBar

    bar = ProgressBar()
    warn = NoConsumerWarning(fleet, fleet.settings.queues.des_run, "simfleet worker --role cpu")

    def show(progress: Any) -> None:
        warn.check(not progress.done and not progress.running)
        if progress.state == "reconnecting":
            bar.update(progress.percent, "the fleet's Redis is unreachable: reconnecting (the study goes on)")
            return
        text = f"{label}{progress.done}/{progress.total} replications done, {len(progress.running)} running"
        if progress.events_per_s > 0:
            text += f", {progress.events_per_s / 1e3:.0f}k events/s"
        bar.update(progress.percent, text)

    try:
        return study.wait(timeout=args.timeout, on_progress=show)
    except KeyboardInterrupt:
        follow, cancel = f"simfleet study status {study.id}", f"simfleet study cancel {study.id}"
        work_interrupted(f"study {study.id}", follow, cancel)
        return None
    finally:
        bar.close()


def _validate(args: argparse.Namespace) -> int:
    from simfleet.producer.report import json_text, validation_table
    from simfleet.worker.des.validation import run_validation

    rows = run_validation(args.scale, engine=args.engine)
    if args.json:
        print(json_text([r.to_dict() for r in rows]))
    else:
        print(validation_table(rows))
    return 0 if all(r.passed for r in rows) else 1


def _sweep(args: argparse.Namespace) -> int:
    from simfleet.producer.charts import plot_sweep_latency, plot_utilisation_heatmap
    from simfleet.producer.progress import StepProgress
    from simfleet.producer.rate_sweep import sweep_rates
    from simfleet.shared.outputs import atomic_output
    from simfleet.worker.des.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    check_request_type(scenario, args.request_type)
    out = args.out or Path("runs") / "sweeps" / scenario.name
    progress = StepProgress(len(args.rates), after_s=0.0 if args.fleet else 2.0)
    with atomic_output(out, flag="--out", owned=SWEEP_OUTPUTS) as staging:
        fleet, evaluate = evaluator(args, progress, rate_label(args.request_type))
        try:
            sweep = sweep_rates(
                scenario,
                args.rates,
                evaluate,
                replications=scenario.replications if args.replications is None else args.replications,
                seed=scenario.seed if args.seed is None else args.seed,
                request_type=args.request_type,
                metric=args.metric,
            )
        finally:
            progress.close()
            if fleet is not None:
                fleet.close()
        sweep.write_json(staging / "sweep.json")
        sweep.write_csv(staging / "sweep.csv")
        plots = [
            plot_sweep_latency(sweep, staging / "latency_vs_rate.png", metric=args.metric, threshold_s=args.threshold),
            plot_utilisation_heatmap(sweep, staging / "utilisation_heatmap.png"),
        ]
        _print_sweep(sweep, args)
        _warn_sweep(scenario, sweep, args)
    for path in [staging / "sweep.json", staging / "sweep.csv", *plots]:
        print(f"wrote {out / path.name}", file=sys.stderr)
    return 0


def _warn_sweep(scenario: Scenario, sweep: SweepResult, args: argparse.Namespace) -> None:
    """A threshold no rate can meet (with ``--threshold``), then each rate's warnings, prefixed by the rate."""
    from simfleet.producer.confidence import SlaTerm
    from simfleet.producer.diagnostics import no_load, threshold_warnings

    if args.threshold is not None:
        types = [args.request_type] if args.request_type else list(scenario.request_types)
        terms = [SlaTerm(name, args.metric, args.threshold) for name in types]
        seed = scenario.seed if args.seed is None else args.seed
        _warn(threshold_warnings(scenario, terms, no_load(scenario, seed)))
    for rate, lines in zip(sweep.rates_per_min, sweep.warnings, strict=True):
        _warn([f"at {rate:g} requests/min: {line}" for line in lines])


def _print_sweep(sweep: SweepResult, args: argparse.Namespace) -> None:
    """The sweep's table (:func:`~simfleet.producer.report.sweep_table`), or its rows as strict JSON with ``--json``."""
    from simfleet.producer.report import json_text, sweep_table

    if args.json:
        print(json_text(sweep.to_rows()))
        return
    print(sweep_table(sweep, args.metric))
