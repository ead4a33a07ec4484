"""The blob store interface, and the rules every store applies to keys.

A key is what a Redis checkpoint reference keeps: ``'<job_id>/<name>'``, segments separated by ``/``. The same key
means the same blob in every store, so a store can be swapped without rewriting references.

Key rules (checked by :func:`check_key`; a key that breaks one raises :class:`~simfleet.shared.errors.ConfigError`
naming the key and the rule, before any I/O): not empty; no leading ``/``; no empty segment (``a//b``, trailing
``/``); no segment that starts with ``.`` (this refuses ``.`` and ``..`` and keeps the directory store's temporary
files, ``.<name>.<random>.tmp``, out of the key space); no backslash and no control character. Prefixes
(:func:`check_prefix`) follow the same rules except that they may be empty (every key) and may end with ``/`` or in
the middle of a segment (``job-1/prog``).
"""

from __future__ import annotations

import abc
from types import TracebackType
from urllib.parse import parse_qsl

from simfleet.shared.errors import ConfigError

KEY_RULES = (
    "a key is '/'-separated segments ('<job_id>/<name>'): not empty, no leading '/', no empty segment, "
    "no segment starting with '.', no backslash or control character"
)


def _problem(text: str) -> str | None:
    """What is wrong with ``text`` as a key, or None."""
    if not text:
        return "empty"
    if text.startswith("/"):
        return "leading '/'"
    if "\\" in text:
        return "backslash"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return "control character"
    for segment in text.split("/"):
        if not segment:
            return "empty segment"
        if segment.startswith("."):
            return f"segment {segment!r} starts with '.'"
    return None


def check_key(key: str) -> str:
    """Return ``key`` if it follows the key rules (module docstring).

    Raises:
        ConfigError: naming the key and what is wrong with it.
    """
    problem = _problem(key) if isinstance(key, str) else f"not a string ({type(key).__name__})"
    if problem:
        raise ConfigError(f"bad blob key {key!r}: {problem} ({KEY_RULES})")
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is empty or the start of a key that follows the key rules.

    Raises:
        ConfigError: naming the prefix and what is wrong with it.
    """
    if not isinstance(prefix, str):
        raise ConfigError(f"bad key prefix {prefix!r}: not a string ({type(prefix).__name__})")
    if prefix:
        # A prefix may end with '/' or inside a segment: it is valid when some key that starts with it is.
        problem = _problem(prefix + "x")
        if problem:
            raise ConfigError(f"bad key prefix {prefix!r}: {problem} ({KEY_RULES})")
    return prefix


class BlobStore(abc.ABC):
    """Blobs by key ('<job_id>/<name>', '/'-separated, no leading '/', no '..'); keys are what Redis references keep.

    Every method checks its key or prefix first (:func:`check_key`, :func:`check_prefix`) and raises
    :class:`~simfleet.shared.errors.ConfigError` for one that breaks the rules. Failures of the storage itself
    (missing blob, refused access, unreachable service) raise :class:`~simfleet.shared.errors.CheckpointError`
    naming :attr:`url` and the key, with the cause chained. A store is also a context manager that closes itself.

    Attributes:
        url: the store's URL with any secret redacted (for messages and logs).
    """

    url: str

    @abc.abstractmethod
    def put(self, key: str, blob: bytes) -> None:
        """Store ``blob`` under ``key``, replacing any blob there.

        Atomic: a reader sees the whole blob or nothing (or, on overwrite, the whole old blob), never part of one.
        """

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The blob under ``key``.

        Raises:
            CheckpointError: naming the store's url and the key, when the blob is missing or cannot be read.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob under ``key``; a missing one is fine."""

    @abc.abstractmethod
    def keys(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix`` (``'job-1/'``; ``''`` for all), sorted."""

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Remove every blob whose key starts with ``prefix``; return how many were removed."""

    def close(self) -> None:  # noqa: B027  (a store with nothing to release keeps this)
        """Release connections and clients; the store is not used afterwards."""

    def __enter__(self) -> BlobStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def parse_query(query: str, known: tuple[str, ...], shown: str, *, allow_empty: bool = True) -> dict[str, str]:
    """The options of a store URL's query string, each known and given once (``shown``: the URL for messages).

    Raises:
        ConfigError: an unknown key, a key given twice, or (unless ``allow_empty``) a key without a value.
    """
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in known:
            raise ConfigError(f"unknown query key {name!r} in {shown!r} (known: {', '.join(known)})", key=name)
        if name in options:
            raise ConfigError(f"query key {name!r} given twice in {shown!r}", key=name)
        if not value and not allow_empty:
            raise ConfigError(f"query key {name!r} has no value in {shown!r}", key=name)
        options[name] = value
    return options
