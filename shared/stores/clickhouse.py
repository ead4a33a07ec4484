"""Blobs as rows of a ClickHouse table ("ClickHouse state storage"), through the project's own ClickHouse client.

For a deployment that already runs ClickHouse for its exports and would rather not run an object store as well.
chDB (ClickHouse embedded in the process, :mod:`simfleet.shared.clickhouse.client`) serves one process and its
disk, like the directory store; a ClickHouse server serves a whole fleet, like S3.

URL: ``clickhouse+chdb:///abs/path`` (or ``clickhouse+chdb://relative/path``, resolved when opened) or
``clickhouse+http(s)://user:password@host:8123/database``; both take ``?table=name`` (default
``checkpoint_blobs``) and ``attempts=N`` (connection attempts of each statement, default 3). The password, if any,
is what the project's DSNs already carry; :attr:`ClickHouseStore.url` leaves it out. chDB opens one path per
process: a store on chDB must use the same path as any other chDB use in that process (the export database, say;
the table keeps the blobs apart).

Table (created if missing): ``key String, blob String, created DateTime64(9) DEFAULT now64(9)``,
``ReplacingMergeTree(created) ORDER BY key``. A put inserts one row; a get reads the newest row of the key
(``argMax(blob, created)``), so an overwrite is seen whole, old or new, and merges drop the older rows later; deletes
are lightweight ``DELETE``s, masked from reads at once.

Atomicity: an INSERT of one block is atomic in ClickHouse's MergeTree engines (a data part appears whole or not at
all), and a put is one block of one row, so a reader sees the whole blob or nothing.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from simfleet.shared.clickhouse.client import ClickHouse, Dsn, parse_dsn, sql_literal
from simfleet.shared.errors import CheckpointError, ClickHouseError, ConfigError
from simfleet.shared.stores.base import BlobStore, check_key, check_prefix, parse_query

T = TypeVar("T")
DEFAULT_TABLE = "checkpoint_blobs"
QUERY_KEYS = ("table", "attempts")
SCHEMES = ("clickhouse+chdb", "clickhouse+http", "clickhouse+https")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_url(url: str) -> tuple[str, str, int]:
    """``(dsn, table, attempts)`` of a ``clickhouse+...`` store URL (module docstring).

    Raises:
        ConfigError: naming what is wrong; the URL is shown without its password.
    """
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"expected a {', '.join(s + '://' for s in SCHEMES)} URL, got scheme {parts.scheme!r}")
    if parts.fragment:
        raise ConfigError("unexpected '#' fragment in a ClickHouse store URL")
    dsn = f"{parts.scheme.removeprefix('clickhouse+')}://{parts.netloc}{parts.path}"
    shown = "clickhouse+" + _parse_dsn(dsn).redacted
    options = parse_query(parts.query, QUERY_KEYS, shown)
    table = options.get("table", DEFAULT_TABLE)
    if not _IDENTIFIER.match(table):
        raise ConfigError(f"table must be a plain identifier (letters, digits, '_'), got {table!r}", key="table")
    try:
        attempts = int(options.get("attempts", "3"))
    except ValueError as exc:
        raise ConfigError(f"attempts must be a whole number, got {options['attempts']!r}", key="attempts") from exc
    if attempts < 1:
        raise ConfigError(f"attempts must be at least 1, got {attempts}", key="attempts")
    return dsn, table, attempts


def _parse_dsn(dsn: str) -> Dsn:
    """:func:`parse_dsn`, with errors that never repeat the DSN (it may hold a password)."""
    try:
        return parse_dsn(dsn, key="url")
    except ConfigError:
        scheme = dsn.partition(":")[0]
        raise ConfigError(  # from None: the DSN parser's message repeats the DSN
            f"bad ClickHouse store URL (clickhouse+{scheme}://...): expected clickhouse+chdb:///abs/path, "
            "clickhouse+chdb://relative/path or clickhouse+http(s)://user:password@host:8123/database"
        ) from None


class ClickHouseStore(BlobStore):
    """Blobs in the table ``table`` of the ClickHouse (or chDB) that ``dsn`` names.

    Opening connects and creates the database and the table if missing. Calls are serialised (one client, which
    is not safe to share between threads).

    Args:
        dsn: a DSN of :mod:`simfleet.shared.clickhouse.client` (``chdb:///path``, ``http://user:pw@host:8123/db``).
        table: the table's name.
        attempts: connection attempts of each statement.

    Raises:
        ConfigError: a bad DSN or table name.
        CheckpointError: ClickHouse cannot be reached or refuses to create the table.
    """

    def __init__(self, dsn: str, *, table: str = DEFAULT_TABLE, attempts: int = 3) -> None:
        parsed = _parse_dsn(dsn)
        if not _IDENTIFIER.match(table):
            raise ConfigError(f"table must be a plain identifier (letters, digits, '_'), got {table!r}", key="table")
        self.table = table
        self.url = f"clickhouse+{parsed.redacted}?table={table}"
        self._lock = threading.Lock()
        try:
            self._client = ClickHouse(dsn, attempts=attempts)
        except ClickHouseError as exc:
            raise CheckpointError(f"{self.url}: cannot open: {exc}") from exc
        self._name = f"{self._client.database}.{table}"
        self._call("create the table", lambda: self._client.command(
            f"CREATE TABLE IF NOT EXISTS {self._name} (key String, blob String, created DateTime64(9) DEFAULT "
            "now64(9)) ENGINE = ReplacingMergeTree(created) ORDER BY key"
        ))  # fmt: skip

    @classmethod
    def from_url(cls, url: str) -> ClickHouseStore:
        """The store a ``clickhouse+chdb://`` or ``clickhouse+http(s)://`` URL names."""
        dsn, table, attempts = parse_url(url)
        return cls(dsn, table=table, attempts=attempts)

    def _call(self, what: str, action: Callable[[], T]) -> T:
        with self._lock:
            try:
                return action()
            except ClickHouseError as exc:
                raise CheckpointError(f"{self.url}: {what}: {exc}") from exc

    def put(self, key: str, blob: bytes) -> None:
        """Insert one row (one block: atomic); the newest row of a key is its blob."""
        check_key(key)
        body = bytes(blob)
        self._call(key, lambda: self._client.insert_columns(self.table, {"key": [key], "blob": [body]}))

    def get(self, key: str) -> bytes:
        """The newest blob of ``key``."""
        rows = self._call(key, lambda: self._client.rows(
            f"SELECT argMax(blob, created) AS blob FROM {self._name} WHERE key = {sql_literal(check_key(key))} "
            "GROUP BY key",
            column_formats={"blob": "bytes"},
        ))  # fmt: skip
        if not rows:
            raise CheckpointError(f"{self.url}: {key}: no such blob")
        blob: bytes = rows[0][0]
        return blob

    def delete(self, key: str) -> None:
        """Delete every row of ``key`` (missing is fine)."""
        condition = f"key = {sql_literal(check_key(key))}"
        self._call(key, lambda: self._client.command(f"DELETE FROM {self._name} WHERE {condition}"))

    def keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""
        condition = f"startsWith(key, {sql_literal(check_prefix(prefix))})"
        rows = self._call(f"keys under {prefix!r}", lambda: self._client.rows(
            f"SELECT DISTINCT key FROM {self._name} WHERE {condition}"
        ))  # fmt: skip
        return sorted(str(row[0]) for row in rows)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every row whose key starts with ``prefix``; return how many keys that was."""
        found = self.keys(prefix)
        if found:
            condition = f"startsWith(key, {sql_literal(prefix)})"
            self._call(f"keys under {prefix!r}", lambda: self._client.command(
                f"DELETE FROM {self._name} WHERE {condition}"
            ))  # fmt: skip
        return len(found)

    def close(self) -> None:
        """Close the client."""
        with self._lock:
            self._client.close()
