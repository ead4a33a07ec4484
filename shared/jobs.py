"""Lifecycle jobs in Redis: the job record, its owner, its epoch and its due stage.

One hash per job, ``simfleet:job:<id>``: the :class:`~simfleet.shared.messages.lifecycle.JobSpec` (JSON),
``state`` (queued, loading, loaded, created, running, exporting, then done, failed or cancelled), ``owner`` and
``owner_queue`` (the worker holding the job live), ``epoch``, ``seq`` (the stage due, see
:meth:`JobSpec.stage_of`), ``due`` (the :class:`StageMessage` of that stage) and ``sent`` (``"<epoch>:<seq>"`` of
the due message last published), ``day``, the last ``progress`` (and ``progressed``, when it came), timestamps,
the ``failure`` or the ``result``. Unfinished jobs are listed in ``simfleet:jobs:active``; every job in
``simfleet:jobs:index`` (by creation time). Ending a job and taking it from a dead owner are counted in
:mod:`simfleet.shared.counters`, by the same scripts.

The record is the truth about where a job stands; messages are only how work reaches a worker. The epoch fences
writers: it moves on when the watchdog takes a job from a dead owner, and when an operator cancels. Every write a
worker makes for a job (checkpoint references, progress, the next stage, the result, a failure) runs in a
server-side script that checks the epoch first, so a worker that lost its job cannot write once it lost it.
Each stage ends by advancing ``seq`` and recording the next stage's message in one fenced step, then publishing
it: whoever finds the due message unsent (the owner after a crash, or the watchdog when the owner died) can publish
it again from the record, and a copy that arrives later is refused by its ``(epoch, seq)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec
import redis

from simfleet.shared.counters import COUNTERS_KEY
from simfleet.shared.errors import StaleOwner
from simfleet.shared.heartbeats import HEARTBEAT_PREFIX
from simfleet.shared.ids import check_id
from simfleet.shared.messages import decode_json
from simfleet.shared.messages.lifecycle import JobFailure, JobSpec, JobSummary, StageMessage, StageProgress

JOB_KEY = "simfleet:job:{}"
ACTIVE_KEY = "simfleet:jobs:active"
INDEX_KEY = "simfleet:jobs:index"
WATCHDOG_LOCK = "simfleet:watchdog:lock"
WORKER_QUEUE_PREFIX = "simfleet.worker."
FINAL_STATES = ("done", "failed", "cancelled")

_json = msgspec.json.Encoder()

# KEYS[1] job hash, KEYS[2] active set, KEYS[3] index; ARGV: created, then field/value pairs. 1 if created, 0 if
# the id is taken: one step, so two producers racing for one id cannot both succeed.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SADD', KEYS[2], string.sub(KEYS[1], 14))
redis.call('ZADD', KEYS[3], ARGV[1], string.sub(KEYS[1], 14))
return 1
"""

# KEYS[1] job hash; ARGV: epoch, seq, owner, owner queue, heartbeat key prefix. The claimer becomes the owner if the
# message is the job's due one and the job has no owner, or is already its owner (a restarted pool process of the
# same worker). A job held by another worker is never taken here: only the watchdog takes a job from a dead owner.
# Returns 1, or a negative reason: -1 finished, -2 epoch, -3 seq, -4 held by a live other owner, -5 by a dead one.
_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
if state == 'done' or state == 'failed' or state == 'cancelled' then return -1 end
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return -2 end
if redis.call('HGET', KEYS[1], 'seq') ~= ARGV[2] then return -3 end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= '' and owner ~= ARGV[3] then
  if redis.call('EXISTS', ARGV[5] .. owner .. ':heartbeat') == 1 then return -4 end
  return -5
end
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'owner_queue', ARGV[4])
return 1
"""

# KEYS[1] job hash; ARGV: epoch, then field/value pairs. 1 if written (the epoch still holds, the job unfinished).
_FENCED_SET = """
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'done' or state == 'failed' or state == 'cancelled' then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# The check both scripts below start with (KEYS[1] job hash; ARGV[1] epoch, ARGV[2] seq): stage ``seq`` is the job's
# due stage at this epoch and the job has not ended; else the script returns 0.
_IS_DUE = """
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'seq') ~= ARGV[2] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'done' or state == 'failed' or state == 'cancelled' then return 0 end
"""

# ARGV[3] "<epoch>:<seq>". A worker begins the due stage: ``started`` is set and 1 returned (0: the caller reads the
# record to say why not).
_BEGIN = _IS_DUE + """
redis.call('HSET', KEYS[1], 'started', ARGV[3])
return 1
"""

# ARGV[3] next seq, ARGV[4] due message, then field/value pairs. Ends the due stage: the record moves to the next stage
# and holds its message, in one fenced step.
_ADVANCE = _IS_DUE + """
redis.call('HSET', KEYS[1], 'seq', ARGV[3], 'due', ARGV[4])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# KEYS[1] job hash, KEYS[2] active set, KEYS[3] the fleet's counters; ARGV: epoch (or '' for an operator's cancel),
# expiry, then field/value pairs. Ends the job (done, failed or cancelled): fenced unless it is a cancel, which bumps
# the epoch instead so that the owner's next write is refused. Counts the ended job by state, and a done job's
# seconds from submission to finish. Returns the job's epoch afterwards, or -1 if refused.
_END = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'done' or state == 'failed' or state == 'cancelled' then return -1 end
local epoch
if ARGV[1] == '' then
  epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
else
  if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return -1 end
  epoch = tonumber(ARGV[1])
end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HDEL', KEYS[1], 'owner', 'owner_queue')
redis.call('SREM', KEYS[2], string.sub(KEYS[1], 14))
redis.call('EXPIRE', KEYS[1], ARGV[2])
local ended = redis.call('HGET', KEYS[1], 'state')
redis.call('HINCRBY', KEYS[3], 'jobs_ended:' .. ended, 1)
local created = tonumber(redis.call('HGET', KEYS[1], 'created') or '')
local finished = tonumber(redis.call('HGET', KEYS[1], 'finished') or '')
if ended == 'done' and created and finished then
  redis.call('HINCRBYFLOAT', KEYS[3], 'job_end_to_end_seconds_sum', string.format('%.6f', finished - created))
  redis.call('HINCRBY', KEYS[3], 'job_end_to_end_count', 1)
end
return epoch
"""

# KEYS[1] job hash, KEYS[2] the fleet's counters; ARGV: the owner seen dead. Bumps the epoch, clears the owner and its
# last figures (the dead owner's day may be past the checkpoint the next owner restores) and counts a takeover.
# Returns the new epoch, or -1 if the owner changed meanwhile.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return -1 end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'done' or state == 'failed' or state == 'cancelled' then return -1 end
redis.call('HDEL', KEYS[1], 'owner', 'owner_queue', 'progress')
redis.call('HINCRBY', KEYS[2], 'takeovers:lifecycle_job', 1)
return redis.call('HINCRBY', KEYS[1], 'epoch', 1)
"""


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def simulated_day(checkpointed: int, progress: StageProgress | None) -> int:
    """The day a job has reached: its running stage's last report when that is past its last checkpoint.

    A job has two days: ``day`` in its record (simulated and checkpointed, where a takeover resumes) and the day of
    its owner's last PROGRESS report, which runs ahead of it while a chunk executes. Every view of a job (``job
    status``, ``job list``, ``fleet status``, progress bars) shows this one as *the* day, and the checkpointed day
    beside it under that name.
    """
    return max(checkpointed, progress.day if progress is not None else 0)


def worker_queue(node: str) -> str:
    """The queue only the worker called ``node`` consumes (later stages of the jobs it owns)."""
    return f"{WORKER_QUEUE_PREFIX}{node}"


@dataclass(frozen=True)
class JobRecord:
    """A job record as read from Redis, typed.

    Attributes:
        job_id: the job.
        spec: what the job is.
        state: queued, loading, loaded, created, running, exporting, done, failed or cancelled.
        epoch: the fencing epoch.
        seq: the stage due (or running).
        due: the message of that stage (``None`` once the job ended).
        sent: ``"<epoch>:<seq>"`` of the due message last published.
        started: ``"<epoch>:<seq>"`` of the stage a worker last started.
        owner: the worker holding the job live (empty when none does).
        owner_queue: that worker's own queue.
        day: days simulated and checkpointed.
        airframes: the fleet's size (0 until loaded).
        progress: the last figures a stage reported.
        result: the summary of a finished job.
        failure: why a job failed or was cancelled.
        created: submission time (Unix seconds).
        updated: the last time a stage moved it on.
        finished: when it ended (0 while it runs).
        progressed: when a running stage last reported progress (0 before the first report).
    """

    job_id: str
    spec: JobSpec
    state: str
    epoch: int
    seq: int
    due: StageMessage | None
    sent: str
    started: str
    owner: str
    owner_queue: str
    day: int
    airframes: int
    progress: StageProgress | None
    result: JobSummary | None
    failure: JobFailure | None
    created: float
    updated: float
    finished: float
    progressed: float = 0.0

    @property
    def days(self) -> int:
        """The horizon."""
        return self.spec.days

    @property
    def simulated_day(self) -> int:
        """The day the job has reached (see :func:`simulated_day`)."""
        return simulated_day(self.day, self.progress)

    @property
    def ended(self) -> bool:
        """Done, failed or cancelled."""
        return self.state in FINAL_STATES

    @property
    def due_sent(self) -> bool:
        """Whether the due stage's message was published at the current epoch."""
        return self.sent == f"{self.epoch}:{self.seq}"

    @property
    def due_started(self) -> bool:
        """Whether a worker started the due stage at the current epoch."""
        return self.started == f"{self.epoch}:{self.seq}"


class Jobs:
    """Job records and ownership in one Redis (the result backend's).

    Args:
        client: the Redis (from :func:`simfleet.shared.redis_client.connect`).
        expires_s: how long an ended job's record is kept.
    """

    def __init__(self, client: redis.Redis, *, expires_s: int = 7 * 86_400) -> None:
        self.redis = client
        self.expires_s = expires_s
        self._create = client.register_script(_CREATE)
        self._claim = client.register_script(_CLAIM)
        self._set = client.register_script(_FENCED_SET)
        self._advance = client.register_script(_ADVANCE)
        self._begin = client.register_script(_BEGIN)
        self._end = client.register_script(_END)
        self._release = client.register_script(_RELEASE)

    # ------------------------------------------------------------------------------------------------ records

    def create(self, spec: JobSpec) -> StageMessage:
        """Record a new job (epoch 0, its load stage due) and return that stage's message, to be published.

        Raises:
            ValueError: a job with this id exists.
            ConfigError: the spec's job id breaks the id rule (a spec built without decoding is not checked).
        """
        check_id(spec.job_id, what="job_id")
        first = StageMessage(job_id=spec.job_id, epoch=0, seq=0, stage="load")
        now = time.time()
        fields: list[Any] = [
            "spec",
            _json.encode(spec),
            "state",
            "queued",
            "epoch",
            0,
            "seq",
            0,
            "due",
            _json.encode(first),
            "sent",
            "",
            "day",
            0,
            "airframes",
            0,
            "created",
            now,
            "updated",
            now,
        ]
        keys = [JOB_KEY.format(spec.job_id), ACTIVE_KEY, INDEX_KEY]
        if not self._create(keys=keys, args=[now, *fields]):
            raise ValueError(f"job {spec.job_id} already exists")
        return first

    def get(self, job_id: str) -> JobRecord | None:
        """The job's record, or ``None`` if unknown (never submitted, deleted, or expired).

        Raises:
            MessageError: the record does not hold what it should (written by a foreign or older program).
        """
        return self._record(job_id, self.redis.hgetall(JOB_KEY.format(job_id)))

    def many(self, job_ids: list[str]) -> list[JobRecord]:
        """The records of ``job_ids`` that still exist, read in one round trip (see :meth:`get`)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(JOB_KEY.format(job_id))
            found = pipe.execute()
        records = (self._record(job_id, raw) for job_id, raw in zip(job_ids, found, strict=True))
        return [record for record in records if record is not None]

    @staticmethod
    def _record(job_id: str, fields: dict[Any, Any]) -> JobRecord | None:
        raw = {_text(k): _text(v) for k, v in fields.items()}
        if not raw:
            return None

        def typed(kind: type[Any], field: str) -> Any:
            return decode_json(kind, raw[field], what=f"job {job_id} record field {field}") if raw.get(field) else None

        return JobRecord(
            job_id=job_id,
            spec=typed(JobSpec, "spec"),
            state=raw.get("state", ""),
            epoch=int(raw.get("epoch") or 0),
            seq=int(raw.get("seq") or 0),
            due=typed(StageMessage, "due"),
            sent=raw.get("sent", ""),
            started=raw.get("started", ""),
            owner=raw.get("owner", ""),
            owner_queue=raw.get("owner_queue", ""),
            day=int(raw.get("day") or 0),
            airframes=int(raw.get("airframes") or 0),
            progress=typed(StageProgress, "progress"),
            result=typed(JobSummary, "result"),
            failure=typed(JobFailure, "failure"),
            created=float(raw.get("created") or 0.0),
            updated=float(raw.get("updated") or 0.0),
            finished=float(raw.get("finished") or 0.0),
            progressed=float(raw.get("progressed") or 0.0),
        )

    def epoch(self, job_id: str) -> int:
        """The job's current epoch (-1 for an unknown job)."""
        raw = self.redis.hget(JOB_KEY.format(job_id), "epoch")
        return int(raw) if raw is not None else -1

    def active(self) -> list[str]:
        """Jobs not ended yet."""
        return sorted(_text(member) for member in self.redis.smembers(ACTIVE_KEY))

    def listed(self, limit: int = 100) -> list[str]:
        """The newest ``limit`` jobs whose record still exists, newest first."""
        found = []
        for member in self.redis.zrevrange(INDEX_KEY, 0, -1):
            job_id = _text(member)  # type: ignore[arg-type]
            if self.redis.exists(JOB_KEY.format(job_id)):
                found.append(job_id)
                if len(found) >= limit:
                    break
            else:
                self.redis.zrem(INDEX_KEY, job_id)
        return found

    def delete(self, job_id: str) -> bool:
        """Remove an ended job's record (its checkpoints are the store's business). Refused while it runs.

        Raises:
            ValueError: the job has not ended (cancel it first).
        """
        record = self.get(job_id)
        if record is None:
            return False
        if not record.ended:
            raise ValueError(f"job {job_id} is {record.state}; cancel it before deleting it")
        with self.redis.pipeline() as pipe:
            pipe.delete(JOB_KEY.format(job_id))
            pipe.srem(ACTIVE_KEY, job_id)
            pipe.zrem(INDEX_KEY, job_id)
            pipe.execute()
        return True

    # ------------------------------------------------------------------------------------------------- fencing

    def fence(self, job_id: str, epoch: int) -> tuple[str, str, int]:
        """The fence for ``Checkpoints.save``: the job's epoch must still be ``epoch``."""
        return (JOB_KEY.format(job_id), "epoch", epoch)

    def claim(self, job_id: str, node: str, queue: str, *, epoch: int, seq: int) -> None:
        """Become the job's owner for its due stage ``seq`` at ``epoch`` (or stay it).

        Raises:
            StaleOwner: the job ended, the epoch or the stage moved on, or another worker holds it.
        """
        reason = int(
            self._claim(
                keys=[JOB_KEY.format(job_id)],
                args=[epoch, seq, node, queue, HEARTBEAT_PREFIX],
            )
        )
        if reason == 1:
            return
        why = {
            -1: "the job has ended or is unknown",
            -2: f"its epoch is now {self.epoch(job_id)}",
            -3: "that stage is no longer due",
            -4: "another live worker holds it",
            -5: "its owner stopped beating; the watchdog will hand it on",
        }.get(reason, f"refused ({reason})")
        raise StaleOwner(f"job {job_id}: cannot claim stage {seq} at epoch {epoch}: {why}")

    def update(self, job_id: str, epoch: int, **fields: Any) -> None:
        """Set fields of the job while ``epoch`` is current (Structs are stored as JSON).

        Raises:
            StaleOwner: the epoch moved on, or the job ended.
        """
        if not self._set(keys=[JOB_KEY.format(job_id)], args=[epoch, *self._pairs(fields)]):
            raise StaleOwner(f"job {job_id}: epoch {epoch} is stale (now {self.epoch(job_id)}); update refused")

    def begin(self, job_id: str, epoch: int, seq: int) -> bool:
        """Note that stage ``seq`` starts, if it is the job's due stage at ``epoch`` (one round trip); whether it is."""
        return bool(self._begin(keys=[JOB_KEY.format(job_id)], args=[epoch, seq, f"{epoch}:{seq}"]))

    def advance(self, job_id: str, epoch: int, seq: int, due: StageMessage, **fields: Any) -> None:
        """End stage ``seq``: record ``due`` (the next stage's message) as the job's due stage, with ``fields``.

        Raises:
            StaleOwner: the epoch or the stage moved on, or the job ended.
        """
        args = [epoch, seq, due.seq, _json.encode(due), "updated", time.time(), *self._pairs(fields)]
        if not self._advance(keys=[JOB_KEY.format(job_id)], args=args):
            raise StaleOwner(f"job {job_id}: stage {seq} at epoch {epoch} is no longer current; not advanced")

    def mark_sent(self, job_id: str, epoch: int, seq: int) -> None:
        """Record that the due message ``(epoch, seq)`` was published (fenced; a refusal is harmless)."""
        self._set(keys=[JOB_KEY.format(job_id)], args=[epoch, "sent", f"{epoch}:{seq}"])

    def finish(self, job_id: str, epoch: int, summary: JobSummary) -> None:
        """Mark the job done with its summary (fenced) and stop listing it as active.

        Raises:
            StaleOwner: the epoch moved on, or the job ended otherwise.
        """
        fields = {"state": "done", "result": summary, "finished": time.time(), "due": ""}
        if self._end_job(job_id, epoch, fields) < 0:
            raise StaleOwner(f"job {job_id}: epoch {epoch} is stale; not marked done")

    def fail(self, job_id: str, epoch: int, failure: JobFailure) -> bool:
        """Mark the job failed (fenced by ``epoch``: a worker that lost the job cannot fail it); whether it did."""
        fields = {"state": "failed", "failure": failure, "finished": time.time(), "due": ""}
        return self._end_job(job_id, epoch, fields) >= 0

    def cancel(self, job_id: str, reason: str = "cancelled by an operator") -> bool:
        """End the job as cancelled and bump its epoch (its owner's next write is refused); whether it did."""
        failure = JobFailure(stage="", error_type="Cancelled", message=reason)
        fields = {"state": "cancelled", "failure": failure, "finished": time.time(), "due": ""}
        return self._end_job(job_id, "", fields) >= 0

    def release(self, job_id: str, dead_owner: str) -> int:
        """Bump the epoch, clear the owner and its figures if it is still ``dead_owner``; the new epoch (-1 if not)."""
        return int(self._release(keys=[JOB_KEY.format(job_id), COUNTERS_KEY], args=[dead_owner]))

    def _end_job(self, job_id: str, epoch: int | str, fields: dict[str, Any]) -> int:
        """Run the ending script (``epoch`` empty for an operator's cancel); the job's epoch after, or -1 if refused."""
        keys = [JOB_KEY.format(job_id), ACTIVE_KEY, COUNTERS_KEY]
        return int(self._end(keys=keys, args=[epoch, self.expires_s, *self._pairs(fields)]))

    @staticmethod
    def _pairs(fields: dict[str, Any]) -> list[Any]:
        pairs: list[Any] = []
        for name, value in fields.items():
            pairs += [name, _json.encode(value) if isinstance(value, msgspec.Struct) else value]
        return pairs
