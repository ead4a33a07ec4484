"""Readable tables of DES study aggregates, validation rows and SLA answers for the terminal, and their strict JSON.

Every JSON the ``des`` commands print or write goes through :func:`json_text`: strict JSON (RFC 8259), which has no
``Infinity`` or ``NaN``. A figure that is not finite is written as ``null``; where the reader needs to know why (an
unstable SLA probe), the object carries a ``reason`` field beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from simfleet.shared.lifecycle_contract import STATUSES

if TYPE_CHECKING:  # annotations only: `lifecycle run` prints its summary without loading the DES modules
    from simfleet.producer.capacity import CapacityResult
    from simfleet.producer.confidence import SlaTerm, TermOutcome
    from simfleet.producer.rate_sweep import SweepResult
    from simfleet.producer.sla import SlaResult
    from simfleet.shared.messages.des import Stat, StudyAggregate
    from simfleet.shared.messages.lifecycle import JobSummary, MemberSummary
    from simfleet.worker.des.scenario import Scenario
    from simfleet.worker.des.validation import CaseResult
    from simfleet.worker.lifecycle.run import RunReport


def finite(data: Any) -> Any:
    """``data`` with every non-finite float (infinity, NaN) replaced by ``None``, in nested dicts and lists."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [finite(value) for value in data]
    return data


def json_text(data: Any) -> str:
    """``data`` as indented strict JSON (non-finite figures become ``null``; never ``Infinity`` or ``NaN``)."""
    return json.dumps(finite(data), indent=2, allow_nan=False)


def _fmt(stat: Stat | None, digits: int = 3, interval: bool = True) -> str:
    """A figure's mean over the replications, ± the half-width of its 95% confidence interval.

    ``interval`` False shows the mean alone: for wall-clock figures (events per second), whose spread measures the
    machine's load while they ran, not the model, so an interval over replications would mean nothing.
    """
    if stat is None or stat.mean is None:
        return "-"
    text = f"{stat.mean:,.{digits}f}" if abs(stat.mean) >= 10_000 else f"{stat.mean:.{digits}f}"
    if interval and stat.ci95 is not None:
        text += f" ±{stat.ci95:.{digits}f}"
    return text


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], units: Sequence[str] | None = None) -> str:
    """Columns padded to their widest cell; ``units``, when given, is a second header line (``s``, ``requests``)."""
    heads = [header] if units is None else [header, units]
    widths = [max(len(str(cell)) for cell in column) for column in zip(*heads, *rows, strict=True)]
    lines = [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [*heads, *rows]
    ]
    lines.insert(len(heads), "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def study_table(agg: StudyAggregate, scenario: Scenario | None = None) -> str:
    """The aggregate of a study: latency per type and overall, resources and where tools wait, Little's law, speed.

    The bottleneck candidate is the resource where the most tools are held back (queued, or slowed by sharing;
    :func:`~simfleet.producer.diagnostics.waiting_by_resource`, which reads ``per_tool_cap`` from ``scenario`` when
    given), not the most utilised one: memory held by calls queued for the NPU looks busiest.
    """
    from simfleet.producer.diagnostics import bottleneck_text, waiting_by_resource

    plural = "s" if agg.replications != 1 else ""
    status = "stable" if agg.stable else f"UNSTABLE in {agg.unstable_replications} replication(s)"
    head = f"scenario {agg.scenario}: {agg.replications} replication{plural}, seed {agg.seed}, {status}"
    if agg.unstable_reasons:
        head += f" ({'; '.join(agg.unstable_reasons)})"
    head += "\nfigures: the mean over the replications ± the half-width of its 95% confidence interval"
    latency_rows = []
    for name, block in [*agg.types.items(), ("(all types)", agg.overall)]:
        latency_rows.append(
            [
                name,
                _fmt(block.completed, 0),
                _fmt(block.throughput_per_min, 2),
                _fmt(block.mean_s),
                _fmt(block.p50_s),
                _fmt(block.p95_s),
                _fmt(block.p99_s),
                _fmt(block.max_s),
                f"{block.merged.p95_s:.3f}" if block.merged.p95_s is not None else "-",
            ]
        )
    latency = text_table(
        ["request type", "completed", "throughput", "mean", "p50", "p95", "p99", "max", "p95 merged"],
        latency_rows,
        ["", "requests", "per min", "s", "s", "s", "s", "s", "s"],
    )
    held_back = waiting_by_resource(agg, scenario)
    resource_rows = [
        [
            name,
            _fmt(res.get("utilisation")),
            _fmt(res.get("mean_consumers") or res.get("mean_in_use"), 2),
            _fmt(res.get("max_consumers") or res.get("max_in_use"), 1),
            _fmt(res.get("mean_waiting"), 2),
            _fmt(res.get("max_waiting"), 1),
            f"{held_back[name]:.2f}",
        ]
        for name, res in agg.resources.items()
    ]
    resources = text_table(
        ["resource", "utilisation", "mean busy", "max busy", "mean waiting", "max waiting", "held back"],
        resource_rows,
        ["", "fraction", "units", "units", "tools", "tools", "tools"],
    )
    resources += "\n" + bottleneck_text(agg, scenario)
    failures = _failure_tables(agg)
    little = agg.little
    run = agg.run
    tail = (
        f"Little's law: L = {_fmt(little.mean_in_system)} requests in the system, "
        f"lambda*W = {_fmt(little.lambda_w)} requests\n"
        f"events per replication {_fmt(run.events, 0)}; on this machine {_fmt(run.events_per_s, 0, False)} events/s, "
        f"{_fmt(run.wall_s, 2, False)} s of wall clock per replication"
    )
    return "\n\n".join([head, latency, *failures, resources, tail])


def _failure_tables(agg: StudyAggregate) -> list[str]:
    """Outcomes per type and what each node's attempts did, for a scenario whose attempts can fail (else nothing)."""
    if not agg.overall.all_finished:
        return []
    rows = []
    for name, block in [*agg.types.items(), ("(all types)", agg.overall)]:
        finished = block.all_finished
        rows.append([name, _fmt(block.completed, 0), _fmt(block.failed, 0), _fmt(block.timed_out, 0),
                     _fmt(block.success_ratio, 4), _fmt(block.goodput_per_min, 2), _fmt(finished.get("mean_s")),
                     _fmt(finished.get("p95_s"))])  # fmt: skip
    outcomes = text_table(
        ["request type", "completed", "failed", "timed out", "success ratio", "goodput", "mean (all)", "p95 (all)"],
        rows,
        ["", "requests", "requests", "requests", "fraction", "per min", "s", "s"],
    )
    wasted = {name: res["wasted_work_per_s"] for name, res in agg.resources.items() if "wasted_work_per_s" in res}
    outcomes += "\nlatency figures above are over successful requests; (all) ones over every finished request"
    outcomes += "\nwasted work (failed, timed-out and cancelled attempts), work units/s: " + ", ".join(
        f"{name} {_fmt(stat, 3)}" for name, stat in wasted.items()
    )
    node_rows = [
        [type_name, node, _fmt(stats["attempts_per_request"]), _fmt(stats["failed"], 1), _fmt(stats["timed_out"], 1),
         _fmt(stats["fallbacks"], 1), _fmt(stats["skipped"], 1), _fmt(stats["branch_skipped"], 1)]
        for type_name, nodes in agg.nodes.items()
        for node, stats in nodes.items()
    ]  # fmt: skip
    nodes = text_table(
        ["request type", "node", "attempts", "failed", "timed out", "fallbacks", "skipped", "not run"],
        node_rows,
        ["", "", "per request", "attempts", "attempts", "runs", "nodes", "(prob)"],
    )
    return [outcomes, nodes]


def validation_table(rows: Sequence[CaseResult]) -> str:
    """The validation cases with theory, measured value, error and verdict."""
    body = [
        [
            "PASS" if r.passed else "FAIL",
            r.case,
            f"{r.theory:.6g}",
            f"{r.measured:.6g}",
            f"{r.error:.2e}",
            f"{r.tolerance:.2g}",
        ]
        for r in rows
    ]
    passed = sum(r.passed for r in rows)
    return text_table(["", "case", "theory", "measured", "error", "tolerance"], body) + (
        f"\n\n{passed} passed, {len(rows) - passed} failed"
    )


def _term_cell(outcome: TermOutcome) -> str:
    """A term's mean ± 95% half-width (seconds to 3 decimals, a success ratio to 4), or why it has none."""
    if not outcome.value.finite:
        return outcome.reason or "unstable"
    spec = ".4f" if outcome.term.floor else ".3f"
    return f"{outcome.value.mean:{spec}}" + (f" ±{outcome.value.ci95:{spec}}" if outcome.value.ci95 else "")


def _term_unit(term: SlaTerm) -> str:
    """The unit of a term's figures in a table's unit row: ``s``, or ``ratio`` for a success ratio."""
    return "ratio" if term.floor else "s"


def _term_name(term: SlaTerm) -> str:
    """A term's metric in a table's header: ``p95 of deep-research``, ``success ratio of deep-research``."""
    return f"{'success ratio' if term.floor else term.metric} of {term.request_type}"


def sla_table(result: SlaResult) -> str:
    """Every probe of an SLA search (each term's interval, the decision, replications) and the answer in words."""
    body = [
        [str(i + 1), f"{p.rate_per_min:.4f}", *(_term_cell(t) for t in p.terms),
         "undecided at cap" if p.capped else p.verdict, str(p.replications)]
        for i, p in enumerate(result.probes)
    ]  # fmt: skip
    rate = "requests/min" if result.scale == "mix" else f"{result.request_type} req/min"
    table = text_table(["probe", "rate", *(_term_name(t) for t in result.terms), "SLA", "replications"], body,
                       ["", rate, *(f"{_term_unit(t)}, mean ±95%" for t in result.terms), "", ""])  # fmt: skip
    scaled = f"{result.request_type}'s rate alone" if result.scale == "type" else "the whole mix at fixed shares"
    lines = [
        f"SLA {' and '.join(t.text for t in result.terms)}, scaling {scaled}; capacity bound "
        f"{result.capacity_bound_per_min:.4f} requests/min; {result.replications} to {result.max_replications} "
        "replications per probe",
    ]
    for name, probe in (("best passing", result.best_passing), ("first failing", result.first_failing)):
        if probe is None:
            lines.append(f"{name}: none")
            continue
        figures = ", ".join(f"{_term_name(t.term)} {_term_cell(t)}{t.term.unit}" for t in probe.terms)
        lines.append(f"{name}: {probe.rate_per_min:.4f} requests/min ({figures}; {probe.replications} replications)")
    width = result.bracket_rel_width
    lines.append((f"bracket {width:.2%}" if width is not None else "no bracket") + f" after {len(result.probes)} "
                 "probes" + ("" if result.converged else " (NOT converged)"))  # fmt: skip
    lines.append(result.statement())
    lines.extend(f"warning: {w}" for w in result.warnings)
    return table + "\n\n" + "\n".join(lines)


def _transition_name(key: str) -> str:
    """``"2->4"`` as ``operation -> repair``."""
    before, _, after = key.partition("->")
    try:
        return f"{STATUSES[int(before)]} -> {STATUSES[int(after)]}"
    except (KeyError, ValueError):
        return key


def lifecycle_summary(summary: RunReport | JobSummary) -> str:
    """The lines a person reads after a lifecycle run: size, transitions, final statuses, shortfall days, timings.

    Statuses and transitions are named in words; every figure says its unit.
    """
    log = "per airframe and per type" if summary.log == "full" else "per type only"
    width = max((len(_transition_name(k)) for k in summary.transitions), default=0)
    lines = [f"{summary.airframes} airframes x {summary.days:,} days, MP2 logged {log}",
             "transitions: over the run (airframe moves)"]  # fmt: skip
    lines += [f"   {_transition_name(k):<{width}}  {v:>7,}" for k, v in summary.transitions.items()]
    counts = ", ".join(f"{STATUSES.get(int(k), k)} {v}" for k, v in summary.status_counts_end.items())
    lines.append(f"status at the end: {counts} (airframes)")
    members = getattr(summary, "members", None) or []
    added = f" (the {len(members)} runs of the ensemble added)" if members else ""
    lines.append("days with a shortfall: " + ", ".join(f"{k} {v} days" for k, v in summary.shortfall_days.items())
                 + added)  # fmt: skip
    lines.append("time: " + ", ".join(f"{k} {v:.3f} s" for k, v in summary.timings_s.items()))
    if members:
        lines += ["", ensemble_shortfall_table(members, summary.days)]
    return "\n".join(lines)


def ensemble_shortfall_table(members: Sequence[MemberSummary], days: int) -> str:
    """The variants of an ensemble side by side: per type, the days with a shortfall and the aircraft-days missing.

    One row per variant (in order). A type has two columns: the days with a shortfall over the run, and the
    shortfall summed over those days (aircraft x days: how far below target the fleet was). With one replication a
    cell is the run's figure; with several it is the mean over replications and, after it, the 5th..95th percentile
    (numpy's linear method, rounded).
    """
    import numpy as np

    variants: dict[int, tuple[str, list[MemberSummary]]] = {}
    for member in members:
        variants.setdefault(member.variant_id, (member.variant, []))[1].append(member)
    replications = max(len(runs) for _, runs in variants.values())
    types = list(members[0].shortfall_days)

    def cell(values: list[int]) -> str:
        array = np.asarray(values, dtype=np.float64)
        text = f"{array.mean():.1f}"
        if replications > 1:
            low, high = np.percentile(array, [5.0, 95.0])
            text += f" ({low:.0f}..{high:.0f})"
        return text

    rows = []
    for v in sorted(variants):
        name, runs = variants[v]
        cells = [name]
        for ac_type in types:
            cells.append(cell([run.shortfall_days[ac_type] for run in runs]))
            cells.append(cell([run.shortfall_aircraft_days.get(ac_type, 0) for run in runs]))
        rows.append(cells)
    spread = " (mean, 5th..95th percentile)" if replications > 1 else ""
    head = (f"shortfall over {days:,} days, by variant"
            + (f" ({replications} replications each){spread}" if replications > 1 else ""))  # fmt: skip
    columns = ["variant", *(f"{t} {what}" for t in types for what in ("days", "aircraft-days"))]
    return head + "\n" + text_table(columns, rows)


def sweep_table(sweep: SweepResult, metric: str = "p95") -> str:
    """A rate sweep: the latency ``metric`` of each request type (and of all) at each rate, and where tools wait.

    The heading says what was scaled: the whole mix at fixed shares, or one type's rate with the others as given.
    The last column names the bottleneck candidate (where the tools are held back, see
    :func:`~simfleet.producer.diagnostics.bottleneck_candidate`), and flags unstable and near-saturation rates.
    """
    figure = "mean_s" if metric == "mean" else f"{metric}_s"
    scaled = (
        "rate: of the whole mix, every type at its fixed share"
        if sweep.scale == "mix"
        else f"rate: of {sweep.scale} alone, the other types at their scenario rates"
    )
    body = []
    for row in sweep.to_rows():
        ci = row[f"{figure}_ci95"]
        value = "-" if row[figure] is None else f"{row[figure]:.3f}" + (f" ±{ci:.3f}" if ci else "")
        candidate = row.get("bottleneck_candidate")
        level = row.get(f"waiting_{candidate}") if candidate else None
        where = f"{candidate} ({level:.2f} held back)" if candidate and level is not None else "no queue"
        name = "(all types)" if row["request_type"] == "(all)" else row["request_type"]
        flag = "  UNSTABLE" if not row["stable"] else ("  NEAR SATURATION" if row["near_saturation"] else "")
        body.append([f"{row['rate_per_min']:.3f}", name, value, where + flag])
    table = text_table(
        ["rate", "request type", f"{metric} latency", "bottleneck candidate"],
        body,
        ["requests/min", "", "s", "tools held back"],
    )
    return f"scenario {sweep.scenario}; {scaled}\n{table}"


def capacity_table(result: CapacityResult) -> str:
    """Every probe of a capacity search (capacities, cost, each term's interval and verdict) and the answer."""
    terms = result.terms

    body = [
        [str(i + 1), *(f"{p.capacities[n]:g}" for n in result.resources), f"{p.cost:.4g}",
         *(_term_cell(t) for t in p.terms), "undecided at cap" if p.capped else p.verdict, str(p.replications)]
        for i, p in enumerate(result.probes)
    ]  # fmt: skip
    header = ["probe", *result.resources, "cost", *(t.text for t in terms), "SLA", "replications"]
    units = ["", *(result.units[n] for n in result.resources), "", *(_term_unit(t) for t in terms), "", ""]
    warnings = "".join(f"\nwarning: {w}" for w in result.warnings)
    return text_table(header, body, units) + f"\n\n{result.statement()}\nafter {len(result.probes)} probes{warnings}"
