"""Aggregation of replications: the study-level answer.

For every scalar figure of the replication summaries (latency figures per type and overall, resource figures,
Little's law figures, event counts) the aggregate gives the mean, the standard deviation, the 95% Student-t
confidence half-width and the number of replications that had a value. Quantiles are given twice: from the merged
sketches (as if all replications were one run) and as the mean of the per-replication quantiles (with its CI).
Summaries are sorted by replication index first, so any arrival order of the results gives the same aggregate, to
the last bit; this is what lets the fleet's chord callback and the local runner agree exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from scipy import stats

from simfleet.worker.des.sketch import LatencySketch
from simfleet.worker.des.summary import QUANTILES

SKIP = {"sketch"}


def scalar_stats(values: Iterable[float | None]) -> dict[str, Any]:
    """Mean, sample standard deviation, 95% Student-t half-width and count of the non-missing values."""
    present = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(present)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    mean = math.fsum(present) / n
    if n == 1:
        return {"mean": mean, "std": None, "ci95": None, "n": 1}
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in present) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": half, "n": n}


def _aggregate_mapping(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in items[0].items():
        if key in SKIP:
            continue
        if isinstance(value, bool | str):
            continue
        if isinstance(value, int | float) or value is None:
            out[key] = scalar_stats(item.get(key) for item in items)
    return out


def _latency_block(items: list[dict[str, Any]]) -> dict[str, Any]:
    block = _aggregate_mapping(items)
    merged = LatencySketch()
    for item in items:
        merged.merge(LatencySketch.from_dict(item["sketch"]))
    block["merged"] = {
        "completed": merged.count,
        "mean_s": merged.mean if merged.count else None,
        **{name: (merged.quantile(q) if merged.count else None) for name, q in QUANTILES.items()},
        "max_s": merged.max if merged.count else None,
    }
    block["sketch"] = merged.to_dict()
    return block


def aggregate(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Combine replication summaries of one scenario into the study answer."""
    runs = sorted(summaries, key=lambda s: int(s["replication"]))
    if not runs:
        raise ValueError("no replication summaries to aggregate")
    first = runs[0]
    return {
        "scenario": first["scenario"],
        "seed": first["seed"],
        "replications": len(runs),
        "stable": all(r["stable"] for r in runs),
        "unstable_replications": sum(1 for r in runs if not r["stable"]),
        "unstable_reasons": sorted({r["unstable_reason"] for r in runs if r["unstable_reason"]}),
        "types": {name: _latency_block([r["types"][name] for r in runs]) for name in first["types"]},
        "overall": _latency_block([r["overall"] for r in runs]),
        "resources": {name: _aggregate_mapping([r["resources"][name] for r in runs]) for name in first["resources"]},
        "little": _aggregate_mapping([r["little"] for r in runs]),
        "run": _aggregate_mapping(
            [{k: r[k] for k in ("events", "wall_s", "events_per_s", "in_flight", "end_time_s")} for r in runs]
        ),
    }
