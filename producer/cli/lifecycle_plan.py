"""``simfleet lifecycle plan``: the inverse question, answered by searches over local ensemble runs.

``--question repair-slots``: per type, the fewest repair slots keeping the worst year's shortfall days at most
``--max-shortfall``; ``--question target-factor``: the largest factor on every MP4 target keeping the worst year's
shortfall type-days at most ``--max-shortfall``. The searches are :mod:`simfleet.worker.lifecycle.planning`'s
(docs/planning.md); the command prints the answer and every probe.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from simfleet.producer.cli.options import bounded_int, non_negative_int, positive_float
from simfleet.shared.lifecycle_contract import AC_TYPES, BACKENDS, MAX_DAYS

QUESTIONS = ("repair-slots", "target-factor")


def register(commands: Any) -> None:
    """Add the ``plan`` subcommand."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "plan", help="the inverse question: fewest repair slots, or largest target factor, for a shortfall limit")
    parser.add_argument("--inputs", type=Path, required=True, help="inputs directory (mp1, mp3, mp4, mp5, meta.yaml)")
    parser.add_argument("--question", choices=QUESTIONS, required=True,
                        help="repair-slots: fewest slots per type; target-factor: largest factor on every target")
    parser.add_argument("--max-shortfall", type=non_negative_int, required=True, metavar="N",
                        help="the most shortfall days one year may hold: per type (repair-slots), both types added "
                        "(target-factor, type-days)")  # fmt: skip
    parser.add_argument("--variants", type=Path, metavar="FILE",
                        help="the base plan and options: maintenance, replications, seed and at most one variant")
    parser.add_argument("--days", type=bounded_int(1, MAX_DAYS), help="horizon in days (default: meta.yaml's)")
    parser.add_argument("--backend", choices=BACKENDS, default="numpy", help="the lifecycle backend (default numpy)")
    parser.add_argument("--statistic", choices=("mean", "p95"), default="mean",
                        help="with replications: judge their mean (default) or their 95th percentile")
    parser.add_argument("--per-round", type=bounded_int(2, 256), default=8, metavar="K",
                        help="target-factor: factors per round, each round one ensemble run (default 8)")
    parser.add_argument("--tolerance", type=positive_float, default=0.01,
                        help="target-factor: stop when the bracket is narrower than this (default 0.01)")
    parser.add_argument("--json", action="store_true", help="print the answer and the probes as JSON")
    parser.set_defaults(handler=_plan)


def _plan(args: argparse.Namespace) -> int:
    from simfleet.producer.report import json_text
    from simfleet.worker.lifecycle.inputs import load_inputs
    from simfleet.worker.lifecycle.planning import base_plan, largest_target_factor, smallest_repair_slots

    base = None
    if args.variants is not None:  # a bad file fails before the inputs are read
        from simfleet.worker.lifecycle.variants import check_ensemble, load_variants

        base = base_plan(load_variants(args.variants), source=str(args.variants))
    inputs = load_inputs(args.inputs, days=args.days, days_key="--days")
    if base is not None:
        check_ensemble(base, inputs.version_date, inputs.days, source=str(args.variants))
    common: dict[str, Any] = {"base": base, "backend": args.backend, "statistic": args.statistic}
    result: Any
    if args.question == "repair-slots":
        result = smallest_repair_slots(inputs, args.max_shortfall, **common)
    else:
        result = largest_target_factor(inputs, args.max_shortfall, per_round=args.per_round,
                                       tolerance=args.tolerance, **common)  # fmt: skip
    if args.json:
        print(json_text(result.to_dict()))
        return 0
    print(f"{len(inputs.mp3['aircraft_number'])} airframes x {inputs.days:,} days ({args.inputs})")
    print(slots_text(result) if args.question == "repair-slots" else factor_text(result))
    return 0


def _judged(statistic: str, replications: int) -> str:
    if replications == 1:
        return "one replication"
    return f"{'mean' if statistic == 'mean' else '95th percentile'} over {replications} replications"


def _runs(runs: list[Any]) -> str:
    seconds = sum(run.seconds for run in runs)
    sizes = " + ".join(str(run.candidates) for run in runs)
    return f"{len(runs)} ensemble run(s) of {sizes} candidates x {runs[0].replications} replication(s): {seconds:.2f} s"


def _worst(values: list[int]) -> str:
    return str(values[0]) if len(values) == 1 else f"{min(values)}..{max(values)}"


def slots_text(result: Any) -> str:
    """The answer of a repair-slots search and its probes, for a person."""
    from simfleet.producer.report import text_table

    n = result.max_shortfall_days
    lines = [f"fewest repair slots per type with at most {n} shortfall days in the worst year "
             f"({_judged(result.statistic, result.replications)})"]  # fmt: skip
    for ac_type in AC_TYPES:
        slots = result.answer[ac_type]
        fleet = result.fleet[ac_type]
        lines.append(f"   {ac_type}: " + (f"{slots} slot(s) ({fleet} airframes)" if slots is not None else
                                          f"not met even with unlimited slots ({fleet} slots for {fleet} airframes)"))
    rows = [[str(p.round), p.ac_type, str(p.slots), f"{p.value:.1f}", _worst(p.worst_year),
             "pass" if p.passed else "fail"] for p in result.probes]  # fmt: skip
    table = text_table(["round", "type", "slots", "worst year", "replications", "result"], rows,
                       ["", "", "", "shortfall days", "range, days", f"<= {n}"])  # fmt: skip
    return "\n".join([*lines, "probes:", table, _runs(result.runs)])


def factor_text(result: Any) -> str:
    """The answer of a target-factor search and its probes, for a person."""
    from simfleet.producer.report import text_table

    n = result.max_shortfall_days
    lines = [f"largest factor on every MP4 target with at most {n} shortfall type-days in the worst year "
             f"({_judged(result.statistic, result.replications)})"]  # fmt: skip
    low, high = result.bracket[-1]
    if result.answer is None:
        lines.append(f"   no limit found: every factor up to {low:g} passes")
    else:
        lines.append(f"   factor {result.answer:.4f} (passes; {high:.4f} fails; bracket width {high - low:.4f} < "
                     f"tolerance {result.tolerance:g})")  # fmt: skip
    rows = [[str(p.round), f"{p.factor:.4f}", f"{p.value:.1f}", _worst(p.worst_year),
             *(f"{p.by_type[t]:.1f}" for t in AC_TYPES), "pass" if p.passed else "fail"]
            for p in result.probes]  # fmt: skip
    table = text_table(["round", "factor", "worst year", "replications", *AC_TYPES, "result"], rows,
                       ["", "", "type-days", "range", *(["own worst year"] * len(AC_TYPES)), f"<= {n}"])  # fmt: skip
    brackets = ", ".join(f"[{lo:.4f}, {'-' if hi is None else f'{hi:.4f}'}]" for lo, hi in result.bracket)
    return "\n".join([*lines, "probes:", table, f"brackets after each round: {brackets}", _runs(result.runs)])

