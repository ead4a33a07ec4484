"""Lifecycle jobs in Redis: the job record, its owner and epoch, worker heartbeats.

One hash per job, ``simfleet:job:<id>``: the job's spec (JSON), ``state`` (queued, loading, created, running,
exporting, done, failed), ``owner`` and ``owner_queue`` (the worker holding it live), ``epoch``, ``day``, the last
``progress`` figures (JSON), timestamps, ``error`` and ``result`` (JSON). Unfinished jobs are listed in the set
``simfleet:jobs:active``. A worker proves it is alive with ``simfleet:worker:<node>:heartbeat``, a key with a TTL
that a thread refreshes.

The epoch fences writers. A watchdog increments it when the owner's heartbeat expired (and clears the owner); a
worker claiming a job from another owner increments it too. Claiming (the load stage, or a worker restoring the job
from a checkpoint) succeeds only while the epoch is still the one the claimer saw. Every write a worker makes on a
job's behalf (a checkpoint reference, the job's progress, its result) is done by a server-side script that first
checks the epoch, so a worker that lost its job cannot write twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from simfleet.shared.errors import StaleOwner

JOB_KEY = "simfleet:job:{}"
ACTIVE_KEY = "simfleet:jobs:active"
HEARTBEAT_KEY = "simfleet:worker:{}:heartbeat"
WATCHDOG_LOCK = "simfleet:watchdog:lock"
WORKER_QUEUE_PREFIX = "simfleet.worker."
FINAL_STATES = ("done", "failed")

# KEYS[1] job hash; ARGV: expected epoch, owner, owner queue. Returns the epoch, or -1. Taking the job from another
# owner increments the epoch (that owner is fenced off); the same owner claiming again (a restarted pool process)
# or a job without owner keeps it, so a message redelivered after a crash still carries the current epoch.
_CLAIM = """
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '-1')
if epoch ~= tonumber(ARGV[1]) then return -1 end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'done' or state == 'failed' then return -1 end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= '' and owner ~= ARGV[2] then epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1) end
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'owner_queue', ARGV[3])
return epoch
"""

# KEYS[1] job hash; ARGV: expected epoch, then field/value pairs. Returns 1 if written.
_FENCED_SET = """
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# KEYS[1] job hash; ARGV: the owner seen dead. Bumps the epoch and clears the owner; returns the new epoch or -1.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return -1 end
redis.call('HDEL', KEYS[1], 'owner', 'owner_queue')
return redis.call('HINCRBY', KEYS[1], 'epoch', 1)
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def worker_queue(node: str) -> str:
    """The queue only the worker called ``node`` consumes (later stages of the jobs it owns)."""
    return f"{WORKER_QUEUE_PREFIX}{node}"


@dataclass(frozen=True)
class JobView:
    """A job record as read from Redis."""

    job_id: str
    state: str
    epoch: int
    owner: str
    owner_queue: str
    day: int
    days: int
    airframes: int
    spec: dict[str, Any]
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: str
    created: float
    finished: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return dict(self.__dict__)


class Jobs:
    """Job records, ownership and heartbeats in one Redis (the result backend's)."""

    def __init__(self, client: redis.Redis, *, expires_s: int = 7 * 86_400) -> None:
        self.redis = client
        self.expires_s = expires_s
        self._claim = client.register_script(_CLAIM)
        self._set = client.register_script(_FENCED_SET)
        self._release = client.register_script(_RELEASE)

    # ------------------------------------------------------------------------------------------------ records

    def create(self, job_id: str, spec: dict[str, Any], *, task_ids: list[str]) -> None:
        """Record a new job (epoch 0, no owner) and list it as active."""
        key = JOB_KEY.format(job_id)
        if self.redis.exists(key):
            raise ValueError(f"job {job_id} already exists")
        fields: dict[Any, Any] = {
            "spec": json.dumps(spec),
            "state": "queued",
            "epoch": 0,
            "day": 0,
            "created": time.time(),
            "task_ids": json.dumps(task_ids),
        }
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping=fields)
            pipe.sadd(ACTIVE_KEY, job_id)
            pipe.execute()

    def get(self, job_id: str) -> JobView | None:
        """The job's record, or ``None`` if unknown."""
        raw = {_text(k): _text(v) for k, v in self.redis.hgetall(JOB_KEY.format(job_id)).items()}
        if not raw:
            return None
        return JobView(
            job_id=job_id,
            state=raw.get("state", ""),
            epoch=int(raw.get("epoch", 0)),
            owner=raw.get("owner", ""),
            owner_queue=raw.get("owner_queue", ""),
            day=int(raw.get("day", 0)),
            days=int(raw.get("days", 0)),
            airframes=int(raw.get("airframes", 0)),
            spec=json.loads(raw.get("spec", "{}")),
            progress=json.loads(raw.get("progress", "{}")),
            result=json.loads(raw["result"]) if raw.get("result") else None,
            error=raw.get("error", ""),
            created=float(raw.get("created", 0.0)),
            finished=float(raw.get("finished", 0.0)),
        )

    def task_ids(self, job_id: str) -> list[str]:
        """The Celery task ids of the job's stages, in order."""
        raw = self.redis.hget(JOB_KEY.format(job_id), "task_ids")
        return list(json.loads(raw)) if raw else []

    def epoch(self, job_id: str) -> int:
        """The job's current epoch (-1 for an unknown job)."""
        raw = self.redis.hget(JOB_KEY.format(job_id), "epoch")
        return int(raw) if raw is not None else -1

    def active(self) -> list[str]:
        """Jobs not finished yet."""
        return sorted(_text(member) for member in self.redis.smembers(ACTIVE_KEY))

    # ------------------------------------------------------------------------------------------------- fencing

    def fence(self, job_id: str, epoch: int) -> tuple[str, str, int]:
        """The fence for ``Checkpoints.save``: the job's epoch must still be ``epoch``."""
        return (JOB_KEY.format(job_id), "epoch", epoch)

    def claim(self, job_id: str, node: str, queue: str, *, seen_epoch: int) -> int:
        """Become the job's owner if its epoch is still ``seen_epoch``; return the epoch it is held at.

        Raises:
            StaleOwner: someone else changed the epoch first, or the job is finished.
        """
        epoch = int(self._claim(keys=[JOB_KEY.format(job_id)], args=[seen_epoch, node, queue]))
        if epoch < 0:
            raise StaleOwner(f"job {job_id}: cannot claim at epoch {seen_epoch} (now {self.epoch(job_id)})")
        return epoch

    def update(self, job_id: str, epoch: int, **fields: Any) -> None:
        """Set fields of the job while ``epoch`` is current (dicts and lists are stored as JSON).

        Raises:
            StaleOwner: the epoch moved on.
        """
        args: list[Any] = [epoch]
        for name, value in fields.items():
            args += [name, json.dumps(value) if isinstance(value, dict | list) else value]
        if not self._set(keys=[JOB_KEY.format(job_id)], args=args):
            raise StaleOwner(f"job {job_id}: epoch {epoch} is stale (now {self.epoch(job_id)}); update refused")

    def finish(self, job_id: str, epoch: int, result: dict[str, Any]) -> None:
        """Mark the job done with its result (fenced) and stop listing it as active."""
        self.update(job_id, epoch, state="done", result=result, finished=time.time())
        with self.redis.pipeline() as pipe:
            pipe.hdel(JOB_KEY.format(job_id), "owner", "owner_queue")
            pipe.srem(ACTIVE_KEY, job_id)
            pipe.expire(JOB_KEY.format(job_id), self.expires_s)
            pipe.execute()

    def fail(self, job_id: str, error: str) -> None:
        """Mark the job failed (not fenced: any worker that sees it fail says so) and release it."""
        key = JOB_KEY.format(job_id)
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping={"state": "failed", "error": error, "finished": time.time()})
            pipe.hdel(key, "owner", "owner_queue")
            pipe.srem(ACTIVE_KEY, job_id)
            pipe.expire(key, self.expires_s)
            pipe.execute()

    def release(self, job_id: str, dead_owner: str) -> int:
        """Bump the epoch and clear the owner if it is still ``dead_owner``; return the new epoch (-1 if not)."""
        return int(self._release(keys=[JOB_KEY.format(job_id)], args=[dead_owner]))

    # ----------------------------------------------------------------------------------------------- liveness

    def beat(self, node: str, ttl_s: float, info: dict[str, Any] | None = None) -> None:
        """Refresh ``node``'s heartbeat for ``ttl_s`` seconds."""
        self.redis.set(HEARTBEAT_KEY.format(node), json.dumps(info or {}), px=int(ttl_s * 1000))

    def stop_beating(self, node: str) -> None:
        """Remove ``node``'s heartbeat (a clean shutdown: the watchdog may reassign its jobs at once)."""
        self.redis.delete(HEARTBEAT_KEY.format(node))

    def alive(self, node: str) -> bool:
        """Whether ``node``'s heartbeat has not expired."""
        return bool(node) and bool(self.redis.exists(HEARTBEAT_KEY.format(node)))

    def live_queue(self, job_id: str) -> str | None:
        """The queue of the job's owner if that owner is alive."""
        owner, queue = self.redis.hmget(JOB_KEY.format(job_id), ["owner", "owner_queue"])
        if owner and queue and self.alive(_text(owner)):
            return _text(queue)
        return None
