"""``simfleet des ...``: local DES runs, validation, SLA search (no broker needed)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simfleet.producer.cli.options import (
    NoConsumerWarning,
    bounded_float,
    bounded_int,
    fraction,
    positive_float,
    seed_int,
    work_interrupted,
)
from simfleet.shared.errors import ConfigError, printable
from simfleet.shared.settings import PRIORITIES
from simfleet.worker.des.limits import MAX_QUANTITY, MAX_REPLICATIONS, METRICS, MIN_POSITIVE

if TYPE_CHECKING:
    from simfleet.producer.progress import StepProgress
    from simfleet.producer.rate_sweep import SweepResult
    from simfleet.producer.sla import Evaluator, SlaResult
    from simfleet.shared.messages.des import ReplicationSummary, StudyAggregate
    from simfleet.shared.outputs import Kind
    from simfleet.worker.des.scenario import Scenario

# The engine, the statistics and the plots are imported by the commands that run them (inside the handlers), so that
# ``simfleet --help`` and the fleet's status commands start without scipy, networkx or matplotlib.


SLA_OUTPUTS = ("probes.json", "probes.csv", "sla_search.png")
"""What ``des sla --out`` writes; a folder holding anything else is refused (the output replaces it whole)."""
SWEEP_OUTPUTS = ("sweep.json", "sweep.csv", "latency_vs_rate.png", "utilisation_heatmap.png")
"""What ``des sweep --out`` writes; a folder holding anything else is refused (the output replaces it whole)."""

replications_int = bounded_int(1, MAX_REPLICATIONS)
"""An argparse type: a replication count, 1 to ``MAX_REPLICATIONS``."""
processes_int = bounded_int(1, 1024)
"""An argparse type: a number of worker processes, 1 to 1024."""


rate_float = bounded_float(MIN_POSITIVE, MAX_QUANTITY)
"""An argparse type: an arrival rate in requests/min, within the scenario limits (so never 0, NaN or infinite)."""
scale_float = bounded_float(1e-3, 100.0)
"""An argparse type: the horizon factor of ``des validate``."""


def register(families: Any) -> None:
    """Add the ``des`` command family: ``run``, ``validate``, ``sla``."""
    parser: argparse.ArgumentParser = families.add_parser("des", help="request-latency discrete-event simulator")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    run = commands.add_parser("run", help="run a scenario's replications locally, one process per core")
    run.add_argument("scenario", type=Path, help="the scenario file (YAML, see docs/scenarios.md)")
    run.add_argument("--replications", type=replications_int, help="replications (default: the scenario's)")
    run.add_argument("--seed", type=seed_int, help="study seed (default: the scenario's)")
    cores = max(1, os.cpu_count() or 1)
    run.add_argument("--processes", type=processes_int, help=f"worker processes (default: one per core, {cores})")
    run.add_argument("--trace", type=Path, help="write replication 0's event trace to this file, one line per event")
    run.add_argument("--json", action="store_true", help="print the aggregate as JSON")
    run.add_argument(
        "--to-clickhouse", action="store_true", help="also write the study to ClickHouse (settings' clickhouse_dsn)"
    )
    _fleet_options(run)
    run.set_defaults(handler=_run)

    validate = commands.add_parser("validate", help="run the validation table of DES_MODEL.md")
    validate.add_argument(
        "--scale", type=scale_float, default=1.0, help="horizon factor of the statistical cases (0.001 to 100)"
    )
    validate.add_argument("--json", action="store_true", help="print the table's rows as JSON")
    validate.set_defaults(handler=_validate)

    sla = commands.add_parser("sla", help="largest arrival rate meeting an SLA")
    sla.add_argument("scenario", type=Path, help="the scenario file (YAML, see docs/scenarios.md)")
    sla.add_argument("--request-type", help="the type whose latency is the SLA (default: the scenario's sla block)")
    sla.add_argument("--metric", choices=METRICS, help="the latency the SLA bounds (default: the sla block's or p95)")
    sla.add_argument("--threshold", type=positive_float, help="seconds")
    sla.add_argument("--replications", type=replications_int, help="replications per probe")
    sla.add_argument("--rel-tol", type=fraction, help="relative bracket width to reach (default 0.01)")
    sla.add_argument("--mix", action="store_true", help="scale every type's rate at fixed shares, not one type's")
    sla.add_argument("--seed", type=seed_int, help="study seed of every probe (default: the scenario's)")
    sla.add_argument("--processes", type=processes_int, help="local worker processes (default: one per core)")
    sla.add_argument("--json", action="store_true", help="print the search and its probes as JSON")
    sla.add_argument("--out", type=Path, help="also write probes.json, probes.csv and sla_search.png here")
    _fleet_options(sla)
    sla.set_defaults(handler=_sla)

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
    _fleet_options(sweep)
    sweep.set_defaults(handler=_sweep)


def _fleet_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", action="store_true", help="run the replications on the fleet (Redis + workers)")
    parser.add_argument("--priority", choices=list(PRIORITIES), default="normal", help="queue priority on the fleet")
    parser.add_argument(
        "--timeout", type=positive_float, help="seconds to wait for the fleet's answer (default: no limit)"
    )


def _run(args: argparse.Namespace) -> int:
    from simfleet.worker.des.aggregate import aggregate
    from simfleet.worker.des.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    replications = scenario.replications if args.replications is None else args.replications
    seed = scenario.seed if args.seed is None else args.seed
    if args.fleet:
        return _run_on_fleet(args, scenario, replications, seed)
    study_id = f"local-{uuid.uuid4().hex}"
    with _staged(args.trace, "--trace", "file") as trace_path:
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
    args: argparse.Namespace, scenario: Scenario, replications: int, seed: int, trace_path: Path | None
) -> list[ReplicationSummary]:
    """Every replication; replication 0 in this process when its trace is written to ``trace_path``."""
    from simfleet.worker.des.engine import Simulation
    from simfleet.worker.des.runner import run_replications

    summaries: list[ReplicationSummary] = []
    first = 0
    if trace_path is not None:
        with trace_path.open("w", encoding="utf-8") as trace:
            sim = Simulation(scenario, seed, 0, trace=trace)
            sim.run()
            summaries.append(sim.summary())
        first = 1
    if replications > first:
        from simfleet.producer.progress import LateProgress

        progress = LateProgress()
        try:
            summaries.extend(run_replications(scenario, replications=replications, seed=seed,
                                              processes=args.processes, first=first, on_progress=progress))  # fmt: skip
        finally:
            progress.close()
    return summaries


@contextlib.contextmanager
def _staged(path: Path | None, flag: str, kind: Kind, owned: tuple[str, ...] = ()) -> Iterator[Path | None]:
    """:func:`atomic_output` for an optional output (``None`` yields ``None``)."""
    from simfleet.shared.outputs import atomic_output

    if path is None:
        yield None
        return
    with atomic_output(path, flag=flag, kind=kind, owned=owned) as staging:
        yield staging


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
    from simfleet.producer.progress import ProgressBar

    fleet = Fleet.from_settings()
    try:
        study = fleet.run_des(scenario, replications=replications, seed=seed, priority=args.priority)
        print(f"study {study.id}: {replications} replications of {scenario.name} on the fleet", file=sys.stderr)
        bar = ProgressBar()
        warn = NoConsumerWarning(fleet, fleet.settings.queues.des_run, "simfleet worker --role cpu")

        def show(progress: Any) -> None:
            warn.check(not progress.done and not progress.running)
            if progress.state == "reconnecting":
                bar.update(progress.percent, "the fleet's Redis is unreachable: reconnecting (the study goes on)")
                return
            label = f"{progress.done}/{progress.total} replications done, {len(progress.running)} running"
            if progress.events_per_s > 0:
                label += f", {progress.events_per_s / 1e3:.0f}k events/s"
            bar.update(progress.percent, label)

        try:
            result = study.wait(timeout=args.timeout, on_progress=show)
        except KeyboardInterrupt:
            follow, cancel = f"simfleet study status {study.id}", f"simfleet study cancel {study.id}"
            work_interrupted(f"study {study.id}", follow, cancel)
            return 130
        finally:
            bar.close()
        summaries = study.summaries(timeout=60)
    finally:
        fleet.close()
    _print_study(result, args.json, scenario)
    _warn_study(scenario, summaries, seed)
    if args.to_clickhouse:
        _to_clickhouse(scenario, study.id, summaries, result)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from simfleet.producer.report import json_text, validation_table
    from simfleet.worker.des.validation import run_validation

    rows = run_validation(args.scale)
    if args.json:
        print(json_text([r.to_dict() for r in rows]))
    else:
        print(validation_table(rows))
    return 0 if all(r.passed for r in rows) else 1


def _sla(args: argparse.Namespace) -> int:
    from simfleet.producer.report import json_text, sla_table
    from simfleet.worker.des.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    spec = scenario.sla
    request_type = args.request_type or (spec.request_type if spec else None)
    threshold = args.threshold if args.threshold is not None else (spec.threshold_s if spec else None)
    if request_type is None or threshold is None:
        raise ConfigError(
            "give --request-type and --threshold, or an sla block in the scenario", source=str(args.scenario)
        )
    _check_request_type(scenario, args.request_type)
    from simfleet.producer.progress import StepProgress

    mix = args.mix or (spec is not None and spec.scale == "mix")
    progress = StepProgress(None, after_s=0.0 if args.fleet else 2.0)
    try:
        with _staged(args.out, "--out", "folder", SLA_OUTPUTS) as staging:
            fleet, evaluate = _evaluator(args, progress, _rate_label(None if mix else request_type))
            try:
                result = _search(args, scenario, evaluate, request_type, threshold)
            finally:
                progress.close()
                if fleet is not None:
                    fleet.close()
            if args.json:
                print(json_text(result.to_dict()))
            else:
                print(sla_table(result))
            if not result.converged:
                raise _NotConverged
            written = write_sla_outputs(result, staging) if staging is not None else []
    except _NotConverged:
        if args.out is not None:
            print(f"simfleet: the search did not converge, so {args.out} was not written (the probes are above)",
                  file=sys.stderr)  # fmt: skip
        return 1
    for path in written:
        print(f"wrote {args.out / path.name}", file=sys.stderr)
    return 0


class _NotConverged(Exception):
    """An SLA search that ended without its answer: its ``--out`` is discarded (outputs are whole answers)."""


def _check_request_type(scenario: Scenario, request_type: str | None) -> None:
    """Refuse a ``--request-type`` the scenario does not declare, naming the flag."""
    if request_type is not None and request_type not in scenario.request_types:
        raise ConfigError(
            f"unknown request type {printable(request_type)!r} in {scenario.source} "
            f"(declared: {', '.join(scenario.request_types)})",
            key="--request-type",
        )


def write_sla_outputs(result: SlaResult, out: Path) -> list[Path]:
    """``probes.json``, ``probes.csv`` and ``sla_search.png`` of an SLA search in ``out``."""
    from simfleet.producer.charts import plot_sla_search
    from simfleet.producer.rate_sweep import sla_rows, write_rows_csv
    from simfleet.producer.report import json_text

    out.mkdir(parents=True, exist_ok=True)
    (out / "probes.json").write_text(json_text(result.to_dict()) + "\n")
    write_rows_csv(sla_rows(result), out / "probes.csv")
    return [out / "probes.json", out / "probes.csv", plot_sla_search(result, out / "sla_search.png")]


def _evaluator(args: argparse.Namespace, progress: StepProgress, rate_of: Any) -> tuple[Any, Evaluator]:
    """The fleet (to close afterwards) and an evaluator: on the fleet with --fleet, else the local pool.

    Each evaluation is a step of ``progress``, named by ``rate_of(probe)``, with its replications' progress.
    """
    from simfleet.worker.des.runner import run_replications

    if args.fleet:
        from simfleet.producer.fleet.client import Fleet

        fleet = Fleet.from_settings()

        def show(study: Any) -> None:
            progress.update(study.percent / 100.0, f"{study.done}/{study.total} replications done")

        on_fleet = fleet.evaluator(priority=args.priority, timeout_s=args.timeout, on_progress=show)

        def evaluate_on_fleet(
            probe: Scenario, replications: int, seed: int, first: int = 0
        ) -> list[ReplicationSummary]:
            progress.begin(rate_of(probe))
            return on_fleet(probe, replications, seed, first)

        return fleet, evaluate_on_fleet
    processes = args.processes

    def evaluate(probe: Scenario, replications: int, seed: int, first: int = 0) -> list[ReplicationSummary]:
        progress.begin(rate_of(probe))
        return run_replications(probe, replications=first + replications, seed=seed, processes=processes,
                                first=first, on_progress=progress.update)  # fmt: skip

    return None, evaluate


def _rate_label(request_type: str | None) -> Any:
    """What names a probe on the progress line: the rate of ``request_type``, or of the whole mix (None)."""

    def label(probe: Scenario) -> str:
        if request_type is None:
            return f"mix at {sum(t.rate_per_min for t in probe.request_types.values()):.4g} requests/min"
        return f"{request_type} at {probe.request_types[request_type].rate_per_min:.4g} requests/min"

    return label


def _sweep(args: argparse.Namespace) -> int:
    from simfleet.producer.charts import plot_sweep_latency, plot_utilisation_heatmap
    from simfleet.producer.progress import StepProgress
    from simfleet.producer.rate_sweep import sweep_rates
    from simfleet.shared.outputs import atomic_output
    from simfleet.worker.des.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    _check_request_type(scenario, args.request_type)
    out = args.out or Path("runs") / "sweeps" / scenario.name
    progress = StepProgress(len(args.rates), after_s=0.0 if args.fleet else 2.0)
    with atomic_output(out, flag="--out", owned=SWEEP_OUTPUTS) as staging:
        fleet, evaluate = _evaluator(args, progress, _rate_label(args.request_type))
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


def _search(
    args: argparse.Namespace, scenario: Scenario, evaluate: Evaluator, request_type: str, threshold: float
) -> SlaResult:
    from simfleet.producer.sla import search_sla

    spec = scenario.sla
    return search_sla(
        scenario,
        evaluate,
        request_type=request_type,
        metric=args.metric or (spec.metric if spec else "p95"),
        threshold_s=threshold,
        replications=args.replications if args.replications is not None else (spec.replications if spec else 5),
        seed=scenario.seed if args.seed is None else args.seed,
        rel_tol=args.rel_tol if args.rel_tol is not None else (spec.rel_tol if spec else 0.01),
        scale="mix" if args.mix else (spec.scale if spec else "type"),
    )
