"""DES studies in Redis: their records, their cancellation, and the replications each worker is running.

- ``simfleet:study:<id>``: the :class:`~simfleet.shared.messages.study.StudyRecord` (JSON), so that a study can be
  followed, listed or cancelled from anywhere later; ``simfleet:studies:index`` lists studies by creation time.
- ``simfleet:node:<node>:running``: the replications a worker has started and not finished, each with what it
  takes to publish it again (:class:`Running`). When the worker's heartbeat expires, the watchdog publishes them
  again at once instead of leaving their messages to the broker's visibility timeout.
- ``simfleet:replication:<task id>:done``: which worker's copy of a ``des.run`` task (one replication, or a batch
  of them) completes it. A task published again can run twice (its first worker was only cut off); only the first
  copy to finish is counted by the study's chord, the other ends without a result.
- ``simfleet:replication:<study>-<i>:counted``: replication ``i`` of the study was recorded (by the worker named),
  once whatever the batching and however many copies ran it; ``simfleet:replication:<study>-<i>:summary``: its
  summary, kept while the rest of its batch runs, so that a batch published again after its worker died runs only
  the replications not yet recorded (deleted when the batch completes).
- ``simfleet:study:<id>:done``: how many of the study's replications were recorded.

A finished replication's events and seconds are counted (:mod:`simfleet.shared.counters`) for every copy that ran
to its end; the replication itself (and the study's own count) once, when it is first recorded.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import redis

from simfleet.shared.counters import COUNTERS_KEY, DES_EVENTS, DES_REPLICATIONS, DES_SECONDS
from simfleet.shared.errors import MessageError
from simfleet.shared.heartbeats import HEARTBEAT_PREFIX
from simfleet.shared.ids import check_id
from simfleet.shared.messages import Message, decode_json
from simfleet.shared.messages.des import ReplicationSummary
from simfleet.shared.messages.study import ReplicationRequest, StudyRecord

log = logging.getLogger(__name__)

STUDY_KEY = "simfleet:study:{}"
INDEX_KEY = "simfleet:studies:index"
RUNNING_KEY = "simfleet:node:{}:running"
RUNNING_PATTERN = "simfleet:node:*:running"
DONE_KEY = "simfleet:replication:{}:done"
DONE_COUNT_KEY = "simfleet:study:{}:done"
COUNTED_KEY = "simfleet:replication:{}:counted"
SUMMARY_KEY = "simfleet:replication:{}:summary"

_json = msgspec.json.Encoder()


def replication_id(study_id: str, index: int) -> str:
    """The id of replication ``index`` of a study; also the task id of the ``des.run`` task a batch starts with."""
    return f"{study_id}-{index}"


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Running(Message, frozen=True):
    """A ``des.run`` task a worker has started: what publishing it again takes (its Celery chord membership included).

    Attributes:
        task_id: the task's id (kept when it is published again).
        request: the task's message (one replication, or a batch).
        group_id: the chord's group.
        group_index: its place in the group.
        chord: the chord's callback, as Celery carries it in the request.
        priority: the Celery priority it was published with.
        queue: the queue it came from.
        started: when the worker started it.
    """

    task_id: str
    request: ReplicationRequest
    group_id: str | None = None
    group_index: int | None = None
    chord: dict[str, Any] | None = None
    priority: int | None = None
    queue: str = "des.run"
    started: float = 0.0


# KEYS[1] done marker, ARGV: this node, expiry, heartbeat key prefix. 1: this copy completes the replication;
# 0: another live worker's copy already does.
_COMPLETE = """
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] or redis.call('EXISTS', ARGV[3] .. holder .. ':heartbeat') == 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""

# KEYS[1] counted marker, KEYS[2] summary, KEYS[3] the study's done count, KEYS[4] the counters hash; ARGV: this node,
# expiry, the summary to keep ('' for none), events, seconds, then the counters' fields (events, seconds,
# replications). 1: this copy records the replication; 0: one was recorded already (its work is still counted).
_RECORD = """
redis.call('HINCRBY', KEYS[4], ARGV[6], ARGV[4])
redis.call('HINCRBYFLOAT', KEYS[4], ARGV[7], ARGV[5])
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return 0
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[2])
end
redis.call('HINCRBY', KEYS[4], ARGV[8], 1)
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[2])
return 1
"""


class Studies:
    """Study records and running replications in one Redis (the result backend's).

    Args:
        client: the Redis.
        expires_s: how long a study's record (and a replication's done marker) is kept.
    """

    def __init__(self, client: redis.Redis, *, expires_s: int = 7 * 86_400) -> None:
        self.redis = client
        self.expires_s = expires_s
        self._complete = client.register_script(_COMPLETE)
        self._record = client.register_script(_RECORD)

    # ------------------------------------------------------------------------------------------------ records

    def create(self, record: StudyRecord) -> None:
        """Keep a new study's record.

        Raises:
            ValueError: a study with this id exists.
            ConfigError: the study id breaks the id rule (a record built without decoding is not checked).
        """
        check_id(record.study_id, what="study_id")
        if not self.redis.set(STUDY_KEY.format(record.study_id), _json.encode(record), nx=True, ex=self.expires_s):
            raise ValueError(f"study {record.study_id} already exists")
        self.redis.zadd(INDEX_KEY, {record.study_id: record.created})

    def get(self, study_id: str) -> StudyRecord | None:
        """The study's record, or ``None`` if unknown or expired."""
        raw = self.redis.get(STUDY_KEY.format(study_id))
        if raw is None:
            return None
        return decode_json(StudyRecord, raw, what=f"study {study_id} record")

    def listed(self, limit: int = 100) -> list[StudyRecord]:
        """The newest ``limit`` studies whose record is still kept, newest first."""
        found = []
        for member in self.redis.zrevrange(INDEX_KEY, 0, -1):
            study_id = _text(member)  # type: ignore[arg-type]
            record = self.get(study_id)
            if record is None:
                self.redis.zrem(INDEX_KEY, study_id)
                continue
            found.append(record)
            if len(found) >= limit:
                break
        return found

    def cancel(self, study_id: str) -> StudyRecord | None:
        """Mark the study cancelled (its replications that have not finished end without running); its record."""
        record = self.get(study_id)
        if record is None:
            return None
        cancelled = msgspec.structs.replace(record, state="cancelled")
        self.redis.set(STUDY_KEY.format(study_id), _json.encode(cancelled), keepttl=True)
        return cancelled

    def cancelled(self, study_id: str) -> bool:
        """Whether the study was cancelled (a replication checks before and while it runs)."""
        record = self.get(study_id)
        return record is not None and record.state == "cancelled"

    # ------------------------------------------------------------------------------- running replications

    def started(self, node: str, running: Running) -> None:
        """Note that ``node`` started a replication."""
        self.redis.hset(RUNNING_KEY.format(node), running.task_id, _json.encode(running))

    def finished(self, node: str, task_id: str) -> None:
        """Note that ``node`` finished (or gave up) a ``des.run`` task."""
        self.redis.hdel(RUNNING_KEY.format(node), task_id)

    def record(self, node: str, study_id: str, summary: ReplicationSummary, *, keep: bool) -> bool:
        """Record that ``node`` ran a replication to its end, counting its work; whether this copy is the first.

        Args:
            node: the worker.
            study_id: the study.
            summary: the replication's summary (its index, events and seconds).
            keep: keep the summary (until :meth:`forget_summaries`) for a copy of its batch run again later.

        Returns:
            True when this is the replication's first record (it and the study's count of recorded replications go
            up by one), False when another copy recorded it already.
        """
        rid = replication_id(study_id, summary.replication)
        payload = msgspec.msgpack.encode(summary) if keep else b""
        keys = [COUNTED_KEY.format(rid), SUMMARY_KEY.format(rid), DONE_COUNT_KEY.format(study_id), COUNTERS_KEY]
        args: list[bytes | str | int | float] = [node, self.expires_s, payload, summary.events,
                                                 round(summary.wall_s, 6), DES_EVENTS, DES_SECONDS, DES_REPLICATIONS]
        return bool(self._record(keys=keys, args=args))

    def recorded_summaries(self, study_id: str, indices: range) -> dict[int, ReplicationSummary]:
        """The kept summaries of those of ``indices`` recorded by an earlier copy of their batch (one round trip)."""
        if len(indices) < 2:
            return {}
        found = self.redis.mget([SUMMARY_KEY.format(replication_id(study_id, i)) for i in indices])
        kept = {}
        for index, raw in zip(indices, found, strict=True):
            if raw is None:
                continue
            try:
                kept[index] = msgspec.msgpack.decode(_bytes(raw), type=ReplicationSummary)
            except msgspec.MsgspecError as exc:  # not ours to trust: run the replication again
                log.warning("kept summary of replication %d of study %s unreadable: %s", index, study_id, exc)
        return kept

    def forget_summaries(self, study_id: str, indices: range) -> None:
        """Drop the kept summaries of a completed batch (its result holds them now)."""
        if len(indices) > 1:
            self.redis.delete(*[SUMMARY_KEY.format(replication_id(study_id, i)) for i in indices])

    def recorded(self, study_id: str, indices: list[int]) -> set[int]:
        """Which of the study's replications ``indices`` were recorded (one round trip)."""
        if not indices:
            return set()
        found = self.redis.mget([COUNTED_KEY.format(replication_id(study_id, i)) for i in indices])
        return {index for index, holder in zip(indices, found, strict=True) if holder is not None}

    def done_counts(self, study_ids: list[str]) -> list[int]:
        """Replications recorded so far, per study (one round trip)."""
        found = self.redis.mget([DONE_COUNT_KEY.format(study_id) for study_id in study_ids]) if study_ids else []
        return [int(value or 0) for value in found]

    def running(self) -> list[Running]:
        """Every replication noted as running, on every worker."""
        keys = list(self.redis.scan_iter(match=RUNNING_PATTERN, count=500))
        with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hvals(key)
            found = pipe.execute()
        running = []
        for raw in (raw for values in found for raw in values):
            try:
                running.append(decode_json(Running, raw, what="running replication"))
            except MessageError as exc:  # written by a foreign or older program: not one of ours to count
                log.warning("%s", exc)
        return running

    def nodes_running(self) -> list[str]:
        """Nodes with replications noted as running."""
        return sorted(_text(key).split(":")[2] for key in self.redis.scan_iter(match=RUNNING_PATTERN, count=500))

    def take_running(self, node: str) -> list[Running]:
        """Remove and return the replications noted as running on ``node`` (one step: taken once)."""
        key = RUNNING_KEY.format(node)
        with self.redis.pipeline() as pipe:
            pipe.hgetall(key)
            pipe.delete(key)
            entries, _ = pipe.execute()
        return [decode_json(Running, raw, what=f"running replication on {node}")
                for raw in entries.values()]  # fmt: skip

    def complete(self, task_id: str, node: str) -> bool:
        """Whether ``node``'s copy of the replication ``task_id`` is the one that completes it (first one wins)."""
        return bool(self._complete(keys=[DONE_KEY.format(task_id)], args=[node, self.expires_s, HEARTBEAT_PREFIX]))
