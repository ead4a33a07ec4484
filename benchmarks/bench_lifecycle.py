"""The lifecycle model's speed and memory, beside the reference project's figures and our own per-airframe oracle.

Run: ``.venv/bin/python benchmarks/bench_lifecycle.py [--big-aircraft 100000] [--big-days 3650] [--full-synth]
[--backends numpy,numba] [--repeat 3] [--no-cold-jit]``. Every figure is the best of ``--repeat`` runs (the backends
taking turns), on one core.

0. The numba backend's JIT: its first call in this process (numba's import, then the kernels loaded from numba's
   on-disk cache, or compiled when the cache is missing or stale) and a compile from scratch in a fresh process with
   an empty cache. Every later figure leaves it out: each backend runs once before anything is timed.
1. The reference fleet (279 airframes x 3,650 days, synthetic): load the inputs directory (Parquet), create, run,
   collect the full MP2 (1.02 M rows), against the reference project's ~22 s of GPU simulation plus ~5 s of host
   logging (target <= 1 s), per backend.
2. A large fleet (100,000 x 3,650) with aggregates only: agent-days per second (target >= 20 M on one core), the
   run's own working memory (tracemalloc, a separate run) and the process's peak resident memory, per backend. By
   default the synthetic inputs are made for one year and their plan and flights repeated over the horizon
   (``--full-synth`` generates all 365 M MP5 rows instead, which needs about 20 GiB); the simulation does the same
   work either way.
3. The straightforward per-airframe loop (tests/lifecycle/oracle.py) against each backend on the same fleets, as a
   speed ratio (target >= 100x), at the reference fleet's size and at a few thousand airframes: ``run_local`` with
   the full MP2 collected, environment building included, as the loop reads the inputs itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from harness import Verdicts

from simfleet.worker.lifecycle.backends import get_backend
from simfleet.worker.lifecycle.environment import Environment, build_environment
from simfleet.worker.lifecycle.inputs import load_inputs, write_inputs
from simfleet.worker.lifecycle.run import MemorySink, run_local
from simfleet.worker.lifecycle.synth import synthesize

# The per-airframe loop this benchmark compares with is the tests' oracle (tests/lifecycle/oracle.py): the checkout's
# root is put on the path for it alone (the package itself is installed as simfleet.*).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.lifecycle.oracle import oracle_run

REFERENCE_S = 22.0 + 5.0


def jit_first_call() -> tuple[float, str]:
    """Seconds of the numba backend's first run in this process, and whether its kernels came from the cache."""
    inputs = synthesize(5, 3, seed=1)
    started = time.perf_counter()
    run_local(inputs, backend="numba")
    elapsed = time.perf_counter() - started
    from simfleet.worker.lifecycle.backends.numba_kernels import simulate_days

    compiled = sum(simulate_days.stats.cache_misses.values())
    return elapsed, "compiled: no usable cache" if compiled else "loaded from numba's on-disk cache"


COLD_JIT = """
import time
started = time.perf_counter()
import numba
imported = time.perf_counter()
from simfleet.worker.lifecycle.run import run_local
from simfleet.worker.lifecycle.synth import synthesize
inputs = synthesize(5, 3, seed=1)
ready = time.perf_counter()
run_local(inputs, backend="numba")
print(imported - started, time.perf_counter() - ready)
"""


def jit_cold() -> tuple[float, float]:
    """Seconds to import numba and to compile the kernels from scratch, in a fresh process with an empty cache."""
    with tempfile.TemporaryDirectory() as cache:
        result = subprocess.run(
            [sys.executable, "-c", COLD_JIT],
            env={**os.environ, "NUMBA_CACHE_DIR": cache},
            capture_output=True,
            text=True,
            check=True,
        )
    import_s, compile_s = (float(word) for word in result.stdout.split())
    return import_s, compile_s


def reference_fleet(backends: list[str], repeat: int) -> dict[str, dict[str, float]]:
    """Per backend, the best run's timings (s) of load, create, run, collect and their total, and the MP2 rows."""
    best: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_inputs(synthesize(279, 3650, seed=1), Path(tmp), "parquet")
        for _ in range(repeat):
            for backend in backends:
                started = time.perf_counter()
                inputs = load_inputs(Path(tmp))
                load_s = time.perf_counter() - started
                sink = MemorySink()
                report = run_local(inputs, sink=sink, load_s=load_s, backend=backend)
                timings = dict(report.timings_s)
                timings["total"] = sum(report.timings_s.values())
                timings["rows"] = len(sink.table("mp2")["day"])
                del sink
                if timings["total"] < best.get(backend, {"total": float("inf")})["total"]:
                    best[backend] = timings
    return best


def large_environment(aircraft: int, days: int, full_synth: bool) -> Environment:
    """The large fleet's environment; unless ``full_synth``, one synthetic year repeated over ``days``."""
    if full_synth:
        return build_environment(synthesize(aircraft, days, seed=2))
    year = build_environment(synthesize(aircraft, 365, seed=2))
    rows = np.arange(days + 1) % 365
    return dataclasses.replace(year, days=days, targets=year.targets[rows], minutes=year.minutes[rows])


def large_fleet(env: Environment, backend: str, repeat: int) -> dict[str, float]:
    """Best run wall time, agent-days/s, environment size, the run's working-memory peak and the process peak."""
    wall = float("inf")
    for _ in range(repeat):
        sim = get_backend(backend)
        sim.build(env, log="aggregates")
        sim.create()
        started = time.perf_counter()
        sim.step(env.days)
        sim.read_chunk()
        wall = min(wall, time.perf_counter() - started)
    traced = get_backend(backend)
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


def oracle_ratio(aircraft: int, days: int, backends: list[str], repeat: int) -> tuple[float, dict[str, float]]:
    """Seconds of the per-airframe loop, and the best of each backend taking turns (full MP2 all)."""
    inputs = synthesize(aircraft, days, seed=3)
    started = time.perf_counter()
    oracle_run(inputs)
    loop_s = time.perf_counter() - started
    best = dict.fromkeys(backends, float("inf"))
    for _ in range(max(repeat, 5)):
        for backend in backends:
            started = time.perf_counter()
            run_local(inputs, sink=MemorySink(), backend=backend)
            best[backend] = min(best[backend], time.perf_counter() - started)
    return loop_s, best


def main() -> int:
    """Run the benchmarks and print their figures beside the targets and the reference."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big-aircraft", type=int, default=100_000)
    parser.add_argument("--big-days", type=int, default=3650)
    parser.add_argument("--full-synth", action="store_true", help="synthesize every day of the large fleet")
    parser.add_argument("--oracle-sizes", default="279x365,3000x60", help="fleets for the loop ratio, NxDAYS,...")
    parser.add_argument("--backends", default="numpy,numba", help="backends to time, in the order they take turns")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best counts")
    parser.add_argument("--cold-jit", action=argparse.BooleanOptionalAction, default=True,
                        help="also time numba's compile from scratch in a fresh process")  # fmt: skip
    args = parser.parse_args()
    backends = args.backends.split(",")
    repeat = max(1, args.repeat)
    verdicts = Verdicts("bench_lifecycle")

    if "numba" in backends:
        first_s, how = jit_first_call()
        cold = ""
        if args.cold_jit:
            import_s, compile_s = jit_cold()
            cold = f"; from scratch (fresh process, empty cache): import {import_s:.2f} s + compile {compile_s:.2f} s"
        print(f"numba JIT: first call in this process {first_s:.2f} s ({how}){cold}. Not in any figure below: "
              "every backend runs once before timing")  # fmt: skip
    for backend in backends:
        run_local(synthesize(5, 3, seed=1), backend=backend)

    reference = reference_fleet(backends, repeat)
    for backend, t in reference.items():
        total = t["total"]
        print(f"279 x 3650 (full MP2, {int(t['rows']):,} rows), {backend}: load {t['load']:.3f} s, create "
              f"{t['create']:.3f} s, run {t['run']:.3f} s, collect {t['collect']:.3f} s = {total:.3f} s")  # fmt: skip
        print(f"   reference project: {REFERENCE_S:.0f} s (22 s GPU simulation + 5 s logging): "
              f"{REFERENCE_S / total:.0f}x faster")  # fmt: skip
        verdicts.check(f"279 x 3650 with full MP2 logging, {backend}, <= 1 s", f"{total:.3f} s",
                       f"{REFERENCE_S:.0f} s (reference project)", total <= 1.0)  # fmt: skip

    env = large_environment(args.big_aircraft, args.big_days, args.full_synth)
    rates = {}
    for backend in backends:
        big = large_fleet(env, backend, repeat)
        rates[backend] = big["rate"]
        than = f", {big['rate'] / rates[backends[0]]:.1f}x {backends[0]}" if backend != backends[0] else ""
        print(f"{args.big_aircraft:,} x {args.big_days} (aggregates only), {backend}: {big['wall_s']:.2f} s, "
              f"{big['rate'] / 1e6:.0f} M agent-days/s{than}")  # fmt: skip
        verdicts.check(f"{args.big_aircraft:,} x {args.big_days} aggregates only, {backend}, >= 20 M agent-days/s",
                       f"{big['rate'] / 1e6:.0f} M agent-days/s", "-", big["rate"] >= 20e6)  # fmt: skip
        print(f"   memory: environment {big['env_gib']:.2f} GiB (MP5 as uint16 days x airframes), run working set "
              f"peak {big['run_mib']:.0f} MiB (does not grow with days), process peak so far "
              f"{big['process_gib']:.1f} GiB")  # fmt: skip

    for size in args.oracle_sizes.split(","):
        aircraft, days = (int(part) for part in size.split("x"))
        loop_s, best = oracle_ratio(aircraft, days, backends, repeat)
        for backend, seconds in best.items():
            verdicts.check(f"{aircraft:,} x {days}, {backend}: >= 100x the per-airframe loop",
                           f"{seconds:.4f} s ({loop_s / seconds:.0f}x)", f"{loop_s:.2f} s (per-airframe loop)",
                           loop_s >= 100 * seconds)  # fmt: skip
    return verdicts.exit_code()


if __name__ == "__main__":
    sys.exit(main())
