"""Checkpoints of lifecycle jobs: blobs in the fleet's checkpoint store, references in Redis.

A checkpoint is a file of :mod:`simfleet.shared.checkpoint_format` (self-checking, compressed) kept in the fleet's
checkpoint store (:mod:`simfleet.shared.stores`: a directory, an S3-compatible bucket, ...) under the key
``<job id>/<kind>-<first day>-<day>-<random>.ckpt``. A store writes atomically: a reader sees a whole blob or
none. Only once a blob is whole is its reference published in Redis (list ``simfleet:job:<id>:checkpoints``, oldest
first): the key, kind, day, size and sha256, never a path, so a worker on another machine reads the blob through its
own store. Publication can be fenced: it happens only while a Redis hash field still holds an expected value (the
job's epoch), in one server-side script, so a worker that lost its job cannot add a reference. Restoring walks the
references from the newest back and skips (with a warning) any blob that is missing or fails its checksum.

Retention: progress checkpoints beyond the newest ``keep`` of a job are pruned as it runs (in the same server-side
step that publishes the next one); once a job has ended, :meth:`Checkpoints.expire` drops all its checkpoints
``retention_s`` after it finished (``simfleet checkpoint prune``, and the watchdog's sweeps).

Every checkpoint written is counted (size, write seconds) by the script that publishes it, and every failed write
or read once (:mod:`simfleet.shared.counters`), for the metrics exporter.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import redis

from simfleet.shared.checkpoint_format import KINDS, checksum, decode, encode
from simfleet.shared.counters import COUNTERS_KEY, count_failure
from simfleet.shared.errors import CheckpointError, StaleOwner
from simfleet.shared.ids import check_id
from simfleet.shared.stores.base import BlobStore

if TYPE_CHECKING:
    from simfleet.shared.settings import Settings

log = logging.getLogger(__name__)

REFS_KEY = "simfleet:job:{}:checkpoints"


@dataclass(frozen=True)
class CheckpointRef:
    """What Redis keeps about one checkpoint.

    Attributes:
        key: the blob's key in the checkpoint store.
        kind: one of ``KINDS``.
        day: the day it stands at (days done; for a result chunk, its end).
        size: the blob's size in bytes.
        sha256: the checksum of the blob's body.
        created: when it was written (Unix seconds).
        first_day: for a result chunk, its first day.
        epoch: the job's epoch when it was published.
    """

    key: str
    kind: str
    day: int
    size: int
    sha256: str
    created: float
    first_day: int = 0
    epoch: int = 0

    def to_json(self) -> str:
        """The reference as stored in Redis."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> CheckpointRef:
        """Parse a stored reference."""
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class Restored:
    """A checkpoint read back: its reference and its payload."""

    ref: CheckpointRef
    payload: Any


# Push the reference only while the fence field still holds the expected value (KEYS: refs, fence hash, the fleet's
# counters). ARGV: reference, fence field, fence value, progress checkpoints to keep (0: no pruning), then for a
# checkpoint this writer wrote, its size and write seconds (counted; empty for an adopted blob). Returns {0} if the
# fence refused, else {1, the references pruned...}: pruning the oldest progress checkpoints beyond ``keep`` happens
# in the same round trip (the caller deletes their blobs).
_FENCED_PUSH = """
if ARGV[2] ~= '' and redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[3] then return {0} end
redis.call('RPUSH', KEYS[1], ARGV[1])
if ARGV[5] ~= '' then
  redis.call('HINCRBY', KEYS[3], 'checkpoints_written', 1)
  redis.call('HINCRBY', KEYS[3], 'checkpoint_written_bytes', ARGV[5])
  redis.call('HINCRBYFLOAT', KEYS[3], 'checkpoint_write_seconds', ARGV[6])
end
local result = {1}
local keep = tonumber(ARGV[4])
if keep > 0 then
  local progress = {}
  for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    if cjson.decode(raw)['kind'] == 'progress' then table.insert(progress, raw) end
  end
  for i = 1, #progress - keep do
    redis.call('LREM', KEYS[1], 1, progress[i])
    table.insert(result, progress[i])
  end
end
return result
"""


class Checkpoints:
    """Write, publish, list, restore and prune the checkpoints of jobs.

    Args:
        client: the Redis that keeps references.
        store: where blobs go.
        keep: progress checkpoints kept per job while it runs (older ones are pruned).
        level: zstd level.
        retention_s: how long the checkpoints of an ended job are kept.
    """

    def __init__(
        self, client: redis.Redis, store: BlobStore, *, keep: int = 3, level: int = 3, retention_s: float = 7 * 86_400
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.redis = client
        self.store = store
        self.keep = keep
        self.level = level
        self.retention_s = retention_s
        self._push = client.register_script(_FENCED_PUSH)

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis) -> Checkpoints:
        """The fleet's checkpoints: the store at ``stores.checkpoint_url``, ``gpu_worker``'s keep and zstd level."""
        from simfleet.shared.stores import open_store

        gpu = settings.gpu_worker
        return cls(
            client,
            open_store(settings.stores.checkpoint_url),
            keep=gpu.checkpoint_keep,
            level=gpu.checkpoint_level,
            retention_s=settings.stores.checkpoint_retention_s,
        )

    # ---------------------------------------------------------------------------------------------- writing

    def write(self, job_id: str, kind: str, day: int, payload: Any, *, first_day: int = 0) -> CheckpointRef:
        """Write a checkpoint's blob (not yet published: nobody restores from it before :meth:`publish`)."""
        if kind not in KINDS:
            raise CheckpointError(f"unknown checkpoint kind {kind!r} (known: {', '.join(KINDS)})")
        check_id(job_id, what="job_id")  # the key's first segment: never a path of its own
        blob = encode(kind, job_id, day, payload, level=self.level)
        key = f"{job_id}/{kind}-{first_day:05d}-{int(day):05d}-{uuid.uuid4().hex[:8]}.ckpt"
        self.store.put(key, blob)
        return CheckpointRef(key, kind, int(day), len(blob), checksum(blob), time.time(), int(first_day))

    def publish(
        self, job_id: str, ref: CheckpointRef, *, fence: tuple[str, str, int] | None = None, write_s: float = 0.0
    ) -> CheckpointRef:
        """Publish ``ref`` (written by :meth:`write`, in ``write_s`` seconds), fenced; prune old progress checkpoints.

        Raises:
            StaleOwner: the fence no longer holds; the blob is removed again.
        """
        key, field, value = fence if fence else ("", "", 0)
        ref = CheckpointRef(**{**asdict(ref), "epoch": value})
        keys = [REFS_KEY.format(job_id), key or REFS_KEY.format(job_id), COUNTERS_KEY]
        keep = self.keep if ref.kind == "progress" else 0
        args: list[Any] = [ref.to_json(), field, str(value), keep, ref.size, f"{write_s:.6f}"]
        pushed, *pruned = self._push(keys=keys, args=args)
        if not pushed:
            self.store.delete(ref.key)
            raise StaleOwner(f"job {job_id}: epoch {value} is stale; {ref.kind} checkpoint of day {ref.day} refused")
        for raw in pruned:
            self.store.delete(CheckpointRef.from_json(raw).key)
        return ref

    def adopt(self, job_id: str, ref: CheckpointRef, *, fence: tuple[str, str, int] | None = None) -> CheckpointRef:
        """Publish, once, a blob someone else wrote and the caller checked (a producer's inputs blob) as a checkpoint.

        Unlike :meth:`publish`, a refused fence leaves the blob in place: it is not this writer's to remove.

        Raises:
            StaleOwner: the fence no longer holds.
        """
        for known in self.refs(job_id):
            if known.key == ref.key:
                return known
        key, field, value = fence if fence else ("", "", 0)
        ref = CheckpointRef(**{**asdict(ref), "epoch": value})
        pushed, *_ = self._push(keys=[REFS_KEY.format(job_id), key or REFS_KEY.format(job_id), COUNTERS_KEY],
                                args=[ref.to_json(), field, str(value), 0, "", ""])  # fmt: skip
        if not pushed:
            raise StaleOwner(f"job {job_id}: epoch {value} is stale; {ref.kind} checkpoint refused")
        return ref

    def save(
        self,
        job_id: str,
        kind: str,
        day: int,
        payload: Any,
        *,
        first_day: int = 0,
        fence: tuple[str, str, int] | None = None,
    ) -> CheckpointRef:
        """:meth:`write` then :meth:`publish`.

        Args:
            job_id: the job.
            kind: one of ``KINDS``.
            day: the day the checkpoint stands at (days done; for a result chunk, its end).
            payload: plain data (dicts, lists, scalars, numpy arrays, dates).
            first_day: for a result chunk, the first day it covers.
            fence: ``(hash key, field, value)``: publish only while that field equals the value (the job's epoch).
        """
        started = time.perf_counter()
        try:
            ref = self.write(job_id, kind, day, payload, first_day=first_day)
        except CheckpointError:
            count_failure(self.redis, "write")
            raise
        return self.publish(job_id, ref, fence=fence, write_s=time.perf_counter() - started)

    # ---------------------------------------------------------------------------------------------- reading

    def refs(self, job_id: str) -> list[CheckpointRef]:
        """Every reference of the job, oldest first."""
        return [CheckpointRef.from_json(raw) for raw in self.redis.lrange(REFS_KEY.format(job_id), 0, -1)]

    def read(self, ref: CheckpointRef) -> dict[str, Any]:
        """The document of ``ref``, checked against the blob's own checksum and the reference's.

        Raises:
            CheckpointError: missing blob, bad header, checksum mismatch.
        """
        where = f"{self.store.url} {ref.key}"
        try:
            blob = self.store.get(ref.key)
            if checksum(blob) != ref.sha256 or len(blob) != ref.size:
                raise CheckpointError(f"{where}: does not match its reference (size or sha256 changed)")
            return decode(blob, where=where)
        except CheckpointError:
            count_failure(self.redis, "read")
            raise

    def latest(self, job_id: str, kinds: Iterable[str], *, at_most_day: int | None = None) -> Restored | None:
        """The newest readable checkpoint of one of ``kinds`` (at ``at_most_day`` or earlier, if given).

        Unreadable newer ones are skipped with a warning.
        """
        wanted = set(kinds)
        for ref in reversed(self.refs(job_id)):
            if ref.kind not in wanted or (at_most_day is not None and ref.day > at_most_day):
                continue
            try:
                document = self.read(ref)
            except CheckpointError as exc:
                log.warning("job %s: skipping %s checkpoint of day %d: %s", job_id, ref.kind, ref.day, exc)
                continue
            return Restored(ref, document["payload"])
        return None

    def result_refs(self, job_id: str, until: int) -> list[CheckpointRef]:
        """The result chunks covering days ``0 .. until - 1``, in day order (the newest copy of each chunk).

        Raises:
            CheckpointError: a day is not covered (the run must be redone from an earlier day).
        """
        chunks: dict[int, CheckpointRef] = {}
        for ref in self.refs(job_id):
            if ref.kind == "result":
                chunks[ref.first_day] = ref
        found = []
        day = 0
        while day < until:
            chunk = chunks.get(day)
            if chunk is None:
                raise CheckpointError(f"job {job_id}: no result checkpoint starts on day {day}")
            found.append(chunk)
            day = chunk.day
        if day != until:
            raise CheckpointError(f"job {job_id}: result checkpoints end on day {day}, expected {until}")
        return found

    def result_chunks(self, job_id: str, until: int) -> Iterator[tuple[CheckpointRef, dict[str, Any]]]:
        """Each result chunk's reference and payload (``{"airframe", "daily"}``), in day order, one at a time.

        Raises:
            CheckpointError: a day is not covered, or a chunk is unreadable.
        """
        for ref in self.result_refs(job_id, until):
            yield ref, self.read(ref)["payload"]

    # ---------------------------------------------------------------------------------------------- pruning

    def drop(self, job_id: str) -> int:
        """Forget every checkpoint of the job, references and blobs; return how many blobs went."""
        check_id(job_id, what="job_id")  # its blobs are a prefix: a bad id could name other jobs' blobs
        self.redis.delete(REFS_KEY.format(job_id))
        return self.store.delete_prefix(f"{job_id}/")

    def expire(self, job_id: str, finished: float, *, now: float | None = None) -> bool:
        """Drop the checkpoints of a job that ended at ``finished`` once ``retention_s`` has passed; whether it did."""
        if (now if now is not None else time.time()) - finished < self.retention_s:
            return False
        self.drop(job_id)
        return True
