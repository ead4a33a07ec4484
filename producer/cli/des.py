"""``simfleet des ...``: local DES runs, validation, SLA search (no broker needed)."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from simfleet.producer.cli.options import NoConsumerWarning, work_interrupted
from simfleet.producer.report import sla_table, study_table, validation_table
from simfleet.producer.sla import Evaluator, SlaResult, search_sla
from simfleet.shared.messages import to_wire
from simfleet.shared.messages.des import ReplicationSummary, StudyAggregate
from simfleet.shared.settings import PRIORITIES
from simfleet.worker.des.aggregate import aggregate
from simfleet.worker.des.engine import Simulation
from simfleet.worker.des.runner import default_processes, run_replications
from simfleet.worker.des.scenario import METRICS, Scenario, load_scenario
from simfleet.worker.des.validation import run_validation


def register(families: Any) -> None:
    """Add the ``des`` command family: ``run``, ``validate``, ``sla``."""
    parser: argparse.ArgumentParser = families.add_parser("des", help="request-latency discrete-event simulator")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    run = commands.add_parser("run", help="run a scenario's replications locally, one process per core")
    run.add_argument("scenario", type=Path)
    run.add_argument("--replications", type=int, help="replications (default: the scenario's)")
    run.add_argument("--seed", type=int, help="study seed (default: the scenario's)")
    run.add_argument("--processes", type=int, help=f"worker processes (default: one per core, {default_processes()})")
    run.add_argument("--trace", type=Path, help="write replication 0's event trace to this file, one line per event")
    run.add_argument("--json", action="store_true", help="print the aggregate as JSON")
    run.add_argument(
        "--to-clickhouse", action="store_true", help="also write the study to ClickHouse (settings' clickhouse_dsn)"
    )
    _fleet_options(run)
    run.set_defaults(handler=_run)

    validate = commands.add_parser("validate", help="run the validation table of DES_MODEL.md")
    validate.add_argument("--scale", type=float, default=1.0, help="horizon factor of the statistical cases")
    validate.add_argument("--json", action="store_true")
    validate.set_defaults(handler=_validate)

    sla = commands.add_parser("sla", help="largest arrival rate meeting an SLA")
    sla.add_argument("scenario", type=Path)
    sla.add_argument("--request-type", help="the type whose latency is the SLA (default: the scenario's sla block)")
    sla.add_argument("--metric", choices=METRICS)
    sla.add_argument("--threshold", type=float, help="seconds")
    sla.add_argument("--replications", type=int, help="replications per probe")
    sla.add_argument("--rel-tol", type=float, help="relative bracket width to reach (default 0.01)")
    sla.add_argument("--mix", action="store_true", help="scale every type's rate at fixed shares, not one type's")
    sla.add_argument("--seed", type=int)
    sla.add_argument("--processes", type=int)
    sla.add_argument("--json", action="store_true")
    sla.add_argument("--out", type=Path, help="also write probes.json, probes.csv and sla_search.png here")
    _fleet_options(sla)
    sla.set_defaults(handler=_sla)

    sweep = commands.add_parser("sweep", help="the forward question at several arrival rates, with plots")
    sweep.add_argument("scenario", type=Path)
    sweep.add_argument("--rates", type=float, nargs="+", required=True, help="arrival rates, requests/min")
    sweep.add_argument("--request-type", help="scale only this type's rate (default: the whole mix at fixed shares)")
    sweep.add_argument("--metric", choices=METRICS, default="p95", help="latency metric to plot")
    sweep.add_argument("--threshold", type=float, help="SLA line on the plot, seconds")
    sweep.add_argument("--replications", type=int, help="replications per rate (default: the scenario's)")
    sweep.add_argument("--seed", type=int)
    sweep.add_argument("--processes", type=int)
    sweep.add_argument("--out", type=Path, help="output folder (default runs/sweeps/<scenario>)")
    sweep.add_argument("--json", action="store_true")
    _fleet_options(sweep)
    sweep.set_defaults(handler=_sweep)


def _fleet_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", action="store_true", help="run the replications on the fleet (Redis + workers)")
    parser.add_argument("--priority", choices=list(PRIORITIES), default="normal", help="queue priority on the fleet")
    parser.add_argument("--timeout", type=float, help="seconds to wait for the fleet's answer (default: no limit)")


def _run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    replications = args.replications or scenario.replications
    seed = scenario.seed if args.seed is None else args.seed
    if args.fleet:
        return _run_on_fleet(args, scenario, replications, seed)
    study_id = f"local-{uuid.uuid4().hex}"
    summaries: list[ReplicationSummary] = []
    first = 0
    if args.trace:
        with args.trace.open("w", encoding="utf-8") as trace:
            sim = Simulation(scenario, seed, 0, trace=trace)
            sim.run()
            summaries.append(sim.summary())
        first = 1
    if replications > first:
        summaries.extend(
            run_replications(scenario, replications=replications, seed=seed, processes=args.processes, first=first)
        )
    result = aggregate(summaries)
    _print_study(result, args.json)
    if args.to_clickhouse:
        _to_clickhouse(scenario, study_id, summaries, result)
    return 0


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


def _print_study(result: StudyAggregate, as_json: bool) -> None:
    if as_json:
        json.dump(to_wire(result), sys.stdout, indent=2)
        print()
    else:
        print(study_table(result))


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
            bar.update(
                progress.percent,
                f"{progress.done}/{progress.total} done, {len(progress.running)} running, "
                f"{progress.events_per_s / 1e3:.0f}k events/s",
            )

        try:
            result = study.wait(timeout=args.timeout, on_progress=show)
        except KeyboardInterrupt:
            follow, cancel = f"simfleet study status {study.id}", f"simfleet study cancel {study.id}"
            work_interrupted(f"study {study.id}", follow, cancel)
            return 130
        finally:
            bar.close()
        summaries = study.summaries(timeout=60) if args.to_clickhouse else []
    finally:
        fleet.close()
    _print_study(result, args.json)
    if args.to_clickhouse:
        _to_clickhouse(scenario, study.id, summaries, result)
    return 0


def _validate(args: argparse.Namespace) -> int:
    rows = run_validation(args.scale)
    if args.json:
        json.dump([r.to_dict() for r in rows], sys.stdout, indent=2)
        print()
    else:
        print(validation_table(rows))
    return 0 if all(r.passed for r in rows) else 1


def _sla(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    spec = scenario.sla
    request_type = args.request_type or (spec.request_type if spec else None)
    threshold = args.threshold if args.threshold is not None else (spec.threshold_s if spec else None)
    if request_type is None or threshold is None:
        print("simfleet: error: give --request-type and --threshold, or an sla block in the scenario", file=sys.stderr)
        return 2
    fleet, evaluate = _evaluator(args)
    try:
        result = _search(args, scenario, evaluate, request_type, threshold)
    finally:
        if fleet is not None:
            fleet.close()
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        print()
    else:
        print(sla_table(result))
    if args.out:
        for path in write_sla_outputs(result, args.out):
            print(f"wrote {path}", file=sys.stderr)
    return 0 if result.converged else 1


def write_sla_outputs(result: SlaResult, out: Path) -> list[Path]:
    """``probes.json``, ``probes.csv`` and ``sla_search.png`` of an SLA search in ``out``."""
    from simfleet.producer.charts import plot_sla_search
    from simfleet.producer.rate_sweep import sla_rows, write_rows_csv

    out.mkdir(parents=True, exist_ok=True)
    (out / "probes.json").write_text(json.dumps(result.to_dict(), indent=2))
    write_rows_csv(sla_rows(result), out / "probes.csv")
    return [out / "probes.json", out / "probes.csv", plot_sla_search(result, out / "sla_search.png")]


def _evaluator(args: argparse.Namespace) -> tuple[Any, Evaluator]:
    """The fleet (to close afterwards) and an evaluator: on the fleet with --fleet, else the local pool."""
    if args.fleet:
        from simfleet.producer.fleet.client import Fleet

        fleet = Fleet.from_settings()
        return fleet, fleet.evaluator(priority=args.priority, timeout_s=args.timeout)
    processes = args.processes

    def evaluate(probe: Scenario, replications: int, seed: int) -> list[ReplicationSummary]:
        return run_replications(probe, replications=replications, seed=seed, processes=processes)

    return None, evaluate


def _sweep(args: argparse.Namespace) -> int:
    from simfleet.producer.charts import plot_sweep_latency, plot_utilisation_heatmap
    from simfleet.producer.rate_sweep import sweep_rates

    scenario = load_scenario(args.scenario)
    fleet, evaluate = _evaluator(args)
    try:
        sweep = sweep_rates(
            scenario,
            args.rates,
            evaluate,
            replications=args.replications or scenario.replications,
            seed=scenario.seed if args.seed is None else args.seed,
            request_type=args.request_type,
        )
    finally:
        if fleet is not None:
            fleet.close()
    out = args.out or Path("runs") / "sweeps" / scenario.name
    out.mkdir(parents=True, exist_ok=True)
    sweep.write_json(out / "sweep.json")
    sweep.write_csv(out / "sweep.csv")
    figure = "mean_s" if args.metric == "mean" else f"{args.metric}_s"
    if args.json:
        json.dump(sweep.to_rows(), sys.stdout, indent=2)
        print()
    else:
        for row in sweep.to_rows():
            ci = row[f"{figure}_ci95"]
            value = "-" if row[figure] is None else f"{row[figure]:.3f}" + (f" ±{ci:.3f}" if ci else "")
            busiest = max(
                ((k.removeprefix("utilisation_"), v) for k, v in row.items() if k.startswith("utilisation_")),
                key=lambda item: item[1],
            )
            print(
                f"{row['rate_per_min']:>10.3f}/min  {row['request_type']:<20} {args.metric} {value:<18} "
                f"busiest {busiest[0]} {busiest[1]:.2f}"
            )
    plots = [
        plot_sweep_latency(sweep, out / "latency_vs_rate.png", metric=args.metric, threshold_s=args.threshold),
        plot_utilisation_heatmap(sweep, out / "utilisation_heatmap.png"),
    ]
    for path in [out / "sweep.json", out / "sweep.csv", *plots]:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _search(
    args: argparse.Namespace, scenario: Scenario, evaluate: Evaluator, request_type: str, threshold: float
) -> SlaResult:
    spec = scenario.sla
    return search_sla(
        scenario,
        evaluate,
        request_type=request_type,
        metric=args.metric or (spec.metric if spec else "p95"),
        threshold_s=threshold,
        replications=args.replications or (spec.replications if spec else 5),
        seed=scenario.seed if args.seed is None else args.seed,
        rel_tol=args.rel_tol or (spec.rel_tol if spec else 0.01),
        scale="mix" if args.mix else (spec.scale if spec else "type"),
    )
