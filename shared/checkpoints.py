"""Checkpoints of lifecycle jobs: a self-checking file format, a blob store, and the references kept in Redis.

Format (version :data:`FORMAT_VERSION`): ``MAGIC``, one byte of format version, the 32-byte sha256 of the rest, then
the rest: zstd-compressed, a msgpack header ``{"format", "kind", "job_id", "day", "created", "payload"}`` followed by
the raw little-endian bytes of every array in the payload. In the header an array is ``{"__nd__": [dtype, shape,
nbytes]}`` (its bytes follow the header in order) and a date ``{"__date__": "YYYY-MM-DD"}``; everything else is plain
msgpack data. Arrays never pass through msgpack, so a chunk of MP2 is not copied on its way to the compressor, and
arrays read back are read-only views of the decompressed body. Nothing is unpickled, so reading a checkpoint cannot
run code.

Kinds: ``environment`` (the validated inputs), ``population`` (agent state at day 0), ``progress`` (agent state and
counters at the end of a chunk), ``result`` (the MP2 of one chunk of days, before export).

Writes are atomic: a temporary file in the same folder, fsync, rename, fsync of the folder; only then is the
reference published in Redis (list ``simfleet:job:<id>:checkpoints``, oldest first). Publication can be fenced: it
happens only while a Redis hash field still holds an expected value (the job's epoch), in one server-side script, so
a worker that lost its job cannot add a reference. Restoring walks the references from the newest back and skips
(with a warning) any blob that is missing or fails its checksum.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import msgpack
import numpy as np
import redis
import zstandard

from simfleet.shared.errors import CheckpointError, StaleOwner

if TYPE_CHECKING:
    from simfleet.shared.settings import Settings

log = logging.getLogger(__name__)

MAGIC = b"SFCKPT"
FORMAT_VERSION = 1
KINDS = ("environment", "population", "progress", "result")
REFS_KEY = "simfleet:job:{}:checkpoints"
_HEADER = len(MAGIC) + 1 + 32




# ----------------------------------------------------------------------------------------------------- the format


class _Packer:
    """msgpack for everything but array data, which is collected and appended raw after the header (no copies)."""

    def __init__(self) -> None:
        self.buffers: list[np.ndarray[Any, Any]] = []

    def default(self, value: Any) -> Any:
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise CheckpointError(f"cannot checkpoint an array of Python objects (dtype {value.dtype})")
            little = np.ascontiguousarray(value.astype(value.dtype.newbyteorder("<"), copy=False))
            self.buffers.append(little)
            return {"__nd__": [little.dtype.str, list(value.shape), little.nbytes]}
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, dt.date):
            return {"__date__": value.isoformat()}
        raise CheckpointError(f"cannot checkpoint a value of type {type(value).__name__}")


class _Unpacker:
    """The inverse of :class:`_Packer`: arrays are read-only views into the decompressed body, in order."""

    def __init__(self, body: bytes, offset: int) -> None:
        self.body = body
        self.offset = offset

    def hook(self, value: dict[str, Any]) -> Any:
        if "__nd__" in value:
            dtype, shape, nbytes = value["__nd__"]
            array = np.frombuffer(self.body, dtype=np.dtype(dtype), count=nbytes // np.dtype(dtype).itemsize,
                                  offset=self.offset)  # fmt: skip
            self.offset += nbytes
            return array.reshape(shape)
        if "__date__" in value:
            return dt.date.fromisoformat(value["__date__"])
        return value


def encode(kind: str, job_id: str, day: int, payload: Any, *, level: int = 3) -> bytes:
    """One checkpoint file's bytes.

    The compressed body is: the msgpack header's length (8 bytes, little-endian), the header (the document, each
    array replaced by ``{"__nd__": [dtype, shape, nbytes]}``), then every array's little-endian bytes in order.
    """
    if kind not in KINDS:
        raise CheckpointError(f"unknown checkpoint kind {kind!r} (known: {', '.join(KINDS)})")
    document = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "job_id": job_id,
        "day": int(day),
        "created": time.time(),
        "payload": payload,
    }
    packer = _Packer()
    header = msgpack.packb(document, default=packer.default)
    total = 8 + len(header) + sum(b.nbytes for b in packer.buffers)
    compressor = zstandard.ZstdCompressor(level=level).compressobj(size=total)
    parts = [compressor.compress(len(header).to_bytes(8, "little") + header)]
    parts += [compressor.compress(b.reshape(-1).view(np.uint8).data) for b in packer.buffers if b.nbytes]
    parts.append(compressor.flush())
    body = b"".join(parts)
    return MAGIC + bytes([FORMAT_VERSION]) + hashlib.sha256(body).digest() + body


def checksum(blob: bytes) -> str:
    """The sha256 (hex) a checkpoint file carries for its body."""
    return blob[len(MAGIC) + 1 : _HEADER].hex()


def verify(blob: bytes, *, where: str = "checkpoint") -> None:
    """Check magic, format version and checksum.

    Raises:
        CheckpointError: naming ``where`` and what does not match.
    """
    if len(blob) < _HEADER or not blob.startswith(MAGIC):
        raise CheckpointError(f"{where}: not a simfleet checkpoint (bad header, {len(blob)} bytes)")
    if blob[len(MAGIC)] != FORMAT_VERSION:
        raise CheckpointError(f"{where}: format version {blob[len(MAGIC)]}, this build reads {FORMAT_VERSION}")
    actual = hashlib.sha256(blob[_HEADER:]).hexdigest()
    if actual != checksum(blob):
        raise CheckpointError(f"{where}: sha256 mismatch (file says {checksum(blob)[:12]}, body is {actual[:12]})")


def decode(blob: bytes, *, where: str = "checkpoint") -> dict[str, Any]:
    """The document of a checkpoint file, after :func:`verify`."""
    verify(blob, where=where)
    try:
        raw = zstandard.ZstdDecompressor().decompress(memoryview(blob)[_HEADER:])
        length = int.from_bytes(raw[:8], "little")
        unpacker = _Unpacker(raw, 8 + length)
        document: dict[str, Any] = msgpack.unpackb(raw[8 : 8 + length], object_hook=unpacker.hook,
                                                   strict_map_key=False)  # fmt: skip
    except (zstandard.ZstdError, ValueError, msgpack.ExtraData) as exc:
        raise CheckpointError(f"{where}: cannot decode: {exc}") from exc
    return document


# ------------------------------------------------------------------------------------------------------ the store


class DirectoryStore:
    """Blobs as files under ``root/<job id>/``; URIs are ``file://`` paths (shared storage in a fleet)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def write(self, job_id: str, name: str, blob: bytes) -> str:
        """Write atomically and return the URI."""
        folder = self.root / job_id
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        partial = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        with open(partial, "wb") as out:
            out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(target)
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return target.as_uri()

    @staticmethod
    def path(uri: str) -> Path:
        """The file of a ``file://`` URI."""
        parts = urlsplit(uri)
        if parts.scheme != "file":
            raise CheckpointError(f"{uri}: only file:// checkpoint URIs are supported by the directory store")
        return Path(unquote(parts.path))

    def read(self, uri: str) -> bytes:
        """The blob at ``uri``."""
        try:
            return self.path(uri).read_bytes()
        except OSError as exc:
            raise CheckpointError(f"{uri}: cannot read: {exc.strerror}") from exc

    def delete(self, uri: str) -> None:
        """Remove the blob (missing is fine)."""
        self.path(uri).unlink(missing_ok=True)

    def delete_job(self, job_id: str) -> None:
        """Remove a job's folder if it is empty."""
        folder = self.root / job_id
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


# ------------------------------------------------------------------------------------------------- the references


@dataclass(frozen=True)
class CheckpointRef:
    """What Redis keeps about one checkpoint."""

    uri: str
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


# Push the reference only while the fence field still holds the expected value (KEYS: refs, fence hash).
_FENCED_PUSH = """
if ARGV[2] ~= '' and redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
"""


class Checkpoints:
    """Save, list, restore and prune the checkpoints of jobs.

    Args:
        client: the Redis that keeps references.
        store: where blobs go.
        keep: progress checkpoints kept per job (older ones are pruned); environment, population and result
            checkpoints are kept until the job's checkpoints are dropped as a whole.
        level: zstd level.
    """

    def __init__(self, client: redis.Redis, store: DirectoryStore, *, keep: int = 3, level: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.redis = client
        self.store = store
        self.keep = keep
        self.level = level
        self._push = client.register_script(_FENCED_PUSH)

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis) -> Checkpoints:
        """The fleet's checkpoints: ``stores.checkpoint_dir``, with ``gpu_worker``'s keep count and zstd level."""
        gpu = settings.gpu_worker
        store = DirectoryStore(settings.stores.checkpoint_dir)
        return cls(client, store, keep=gpu.checkpoint_keep, level=gpu.checkpoint_level)

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
        """Write a checkpoint and publish its reference; prune old progress checkpoints.

        Args:
            job_id: the job.
            kind: one of :data:`KINDS`.
            day: the day the checkpoint stands at (days done; for a result chunk, its end).
            payload: plain data (dicts, lists, scalars, numpy arrays, dates).
            first_day: for a result chunk, the first day it covers.
            fence: ``(hash key, field, value)``: publish only while that field equals the value (the job's epoch).

        Raises:
            StaleOwner: the fence no longer holds; the blob written is removed again.
        """
        blob = encode(kind, job_id, day, payload, level=self.level)
        seq = uuid.uuid4().hex[:8]
        name = f"{kind}-{first_day:05d}-{day:05d}-{seq}.ckpt"
        uri = self.store.write(job_id, name, blob)
        ref = CheckpointRef(
            uri, kind, int(day), len(blob), checksum(blob), time.time(), int(first_day), fence[2] if fence else 0
        )
        key, field, value = fence if fence else ("", "", 0)
        keys = [REFS_KEY.format(job_id), key or REFS_KEY.format(job_id)]
        if not self._push(keys=keys, args=[ref.to_json(), field, str(value)]):
            self.store.delete(uri)
            raise StaleOwner(f"job {job_id}: epoch {value} is stale; {kind} checkpoint of day {day} refused")
        if kind == "progress":
            self.prune(job_id)
        return ref

    def refs(self, job_id: str) -> list[CheckpointRef]:
        """Every reference of the job, oldest first."""
        return [CheckpointRef.from_json(raw) for raw in self.redis.lrange(REFS_KEY.format(job_id), 0, -1)]

    def read(self, ref: CheckpointRef) -> dict[str, Any]:
        """The document of ``ref``, checked against the file's own checksum and the reference's.

        Raises:
            CheckpointError: missing file, bad header, checksum mismatch.
        """
        blob = self.store.read(ref.uri)
        if checksum(blob) != ref.sha256 or len(blob) != ref.size:
            raise CheckpointError(f"{ref.uri}: does not match its reference (size or sha256 changed)")
        return decode(blob, where=ref.uri)

    def latest(self, job_id: str, kinds: Iterable[str]) -> Restored | None:
        """The newest readable checkpoint of one of ``kinds``; unreadable newer ones are skipped with a warning."""
        wanted = set(kinds)
        for ref in reversed(self.refs(job_id)):
            if ref.kind not in wanted:
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

    def prune(self, job_id: str) -> list[CheckpointRef]:
        """Drop progress checkpoints beyond the newest ``keep``; return what was dropped."""
        progress = [ref for ref in self.refs(job_id) if ref.kind == "progress"]
        dropped = progress[: max(0, len(progress) - self.keep)]
        for ref in dropped:
            self.redis.lrem(REFS_KEY.format(job_id), 1, ref.to_json())
            self.store.delete(ref.uri)
        return dropped

    def drop(self, job_id: str) -> None:
        """Forget every checkpoint of the job: references and blobs."""
        for ref in self.refs(job_id):
            self.store.delete(ref.uri)
        self.redis.delete(REFS_KEY.format(job_id))
        self.store.delete_job(job_id)
