"""Readable tables of DES study aggregates, validation rows and SLA answers for the terminal, and their strict JSON.

Every JSON the ``des`` commands print or write goes through :func:`json_text`: strict JSON (RFC 8259), which has no
``Infinity`` or ``NaN``. A figure that is not finite is written as ``null``; where the reader needs to know why (an
unstable SLA probe), the object carries a ``reason`` field beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from simfleet.producer.sla import Probe, SlaResult
from simfleet.shared.messages.des import Stat, StudyAggregate
from simfleet.worker.des.validation import CaseResult


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


def _fmt(stat: Stat | None, digits: int = 3) -> str:
    if stat is None or stat.mean is None:
        return "-"
    text = f"{stat.mean:.{digits}f}"
    if stat.ci95 is not None:
        text += f" ±{stat.ci95:.{digits}f}"
    return text


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def study_table(agg: StudyAggregate) -> str:
    """The aggregate of a study: latency per type and overall, resources, Little's law, speed."""
    status = "stable" if agg.stable else f"UNSTABLE in {agg.unstable_replications} replication(s)"
    head = f"scenario {agg.scenario}: {agg.replications} replication(s), seed {agg.seed}, {status}"
    if agg.unstable_reasons:
        head += f" ({'; '.join(agg.unstable_reasons)})"
    latency_rows = []
    for name, block in [*agg.types.items(), ("(all)", agg.overall)]:
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
    latency = _table(
        ["request type", "completed", "per min", "mean s", "p50 s", "p95 s", "p99 s", "max s", "p95 merged"],
        latency_rows,
    )
    resource_rows = [
        [
            name,
            _fmt(res.get("utilisation")),
            _fmt(res.get("mean_consumers") or res.get("mean_in_use"), 2),
            _fmt(res.get("max_consumers") or res.get("max_in_use"), 1),
            _fmt(res.get("mean_waiting"), 2),
            _fmt(res.get("max_waiting"), 1),
        ]
        for name, res in agg.resources.items()
    ]
    resources = _table(
        ["resource", "utilisation", "mean busy", "max busy", "mean waiting", "max waiting"], resource_rows
    )
    little = agg.little
    run = agg.run
    tail = (
        f"Little's law: L = {_fmt(little.mean_in_system)}, lambda*W = {_fmt(little.lambda_w)}\n"
        f"events per replication {_fmt(run.events, 0)}, events/s {_fmt(run.events_per_s, 0)}, "
        f"wall s per replication {_fmt(run.wall_s, 2)}"
    )
    return "\n\n".join([head, latency, resources, tail])


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
    return _table(["", "case", "theory", "measured", "error", "tolerance"], body) + (
        f"\n\n{passed} passed, {len(rows) - passed} failed"
    )


def _probe_metric(probe: Probe) -> str:
    if not probe.stable:
        return probe.reason or "unstable"
    return f"{probe.metric_s:.3f}" + (f" ±{probe.ci95_s:.3f}" if probe.ci95_s else "")


def sla_table(result: SlaResult) -> str:
    """Every probe of an SLA search and the answer."""
    body = [
        [
            str(i + 1),
            f"{p.rate_per_min:.4f}",
            _probe_metric(p),
            "pass" if p.passed else "fail",
        ]
        for i, p in enumerate(result.probes)
    ]
    table = _table(["probe", "rate /min", f"{result.metric} s", "SLA"], body)
    lo, hi = result.best_passing, result.first_failing
    answer = (
        f"SLA {result.metric}({result.request_type}) < {result.threshold_s:g} s, scaling {result.scale}; "
        f"capacity bound {result.capacity_bound_per_min:.4f}/min\n"
    )
    answer += f"best passing rate: {lo.rate_per_min:.4f}/min ({lo.metric_s:.3f} s)\n" if lo else "no rate passed\n"
    answer += f"first failing rate: {hi.rate_per_min:.4f}/min\n" if hi else "no rate failed\n"
    width = result.bracket_rel_width
    answer += f"bracket {width:.2%}" if width is not None else "no bracket"
    answer += f" after {len(result.probes)} probes" + ("" if result.converged else " (NOT converged)")
    return table + "\n\n" + answer
