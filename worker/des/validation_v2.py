"""The model v2 rows of the validation table: failures, timeouts, retries, priorities, branches, arrivals.

Like the model v1 rows (:mod:`simfleet.worker.des.validation`, which lists every case), each compares a measured
figure with theory or with a result worked out by hand. They run on the validation's engine
(:func:`~simfleet.worker.des.validation_base.replicate`), but for the row that reads the event trace.
"""

from __future__ import annotations

import io
import math
from typing import Any

from simfleet.shared.messages.des import ReplicationSummary
from simfleet.worker.des.engine import run_replication
from simfleet.worker.des.scenario import Scenario, parse_scenario
from simfleet.worker.des.validation_base import (
    CaseResult,
    exact,
    figure,
    mean_over,
    relative,
    replicate,
)


def _retry_ps(scale: float) -> list[CaseResult]:
    """Immediate retries of failed attempts on M/M/1-PS.

    Each request's total work is a geometric sum of exponentials, itself exponential with rate mu (1 - p), and a
    retry keeps the request in the system, so E[T] = 1 / (mu (1 - p) - lambda).
    """
    mu, fail_prob, lam = 1.0, 0.2, 0.5
    horizon = 100_000.0 * scale
    scenario = parse_scenario(
        {
            "name": "retry-ps",
            "horizon_s": horizon,
            "warmup_s": horizon * 0.02,
            "resources": {"cpu": {"capacity": 1.0}},
            "tools": {
                "job": {
                    "work": {"cpu": {"dist": "exponential", "mean": 1.0 / mu}},
                    "fail_prob": fail_prob,
                    "retries": 1000,
                    "backoff_s": 0.0,
                }
            },
            "request_types": {"r": {"rate_per_min": lam * 60.0, "nodes": {"job": {"tool": "job"}}}},
        },
        source="<validation>",
    )
    mean, runs = mean_over(scenario, 4)
    attempts = sum(r.nodes["r"]["job"].attempts for r in runs) / sum(r.overall.completed for r in runs)
    return [
        relative(
            f"M/M/1-PS, fail_prob {fail_prob} retried at once, rho={lam / (mu * (1 - fail_prob)):g}: mean",
            1.0 / (mu * (1.0 - fail_prob) - lam),
            mean,
            0.04,
            f"attempts per request {attempts:.4f} (theory {1 / (1 - fail_prob):g})",
        )
    ]


def cobham_latency(rates: list[float], means: list[float], priorities: list[int]) -> list[float]:
    """Mean time in system per class of a non-preemptive priority M/G/1 queue with exponential work (Cobham).

    ``rates`` per second, ``means`` the mean work in seconds, higher ``priorities`` served first (FIFO within one).
    W_k = W0 / ((1 - sigma_above_k) (1 - sigma_k)) with W0 = sum lambda_i E[S_i^2] / 2 (E[S^2] = 2 m^2 for an
    exponential), sigma_k the load of every class of priority >= k's and sigma_above_k of those strictly higher.
    """
    w0 = sum(lam * 2.0 * m * m / 2.0 for lam, m in zip(rates, means, strict=True))
    loads = [lam * m for lam, m in zip(rates, means, strict=True)]
    result = []
    for k, priority in enumerate(priorities):
        sigma = sum(rho for rho, p in zip(loads, priorities, strict=True) if p >= priority)
        above = sum(rho for rho, p in zip(loads, priorities, strict=True) if p > priority)
        result.append(w0 / ((1.0 - above) * (1.0 - sigma)) + means[k])
    return result


def _priority_fifo(scale: float) -> list[CaseResult]:
    """Two request types at one FIFO server (max_active 1), the high one admitted first, non-preemptively."""
    rates, means, priorities = [0.3, 0.3], [1.0, 1.0], [1, 0]
    horizon = 200_000.0 * scale
    scenario = parse_scenario(
        {
            "name": "priority-mm1",
            "horizon_s": horizon,
            "warmup_s": horizon * 0.02,
            "resources": {"cpu": {"capacity": 1.0, "max_active": 1}},
            "tools": {"job": {"work": {"cpu": {"dist": "exponential", "mean": 1.0}}}},
            "request_types": {
                name: {"rate_per_min": lam * 60.0, "priority": priority, "nodes": {"job": {"tool": "job"}}}
                for name, lam, priority in zip(("high", "low"), rates, priorities, strict=True)
            },
        },
        source="<validation>",
    )
    runs = [replicate(scenario, 2026, i) for i in range(4)]
    theory = cobham_latency(rates, means, priorities)
    return [
        relative(
            f"priority M/M/1 FIFO rho=0.3+0.3, {name} class: mean latency",
            expected,
            sum(figure(r.types[name].mean_s) for r in runs) / len(runs),
            0.04,
        )
        for name, priority, expected in zip(("high", "low"), priorities, theory, strict=True)
    ]


def _one_type(
    resources: dict[str, Any], tools: dict[str, Any], rtype: dict[str, Any], trace: io.StringIO | None = None
) -> ReplicationSummary:
    """Run a scenario with exactly one request of type ``r`` (``rtype`` adds to it), arriving at t = 100 s."""
    scenario = parse_scenario(
        {
            "name": "one-request",
            "horizon_s": 150.0,
            "resources": resources,
            "tools": tools,
            "request_types": {"r": {"rate_per_min": 0.6, "arrival": "deterministic", **rtype}},
        },
        source="<validation>",
    )
    if trace is None:
        return replicate(scenario, 0, 0)
    return run_replication(scenario, 0, trace=trace)  # the event trace is the Python engine's


def _finished_max(summary: ReplicationSummary) -> float:
    """The latency of the one request of a summary, successful or not."""
    finished = summary.overall.all_finished
    return math.nan if finished is None else figure(finished.max_s)


def _trace_times(trace: str, event: str) -> list[float]:
    """Times of the trace lines of one kind of event (``timeout``, ``start``, ...), relative to the arrival."""
    lines = [line.split() for line in trace.splitlines()]
    arrival = next(float(line[0]) for line in lines if line[1] == "arrive")
    return [float(line[0]) - arrival for line in lines if line[1] == event]


def _constructed_v2() -> list[CaseResult]:
    """Failures, timeouts, retries, skip, fallback and scaled work with one request: exact latencies."""
    cpu = {"cpu": {"capacity": 1.0}}
    results = []
    trace = io.StringIO()
    fixed = _one_type(
        cpu,
        {"t": {"work": {"cpu": 5.0}, "timeout_s": 2.0, "retries": 2, "backoff_s": 1.0}},
        {"nodes": {"a": {"tool": "t"}}},
        trace,
    )
    results.append(
        exact(
            "timeout 2 < work 5, 2 retries, backoff 1: ends at 3x2 + 2x1",
            8.0,
            _finished_max(fixed),
            1e-9,
            f"timed out {fixed.overall.timed_out} of {fixed.overall.arrived}",
        )
    )
    expected = (0.0, 3.0, 6.0, 2.0, 5.0, 8.0)
    seen = _trace_times(trace.getvalue(), "start") + _trace_times(trace.getvalue(), "timeout")
    gap = max(abs(t - e) for t, e in zip(seen, expected, strict=False)) if len(seen) == len(expected) else math.nan
    results.append(
        exact(
            "same, its trace: starts at 0, 3, 6, timeouts at 2, 5, 8 (worst)",
            0.0,
            gap,
            1e-9,
            f"starts and timeouts at {', '.join(f'{t:g}' for t in seen)}",
        )
    )
    backoff = {"base_s": 1.0, "factor": 3.0, "max_s": 5.0}
    exponential = _one_type(
        cpu,
        {"t": {"work": {"cpu": 5.0}, "timeout_s": 2.0, "retries": 3, "backoff_s": backoff}},
        {"nodes": {"a": {"tool": "t"}}},
    )
    results.append(
        exact(
            "timeout 2, 3 retries, backoff min(5, 3^(k-1)): 4x2 + 1 + 3 + 5",
            17.0,
            _finished_max(exponential),
            1e-9,
        )
    )
    # a (2 s) -> b -> c (4 s), b failing twice (3 s each, 0.5 s between) then skipped: 2 + 3 + 0.5 + 3 + 4.
    skip = _one_type(
        cpu,
        {
            "a": {"work": {"cpu": 2.0}},
            "b": {"work": {"cpu": 3.0}, "fail_prob": 1.0, "retries": 1, "backoff_s": 0.5, "on_failure": "skip"},
            "c": {"work": {"cpu": 4.0}},
        },
        {"nodes": {"a": {"tool": "a"}, "b": {"tool": "b", "after": ["a"]}, "c": {"tool": "c", "after": ["b"]}}},
    )
    results.append(
        exact("a -> b -> c, b failing twice, skipped: 2 + (3 + 0.5 + 3) + 4", 12.5, figure(skip.overall.max_s), 1e-9)
    )
    # b, on a resource of its own, fails at once and is skipped: the request takes the other path, a -> c.
    parallel = _one_type(
        {"cpu": {"capacity": 1.0}, "gpu": {"capacity": 1.0}},
        {
            "a": {"work": {"cpu": 2.0}},
            "b": {"work": {"gpu": 1.0}, "fail_prob": 1.0, "on_failure": "skip"},
            "c": {"work": {"cpu": 3.0}},
        },
        {"nodes": {"a": {"tool": "a"}, "b": {"tool": "b"}, "c": {"tool": "c", "after": ["a", "b"]}}},
    )
    results.append(
        exact(
            "a, b -> c, b failing and skipped: the path without b, 2 + 3",
            5.0,
            figure(parallel.overall.max_s),
            1e-9,
            f"skipped {parallel.nodes['r']['b'].skipped}",
        )
    )
    fallback = _one_type(
        {"cpu": {"capacity": 2.0}},
        {
            "t": {
                "work": {"cpu": 2.0},
                "fail_prob": 1.0,
                "retries": 1,
                "backoff_s": 1.0,
                "on_failure": {"fallback": "f"},
            },
            "f": {"work": {"cpu": 6.0}},
        },
        {"nodes": {"a": {"tool": "t"}}},
    )
    results.append(
        exact(
            "fail_prob 1, 1 retry, backoff 1, fallback of work 6, C=2: 1+1+1+3",
            6.0,
            figure(fallback.overall.max_s),
            1e-9,
            f"fallbacks {fallback.nodes['r']['a'].fallbacks}",
        )
    )
    scaled = _one_type(
        {"cpu": {"capacity": 4.0}},
        {"t": {"work": {"cpu": {"per": "doc_mb", "amount": 2.0}}}},
        {"attributes": {"doc_mb": 3.5}, "nodes": {"a": {"tool": "t"}}},
    )
    results.append(
        exact("work {per: doc_mb, amount: 2}, doc_mb 3.5, C=4: 3.5 x 2 / 4", 1.75, figure(scaled.overall.max_s), 1e-9)
    )
    return results


def accounting_scenario(drain: bool, horizon_s: float = 3_000.0) -> Scenario:
    """A busy scenario with every way a request can end.

    Failures, timeouts, retries, skip, fallback, priorities, a space resource, branch probabilities and variants;
    warmup 300 s, ``drain`` as given.
    """
    return parse_scenario(
        {
            "name": "accounting",
            "horizon_s": horizon_s,
            "warmup_s": 300.0,
            "drain": drain,
            "resources": {
                "cpu": {"capacity": 2.0, "max_active": 3},
                "gpu": {"capacity": 1.0},
                "mem": {"kind": "space", "capacity": 4},
            },
            "tools": {
                "parse": {"work": {"cpu": {"dist": "exponential", "mean": 0.4}}, "fail_prob": 0.1, "retries": 2},
                "embed": {
                    "work": {"gpu": {"dist": "exponential", "mean": 0.5}},
                    "space": {"mem": 1},
                    "timeout_s": 1.5,
                    "retries": 1,
                    "backoff_s": {"base_s": 0.2, "factor": 2.0, "max_s": 1.0},
                    "on_failure": {"fallback": "cheap"},
                },
                "cheap": {"work": {"cpu": 0.2}, "fail_prob": 0.3},
                "rank": {"work": {"cpu": {"dist": "lognormal", "mean": 0.3, "cv": 1.5}}, "timeout_s": 1.0},
                "extra": {"work": {"gpu": 0.3}, "fail_prob": 0.5, "on_failure": "skip"},
            },
            "request_types": {
                "search": {
                    "rate_per_min": 60.0,
                    "priority": 1,
                    "nodes": {
                        "parse": {"tool": "parse"},
                        "embed": {"tool": "embed", "after": ["parse"]},
                        "extra": {"tool": "extra", "prob": 0.5},
                        "rank": {"tool": "rank", "after": ["embed", "extra"]},
                    },
                },
                "chat": {
                    "rate_per_min": 40.0,
                    "variants": {
                        "short": {"weight": 2, "nodes": {"rank": {"tool": "rank", "retries": 1}}},
                        "long": {
                            "weight": 1,
                            "nodes": {
                                "parse": {"tool": "parse", "on_failure": "skip"},
                                "embed": {"tool": "embed", "after": ["parse"], "timeout_s": 0.8},
                            },
                        },
                    },
                },
            },
        },
        source="<validation>",
    )


def _accounting(scale: float) -> list[CaseResult]:
    """Every counted request ends one way: completed + failed + timed_out + unfinished == arrived.

    Checked per type and overall, over 3 replications, drained and not; ``error`` is the total mismatch.
    """
    results = []
    for drain in (True, False):
        scenario = accounting_scenario(drain)
        mismatch = 0
        totals = [0, 0, 0, 0, 0]
        for replication in range(3):
            summary = replicate(scenario, 2026, replication)
            for figures in (*summary.types.values(), summary.overall):
                ended = figures.completed + figures.failed + figures.timed_out + figures.unfinished
                mismatch += abs(ended - figures.arrived)
            o = summary.overall
            for i, count in enumerate((o.arrived, o.completed, o.failed, o.timed_out, o.unfinished)):
                totals[i] += count
        arrived, completed, failed, timed_out, unfinished = totals
        results.append(
            CaseResult(
                f"completed+failed+timed_out+unfinished == arrived ({'drain' if drain else 'no drain'})",
                float(arrived),
                float(completed + failed + timed_out + unfinished),
                float(mismatch),
                0.0,
                mismatch == 0,
                f"{completed} + {failed} + {timed_out} + {unfinished} of {arrived} (3 replications)",
            )
        )
    return results


def _branch_ps(scale: float) -> list[CaseResult]:
    """The only node of M/M/1-PS runs with probability p.

    The requests that run it are a Poisson stream of rate p lambda, and the others finish at once (latency 0), so
    the mean over every request is p / (mu - p lambda).
    """
    mu, prob, lam = 1.0, 0.5, 1.0
    horizon = 150_000.0 * scale
    scenario = parse_scenario(
        {
            "name": "branch-ps",
            "horizon_s": horizon,
            "warmup_s": horizon * 0.02,
            "resources": {"cpu": {"capacity": 1.0}},
            "tools": {"job": {"work": {"cpu": {"dist": "exponential", "mean": 1.0 / mu}}}},
            "request_types": {"r": {"rate_per_min": lam * 60.0, "nodes": {"job": {"tool": "job", "prob": prob}}}},
        },
        source="<validation>",
    )
    mean, runs = mean_over(scenario, 4)
    ran = sum(r.nodes["r"]["job"].attempts for r in runs) / sum(r.overall.arrived for r in runs)
    return [
        relative(
            f"M/M/1-PS node of prob {prob}, lambda={lam:g}: mean p / (mu - p lambda)",
            prob / (mu - prob * lam),
            mean,
            0.04,
            f"share of requests that ran it {ran:.4f}",
        )
    ]


def _arrival_rates(scale: float) -> list[CaseResult]:
    """Counted arrivals per minute of a long run against the rate each process is defined to have.

    The MMPP switches fast (sojourns of 0.3 and 0.1 s) so that its count over the run is nearly as steady as a
    Poisson one (standard deviation about 0.2 % at the default scale); the schedule repeats every hour.
    """
    rates = (60.0, 180.0)
    sojourns = (0.3, 0.1)
    windows = [(0.0, 30.0), (900.0, 150.0), (1_800.0, 0.0), (2_400.0, 90.0)]
    period = 3_600.0
    horizon = period * max(1, round(50 * scale))
    mmpp_rate = sum(r * s for r, s in zip(rates, sojourns, strict=True)) / sum(sojourns)
    ends = [start for start, _ in windows[1:]] + [period]
    schedule_rate = sum(rate * (end - start) for (start, rate), end in zip(windows, ends, strict=True)) / period
    scenario = parse_scenario(
        {
            "name": "arrival-rates",
            "horizon_s": horizon,
            "resources": {"cpu": {"capacity": 1.0}},
            "tools": {"t": {"work": {"cpu": 0.0}}},
            "request_types": {
                "mmpp": {
                    "arrival": {"process": "mmpp", "rates_per_min": list(rates), "mean_sojourn_s": list(sojourns)},
                    "nodes": {"a": {"tool": "t"}},
                },
                "schedule": {
                    "arrival": {
                        "process": "schedule",
                        "windows": [{"start_s": start, "rate_per_min": rate} for start, rate in windows],
                        "repeat_s": period,
                    },
                    "nodes": {"a": {"tool": "t"}},
                },
            },
        },
        source="<validation>",
    )
    summary = replicate(scenario, 2026, 0)
    measured = {name: figures.arrived / summary.window_s * 60.0 for name, figures in summary.types.items()}
    return [
        relative(
            "MMPP 60 and 180/min, sojourns 0.3 and 0.1 s: arrivals per min",
            mmpp_rate,
            measured["mmpp"],
            0.01,
            f"{summary.types['mmpp'].arrived} arrivals in {summary.window_s:g} s",
        ),
        relative(
            "hourly schedule 30, 150, 0, 90/min: arrivals per min",
            schedule_rate,
            measured["schedule"],
            0.01,
            f"{summary.types['schedule'].arrived} arrivals in {summary.window_s:g} s",
        ),
    ]
