"""How fast the fleet recovers work from a dead worker and from a Redis restart, with the shipped settings.

Run: ``.venv/bin/python benchmarks/bench_recovery.py [--aircraft 4000] [--days 2190]``.

With the settings of config/fleet.yaml (heartbeat every 2 s, taken for dead after 10 s, a watchdog sweep every 5 s):

- **GPU owner killed**: two GPU workers; a lifecycle job runs on one; the whole owner is killed with SIGKILL mid-run.
  Measured: from the kill to the other worker holding the job (the watchdog bumped the epoch, published the due stage
  again, the other worker claimed it), and to the job's end.
- **CPU worker killed**: two CPU workers (one process each); a study of 4 long replications; one whole worker is
  killed while it runs a replication. Measured: from the kill to that replication running on the other worker.
- **Redis killed and restarted**: Redis is killed with SIGKILL in the middle of a job, started again from its
  append-only file 5 s later. Measured: from the restart to the job's next recorded progress.

The peer is what a Celery + Redis fleet does without our records and watchdog: a message that a dead worker had taken
is given to another worker when the broker's visibility timeout expires (``visibility_timeout_s``, 12 h as shipped,
and it must exceed the longest task). Targets: a dead worker's work moves within ``heartbeat_ttl_s`` +
``watchdog_interval_s`` + 5 s (restoring included); the job moves on within 15 s of Redis' restart.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from harness import BenchFleet, Verdicts

from simfleet.shared.settings import load_settings
from simfleet.shared.studies import RUNNING_KEY
from simfleet.worker.des.scenario import load_scenario, parse_scenario
from simfleet.worker.lifecycle.inputs import write_inputs
from simfleet.worker.lifecycle.synth import synthesize

SHIPPED = load_settings("config/fleet.yaml", env={})


def until(condition: Callable[[], object], what: str, timeout_s: float = 300.0, poll_s: float = 0.02) -> float:
    """Wait for ``condition``; return when it held (monotonic seconds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return time.monotonic()
        except Exception:  # Redis restarting: look again
            pass
        time.sleep(poll_s)
    raise TimeoutError(f"timed out waiting for {what}")


def gpu_owner_killed(args: argparse.Namespace) -> dict[str, float]:
    with BenchFleet() as bench:
        first, second = bench.worker("gpu"), bench.worker("gpu")
        inputs = bench.tmp / "inputs"
        write_inputs(synthesize(args.aircraft, args.days, seed=3), inputs, "parquet")
        job = bench.fleet.run_lifecycle(inputs=inputs, chunk_days=365, sink="none")
        until(lambda: job.record().seq >= 3, "the second execute stage")
        owner = job.record().owner
        bench.kill_worker(owner)
        killed = time.monotonic()
        other = second if owner == first else first
        moved = until(lambda: job.record().owner == other, "the other worker to hold the job")
        summary = job.wait(timeout=600)
        done = time.monotonic()
        assert summary.worker == other and summary.epoch == 1
        return {"handed_on_s": moved - killed, "finished_after_kill_s": done - killed}


def cpu_worker_killed(args: argparse.Namespace) -> dict[str, float]:
    data = load_scenario("config/scenarios/mixed_workload.yaml").to_dict()
    scenario = parse_scenario({**data, "horizon_s": 20_000, "name": "mixed-long"})
    with BenchFleet() as bench:
        first, second = bench.worker("cpu"), bench.worker("cpu")
        study = bench.fleet.run_des(scenario, replications=4, seed=9)
        until(lambda: len(study.progress().running) == 2, "two replications running")
        active = bench.fleet.app.control.inspect(destination=[first], timeout=2).active()[first]
        victim = active[0]["id"]
        bench.kill_worker(first)
        killed = time.monotonic()
        running_on = RUNNING_KEY.format(second)
        moved = until(lambda: bench.fleet.redis.hexists(running_on, victim) or bench.fleet.task_meta(victim)["status"]
                      == "SUCCESS", "the replication to run on the other worker")  # fmt: skip
        study.wait(timeout=900)
        return {"replication_moved_s": moved - killed}


def redis_restarted(args: argparse.Namespace) -> dict[str, float]:
    with BenchFleet() as bench:
        bench.worker("gpu")
        inputs = bench.tmp / "inputs"
        write_inputs(synthesize(args.aircraft, args.days, seed=3), inputs, "parquet")
        job = bench.fleet.run_lifecycle(inputs=inputs, chunk_days=365, sink="none")
        until(lambda: job.record().seq >= 3, "the second execute stage")
        day = job.record().day
        bench.kill_redis()
        time.sleep(5.0)
        bench.start_redis()
        restarted = time.monotonic()
        moved = until(lambda: job.record().day > day or job.record().state == "done", "the job to move on")
        job.wait(timeout=600)
        return {"moved_on_after_restart_s": moved - restarted}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aircraft", type=int, default=4000)
    parser.add_argument("--days", type=int, default=2190)
    args = parser.parse_args()
    gpu = SHIPPED.gpu_worker
    bound = gpu.heartbeat_ttl_s + gpu.watchdog_interval_s + 5.0
    peer = SHIPPED.visibility_timeout_s
    owner, cpu, outage = gpu_owner_killed(args), cpu_worker_killed(args), redis_restarted(args)
    rows = [
        ("GPU owner killed: job held by another worker", owner["handed_on_s"], bound),
        ("CPU worker killed: replication running again", cpu["replication_moved_s"], bound),
        ("Redis restarted: job moves on", outage["moved_on_after_restart_s"], 15.0),
    ]
    print(f"settings: heartbeat every {gpu.heartbeat_interval_s:g} s, dead after {gpu.heartbeat_ttl_s:g} s, "
          f"sweep every {gpu.watchdog_interval_s:g} s; peer: the broker's visibility timeout, {peer:,} s")  # fmt: skip
    print(f"GPU owner killed: the job finished {owner['finished_after_kill_s']:.1f} s after the kill "
          f"({args.aircraft:,} airframes x {args.days:,} days)")  # fmt: skip
    verdicts = Verdicts("bench_recovery")
    for label, ours, target in rows:
        peer_text = f"{peer:,} s (visibility timeout)" if "killed" in label else "-"
        verdicts.check(f"{label} within {target:.1f} s", f"{ours:.1f} s", peer_text, ours <= target)
    return verdicts.exit_code()


if __name__ == "__main__":
    sys.exit(main())
