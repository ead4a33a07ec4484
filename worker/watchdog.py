"""Liveness of GPU-role workers: the heartbeat thread, and the watchdog that hands a dead owner's jobs on.

A GPU-role worker's main process refreshes ``simfleet:worker:<node>:heartbeat`` (a key with a TTL) from a thread;
the pool process that holds the sessions can die and be replaced without the node being taken for dead, since its
queue keeps being consumed. When the whole worker dies the key expires. The watchdog (a thread in every worker,
one sweep at a time fleet-wide under a Redis lock, or ``simfleet watchdog``) then, for each job of that owner:

1. bumps the job's epoch and clears its owner (fencing: the old owner, if only cut off, can no longer write);
2. moves the messages waiting in the dead worker's own queue, and the ones it had taken but not acknowledged (the
   stage it was running), back to the stages' shared queues, with the new epoch written into them.

The next worker to take such a stage does not hold the job, so it restores it from the latest checkpoint and claims
it. Messages are moved in Redis transactions: a message is either still where it was or already in its new queue.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import msgpack
import redis

from simfleet.shared.celery_app import PRIORITY_STEPS, priority_list, stage_queues
from simfleet.shared.jobs import WATCHDOG_LOCK, Jobs
from simfleet.shared.settings import Settings

log = logging.getLogger(__name__)

UNACKED, UNACKED_INDEX = "unacked", "unacked_index"
"""Kombu's Redis transport keeps taken, unacknowledged messages here (hash and its time index)."""


def _unpack(payload: dict[str, Any]) -> tuple[list[Any], dict[str, Any], Any]:
    body = payload["body"]
    if payload.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    if payload.get("content-type") == "application/x-msgpack":
        args, kwargs, embed = msgpack.unpackb(body, raw=False)
    else:
        args, kwargs, embed = json.loads(body)
    return list(args), dict(kwargs), embed


def _pack(payload: dict[str, Any], args: list[Any], kwargs: dict[str, Any], embed: Any) -> None:
    if payload.get("content-type") == "application/x-msgpack":
        body: bytes | str = msgpack.packb([args, kwargs, embed], use_bin_type=True)
    else:
        body = json.dumps([args, kwargs, embed])
    if payload.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64encode(body if isinstance(body, bytes) else body.encode()).decode()
    payload["body"] = body


@dataclass
class Handover:
    """What one sweep did about one dead worker."""

    owner: str
    jobs: dict[str, int] = field(default_factory=dict)
    moved: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"owner": self.owner, "jobs": self.jobs, "moved": self.moved}


class Watchdog:
    """Finds jobs whose owner stopped beating and hands them to the rest of the fleet."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs = Jobs(redis.Redis.from_url(settings.result_backend), expires_s=settings.result_expires_s)
        self.broker = redis.Redis.from_url(settings.broker_url)
        self.shared = stage_queues(settings)

    def close(self) -> None:
        """Release connections."""
        self.jobs.redis.close()
        self.broker.close()

    def sweep(self) -> list[Handover]:
        """One look at every active job; does nothing if another sweep holds the lock."""
        lock = self.jobs.redis.lock(WATCHDOG_LOCK, timeout=60)
        if not lock.acquire(blocking=False):
            return []
        try:
            dead: dict[tuple[str, str], list[str]] = {}
            for job_id in self.jobs.active():
                job = self.jobs.get(job_id)
                if job is None or not job.owner or self.jobs.alive(job.owner):
                    continue
                dead.setdefault((job.owner, job.owner_queue), []).append(job_id)
            handovers = []
            for (owner, queue), job_ids in dead.items():
                handover = Handover(owner)
                for job_id in job_ids:
                    epoch = self.jobs.release(job_id, owner)
                    if epoch >= 0:
                        handover.jobs[job_id] = epoch
                handover.moved = self.requeue(queue, handover.jobs)
                log.warning(
                    "worker %s is silent: jobs %s released (new epochs %s), %d message(s) moved to shared queues",
                    owner, ", ".join(handover.jobs) or "-", handover.jobs, handover.moved,
                )  # fmt: skip
                handovers.append(handover)
            return handovers
        finally:
            lock.release()

    def requeue(self, queue: str, epochs: dict[str, int]) -> int:
        """Move the messages of ``queue`` and the unacknowledged ones of ``epochs``' jobs to the shared queues."""
        moved = 0
        for step in PRIORITY_STEPS:
            key = priority_list(queue, step)
            while True:
                raw = self.broker.lindex(key, -1)
                if raw is None:
                    break
                payload = json.loads(raw)
                target = self._rewrite(payload, epochs)
                with self.broker.pipeline() as pipe:  # MULTI: the message leaves one list and enters the other
                    pipe.rpop(key)
                    if target is not None:
                        pipe.rpush(target, json.dumps(payload))
                    pipe.execute()
                moved += target is not None
        for tag, raw in self.broker.hgetall(UNACKED).items():
            payload, _exchange, routing_key = json.loads(raw)
            try:
                _, kwargs, _ = _unpack(payload)
            except (ValueError, TypeError, KeyError):
                continue
            if routing_key != queue and kwargs.get("job_id") not in epochs:
                continue
            target = self._rewrite(payload, epochs)
            if target is None:
                continue
            with self.broker.pipeline() as pipe:
                pipe.hdel(UNACKED, tag)
                pipe.zrem(UNACKED_INDEX, tag)
                pipe.rpush(target, json.dumps(payload))
                pipe.execute()
            moved += 1
        return moved

    def _rewrite(self, payload: dict[str, Any], epochs: dict[str, int]) -> str | None:
        """Point a stage message at its shared queue with the job's new epoch; return the target list."""
        task = payload.get("headers", {}).get("task")
        queue = self.shared.get(task or "")
        if queue is None:
            log.warning("dropping a message of unknown task %r from a dead worker's queue", task)
            return None
        args, kwargs, embed = _unpack(payload)
        job_id = kwargs.get("job_id")
        if job_id in epochs and args and isinstance(args[0], dict):
            args[0] = {**args[0], "epoch": epochs[job_id]}
        _pack(payload, args, kwargs, embed)
        properties = payload.setdefault("properties", {})
        properties["delivery_info"] = {"exchange": queue, "routing_key": queue}
        payload.setdefault("headers", {})["redelivered"] = True
        return priority_list(queue, properties.get("priority"))


class Liveness:
    """The heartbeat and watchdog threads of a worker's main process."""

    def __init__(self, settings: Settings, node: str, queue: str, *, heartbeat: bool) -> None:
        self.settings = settings
        self.node = node
        self.queue = queue
        self.heartbeat = heartbeat
        self.watchdog = Watchdog(settings)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Beat once now (so stages can be routed here at once), then start the threads."""
        gpu = self.settings.gpu_worker
        if self.heartbeat:
            self._beat()
            self._threads.append(self._loop("heartbeat", gpu.heartbeat_interval_s, self._beat))
        self._threads.append(self._loop("watchdog", gpu.watchdog_interval_s, self.watchdog.sweep))

    def stop(self) -> None:
        """Stop the threads and remove the heartbeat (a clean shutdown)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.heartbeat:
            self.watchdog.jobs.stop_beating(self.node)
        self.watchdog.close()

    def _beat(self) -> None:
        self.watchdog.jobs.beat(self.node, self.settings.gpu_worker.heartbeat_ttl_s, {"queue": self.queue})

    def _loop(self, name: str, interval_s: float, action: Any) -> threading.Thread:
        def run() -> None:
            while not self._stop.wait(interval_s):
                try:
                    action()
                except Exception:  # a Redis hiccup must not kill the thread; the next round tries again
                    log.exception("%s round failed", name)

        thread = threading.Thread(target=run, name=f"simfleet-{name}", daemon=True)
        thread.start()
        return thread
