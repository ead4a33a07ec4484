"""``simfleet des ...``: local DES runs, validation, SLA search (no broker needed)."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from producer.report import sla_table, study_table, validation_table
from producer.sla import Evaluator, SlaResult, search_sla
from shared.settings import PRIORITIES
from worker.des.aggregate import aggregate
from worker.des.engine import Simulation
from worker.des.runner import default_processes, run_replications
from worker.des.scenario import METRICS, Scenario, load_scenario
from worker.des.validation import run_validation


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
    _fleet_options(sla)
    sla.set_defaults(handler=_sla)


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
    summaries = []
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


def _to_clickhouse(scenario: Scenario, study_id: str, summaries: list[dict[str, Any]], result: dict[str, Any]) -> None:
    from shared.clickhouse.client import ClickHouse
    from shared.clickhouse.des import export_des_study
    from shared.clickhouse.migrations import init_db
    from shared.settings import load_settings

    rates = {name: rt.rate_per_min for name, rt in scenario.request_types.items()}
    with ClickHouse(load_settings().clickhouse_dsn) as ch:
        init_db(ch)
        reports = export_des_study(ch, study_id, summaries, result, rates)
        print(
            f"study {study_id} written to {ch.dsn.redacted}: " + ", ".join(f"{r.table} {r.rows} rows" for r in reports),
            file=sys.stderr,
        )


def _print_study(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(study_table(result))


def _run_on_fleet(args: argparse.Namespace, scenario: Scenario, replications: int, seed: int) -> int:
    from producer.fleet.client import Fleet
    from producer.progress import ProgressBar

    fleet = Fleet.from_settings()
    try:
        study = fleet.run_des(scenario, replications=replications, seed=seed, priority=args.priority)
        print(f"study {study.id}: {replications} replications of {scenario.name} on the fleet", file=sys.stderr)
        bar = ProgressBar()

        def show(progress: Any) -> None:
            bar.update(
                progress.percent,
                f"{progress.done}/{progress.total} done, {len(progress.running)} running, "
                f"{progress.events_per_s / 1e3:.0f}k events/s",
            )

        try:
            result = study.wait(timeout=args.timeout, on_progress=show)
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
    processes = args.processes
    fleet = None
    if args.fleet:
        from producer.fleet.client import Fleet

        fleet = Fleet.from_settings()
        evaluate = fleet.evaluator(priority=args.priority, timeout_s=args.timeout)
    else:

        def evaluate(probe: Scenario, replications: int, seed: int) -> list[dict[str, Any]]:
            return run_replications(probe, replications=replications, seed=seed, processes=processes)

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
    return 0 if result.converged else 1


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
