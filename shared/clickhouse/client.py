"""One ClickHouse client for both targets: a real server over HTTP and chDB embedded in the process.

The DSN says which: ``http://user:password@host:8123/database`` (or ``https://``) for a server, ``chdb:///abs/path``
or ``chdb://relative/path`` for chDB (clickhouse-connect drives chDB when the ``chdb`` package is installed). Only
the construction of the client and the last step of an insert differ; every query after it is the same code, and
every insert is built the same way (one Arrow table per batch) before it travels. Driver errors are translated at
this boundary into :class:`ClickHouseError`, with the driver's exception chained; connection errors are retried
with capped exponential backoff and jitter first.
"""

from __future__ import annotations

import fcntl
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa

from simfleet.shared.errors import ClickHouseError, ConfigError

T = TypeVar("T")
DEFAULT_DATABASE = "simfleet"



@dataclass(frozen=True)
class Dsn:
    """A parsed ClickHouse DSN."""

    kind: str
    database: str
    path: str = ""
    host: str = ""
    port: int = 0
    user: str = "default"
    password: str = ""

    @property
    def redacted(self) -> str:
        """The DSN without its password, for messages and logs."""
        if self.kind == "chdb":
            return f"chdb://{self.path}"
        return f"{self.kind}://{self.user}@{self.host}:{self.port}/{self.database}"


def parse_dsn(dsn: str, *, key: str = "clickhouse_dsn") -> Dsn:
    """Parse ``dsn``; errors name the settings key."""
    parts = urlsplit(dsn)
    if parts.scheme == "chdb":
        raw = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not raw:
            raise ConfigError(f"expected chdb:///path/to/dir or chdb://relative/dir, got {dsn!r}", key=key)
        return Dsn("chdb", DEFAULT_DATABASE, path=str(Path(raw).resolve()))
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise ConfigError(f"expected http://user:password@host:8123/database, got {dsn!r}", key=key)
        try:
            port = parts.port or (8443 if parts.scheme == "https" else 8123)
        except ValueError as exc:
            raise ConfigError(f"bad port in {dsn!r}", key=key) from exc
        return Dsn(
            parts.scheme,
            parts.path.strip("/") or DEFAULT_DATABASE,
            host=parts.hostname,
            port=port,
            user=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
        )
    raise ConfigError(f"expected a chdb:// or http(s):// DSN, got {dsn!r}", key=key)


def portable_dsn(dsn: str) -> str:
    """``dsn`` as another process can use it: a relative chDB path made absolute; a server DSN unchanged."""
    parsed = parse_dsn(dsn)
    return f"chdb://{parsed.path}" if parsed.kind == "chdb" else dsn


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the server could not be reached (worth retrying), not that the query was wrong."""
    from clickhouse_connect.driver.exceptions import OperationalError

    return isinstance(exc, OperationalError | ConnectionError | TimeoutError)


def with_retries(
    action: Callable[[], T],
    what: str,
    *,
    attempts: int = 5,
    base_delay_s: float = 0.2,
    max_delay_s: float = 5.0,
    rng: random.Random | None = None,
) -> T:
    """Run ``action``; retry connection errors with exponential backoff and full jitter, capped.

    Raises:
        ClickHouseError: naming ``what`` once the attempts are spent, or at once for a non-connection error.
    """
    rng = rng or random.Random()
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if not is_connection_error(exc):
                raise ClickHouseError(f"{what} failed: {exc}") from exc
            if attempt == attempts:
                raise ClickHouseError(f"{what}: ClickHouse unreachable after {attempts} attempts: {exc}") from exc
            time.sleep(rng.uniform(0.0, min(max_delay_s, base_delay_s * 2 ** (attempt - 1))))
    raise AssertionError("unreachable")  # pragma: no cover


CHDB_LOCK_TIMEOUT_S = 600.0
"""How long opening an embedded database waits for another process that has it open (an export takes seconds)."""
_chdb_locks: dict[str, tuple[int, int]] = {}
_chdb_guard = threading.Lock()


def lock_chdb(path: str, timeout_s: float = CHDB_LOCK_TIMEOUT_S) -> None:
    """Take the machine-wide lock of the chDB database at ``path`` (re-entrant within a process).

    chDB opens a database directory in one process at a time; a second process opening it fails ("Unable to open
    the chdb engine"). Every process of the fleet opens chDB through :class:`ClickHouse`, which holds this lock (an
    ``flock`` on ``<path>.lock``) while it is open, so two exports to the same embedded database take turns.

    Raises:
        ClickHouseError: another process held it for ``timeout_s``.
    """
    with _chdb_guard:
        held = _chdb_locks.get(path)
        if held is not None:
            _chdb_locks[path] = (held[0], held[1] + 1)
            return
        descriptor = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(descriptor)
                raise ClickHouseError(f"chdb://{path} stayed in use by another process for {timeout_s:.0f} s") from None
            time.sleep(0.05)
    with _chdb_guard:
        _chdb_locks[path] = (descriptor, 1)


def unlock_chdb(path: str) -> None:
    """Release one hold of :func:`lock_chdb`; the last one releases the lock."""
    with _chdb_guard:
        descriptor, count = _chdb_locks.pop(path)
        if count > 1:
            _chdb_locks[path] = (descriptor, count - 1)
            return
    fcntl.flock(descriptor, fcntl.LOCK_UN)
    os.close(descriptor)


def sql_literal(value: Any) -> str:
    """``value`` as a ClickHouse SQL literal (strings quoted and escaped, dates as ISO strings, NULL for None)."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, np.datetime64):
        return f"'{np.datetime_as_string(value, unit='D')}'"
    if hasattr(value, "isoformat"):
        return f"'{value.isoformat()}'"
    return str(int(value)) if isinstance(value, int | np.integer) else repr(value)


def _arrow(values: Any) -> pa.Array:
    """One column as an Arrow array; ``datetime64`` NaT and Python ``None`` become NULL.

    Numeric numpy columns are wrapped without a copy; dates become ``date32`` (one int32 pass plus a null mask).
    """
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        days = values.astype("datetime64[D]", copy=False)
        nat = np.isnat(days)
        return pa.array(days.view(np.int64).astype(np.int32), type=pa.date32(), mask=nat if nat.any() else None)
    if isinstance(values, np.ndarray) and values.dtype.kind != "O":
        return pa.array(values)
    return pa.array(list(values) if not isinstance(values, list) else values)


def arrow_batch(columns: Mapping[str, Any]) -> pa.Table:
    """A batch of columns (numpy arrays or lists, all of one length) as one Arrow table."""
    return pa.table({name: _arrow(values) for name, values in columns.items()})


class ClickHouse:
    """A connected client plus the database it works in.

    Args:
        dsn: a DSN as described in the module docstring.
        attempts: connection attempts before giving up (each operation retries the same way).
    """

    def __init__(self, dsn: str, *, attempts: int = 5) -> None:
        import clickhouse_connect

        self.dsn = parse_dsn(dsn)
        self.database = self.dsn.database
        self.attempts = attempts
        self._locked = False
        if self.dsn.kind == "chdb":
            Path(self.dsn.path).mkdir(parents=True, exist_ok=True)
            lock_chdb(self.dsn.path)
            self._locked = True
            connect: Callable[[], Any] = lambda: clickhouse_connect.get_client(dsn=f"chdb://{self.dsn.path}")  # noqa: E731
        else:
            connect = lambda: clickhouse_connect.get_client(  # noqa: E731
                host=self.dsn.host,
                port=self.dsn.port,
                username=self.dsn.user,
                password=self.dsn.password,
                secure=self.dsn.kind == "https",
                connect_timeout=5,
            )
        try:
            self.client = with_retries(connect, f"connecting to {self.dsn.redacted}", attempts=attempts)
            self.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        except BaseException:
            self._release()
            raise

    def command(self, sql: str, **kwargs: Any) -> Any:
        """Run a statement."""
        return with_retries(lambda: self.client.command(sql, **kwargs), sql.split("(")[0][:80], attempts=self.attempts)

    def rows(self, sql: str, **kwargs: Any) -> list[tuple[Any, ...]]:
        """Run a query and return its rows."""
        result = with_retries(lambda: self.client.query(sql, **kwargs), sql[:80], attempts=self.attempts)
        return [tuple(row) for row in result.result_rows]

    def columns(self, sql: str, **kwargs: Any) -> list[list[Any]]:
        """Run a query and return its result column by column."""
        result = with_retries(lambda: self.client.query(sql, **kwargs), sql[:80], attempts=self.attempts)
        return [list(column) for column in result.result_columns]

    def insert_columns(
        self, table: str, columns: Mapping[str, Any], *, constants: Mapping[str, Any] | None = None
    ) -> None:
        """Insert one batch given as columns (numpy arrays or lists), never row by row.

        The batch is one Arrow table: columnar end to end, with NULLs as validity bitmaps (a NaT date is NULL),
        several times faster than clickhouse-connect's per-column Python conversion. ``constants`` are columns
        with one value in every row (an export's partition key), which chDB takes as a literal rather than a
        column of copies.

        chDB reads the Arrow table where it lies, through its ``Python()`` table function in an
        ``INSERT … SELECT`` on this client: no serialisation, no temporary file, and the engine's threads
        convert and write in parallel (about twice the rate of ``insert_arrow``, which writes an Arrow file
        that chDB then reads back). A server gets the same table as an Arrow stream over HTTP.
        """
        batch = arrow_batch(columns)
        if batch.num_rows == 0:
            return
        insert = self._insert_in_process if self.dsn.kind == "chdb" else self._insert_arrow
        with_retries(lambda: insert(table, batch, constants or {}), f"insert into {table}", attempts=self.attempts)

    def _insert_arrow(self, table: str, batch: pa.Table, constants: Mapping[str, Any]) -> None:
        """Send ``batch`` as an Arrow stream; each constant travels as a one-entry dictionary column."""
        for name, value in constants.items():
            indices = pa.array(np.zeros(batch.num_rows, dtype=np.int8))
            batch = batch.append_column(name, pa.DictionaryArray.from_arrays(indices, _arrow(np.asarray([value]))))
        self.client.insert_arrow(f"{self.database}.{table}", batch)

    def _insert_in_process(self, table: str, batch: pa.Table, constants: Mapping[str, Any]) -> None:
        """``INSERT … SELECT`` from ``batch`` in this process's memory (chDB's ``Python()`` table function)."""
        simfleet_insert_batch = batch  # noqa: F841  (chDB finds the table by this name in the caller's frames)
        targets = ", ".join(f"`{name}`" for name in [*constants, *batch.column_names])
        values = ", ".join([*(sql_literal(v) for v in constants.values()), *(f"`{n}`" for n in batch.column_names)])
        self.client.command(
            f"INSERT INTO {self.database}.{table} ({targets}) SELECT {values} FROM Python(simfleet_insert_batch)"
        )

    def close(self) -> None:
        """Close the client (chDB allows one open path per process) and release the embedded database's lock."""
        try:
            self.client.close()
        finally:
            self._release()

    def _release(self) -> None:
        if self._locked:
            self._locked = False
            unlock_chdb(self.dsn.path)

    def __enter__(self) -> ClickHouse:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
