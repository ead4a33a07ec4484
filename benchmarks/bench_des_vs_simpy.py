"""Our DES engine against SimPy on the same workloads, in the same process run.

Run: ``.venv/bin/python benchmarks/bench_des_vs_simpy.py [--mm1-requests N] [--forkjoin-requests N]``.

Workloads (both simulators get the same model; each prints its mean latency beside theory as a sanity check):

1. M/M/1 under processor sharing at rho = 0.8: Poisson arrivals at 0.8/s, exponential work of mean 1 on one
   resource of capacity 1. Theory: mean latency 1 / (mu - lambda) = 5 s.
2. Fork-join A -> {B, C} -> D: each tool needs exponential work on a CPU (mean 0.25) and on a network link (mean
   0.2), both shared by processor sharing, at 0.6 requests/s: the CPU is 60% busy, the network 48%.

SimPy has no processor-sharing resource, so the benchmark writes one the way a competent SimPy user would: a server
process that keeps the remaining work of its jobs, sleeps until the next completion, and is woken by an arrival
(an event it waits on together with the timeout), charging every job for the time elapsed. Arrivals and
completions use events and callbacks rather than one process per request where a request is a single job (M/M/1),
and one process per request for the DAG, where a process is the natural SimPy way to express fork and join.
Each side runs ``--repeat`` times, alternating, and its fastest run counts (machines here are noisy).
Reported: simulated requests per wall-clock second for each, and the ratio (targets: >= 3x on M/M/1-PS,
>= 5x on fork-join). The exit code is 1 only if a model is broken (mean latencies disagree by more than 10%).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import simpy
from harness import Verdicts

from simfleet.worker.des.engine import run_replication
from simfleet.worker.des.scenario import parse_scenario

EPS = 1e-9


class ProcessorSharing:
    """A processor-sharing server for SimPy: each of N jobs progresses at capacity / N."""

    def __init__(self, env: simpy.Environment, capacity: float) -> None:
        self.env = env
        self.capacity = capacity
        self.remaining: dict[simpy.Event, float] = {}
        self.last = 0.0
        self.wakeup = env.event()
        env.process(self._serve())

    def submit(self, work: float) -> simpy.Event:
        """Add a job; the returned event fires when its work is done."""
        self._charge()
        done = self.env.event()
        self.remaining[done] = work
        if not self.wakeup.triggered:
            self.wakeup.succeed()
        return done

    def _charge(self) -> None:
        now = self.env.now
        if self.remaining and now > self.last:
            served = (now - self.last) * self.capacity / len(self.remaining)
            for job in self.remaining:
                self.remaining[job] -= served
        self.last = now

    def _serve(self) -> Any:
        env = self.env
        while True:
            if not self.remaining:
                yield self.wakeup
                self.wakeup = env.event()
                continue
            shortest = min(self.remaining.values())
            delay = max(0.0, shortest * len(self.remaining) / self.capacity)
            yield env.timeout(delay) | self.wakeup
            if self.wakeup.triggered:
                self.wakeup = env.event()
            self._charge()
            # A job is done when what is left would take less than the clock can resolve at this time.
            resolution = EPS * max(1.0, env.now) * self.capacity / len(self.remaining)
            finished = [job for job, left in self.remaining.items() if left <= resolution]
            for job in finished:
                del self.remaining[job]
                job.succeed()


def simpy_mm1(requests: int, lam: float, mean_work: float, seed: int) -> tuple[int, float]:
    """M/M/1-PS in SimPy: (completed requests, mean latency)."""
    env = simpy.Environment()
    server = ProcessorSharing(env, 1.0)
    rng = random.Random(seed)
    latencies: list[float] = []

    def finished(arrival: float) -> Callable[[simpy.Event], None]:
        return lambda _: latencies.append(env.now - arrival)

    def source() -> Any:
        for _ in range(requests):
            yield env.timeout(rng.expovariate(lam))
            server.submit(rng.expovariate(1.0 / mean_work)).callbacks.append(finished(env.now))

    env.process(source())
    env.run()
    return len(latencies), sum(latencies) / len(latencies)


def simpy_fork_join(requests: int, lam: float, cpu_mean: float, net_mean: float, seed: int) -> tuple[int, float]:
    """A -> {B, C} -> D, each tool on a PS CPU and a PS network link: (completed, mean latency)."""
    env = simpy.Environment()
    cpu, net = ProcessorSharing(env, 1.0), ProcessorSharing(env, 1.0)
    rng = random.Random(seed)
    latencies: list[float] = []

    def tool() -> simpy.Event:
        return env.all_of([cpu.submit(rng.expovariate(1 / cpu_mean)), net.submit(rng.expovariate(1 / net_mean))])

    def request() -> Any:
        arrival = env.now
        yield tool()
        yield env.all_of([tool(), tool()])
        yield tool()
        latencies.append(env.now - arrival)

    def source() -> Any:
        for _ in range(requests):
            yield env.timeout(rng.expovariate(lam))
            env.process(request())

    env.process(source())
    env.run()
    return len(latencies), sum(latencies) / len(latencies)


def ours(scenario: dict[str, Any]) -> tuple[int, float, float]:
    """Our engine on a scenario: (completed, mean latency, wall seconds)."""
    started = time.perf_counter()
    summary = run_replication(parse_scenario(scenario, source="<benchmark>"), seed=1)
    wall = time.perf_counter() - started
    mean = summary.overall.mean_s
    return summary.overall.completed, float("nan") if mean is None else mean, wall


def mm1_scenario(requests: int, lam: float, mean_work: float) -> dict[str, Any]:
    return {
        "name": "mm1-ps",
        "horizon_s": requests / lam,
        "resources": {"cpu": {"capacity": 1.0}},
        "tools": {"job": {"work": {"cpu": {"dist": "exponential", "mean": mean_work}}}},
        "request_types": {"r": {"rate_per_min": lam * 60.0, "nodes": {"job": {"tool": "job"}}}},
    }


def fork_join_scenario(requests: int, lam: float, cpu_mean: float, net_mean: float) -> dict[str, Any]:
    work = {"cpu": {"dist": "exponential", "mean": cpu_mean}, "net": {"dist": "exponential", "mean": net_mean}}
    return {
        "name": "fork-join",
        "horizon_s": requests / lam,
        "resources": {"cpu": {"capacity": 1.0}, "net": {"capacity": 1.0}},
        "tools": {name: {"work": work} for name in "abcd"},
        "request_types": {
            "r": {
                "rate_per_min": lam * 60.0,
                "nodes": {
                    "a": {"tool": "a"},
                    "b": {"tool": "b", "after": ["a"]},
                    "c": {"tool": "c", "after": ["a"]},
                    "d": {"tool": "d", "after": ["b", "c"]},
                },
            }
        },
    }


def timed(run: Callable[[], tuple[int, float]]) -> tuple[int, float, float]:
    started = time.perf_counter()
    completed, mean = run()
    return completed, mean, time.perf_counter() - started


Run = tuple[int, float, float]


def best_of(repeat: int, ours_run: Callable[[], Run], peer_run: Callable[[], Run]) -> tuple[Run, Run]:
    """Alternate the two sides ``repeat`` times and keep each side's fastest run (machines here are noisy)."""
    best_ours: Run | None = None
    best_peer: Run | None = None
    for _ in range(repeat):
        peer = peer_run()
        mine = ours_run()
        if best_peer is None or peer[2] < best_peer[2]:
            best_peer = peer
        if best_ours is None or mine[2] < best_ours[2]:
            best_ours = mine
    assert best_ours is not None and best_peer is not None
    return best_ours, best_peer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mm1-requests", type=int, default=300_000)
    parser.add_argument("--forkjoin-requests", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, alternating; the fastest counts")
    args = parser.parse_args()

    rows = []
    lam, work = 0.8, 1.0
    o, s = best_of(
        args.repeat,
        lambda: ours(mm1_scenario(args.mm1_requests, lam, work)),
        lambda: timed(lambda: simpy_mm1(args.mm1_requests, lam, work, seed=1)),
    )
    rows.append(("M/M/1-PS rho=0.8", o[0] / o[2], s[0] / s[2], 3.0, o[1], s[1], 1 / (1 / work - lam)))

    lam, cpu_mean, net_mean = 0.6, 0.25, 0.2
    o, s = best_of(
        args.repeat,
        lambda: ours(fork_join_scenario(args.forkjoin_requests, lam, cpu_mean, net_mean)),
        lambda: timed(lambda: simpy_fork_join(args.forkjoin_requests, lam, cpu_mean, net_mean, seed=1)),
    )
    rows.append(("fork-join A->{B,C}->D", o[0] / o[2], s[0] / s[2], 5.0, o[1], s[1], float("nan")))

    print(f"{'workload':24}{'ours req/s':>14}{'SimPy req/s':>14}{'ratio':>8}{'target':>8}  "
          f"{'mean s ours':>12}{'mean s SimPy':>13}{'theory':>8}")  # fmt: skip
    for name, ours_rate, simpy_rate, target, ours_mean, simpy_mean, theory in rows:
        ratio = ours_rate / simpy_rate
        print(f"{name:24}{ours_rate:>14,.0f}{simpy_rate:>14,.0f}{ratio:>7.1f}x{target:>7.0f}x  "
              f"{ours_mean:>12.3f}{simpy_mean:>13.3f}{theory:>8.3f}")  # fmt: skip
    verdicts = Verdicts("bench_des_vs_simpy")
    for name, ours_rate, simpy_rate, target, ours_mean, simpy_mean, _ in rows:
        verdicts.check(f"{name}: simulated requests per wall second >= {target:.0f}x SimPy's",
                       f"{ours_rate:,.0f} req/s ({ours_rate / simpy_rate:.1f}x)", f"{simpy_rate:,.0f} req/s",
                       ours_rate >= target * simpy_rate)  # fmt: skip
        verdicts.check(f"{name}: mean latency within 10% of SimPy's (the models agree)", f"{ours_mean:.3f} s",
                       f"{simpy_mean:.3f} s", abs(ours_mean - simpy_mean) <= 0.1 * simpy_mean)  # fmt: skip
    return verdicts.exit_code()


if __name__ == "__main__":
    sys.exit(main())
