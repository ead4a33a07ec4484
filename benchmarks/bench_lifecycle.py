"""The lifecycle model's speed and memory, beside the reference project's figures and our own per-airframe oracle.

Run: ``.venv/bin/python benchmarks/bench_lifecycle.py [--big-aircraft 100000] [--big-days 3650] [--full-synth]``.

1. The reference fleet (279 airframes x 3,650 days, synthetic): load the inputs directory (Parquet), create, run,
   collect the full MP2 (1.02 M rows) on one core, against the reference project's ~22 s of GPU simulation plus
   ~5 s of host logging (target <= 1 s).
2. A large fleet (100,000 x 3,650) with aggregates only: agent-days per second (target >= 20 M on one core), the
   run's own working memory (tracemalloc, a separate run) and the process's peak resident memory. By default the
   synthetic inputs are made for one year and their plan and flights repeated over the horizon (``--full-synth``
   generates all 365 M MP5 rows instead, which needs about 20 GiB); the simulation does the same work either way.
3. The straightforward per-airframe loop (tests/lifecycle/oracle.py) against the numpy backend on the same fleets,
   as a speed ratio (target >= 100x), at the reference fleet's size and at a few thousand airframes.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lifecycle.oracle import oracle_run  # noqa: E402
from worker.lifecycle.backends import get_backend  # noqa: E402
from worker.lifecycle.environment import Environment, build_environment  # noqa: E402
from worker.lifecycle.inputs import load_inputs, write_inputs  # noqa: E402
from worker.lifecycle.run import MemorySink, run_local  # noqa: E402
from worker.lifecycle.synth import synthesize  # noqa: E402

REFERENCE_S = 22.0 + 5.0


def reference_fleet() -> dict[str, float]:
    """Timings (s) of load, create, run, collect and their total, and the MP2 row count."""
    with tempfile.TemporaryDirectory() as tmp:
        write_inputs(synthesize(279, 3650, seed=1), Path(tmp), "parquet")
        started = time.perf_counter()
        inputs = load_inputs(Path(tmp))
        load_s = time.perf_counter() - started
        sink = MemorySink()
        report = run_local(inputs, sink=sink, load_s=load_s)
        rows = len(sink.table("mp2")["day"])
    timings = dict(report.timings_s)
    timings["total"] = sum(report.timings_s.values())
    timings["rows"] = rows
    return timings


def large_environment(aircraft: int, days: int, full_synth: bool) -> Environment:
    """The large fleet's environment; unless ``full_synth``, one synthetic year repeated over ``days``."""
    if full_synth:
        return build_environment(synthesize(aircraft, days, seed=2))
    year = build_environment(synthesize(aircraft, 365, seed=2))
    rows = np.arange(days + 1) % 365
    return dataclasses.replace(year, days=days, targets=year.targets[rows], minutes=year.minutes[rows])


def large_fleet(env: Environment) -> dict[str, float]:
    """Run wall time, agent-days/s, environment size, the run's working-memory peak and the process peak."""
    sim = get_backend()
    sim.build(env, log="aggregates")
    sim.create()
    started = time.perf_counter()
    sim.step(env.days)
    sim.read_chunk()
    wall = time.perf_counter() - started
    traced = get_backend()
    traced.build(env, log="aggregates")
    traced.create()
    tracemalloc.start()
    traced.step(min(env.days, 730))
    traced.read_chunk()
    _, run_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    arrays = [getattr(env, f.name) for f in dataclasses.fields(env)]
    env_bytes = sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))
    return {
        "wall_s": wall,
        "rate": env.n * env.days / wall,
        "env_gib": env_bytes / 2**30,
        "run_mib": run_peak / 2**20,
        "process_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def oracle_ratio(aircraft: int, days: int) -> tuple[float, float]:
    """Seconds of the per-airframe loop and of the numpy backend (full MP2 both) on one synthetic fleet."""
    inputs = synthesize(aircraft, days, seed=3)
    started = time.perf_counter()
    oracle_run(inputs)
    loop_s = time.perf_counter() - started
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        run_local(inputs, sink=MemorySink())
        best = min(best, time.perf_counter() - started)
    return loop_s, best


def verdict(ok: bool, passed: str = "PASS", failed: str = "NOT MET") -> str:
    """How a figure stands against its target."""
    return passed if ok else failed


def main() -> int:
    """Run the three benchmarks and print their figures beside the targets and the reference."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big-aircraft", type=int, default=100_000)
    parser.add_argument("--big-days", type=int, default=3650)
    parser.add_argument("--full-synth", action="store_true", help="synthesize every day of the large fleet")
    parser.add_argument("--oracle-sizes", default="279x365,3000x60", help="fleets for the loop ratio, NxDAYS,...")
    args = parser.parse_args()

    t = reference_fleet()
    total = t["total"]
    print(f"279 x 3650 (full MP2, {int(t['rows']):,} rows): load {t['load']:.3f} s, create {t['create']:.3f} s, "
          f"run {t['run']:.3f} s, collect {t['collect']:.3f} s = {total:.3f} s")  # fmt: skip
    print(f"   reference project: {REFERENCE_S:.0f} s (22 s GPU simulation + 5 s logging): {REFERENCE_S / total:.0f}x "
          f"faster; target <= 1 s: {verdict(total <= 1.0)}")  # fmt: skip

    big = large_fleet(large_environment(args.big_aircraft, args.big_days, args.full_synth))
    print(f"{args.big_aircraft:,} x {args.big_days} (aggregates only): {big['wall_s']:.2f} s, "
          f"{big['rate'] / 1e6:.0f} M agent-days/s (target >= 20 M: {verdict(big['rate'] >= 20e6)})")  # fmt: skip
    print(f"   memory: environment {big['env_gib']:.2f} GiB (MP5 as uint16 days x airframes), run working set peak "
          f"{big['run_mib']:.0f} MiB (does not grow with days), process peak {big['process_gib']:.1f} GiB")  # fmt: skip

    for size in args.oracle_sizes.split(","):
        aircraft, days = (int(part) for part in size.split("x"))
        loop_s, ours_s = oracle_ratio(aircraft, days)
        ratio = loop_s / ours_s
        print(f"{aircraft:,} x {days}: per-airframe loop {loop_s:.2f} s, numpy backend {ours_s:.4f} s: {ratio:.0f}x "
              f"(target >= 100x: {verdict(ratio >= 100)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
