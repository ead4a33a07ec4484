"""Blobs in a dict of this process, by name: for tests, examples and single-process runs; nothing is persisted.

Every :class:`MemoryStore` opened with the same name in one process shares one dict (``memory://a`` opened twice is
one store), so a test can write through one handle and read through another. Writes are atomic under a lock; the
blob is copied in and out, so a caller that changes its buffer later changes nothing in the store.
"""

from __future__ import annotations

import threading

from simfleet.shared.errors import CheckpointError, ConfigError
from simfleet.shared.stores.base import BlobStore, check_key, check_prefix

_LOCK = threading.Lock()
_SPACES: dict[str, dict[str, bytes]] = {}


class MemoryStore(BlobStore):
    """The process-local store called ``name``.

    Args:
        name: the store's name (``memory://<name>``); the same name in one process is the same store.
    """

    def __init__(self, name: str) -> None:
        if not name or "?" in name or "#" in name:
            raise ConfigError(f"a memory store needs a name without '?' or '#' (memory://<name>), got {name!r}")
        self.name = name
        self.url = f"memory://{name}"
        with _LOCK:
            self._blobs = _SPACES.setdefault(name, {})

    def put(self, key: str, blob: bytes) -> None:
        """Store a copy of ``blob``."""
        check_key(key)
        copy = bytes(blob)
        with _LOCK:
            self._blobs[key] = copy

    def get(self, key: str) -> bytes:
        """The blob under ``key``."""
        check_key(key)
        with _LOCK:
            blob = self._blobs.get(key)
        if blob is None:
            raise CheckpointError(f"{self.url}: {key}: no such blob")
        return blob

    def delete(self, key: str) -> None:
        """Remove the blob (missing is fine)."""
        check_key(key)
        with _LOCK:
            self._blobs.pop(key, None)

    def keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""
        check_prefix(prefix)
        with _LOCK:
            return sorted(key for key in self._blobs if key.startswith(prefix))

    def delete_prefix(self, prefix: str) -> int:
        """Remove every blob under ``prefix``; return how many."""
        check_prefix(prefix)
        with _LOCK:
            doomed = [key for key in self._blobs if key.startswith(prefix)]
            for key in doomed:
                del self._blobs[key]
        return len(doomed)

    @staticmethod
    def discard(name: str) -> None:
        """Forget the store called ``name`` and its blobs (open handles keep the old dict)."""
        with _LOCK:
            _SPACES.pop(name, None)
