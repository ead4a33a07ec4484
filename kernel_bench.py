"""Speed of the compiled DES kernel against the Python engine (issue 16; to move into benchmarks/ once merged).

Run: ``.venv/bin/python kernel_bench.py [--mm1-requests N] [--forkjoin-requests N] [--repeat N]``.

Workloads are those of benchmarks/bench_des_vs_simpy.py: M/M/1 under processor sharing at rho = 0.8 (48 requests a
minute, exponential work of mean 1) and its fork-join A -> {B, C} -> D. Each engine runs the same replication
``--repeat`` times, alternating, and its fastest run counts; both summaries must be equal (wall clock aside).
Reported: requests simulated per wall second (construction, run and summary included), and the first-call compile
time of the kernel measured in a fresh process with an empty numba cache, beside the time to load it from the cache.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))

from bench_des_vs_simpy import fork_join_scenario, mm1_scenario

from simfleet.worker.des.compiled import CompiledSimulation
from simfleet.worker.des.engine import Simulation
from simfleet.worker.des.scenario import parse_scenario

FIRST_CALL = (
    "import time; t = time.perf_counter(); "
    "from simfleet.worker.des.compiled import CompiledSimulation; "
    "from simfleet.worker.des.scenario import parse_scenario; "
    "s = parse_scenario({'name': 'w', 'horizon_s': 10.0, 'resources': {'c': {'capacity': 1.0}}, "
    "'tools': {'j': {'work': {'c': 0.1}}}, "
    "'request_types': {'r': {'rate_per_min': 60, 'nodes': {'n': {'tool': 'j'}}}}}); "
    "CompiledSimulation(s, 1).run(); print(time.perf_counter() - t)"
)


def one_run(engine: Any, scenario: Any) -> tuple[float, Any]:
    """Wall seconds of one replication (built, run, summarised) and its summary."""
    started = time.perf_counter()
    sim = engine(scenario, 1, 0)
    sim.run()
    summary = sim.summary()
    return time.perf_counter() - started, summary


def first_call_s(cache_dir: str) -> float:
    """Seconds from import to the end of a tiny run, in a fresh process whose numba cache is ``cache_dir``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def main() -> int:
    """Print the table; 1 when an engine's summary differs from the other's."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mm1-requests", type=int, default=300_000)
    parser.add_argument("--forkjoin-requests", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        compile_s, load_s = first_call_s(cache), first_call_s(cache)
    print(f"kernel first call: {compile_s:.1f} s compiling into an empty cache, {load_s:.2f} s loading from it")
    CompiledSimulation(parse_scenario(mm1_scenario(100, 0.8, 1.0)), 1).run()  # this process's cache load
    workloads = [
        ("M/M/1-PS rho=0.8", mm1_scenario(args.mm1_requests, 0.8, 1.0)),
        ("fork-join A->{B,C}->D", fork_join_scenario(args.forkjoin_requests, 0.6, 0.25, 0.2)),
    ]
    failed = False
    print(f"{'workload':24}{'python req/s':>14}{'compiled req/s':>16}{'ratio':>8}  equal")
    for name, data in workloads:
        scenario = parse_scenario(data, source="<kernel_bench>")
        best = {Simulation: float("inf"), CompiledSimulation: float("inf")}
        summaries = {}
        for _ in range(args.repeat):
            for engine in best:
                wall, summaries[engine] = one_run(engine, scenario)
                best[engine] = min(best[engine], wall)
        plain = [
            msgspec.to_builtins(msgspec.structs.replace(s, wall_s=0.0, events_per_s=0.0)) for s in summaries.values()
        ]
        requests = summaries[Simulation].overall.completed
        python_rate, compiled_rate = requests / best[Simulation], requests / best[CompiledSimulation]
        print(
            f"{name:24}{python_rate:>14,.0f}{compiled_rate:>16,.0f}{compiled_rate / python_rate:>7.1f}x  "
            f"{plain[0] == plain[1]}"
        )
        failed = failed or plain[0] != plain[1]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
