"""The compiled DES kernel against the Python engine, SimPy and a bare Python loop, in one process run (issue 16).

Run: ``.venv/bin/python benchmarks/bench_des_kernel.py [--requests N] [--repeat N] [--mixed-horizon-s S]
[--no-compile-time]``.

Sides (each run ``--repeat`` times, alternating, its fastest run counts: the machines here are noisy):

- kernel: :class:`~simfleet.worker.des.compiled.CompiledSimulation` (built, run, summarised);
- engine: the Python engine :class:`~simfleet.worker.des.engine.Simulation`, the same way;
- SimPy: with :class:`des_peers.VirtualTimePS`, a processor-sharing server by virtual time (O(log n) an event);
- loop: :func:`des_peers.loop_mm1` / :func:`des_peers.loop_fork_join`, a hand-written heapq event loop.

The peers keep only each request's latency (their mean and its standard error); the engines build the whole
summary (latency sketches, utilisation and queue integrals, per-node figures), which is part of their time.

Workloads: M/M/1 under processor sharing at rho = 0.8 (0.8 requests/s, exponential work of mean 1; theory: mean
latency 1 / (mu - lambda) = 5 s) and the fork-join DAG A -> {B, C} -> D (CPU work of mean 0.25 and network work of
mean 0.2 on every tool, 0.6 requests/s: the CPU is 60% busy), ``--requests`` each (500,000 by default); then
config/scenarios/mixed_workload.yaml with its horizon extended to ``--mixed-horizon-s``, kernel against engine only.

Checks, each a verdict (exit status 1 when one is missed):

- the kernel's summary equals the engine's, field for field (same scenario, seed and replication; wall_s and
  events_per_s aside);
- the mean latencies agree: SimPy and the loop draw from Python's ``random``, the engines from numpy, so they are
  independent runs of one model and their means may differ by chance. The standard error of a mean comes from batch
  means over the peer's latencies (:func:`des_peers.batch_se`); two means agree when they are within
  ``Z`` (= 4) standard errors of their difference, and the M/M/1 means are within ``Z`` standard errors of theory;
- speed: the kernel simulates at least 20x the requests per wall second of SimPy and 3x those of the loop on both
  workloads, and 10x those of the engine on the mixed workload.

The kernel's compile time is measured first, in fresh processes: into an empty numba cache (``NUMBA_CACHE_DIR`` set
to a temporary folder), then loading from that cache. This process then loads (or compiles) the kernel from its own
cache before any timing, so neither is in the figures.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import des_peers
import msgspec
import yaml
from harness import Verdicts

from simfleet.worker.des.compiled import CompiledSimulation, warm
from simfleet.worker.des.engine import Simulation
from simfleet.worker.des.scenario import Scenario, parse_scenario

MIXED = Path(__file__).resolve().parent.parent / "config" / "scenarios" / "mixed_workload.yaml"
Z = 4.0
"""Standard errors within which two independent means (or a mean and theory) are taken to agree."""
SPEED_TARGETS = {"SimPy": 20.0, "loop": 3.0}
"""Kernel / side, in requests per wall second, on M/M/1-PS and fork-join."""
MIXED_TARGET = 10.0
"""Kernel / engine on the mixed workload."""

FIRST_CALL = (
    "import time; started = time.perf_counter(); "
    "from simfleet.worker.des.compiled import warm; imported = time.perf_counter() - started; "
    "print(imported, warm())"
)


@dataclass
class Side:
    """One side of one workload: its fastest run, and what it computed."""

    name: str
    run: Callable[[], tuple[int, float, float, Any]]
    """Returns (completed requests, mean latency s, standard error s or nan, summary or None)."""
    wall_s: float = math.inf
    completed: int = 0
    mean_s: float = math.nan
    se_s: float = math.nan
    summary: Any = field(default=None, repr=False)

    @property
    def rate(self) -> float:
        """Requests simulated per wall second in the fastest run."""
        return self.completed / self.wall_s

    def measure(self) -> None:
        """Run once; keep the run if it is the fastest so far (every run computes the same figures)."""
        started = time.perf_counter()
        completed, mean_s, se_s, summary = self.run()
        wall_s = time.perf_counter() - started
        if wall_s < self.wall_s:
            self.wall_s, self.completed, self.mean_s, self.se_s, self.summary = wall_s, completed, mean_s, se_s, summary


def engine_run(engine: Any, scenario: Scenario, seed: int) -> Callable[[], tuple[int, float, float, Any]]:
    """One replication of ``engine`` (built, run, summarised), replication 0 of ``seed``."""

    def run() -> tuple[int, float, float, Any]:
        sim = engine(scenario, seed, 0)
        sim.run()
        summary = sim.summary()
        mean = summary.overall.mean_s
        return summary.overall.completed, math.nan if mean is None else mean, math.nan, summary

    return run


def peer_run(peer: Callable[..., des_peers.Result], *args: Any) -> Callable[[], tuple[int, float, float, Any]]:
    def run() -> tuple[int, float, float, Any]:
        completed, mean_s, se_s = peer(*args)
        return completed, mean_s, se_s, None

    return run


def best_of(repeat: int, sides: list[Side]) -> None:
    """Run every side ``repeat`` times, one after the other in turn."""
    for _ in range(repeat):
        for side in sides:
            side.measure()


def comparable(summary: Any) -> Any:
    """A summary as plain data, without the two figures that depend on the machine (wall_s, events_per_s)."""
    return msgspec.to_builtins(msgspec.structs.replace(summary, wall_s=0.0, events_per_s=0.0))


def first_call(cache_dir: str) -> tuple[float, float]:
    """(import s, kernel ready s) in a fresh process whose numba cache is ``cache_dir``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, check=True, capture_output=True, text=True)
    imported, ready = out.stdout.split()
    return float(imported), float(ready)


def mixed_scenario(horizon_s: float) -> tuple[Scenario, int]:
    """config/scenarios/mixed_workload.yaml with ``horizon_s``, and its seed."""
    data = yaml.safe_load(MIXED.read_text())
    data["horizon_s"] = horizon_s
    return parse_scenario(data, source=str(MIXED), base_dir=MIXED.parent), int(data["seed"])


def print_table(title: str, sides: list[Side], theory_s: float | None) -> None:
    kernel = sides[0]
    print(f"\n{title}" + (f" (theory: mean latency {theory_s:.3f} s)" if theory_s is not None else ""))
    print(f"{'side':8}{'requests':>10}{'best wall s':>12}{'req/s':>12}{'kernel x':>10}{'mean s':>10}{'+- SE s':>9}")
    for side in sides:
        se = "" if math.isnan(side.se_s) else f"{side.se_s:.4f}"
        print(f"{side.name:8}{side.completed:>10,}{side.wall_s:>12.3f}{side.rate:>12,.0f}"
              f"{kernel.rate / side.rate:>9.1f}x{side.mean_s:>10.4f}{se:>9}")  # fmt: skip


def check_agreement(verdicts: Verdicts, title: str, sides: list[Side], theory_s: float | None) -> None:
    """The kernel equals the engine exactly; every side's mean agrees with the kernel's (and with theory)."""
    kernel, engine = sides[0], sides[1]
    verdicts.check(f"{title}: kernel summary == Python engine summary (every field)",
                   f"mean {kernel.mean_s:.6f} s", f"mean {engine.mean_s:.6f} s",
                   comparable(kernel.summary) == comparable(engine.summary))  # fmt: skip
    peers = [side for side in sides if not math.isnan(side.se_s)]
    if not peers:
        return
    se = max(side.se_s for side in peers)  # the same model and length: one standard error for every side's mean
    for side in peers:
        tolerance = Z * math.sqrt(2.0) * se
        verdicts.check(f"{title}: {side.name} mean within {Z:.0f} SE of the kernel's (|diff| <= {tolerance:.4f} s, "
                       f"{tolerance / kernel.mean_s:.1%})", f"{kernel.mean_s:.4f} s", f"{side.mean_s:.4f} s",
                       abs(side.mean_s - kernel.mean_s) <= tolerance)  # fmt: skip
    if theory_s is not None:
        for side in [kernel, *peers]:
            tolerance = Z * se
            verdicts.check(f"{title}: {side.name} mean within {Z:.0f} SE of theory (|diff| <= {tolerance:.4f} s, "
                           f"{tolerance / theory_s:.1%})", f"{side.mean_s:.4f} s", f"theory {theory_s:.4f} s",
                           abs(side.mean_s - theory_s) <= tolerance)  # fmt: skip


def check_speed(verdicts: Verdicts, title: str, kernel: Side, side: Side, target: float) -> None:
    ratio = kernel.rate / side.rate
    verdicts.check(f"{title}: kernel requests per wall second >= {target:.0f}x {side.name}'s",
                   f"{kernel.rate:,.0f} req/s ({ratio:.1f}x)", f"{side.rate:,.0f} req/s",
                   ratio >= target)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500_000, help="requests per workload (M/M/1, fork-join)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, alternating; the fastest counts")
    parser.add_argument(
        "--mixed-horizon-s",
        type=float,
        default=72_000.0,
        help="seconds of arrivals of the mixed workload (its file says 1800; 20 h is ~120k requests)",
    )
    parser.add_argument("--no-compile-time", action="store_true", help="skip the first-call compile measurement")
    args = parser.parse_args()
    started = time.perf_counter()
    verdicts = Verdicts("bench_des_kernel")

    if not args.no_compile_time:
        with tempfile.TemporaryDirectory(prefix="simfleet-numba-") as cache:
            compile_import_s, compile_s = first_call(cache)
            load_import_s, load_s = first_call(cache)
        print(f"kernel first call in a fresh process: {compile_s:.1f} s compiling into an empty numba cache, "
              f"{load_s:.2f} s loading from that cache (imports before it: {compile_import_s:.2f} s and "
              f"{load_import_s:.2f} s); kept out of the figures below")  # fmt: skip
    print(f"this process: kernel ready in {warm():.2f} s (numba's cache here), before any timing", flush=True)

    requests, repeat = args.requests, args.repeat
    lam, work = 0.8, 1.0
    mm1 = parse_scenario(des_peers.mm1_scenario(requests, lam, work), source="<bench_des_kernel: M/M/1-PS>")
    lam_fj, cpu_mean, net_mean = 0.6, 0.25, 0.2
    fork_join = parse_scenario(des_peers.fork_join_scenario(requests, lam_fj, cpu_mean, net_mean),
                               source="<bench_des_kernel: fork-join>")  # fmt: skip
    workloads: list[tuple[str, list[Side], float | None]] = [
        ("M/M/1-PS rho=0.8", [
            Side("kernel", engine_run(CompiledSimulation, mm1, 1)),
            Side("engine", engine_run(Simulation, mm1, 1)),
            Side("SimPy", peer_run(des_peers.simpy_mm1, requests, lam, work, 1)),
            Side("loop", peer_run(des_peers.loop_mm1, requests, lam, work, 1)),
        ], 1.0 / (1.0 / work - lam)),
        ("fork-join A->{B,C}->D", [
            Side("kernel", engine_run(CompiledSimulation, fork_join, 1)),
            Side("engine", engine_run(Simulation, fork_join, 1)),
            Side("SimPy", peer_run(des_peers.simpy_fork_join, requests, lam_fj, cpu_mean, net_mean, 1)),
            Side("loop", peer_run(des_peers.loop_fork_join, requests, lam_fj, cpu_mean, net_mean, 1)),
        ], None),
    ]  # fmt: skip
    mixed, seed = mixed_scenario(args.mixed_horizon_s)
    mixed_title = f"mixed_workload.yaml, horizon {args.mixed_horizon_s:,.0f} s"
    mixed_sides = [Side("kernel", engine_run(CompiledSimulation, mixed, seed)),
                   Side("engine", engine_run(Simulation, mixed, seed))]  # fmt: skip

    for title, sides, theory_s in workloads:
        best_of(repeat, sides)
        print_table(title, sides, theory_s)
        check_agreement(verdicts, title, sides, theory_s)
        for side in sides[2:]:
            check_speed(verdicts, title, sides[0], side, SPEED_TARGETS[side.name])
    best_of(repeat, mixed_sides)
    print_table(mixed_title, mixed_sides, None)
    check_agreement(verdicts, "mixed workload", mixed_sides, None)
    check_speed(verdicts, "mixed workload", mixed_sides[0], mixed_sides[1], MIXED_TARGET)

    code = verdicts.exit_code()
    compile_note = "skipped" if args.no_compile_time else "included"
    print(f"\nbench_des_kernel took {time.perf_counter() - started:.0f} s (best of {repeat}, {requests:,} requests "
          f"per workload, compile measurement {compile_note})")  # fmt: skip
    return code


if __name__ == "__main__":
    sys.exit(main())
