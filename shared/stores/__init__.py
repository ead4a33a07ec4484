"""Checkpoint blob stores named by URL: one interface (:class:`BlobStore`), one opener (:func:`open_store`).

==========================================  ================================================================
URL                                         store
==========================================  ================================================================
``file:///abs/path``, ``path/to/dir``       :class:`~simfleet.shared.stores.directory.DirectoryStore`
``s3://bucket/prefix?endpoint_url=...``     :class:`~simfleet.shared.stores.s3.S3Store` (needs boto3)
``memory://name``                           :class:`~simfleet.shared.stores.memory.MemoryStore`
``clickhouse+chdb:///path?table=...``       :class:`~simfleet.shared.stores.clickhouse.ClickHouseStore`
``clickhouse+http://host:8123/db?table=``   :class:`~simfleet.shared.stores.clickhouse.ClickHouseStore`
==========================================  ================================================================

Importing this package imports neither boto3 nor any store's driver: a store's module is imported when a URL of
its scheme is opened. docs/stores.md says what each store is for.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from simfleet.shared.errors import ConfigError
from simfleet.shared.stores.base import BlobStore, check_key, check_prefix

__all__ = ["SCHEMES", "BlobStore", "check_key", "check_prefix", "open_store"]

# scheme -> (module, class); file:// and memory:// are parsed here, the others by their class's ``from_url(url)``.
SCHEMES: dict[str, tuple[str, str]] = {
    "file": ("simfleet.shared.stores.directory", "DirectoryStore"),
    "memory": ("simfleet.shared.stores.memory", "MemoryStore"),
    "s3": ("simfleet.shared.stores.s3", "S3Store"),
    "clickhouse+chdb": ("simfleet.shared.stores.clickhouse", "ClickHouseStore"),
    "clickhouse+http": ("simfleet.shared.stores.clickhouse", "ClickHouseStore"),
    "clickhouse+https": ("simfleet.shared.stores.clickhouse", "ClickHouseStore"),
}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def open_store(url: str) -> BlobStore:
    """The store ``url`` names (forms in the module docstring; a plain path is a directory, resolved now).

    Raises:
        ConfigError: an empty URL, an unknown scheme (the message lists the known ones), or a URL its store
            refuses (naming the problem: no bucket, an unknown query key, ...); boto3 missing for ``s3://``.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"a checkpoint store URL is needed, got {url!r} (known: {_known()})")
    match = _SCHEME.match(url)
    if not match:
        return _directory(url)
    scheme = match.group(1).lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown checkpoint store scheme {scheme!r} in {_safe(url)!r} (known: {_known()})")
    if not url.startswith(match.group(0) + "//"):
        raise ConfigError(f"expected {scheme}://..., got {_safe(url)!r}")
    parts = urlsplit(url)
    if scheme in ("file", "memory") and (parts.query or parts.fragment):
        raise ConfigError(f"a {scheme}:// store URL takes no query or fragment, got {url!r}")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ConfigError(f"expected file:///absolute/path (or a plain path for a relative one), got {url!r}")
        return _directory(unquote(parts.path))
    if scheme == "memory":
        from simfleet.shared.stores.memory import MemoryStore

        name = unquote(parts.netloc + parts.path).strip("/")
        if not name:
            raise ConfigError(f"expected memory://<name>, got {url!r}")
        return MemoryStore(name)
    module, name = SCHEMES[scheme]
    store: BlobStore = getattr(importlib.import_module(module), name).from_url(url)
    return store


def _directory(path: str) -> BlobStore:
    from simfleet.shared.stores.directory import DirectoryStore

    if not path:
        raise ConfigError("expected file:///absolute/path or a plain path, got an empty path")
    return DirectoryStore(Path(path))


def _known() -> str:
    return ", ".join(f"{scheme}://" for scheme in SCHEMES) + ", or a plain path"


def _safe(url: str) -> str:
    """``url`` with any ``user:password@`` removed, for messages."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
    return url
