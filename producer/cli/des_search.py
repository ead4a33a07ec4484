"""``simfleet des sla|capacity|bottleneck``: the searches, each a series of judged candidates (docs/des.md).

Each prints its candidates and its answer (or ``--json``), and writes ``--out`` only when it has an answer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simfleet.producer.cli.des_common import (
    check_request_type,
    evaluator,
    fleet_options,
    probe_replications_int,
    processes_int,
    rate_label,
    replications_int,
    staged,
)
from simfleet.producer.cli.options import bounded_int, fraction, positive_float, seed_int
from simfleet.shared.errors import ConfigError, printable
from simfleet.worker.des.limits import FLOOR_METRICS, SLA_METRICS

if TYPE_CHECKING:
    from simfleet.producer.bottleneck import BottleneckResult
    from simfleet.producer.capacity import CapacityResult
    from simfleet.producer.sla import Evaluator, SlaResult
    from simfleet.worker.des.scenario import Scenario


def register(commands: Any) -> None:
    """Add ``des sla``, ``des capacity`` and ``des bottleneck`` to the ``des`` family's subcommands."""
    sla = commands.add_parser("sla", help="largest arrival rate meeting every SLA term, with 95%% confidence")
    sla.add_argument("scenario", type=Path, help="the scenario file (YAML, see docs/scenarios.md)")
    sla.add_argument("--sla", action="append", metavar="TYPE:METRIC<SECONDS", dest="slas",
                     help="an SLA term, e.g. 'deep-research:p95<30', or a success-ratio floor, e.g. "
                     "'deep-research:success_ratio>0.99' (repeat for several request types: the whole mix is then "
                     "scaled); default: the scenario's sla block")  # fmt: skip
    sla.add_argument("--request-type", help="the type whose metric is the SLA (one term; see --sla)")
    sla.add_argument("--metric", choices=SLA_METRICS, help="the latency the SLA bounds, or success_ratio (a floor) "
                     "(default: the sla block's or p95)")  # fmt: skip
    sla.add_argument("--threshold", type=positive_float, help="seconds; for --metric success_ratio a ratio in (0, 1]")
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
    fleet_options(sla)
    sla.set_defaults(handler=_sla)

    _register_capacity(commands)

    bottleneck = commands.add_parser("bottleneck", help="which resource to add first: each one's sensitivity")
    bottleneck.add_argument("scenario", type=Path, help="the scenario file (YAML, see docs/scenarios.md)")
    bottleneck.add_argument("--sla", action="append", metavar="TYPE:METRIC<SECONDS",
                            help="a term to watch, e.g. deep-research:p95<30 or deep-research:success_ratio>0.99 "
                                 "(repeatable; default: the scenario's sla block, else p95 of every request "
                                 "type)")  # fmt: skip
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
    fleet_options(bottleneck)
    bottleneck.set_defaults(handler=_bottleneck)


SLA_OUTPUTS = ("probes.json", "probes.csv", "sla_search.png")
"""What ``des sla --out`` writes; a folder holding anything else is refused (the output replaces it whole)."""


CAPACITY_OUTPUTS = ("capacity.json", "probes.csv", "capacity_search.png")
"""What ``des capacity --out`` writes; a folder holding anything else is refused (the output replaces it whole)."""


BOTTLENECK_OUTPUTS = ("bottleneck.json", "bottleneck.csv", "sensitivity.png")
"""What ``des bottleneck --out`` writes; a folder holding anything else is refused (the output replaces it whole)."""


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
        with staged(args.out, "--out", "folder", owned) as staging:
            fleet, evaluate = evaluator(args, progress, label)
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
    from simfleet.producer.confidence import SlaTerm, check_term, parse_term

    single = [flag for flag, value in (("--request-type", args.request_type), ("--metric", args.metric),
                                       ("--threshold", args.threshold)) if value is not None]  # fmt: skip
    if args.slas:
        if single:
            raise ConfigError(f"give the SLA as --sla terms or as {', '.join(single)}, not both", key=single[0])
        return [parse_term(text, scenario) for text in args.slas]
    check_request_type(scenario, args.request_type)
    spec = scenario.sla
    request_type = args.request_type or (spec.request_type if spec else None)
    metric = args.metric or (spec.metric if spec else "p95")
    if args.threshold is None and spec is not None and (metric in FLOOR_METRICS) != spec.floor:
        raise ConfigError(f"give --threshold for --metric {metric}: the sla block's threshold is "
                          f"{'a ratio' if spec.floor else 'seconds'}", key="--threshold")  # fmt: skip
    threshold = args.threshold if args.threshold is not None else (spec.threshold if spec else None)
    if request_type is None or threshold is None:
        raise ConfigError("give --sla TYPE:METRIC<SECONDS or TYPE:success_ratio>RATIO (or --request-type and "
                          "--threshold), or an sla block in the scenario", source=str(args.scenario))  # fmt: skip
    return [check_term(SlaTerm(request_type, metric, threshold), scenario, key="--threshold")]


class _NotConverged(Exception):
    """An SLA search that ended without its answer: its ``--out`` is discarded (outputs are whole answers)."""


def write_sla_outputs(result: SlaResult, out: Path) -> list[Path]:
    """``probes.json``, ``probes.csv`` and ``sla_search.png`` of an SLA search in ``out``."""
    from simfleet.producer.charts import plot_sla_search
    from simfleet.producer.rate_sweep import sla_rows, write_rows_csv
    from simfleet.producer.report import json_text

    out.mkdir(parents=True, exist_ok=True)
    (out / "probes.json").write_text(json_text(result.to_dict()) + "\n")
    write_rows_csv(sla_rows(result), out / "probes.csv")
    return [out / "probes.json", out / "probes.csv", plot_sla_search(result, out / "sla_search.png")]


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
    with staged(args.out, "--out", "folder", BOTTLENECK_OUTPUTS) as staging:
        fleet, evaluate = evaluator(args, progress, _bottleneck_label(scenario))
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
                          help="an SLA term, e.g. 'deep-research:p95<30' or 'deep-research:success_ratio>0.99' "
                          "(repeat for several); default: the scenario's sla block")  # fmt: skip
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
    fleet_options(capacity)
    capacity.set_defaults(handler=_capacity)


def _capacity(args: argparse.Namespace) -> int:
    from simfleet.producer.capacity import check_costs, check_resources, search_capacity
    from simfleet.producer.confidence import parse_term
    from simfleet.producer.report import capacity_table
    from simfleet.worker.des.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    if not args.slas and scenario.sla is None:
        raise ConfigError(f"give the SLA as --sla TYPE:METRIC<SECONDS (or TYPE:success_ratio>RATIO): {args.scenario} "
                          "has no sla block", key="--sla")  # fmt: skip
    terms = [parse_term(text, scenario) for text in args.slas] if args.slas else None  # None: the sla block's term
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
