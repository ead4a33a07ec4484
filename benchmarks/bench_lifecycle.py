"""The lifecycle model's speed and memory, beside the reference project's figures and our own per-airframe oracle.

Run: ``.venv/bin/python benchmarks/bench_lifecycle.py [--big-aircraft 100000] [--big-days 3650]``.

1. The reference fleet (279 airframes x 3,650 days, synthetic): load the inputs directory (Parquet), create, run,
   collect the full MP2 (1.02 M rows) on one core, against the reference project's ~22 s of GPU simulation plus
   ~5 s of host logging (target <= 1 s).
2. A large fleet (100,000 x 3,650) with aggregates only: agent-days per second (target >= 20 M on one core) and the
   process's peak resident memory.
3. The straightforward per-airframe loop (tests/lifecycle/oracle.py) against the numpy backend on the same small
   fleet, as a speed ratio (target >= 100x).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lifecycle.oracle import oracle_run  # noqa: E402
from worker.lifecycle.backends import get_backend  # noqa: E402
from worker.lifecycle.environment import build_environment  # noqa: E402
from worker.lifecycle.inputs import load_inputs, write_inputs  # noqa: E402
from worker.lifecycle.run import MemorySink, run_local  # noqa: E402
from worker.lifecycle.synth import synthesize  # noqa: E402

REFERENCE_S = 22.0 + 5.0


def reference_fleet() -> dict[str, float]:
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


def large_fleet(aircraft: int, days: int) -> tuple[float, float, float, float, float]:
    """(run wall s, agent-days/s, environment GiB, run working-memory peak GiB, process peak GiB)."""
    inputs = synthesize(aircraft, days, seed=2)
    env = build_environment(inputs)
    del inputs
    env_gib = sum(getattr(env, f).nbytes for f in env.__dataclass_fields__ if hasattr(getattr(env, f), "nbytes"))
    sim = get_backend()
    sim.build(env, log="aggregates")
    sim.create()
    tracemalloc.start()
    started = time.perf_counter()
    sim.step(days)
    sim.read_chunk()
    wall = time.perf_counter() - started
    _, run_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return wall, aircraft * days / wall, env_gib / 2**30, run_peak / 2**30, process_peak


def oracle_ratio(aircraft: int, days: int) -> tuple[float, float]:
    inputs = synthesize(aircraft, days, seed=3)
    started = time.perf_counter()
    oracle_run(inputs)
    loop_s = time.perf_counter() - started
    started = time.perf_counter()
    run_local(inputs, sink=MemorySink())
    ours_s = time.perf_counter() - started
    return loop_s, ours_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big-aircraft", type=int, default=100_000)
    parser.add_argument("--big-days", type=int, default=3650)
    parser.add_argument("--oracle-aircraft", type=int, default=279)
    parser.add_argument("--oracle-days", type=int, default=365)
    args = parser.parse_args()

    t = reference_fleet()
    total = t["total"]
    print(f"279 x 3650 (full MP2, {int(t['rows']):,} rows): load {t['load']:.3f} s, create {t['create']:.3f} s, "
          f"run {t['run']:.3f} s, collect {t['collect']:.3f} s = {total:.3f} s")  # fmt: skip
    print(f"   reference project: {REFERENCE_S:.0f} s (22 s GPU simulation + 5 s logging): {REFERENCE_S / total:.0f}x "
          f"faster; target <= 1 s: {'PASS' if total <= 1.0 else 'ABOVE'}")  # fmt: skip

    wall, rate, env_gib, run_gib, process_gib = large_fleet(args.big_aircraft, args.big_days)
    print(f"{args.big_aircraft:,} x {args.big_days} (aggregates only): {wall:.1f} s, {rate / 1e6:.1f} M agent-days/s "
          f"(target >= 20 M: {'PASS' if rate >= 20e6 else 'BELOW'})")  # fmt: skip
    print(f"   memory: environment {env_gib:.2f} GiB (MP5 as uint16 days x airframes), run working set peak "
          f"{run_gib * 1024:.0f} MiB (does not grow with days), process peak {process_gib:.1f} GiB "
          f"(mostly generating the synthetic MP5 of {args.big_aircraft * (args.big_days + 1):,} rows)")  # fmt: skip

    loop_s, ours_s = oracle_ratio(args.oracle_aircraft, args.oracle_days)
    ratio = loop_s / ours_s
    print(f"{args.oracle_aircraft} x {args.oracle_days}: per-airframe loop {loop_s:.2f} s, numpy backend "
          f"{ours_s:.3f} s: {ratio:.0f}x (target >= 100x: {'PASS' if ratio >= 100 else 'BELOW'})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
