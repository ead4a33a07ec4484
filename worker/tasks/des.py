"""``des.run`` (one replication) and ``des.aggregate`` (the chord callback of a study).

A replication is a pure function of (scenario, seed, replication index), so the task is idempotent: when its pool
process dies the message is redelivered (late ack, reject on worker lost) and running it again gives the same
summary. The simulation advances in slices of simulated time; between slices the task reports PROGRESS (at most
once per ``progress_interval_s``) and checks the process's resident memory against the per-replication limit.
"""

from __future__ import annotations

import time
from typing import Any

import psutil
from celery import Task, shared_task
from celery.utils.log import get_task_logger

from shared.errors import SimfleetError
from worker.des.aggregate import aggregate
from worker.des.engine import Simulation
from worker.des.scenario import parse_scenario
from worker.runtime import worker_settings

logger = get_task_logger(__name__)
SLICES = 50


class MemoryLimitExceeded(SimfleetError):
    """A replication grew past the per-replication memory limit of the CPU worker role."""


@shared_task(name="des.run", bind=True, acks_late=True, reject_on_worker_lost=True)
def des_run(self: Task, scenario: dict[str, Any], seed: int, replication: int, study_id: str = "") -> dict[str, Any]:
    """Run replication ``replication`` of ``scenario`` with ``seed`` and return its summary."""
    settings = worker_settings().cpu_worker
    parsed = parse_scenario(scenario, source=f"study {study_id or '-'}")
    sim = Simulation(parsed, seed, replication)
    limit_bytes = settings.max_memory_per_replication_mb * 2**20
    process = psutil.Process()
    step = parsed.horizon_s / SLICES
    until = step
    last_report = time.monotonic()
    logger.info("replication %d of %s started (study %s)", replication, parsed.name, study_id or "-")
    while not sim.run(until_s=until):
        until += step
        rss = process.memory_info().rss
        if rss > limit_bytes:
            raise MemoryLimitExceeded(
                f"replication {replication} of scenario {parsed.name!r} uses {rss / 2**20:.0f} MiB, above the "
                f"limit of {settings.max_memory_per_replication_mb} MiB (cpu_worker.max_memory_per_replication_mb)"
            )
        now = time.monotonic()
        if now - last_report >= settings.progress_interval_s:
            last_report = now
            self.update_state(
                state="PROGRESS",
                meta={
                    "study_id": study_id,
                    "replication": replication,
                    "sim_time_s": sim.now,
                    "horizon_s": parsed.horizon_s,
                    "percent": min(100.0, 100.0 * sim.now / parsed.horizon_s),
                    "events": sim.events,
                    "events_per_s": sim.events / sim.wall_s if sim.wall_s else 0.0,
                    "in_flight": sim.n_sys,
                },
            )
    summary = sim.summary()
    logger.info(
        "replication %d of %s done: %d events in %.2f s", replication, parsed.name, summary["events"], summary["wall_s"]
    )
    return summary


@shared_task(name="des.aggregate", acks_late=True, reject_on_worker_lost=True)
def des_aggregate(summaries: list[dict[str, Any]], study_id: str = "") -> dict[str, Any]:
    """Merge a study's replication summaries exactly as the local runner does."""
    result = aggregate(summaries)
    result["study_id"] = study_id
    logger.info("study %s aggregated over %d replications", study_id or "-", len(summaries))
    return result
