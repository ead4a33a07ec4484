"""The fleet as a whole: workers, pool processes, queue lengths, tasks, throughput, lifecycle jobs under way."""

from __future__ import annotations

from typing import Any

import redis

from simfleet.shared.celery_app import PRIORITY_STEPS, create_app, priority_list
from simfleet.shared.heartbeats import Heartbeats
from simfleet.shared.jobs import Jobs
from simfleet.shared.redis_client import connect, redact, translate
from simfleet.shared.settings import Settings


def queue_lengths(client: redis.Redis, queues: list[str]) -> dict[str, int]:
    """Messages waiting per queue, summed over the Redis priority sub-queues (``name``, ``name:3``, ...)."""
    return {queue: sum(int(client.llen(priority_list(queue, step))) for step in PRIORITY_STEPS) for queue in queues}


def active_jobs(client: redis.Redis) -> list[dict[str, Any]]:
    """Lifecycle jobs not finished: state, day, owner (and whether its heartbeat lives), epoch."""
    jobs, heartbeats = Jobs(client), Heartbeats(client)
    found = []
    for job_id in jobs.active():
        view = jobs.get(job_id)
        if view is not None:
            alive = heartbeats.alive(view.owner)
            found.append({"job_id": job_id, "state": view.state, "day": view.simulated_day,
                          "checkpointed_day": view.day, "days": view.days, "owner": view.owner,
                          "owner_alive": alive, "epoch": view.epoch})  # fmt: skip
    return found


def fleet_status(settings: Settings, timeout_s: float = 1.0) -> dict[str, Any]:
    """Ask the workers (Celery remote control) and Redis how the fleet stands."""
    app = create_app(settings, name="simfleet-status")
    client = connect(settings.broker_url, retry_s=2.0)
    backend = connect(settings.result_backend, retry_s=2.0)
    try:
        with translate(settings.broker_url):
            client.ping()
        inspect = app.control.inspect(timeout=timeout_s)
        stats = inspect.stats() or {}
        active = inspect.active() or {}
        workers = []
        for name in sorted(stats):
            info = stats[name]
            totals = info.get("total", {}) or {}
            finished = sum(int(v) for v in totals.values())
            uptime = float(info.get("uptime", 0) or 0)
            workers.append(
                {
                    "name": name,
                    "pid": info.get("pid"),
                    "pool_processes": list(info.get("pool", {}).get("processes", [])),
                    "concurrency": info.get("pool", {}).get("max-concurrency"),
                    "running": len(active.get(name, [])),
                    "running_tasks": [
                        {"id": t.get("id"), "name": t.get("name"), "kwargs": t.get("kwargs")}
                        for t in active.get(name, [])
                    ],
                    "finished": finished,
                    "finished_by_task": totals,
                    "uptime_s": uptime,
                    "throughput_per_min": finished / uptime * 60.0 if uptime > 0 else 0.0,
                }
            )
        memory = client.info("memory")
        nodes = Heartbeats(backend).nodes()
        shared_queues = settings.queues.all()
        own_queues = sorted(q for info in nodes.values() for q in info.get("queues", []) if q not in shared_queues)
        return {
            "broker": redact(settings.broker_url),
            "redis_used_memory_mb": round(int(memory.get("used_memory", 0)) / 2**20, 1),
            "queues": queue_lengths(client, settings.queues.all()),
            "worker_queues": queue_lengths(client, own_queues),
            "heartbeats": nodes,
            "workers": workers,
            "running": sum(w["running"] for w in workers),
            "finished": sum(w["finished"] for w in workers),
            "throughput_per_min": sum(w["throughput_per_min"] for w in workers),
            "lifecycle_jobs": active_jobs(backend),
        }
    finally:
        client.close()
        backend.close()
        app.close()
