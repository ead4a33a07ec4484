"""``simfleet des ...``: local DES runs, validation, SLA search (no broker needed)."""

from __future__ import annotations

import argparse
import contextlib
import math
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
from simfleet.producer.precision import DEFAULT_MAX_REPLICATIONS as PRECISION_MAX_REPLICATIONS
from simfleet.shared.errors import ConfigError, printable
from simfleet.shared.settings import PRIORITIES
from simfleet.worker.des.limits import MAX_QUANTITY, MAX_REPLICATIONS, METRICS, MIN_POSITIVE

if TYPE_CHECKING:
    from simfleet.producer.bottleneck import BottleneckResult
    from simfleet.producer.capacity import CapacityResult
    from simfleet.producer.fleet.client import Fleet
    from simfleet.producer.fleet.study import Study
    from simfleet.producer.precision import FigurePrecision, PreciseResult
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
CAPACITY_OUTPUTS = ("capacity.json", "probes.csv", "capacity_search.png")
"""What ``des capacity --out`` writes; a folder holding anything else is refused (the output replaces it whole)."""
SWEEP_OUTPUTS = ("sweep.json", "sweep.csv", "latency_vs_rate.png", "utilisation_heatmap.png")
"""What ``des sweep --out`` writes; a folder holding anything else is refused (the output replaces it whole)."""
BOTTLENECK_OUTPUTS = ("bottleneck.json", "bottleneck.csv", "sensitivity.png")
"""What ``des bottleneck --out`` writes; a folder holding anything else is refused (the output replaces it whole)."""

replications_int = bounded_int(1, MAX_REPLICATIONS)
"""An argparse type: a replication count, 1 to ``MAX_REPLICATIONS``."""
probe_replications_int = bounded_int(2, MAX_REPLICATIONS)
"""An argparse type: replications per probe of a search, 2 (an interval needs two) to ``MAX_REPLICATIONS``."""
processes_int = bounded_int(1, 1024)
"""An argparse type: a number of worker processes, 1 to 1024."""


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

    sla = commands.add_parser("sla", help="largest arrival rate meeting every SLA term, with 95%% confidence")
    sla.add_argument("scenario", type=Path, help="the scenario file (YAML, see docs/scenarios.md)")
    sla.add_argument("--sla", action="append", metavar="TYPE:METRIC<SECONDS", dest="slas",
                     help="an SLA term, e.g. 'deep-research:p95<30' (repeat for several request types: the whole mix "
                     "is then scaled); default: the scenario's sla block")  # fmt: skip
    sla.add_argument("--request-type", help="the type whose latency is the SLA (one term; see --sla)")
    sla.add_argument("--metric", choices=METRICS, help="the latency the SLA bounds (default: the sla block's or p95)")
    sla.add_argument("--threshold", type=positive_float, help="seconds")
    sla.add_argument("--replications", type=probe_replications_int, help="replications per probe to start with "
                     "(at least 2; default: the sla block's or 5)")  # fmt: skip
    sla.add_argument("--max-replications", type=replications_int, help="the most replications a probe gets while "
                     "its interval straddles the threshold (default: 4 x --replications, at least 20)")  # fmt: skip
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
    _register_capacity(commands)

    bottleneck = commands.add_parser("bottleneck", help="which resource to add first: each one's sensitivity")
    bottleneck.add_argument("scenario", type=Path, help="the scenario file (YAML, see docs/scenarios.md)")
    bottleneck.add_argument("--sla", action="append", metavar="TYPE:METRIC<SECONDS",
                            help="a latency term to watch, e.g. deep-research:p95<30 (repeatable; default: the "
                                 "scenario's sla block, else p95 of every request type)")  # fmt: skip
    bottleneck.add_argument(
        "--replications",
        type=probe_replications_int,
        default=10,
        help="replications per run, the same indices in every run (default 10, at least 2)",
    )
    bottleneck.add_argument("--seed", type=seed_int, help="study seed of every run (default: the scenario's)")
    bottleneck.add_argument("--processes", type=processes_int, help="local worker processes (default: one per core)")
    bottleneck.add_argument("--json", action="store_true", help="print every resource's figures as JSON")
    bottleneck.add_argument("--out", type=Path, help="also write " + ", ".join(BOTTLENECK_OUTPUTS) + " here")
    _fleet_options(bottleneck)
    bottleneck.set_defaults(handler=_bottleneck)


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
    seed = scenario.seed if args.seed is None else args.seed
    if args.trace is not None and args.fleet:
        raise ConfigError("the trace is written by a local run of replication 0: run without --fleet to write it",
                          key="--trace")  # fmt: skip
    if args.precision is not None:
        return _run_to_precision(args, scenario, seed)
    if args.max_replications is not None:
        raise ConfigError("applies only with --precision (it caps the replications added to reach it)",
                          key="--max-replications")  # fmt: skip
    replications = scenario.replications if args.replications is None else args.replications
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
            summaries.extend(run_replications(scenario, replications=end, seed=seed,
                                              processes=args.processes, first=first, on_progress=progress))  # fmt: skip
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
        with _staged(args.trace, "--trace", "file") as trace_path:

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
        study = fleet.run_des(probe, replications=replications, seed=seed, priority=args.priority, first=first)
        studies.append(study.id)
        print(f"study {study.id}: round {len(studies)}, replications {first} to {first + replications - 1} of "
              f"{probe.name} on the fleet", file=sys.stderr)  # fmt: skip
        if _follow(args, fleet, study, f"round {len(studies)}: ") is None:
            raise _StoppedWaiting
        return study.summaries(timeout=60)

    return evaluate


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

    fleet = Fleet.from_settings()
    try:
        study = fleet.run_des(scenario, replications=replications, seed=seed, priority=args.priority)
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

    rows = run_validation(args.scale)
    if args.json:
        print(json_text([r.to_dict() for r in rows]))
    else:
        print(validation_table(rows))
    return 0 if all(r.passed for r in rows) else 1


def _sla(args: argparse.Namespace) -> int:
    from simfleet.producer.report import sla_table
    from simfleet.worker.des.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    terms = _sla_terms(args, scenario)
    spec = scenario.sla
    mix = args.mix or len({t.request_type for t in terms}) > 1 or (spec is not None and spec.scale == "mix")

    def search(evaluate: Evaluator) -> SlaResult:
        return _search(args, scenario, evaluate, terms, mix)

    return _answer(args, SLA_OUTPUTS, rate_label(None if mix else terms[0].request_type), search, sla_table,
                   lambda result: result.converged, write_sla_outputs, "the search did not converge")  # fmt: skip


def _answer(args: argparse.Namespace, owned: tuple[str, ...], label: Any, search: Any, table: Any, answered: Any,
            write: Any, nothing: str) -> int:  # fmt: skip
    """Run a search command: the search with the evaluator of ``args``, its table (or JSON), its ``--out``.

    ``--out`` is written only when ``answered(result)``; otherwise the command says why (``nothing``) and exits 1,
    since an output there is always a whole answer.
    """
    from simfleet.producer.progress import StepProgress
    from simfleet.producer.report import json_text

    progress = StepProgress(None, after_s=0.0 if args.fleet else 2.0)
    try:
        with _staged(args.out, "--out", "folder", owned) as staging:
            fleet, evaluate = _evaluator(args, progress, label)
            try:
                result = search(evaluate)
            finally:
                progress.close()
                if fleet is not None:
                    fleet.close()
            print(json_text(result.to_dict()) if args.json else table(result))
            if not answered(result):
                raise _NotConverged
            written = write(result, staging) if staging is not None else []
    except _NotConverged:
        if args.out is not None:
            print(f"simfleet: {nothing}, so {args.out} was not written (the probes are above)", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {args.out / path.name}", file=sys.stderr)
    return 0


def _sla_terms(args: argparse.Namespace, scenario: Scenario) -> list[Any]:
    """The SLA terms of ``des sla``: ``--sla`` terms, or one from the single-term flags and the sla block."""
    from simfleet.producer.confidence import SlaTerm, parse_term

    single = [flag for flag, value in (("--request-type", args.request_type), ("--metric", args.metric),
                                       ("--threshold", args.threshold)) if value is not None]  # fmt: skip
    if args.slas:
        if single:
            raise ConfigError(f"give the SLA as --sla terms or as {', '.join(single)}, not both", key=single[0])
        return [parse_term(text, scenario) for text in args.slas]
    _check_request_type(scenario, args.request_type)
    spec = scenario.sla
    request_type = args.request_type or (spec.request_type if spec else None)
    threshold = args.threshold if args.threshold is not None else (spec.threshold_s if spec else None)
    if request_type is None or threshold is None:
        raise ConfigError("give --sla TYPE:METRIC<SECONDS (or --request-type and --threshold), or an sla block in "
                          "the scenario", source=str(args.scenario))  # fmt: skip
    return [SlaTerm(request_type, args.metric or (spec.metric if spec else "p95"), threshold)]


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


def rate_label(request_type: str | None) -> Any:
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
        fleet, evaluate = _evaluator(args, progress, rate_label(args.request_type))
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
    args: argparse.Namespace, scenario: Scenario, evaluate: Evaluator, terms: list[Any], mix: bool
) -> SlaResult:
    from simfleet.producer.sla import search_sla

    spec = scenario.sla
    return search_sla(
        scenario,
        evaluate,
        slas=terms,
        replications=args.replications if args.replications is not None else max(2, spec.replications if spec else 5),
        max_replications=args.max_replications,
        seed=scenario.seed if args.seed is None else args.seed,
        rel_tol=args.rel_tol if args.rel_tol is not None else (spec.rel_tol if spec else 0.01),
        scale="mix" if mix else "type",
    )


def _bottleneck(args: argparse.Namespace) -> int:
    from simfleet.producer.bottleneck import find_bottlenecks
    from simfleet.producer.confidence import parse_term
    from simfleet.producer.progress import StepProgress
    from simfleet.producer.report import json_text
    from simfleet.worker.des.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    terms = None if args.sla is None else [parse_term(text, scenario, flag="--sla") for text in args.sla]
    progress = StepProgress(1 + sum(r.step is not None for r in scenario.resources.values()),
                            after_s=0.0 if args.fleet else 2.0)  # fmt: skip
    with _staged(args.out, "--out", "folder", BOTTLENECK_OUTPUTS) as staging:
        fleet, evaluate = _evaluator(args, progress, _bottleneck_label(scenario))
        try:
            result = find_bottlenecks(scenario, evaluate, slas=terms, replications=args.replications,
                                      seed=args.seed)  # fmt: skip
        finally:
            progress.close()
            if fleet is not None:
                fleet.close()
        print(json_text(result.to_dict()) if args.json else result.table())
        written = write_bottleneck_outputs(result, staging) if staging is not None else []
    for path in written:
        print(f"wrote {args.out / path.name}", file=sys.stderr)
    return 0


def _bottleneck_label(base: Scenario) -> Any:
    """What names a run of a bottleneck study on the progress line: the base, or the resource given one more step."""

    def label(probe: Scenario) -> str:
        for name, resource in probe.resources.items():
            if resource.capacity != base.resources[name].capacity:
                return f"{name} at {resource.capacity:g} {resource.unit}".rstrip()
        return "the base"

    return label


def write_bottleneck_outputs(result: BottleneckResult, out: Path) -> list[Path]:
    """``bottleneck.json``, ``bottleneck.csv`` and ``sensitivity.png`` of a bottleneck study in ``out``."""
    from simfleet.producer.charts import plot_sensitivity
    from simfleet.producer.rate_sweep import write_rows_csv
    from simfleet.producer.report import json_text

    out.mkdir(parents=True, exist_ok=True)
    (out / "bottleneck.json").write_text(json_text(result.to_dict()) + "\n")
    write_rows_csv(result.rows(), out / "bottleneck.csv")
    return [out / "bottleneck.json", out / "bottleneck.csv", plot_sensitivity(result, out / "sensitivity.png")]


def _register_capacity(commands: Any) -> None:
    """``des capacity``: the smallest (or cheapest) capacity of some resources meeting every SLA term."""
    capacity = commands.add_parser("capacity", help="smallest or cheapest capacity meeting every SLA term, with 95%% "
                                   "confidence, at the scenario's load")  # fmt: skip
    capacity.add_argument("scenario", type=Path, help="the scenario file (YAML, see docs/scenarios.md)")
    capacity.add_argument("--sla", action="append", metavar="TYPE:METRIC<SECONDS", dest="slas",
                          help="an SLA term, e.g. 'deep-research:p95<30' (repeat for several); default: the "
                          "scenario's sla block")  # fmt: skip
    capacity.add_argument("--resource", action="append", dest="resources", metavar="NAME",
                          help="a resource to size, in steps of its 'step' (repeat for several); default: every "
                          "resource that declares a step")  # fmt: skip
    capacity.add_argument("--cost", action="append", dest="costs", metavar="NAME=COST[,NAME=COST]",
                          help="cost per unit of capacity of a searched resource (default: 1 per step)")  # fmt: skip
    capacity.add_argument("--replications", type=probe_replications_int, default=5,
                          help="replications per candidate to start with (at least 2; default 5)")  # fmt: skip
    capacity.add_argument("--max-replications", type=replications_int, help="the most replications a candidate "
                          "gets while undecided (default: 4 x --replications, at least 20)")  # fmt: skip
    capacity.add_argument("--max-steps", type=bounded_int(1, 10_000), default=32,
                          help="how many steps above its lower limit a resource may get (default 32)")  # fmt: skip
    capacity.add_argument("--max-probes", type=bounded_int(1, 1000), default=30,
                          help="give up after this many probes (default 30)")  # fmt: skip
    capacity.add_argument("--seed", type=seed_int, help="study seed of every candidate (default: the scenario's)")
    capacity.add_argument("--processes", type=processes_int, help="local worker processes (default: one per core)")
    capacity.add_argument("--json", action="store_true", help="print the search and its probes as JSON")
    capacity.add_argument("--out", type=Path, help="also write capacity.json, probes.csv and capacity_search.png")
    _fleet_options(capacity)
    capacity.set_defaults(handler=_capacity)


def _capacity(args: argparse.Namespace) -> int:
    from simfleet.producer.capacity import check_costs, check_resources, search_capacity
    from simfleet.producer.confidence import SlaTerm, parse_term
    from simfleet.producer.report import capacity_table
    from simfleet.worker.des.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    if args.slas:
        terms = [parse_term(text, scenario) for text in args.slas]
    elif scenario.sla is not None:
        terms = [SlaTerm(scenario.sla.request_type, scenario.sla.metric, scenario.sla.threshold_s)]
    else:
        raise ConfigError(f"give the SLA as --sla TYPE:METRIC<SECONDS: {args.scenario} has no sla block", key="--sla")
    resources = check_resources(scenario, args.resources, key="--resource")
    costs = check_costs(scenario, _parse_costs(args.costs or []), resources, key="--cost")
    if args.max_replications is not None and args.max_replications < args.replications:
        raise ConfigError(f"must be at least --replications ({args.replications}), got {args.max_replications}",
                          key="--max-replications")  # fmt: skip

    def search(evaluate: Evaluator) -> CapacityResult:
        return search_capacity(scenario, evaluate, slas=terms, resources=resources, costs=costs,
                               replications=args.replications, max_replications=args.max_replications,
                               seed=args.seed, max_steps=args.max_steps, max_probes=args.max_probes)  # fmt: skip

    return _answer(args, CAPACITY_OUTPUTS, _capacity_label(resources), search, capacity_table,
                   lambda result: result.answer is not None, write_capacity_outputs,
                   "the search found no answer")  # fmt: skip


def _parse_costs(values: list[str]) -> dict[str, float]:
    """``--cost npu=1.0,cpu=0.05`` (the flag may be repeated) as a mapping; a malformed item names the flag."""
    costs: dict[str, float] = {}
    for value in values:
        for item in value.split(","):
            name, sign, number = item.partition("=")
            try:
                cost = float(number)
            except ValueError:
                cost = None
            if not sign or not name.strip() or cost is None:
                raise ConfigError(f"{printable(repr(item))} is not NAME=COST (a cost per unit of capacity, e.g. "
                                  "npu=1.0)", key="--cost")  # fmt: skip
            if name.strip() in costs:
                raise ConfigError(f"{name.strip()!r} has two costs", key="--cost")
            costs[name.strip()] = cost
    return costs


def _capacity_label(resources: list[str]) -> Any:
    """What names a candidate on the progress line: the capacities of the searched resources."""

    def label(probe: Scenario) -> str:
        return ", ".join(f"{name} {probe.resources[name].capacity:g}" for name in resources)

    return label


def write_capacity_outputs(result: CapacityResult, out: Path) -> list[Path]:
    """``capacity.json``, ``probes.csv`` and ``capacity_search.png`` of a capacity search in ``out``."""
    from simfleet.producer.capacity import capacity_rows
    from simfleet.producer.charts import plot_capacity_search
    from simfleet.producer.rate_sweep import write_rows_csv
    from simfleet.producer.report import json_text

    out.mkdir(parents=True, exist_ok=True)
    (out / "capacity.json").write_text(json_text(result.to_dict()) + "\n")
    write_rows_csv(capacity_rows(result), out / "probes.csv")
    return [out / "capacity.json", out / "probes.csv", plot_capacity_search(result, out / "capacity_search.png")]
