"""The checkpoint file format: self-checking, compressed, and free of anything that could run code when read.

Format (version :data:`FORMAT_VERSION`): ``MAGIC``, one byte of format version, the 32-byte sha256 of the rest, then
the rest: zstd-compressed, a msgpack header ``{"format", "kind", "job_id", "day", "created", "payload"}`` followed by
the raw little-endian bytes of every array in the payload. In the header an array is ``{"__nd__": [dtype, shape,
nbytes]}`` (its bytes follow the header in order) and a date ``{"__date__": "YYYY-MM-DD"}``; everything else is plain
msgpack data. Arrays never pass through msgpack, so a chunk of MP2 is not copied on its way to the compressor, and
arrays read back are read-only views of the decompressed body. Nothing is unpickled, so reading a checkpoint cannot
run code.

Kinds: ``environment`` (the validated inputs), ``population`` (agent state at day 0), ``progress`` (agent state and
counters at the end of a chunk), ``result`` (the MP2 of one chunk of days, before export).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any

import msgpack
import numpy as np
import zstandard

from simfleet.shared.errors import CheckpointError

MAGIC = b"SFCKPT"
FORMAT_VERSION = 1
KINDS = ("environment", "population", "progress", "result")
_HEADER = len(MAGIC) + 1 + 32


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
