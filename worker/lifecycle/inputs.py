"""Inputs of a lifecycle job: the MP1/MP3/MP4/MP5 tables plus the environment (first day and horizon).

Tables are columnar: a ``dict`` of column name to a one-dimensional numpy array, all of one length.
Representation, shared by every loader and every backend:

- integers: signed integer arrays, ``int64`` from every loader (the synthetic MP5 uses ``int32`` to halve the size of
  its aircraft x days rows); a missing value in a nullable column (MP3 ``ll``/``oh``/``br`` overrides) is ``-1``;
- dates: ``datetime64[D]`` arrays; a missing date (MP3 ``delivery_date`` unless status 0) is ``NaT``;
- ``ac_type``: a numpy unicode array of ``"mi8"`` / ``"mi17"``.

Rows keep the order of their source; nothing is sorted or deduplicated on load. :func:`load_inputs` loads and
validates (see :mod:`simfleet.worker.lifecycle.validation`); a :class:`InputsSource` only loads.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import datetime as dt
import os
from collections import Counter
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import yaml

from simfleet.shared.errors import ConfigError, InputError, printable
from simfleet.shared.lifecycle_contract import COLUMNS, TABLES, Column, LifecycleInputs, Table
from simfleet.shared.user_files import COMPRESSED, SNIFF_BYTES, Refused, open_regular, read_yaml, text_problem

_ARROW_TYPES = {"int": pa.int64(), "date": pa.date32(), "ac_type": pa.string()}

META_MAX_BYTES = 64 * 1024
"""The largest ``meta.yaml`` read: it holds two keys, so anything bigger is not an environment file."""

META_MAX_DEPTH = 8
"""How deeply ``meta.yaml`` may nest (it needs one level); deeper documents are refused before PyYAML recurses."""


class InputsSource(abc.ABC):
    """Where a lifecycle job's inputs come from: a directory of files here, a ClickHouse version elsewhere."""

    @abc.abstractmethod
    def load(self) -> LifecycleInputs:
        """Read the inputs into the columnar representation, without validating them.

        Raises:
            InputError: a table cannot be read or lacks a column.
            ConfigError: the environment (``meta.yaml``) is wrong.
        """


class MemorySource(InputsSource):
    """Inputs already in memory (tests, synthetic fleets handed straight to a backend)."""

    def __init__(self, inputs: LifecycleInputs) -> None:
        self.inputs = inputs

    def load(self) -> LifecycleInputs:
        """Return the inputs given at construction."""
        return self.inputs


class DirectorySource(InputsSource):
    """An inputs directory: ``meta.yaml`` plus ``mp1``, ``mp3``, ``mp4``, ``mp5`` as ``.csv`` or ``.parquet``.

    Args:
        path: the directory.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> LifecycleInputs:
        """Read ``meta.yaml`` and the four tables (see ``docs/lifecycle_inputs.md`` for the format)."""
        if not self.path.is_dir():
            what = "does not exist" if not os.path.lexists(self.path) else "is not a directory"
            raise ConfigError(f"{what}; expected an inputs directory (meta.yaml, mp1, mp3, mp4, mp5)",
                              source=str(self.path))  # fmt: skip
        version_date, days = read_meta(self.path / "meta.yaml")
        tables = {name: read_table(self._table_file(name), name) for name in TABLES}
        return LifecycleInputs(version_date, days, tables["mp1"], tables["mp3"], tables["mp4"], tables["mp5"])

    def _table_file(self, name: str) -> Path:
        candidates = [self.path / f"{name}{ext}" for ext in (".csv", ".parquet")]
        found = [path for path in candidates if os.path.lexists(path)]
        if len(found) != 1:
            problem = "both .csv and .parquet exist, keep one" if found else "no file"
            raise InputError(name, [f"{self.path}/{name}.csv or {name}.parquet: {problem}"])
        return found[0]


def load_inputs(path: str | Path, *, days: int | None = None, days_key: str = "days") -> LifecycleInputs:
    """Load an inputs directory and validate it.

    Args:
        path: the inputs directory.
        days: a horizon replacing ``meta.yaml``'s ``days`` (MP4 and MP5 must still cover it).
        days_key: how the caller names ``days`` in errors (``--days`` on the command line).

    Raises:
        InputError: a table is missing, unreadable or invalid (names the table, row key and field).
        ConfigError: ``meta.yaml`` is missing or wrong, or ``days`` is not a positive integer within the limits.
    """
    from simfleet.worker.lifecycle.validation import check_horizon, validate_inputs

    inputs = DirectorySource(path).load()
    if days is not None:
        check_horizon(inputs.version_date, days, key=days_key)
        inputs = dataclasses.replace(inputs, days=days)
    validate_inputs(inputs)
    return inputs


def read_meta(path: Path) -> tuple[dt.date, int]:
    """Read ``meta.yaml``: ``version_date`` (YYYY-MM-DD, the first simulated day) and ``days`` (the horizon).

    Raises:
        ConfigError: the file is missing, not a regular file, not UTF-8 YAML within the limits of every YAML file
            (:mod:`simfleet.shared.user_files`: size, nesting, values once aliases are expanded, no repeated key),
            a key is missing or unknown, or a value has the wrong form or is out of its limits.
    """
    from simfleet.worker.lifecycle.validation import check_horizon

    source = str(path)
    if not os.path.lexists(path):
        raise ConfigError("missing; expected version_date: YYYY-MM-DD and days: N", source=source)
    data = read_yaml(path, what="", max_bytes=META_MAX_BYTES, max_depth=META_MAX_DEPTH, max_nodes=100)
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping with version_date and days", source=source)
    unknown = sorted(printable(key) for key in set(data) - {"version_date", "days"})
    if unknown:
        raise ConfigError("unknown key; expected only version_date and days", source=source, key=unknown[0])
    version_date = data.get("version_date")
    if isinstance(version_date, str):
        with contextlib.suppress(ValueError):
            version_date = dt.date.fromisoformat(version_date)
    if not isinstance(version_date, dt.date) or isinstance(version_date, dt.datetime):
        shown = printable(repr(version_date))
        raise ConfigError(f"expected a date YYYY-MM-DD, got {shown}", source=source, key="version_date")
    return version_date, check_horizon(version_date, data.get("days"), source=source)


def read_table(path: Path, name: str) -> Table:
    """Read one table file (``.csv`` or ``.parquet``) into the columnar representation.

    Only a regular file is read (a directory, FIFO or device is refused before anything blocks); a CSV must be UTF-8
    text, a Parquet file must be one. Columns not in :data:`COLUMNS` are ignored; a missing or repeated column, a
    table without rows, or a cell that is not of its column's kind is an :class:`InputError` naming the file and the
    column.
    """
    columns = COLUMNS[name]
    try:
        with open_regular(path) as handle:
            arrow = _read_arrow(handle, path, columns)
    except Refused as exc:
        raise InputError(name, [f"{path}: {exc}"]) from exc
    except (pa.ArrowException, OSError) as exc:
        raise InputError(name, [f"{path}: cannot be read: {printable(exc, 300)}"]) from exc
    missing = [column.name for column in columns if column.name not in arrow.column_names]
    if missing:
        expected = ", ".join(column.name for column in columns)
        raise InputError(name, [f"{path}: no column {', '.join(missing)}; expected columns {expected}"])
    if arrow.num_rows == 0:
        raise InputError(name, [f"{path}: no rows (only a header or an empty table); expected at least one row"])
    table: Table = {}
    for column in columns:
        try:
            table[column.name] = _to_numpy(arrow.column(column.name), column)
        except pa.ArrowException as exc:
            shown = printable(exc, 300)
            raise InputError(name, [f"{path}: field {column.name}: {shown}; expected {column.expected()}"]) from exc
    return table


def _read_arrow(handle: BinaryIO, path: Path, columns: tuple[Column, ...]) -> pa.Table:
    head = handle.read(SNIFF_BYTES)
    handle.seek(0)
    if path.suffix == ".csv":
        problem = text_problem(head)
        if problem:
            raise Refused(problem)
        types = {column.name: _ARROW_TYPES[column.kind] for column in columns}
        table = pa_csv.read_csv(handle, convert_options=pa_csv.ConvertOptions(column_types=types))
        _refuse_repeated(table.column_names)
        return table
    if not head.startswith(b"PAR1"):
        compressed = next((name for magic, name in COMPRESSED.items() if head.startswith(magic)), None)
        what = f"{compressed}-compressed data" if compressed else "not a Parquet file (no PAR1 header)"
        raise Refused(f"{what}; expected a Parquet file")
    parquet = pq.ParquetFile(handle)
    _refuse_repeated(parquet.schema_arrow.names)
    return parquet.read(use_threads=False)  # a thread pool costs more than it saves on tables of this size


def _refuse_repeated(names: list[str]) -> None:
    repeated = sorted(printable(column) for column, count in Counter(names).items() if count > 1)
    if repeated:
        raise Refused(f"column {', '.join(repeated)} appears more than once; expected each column once")


_ACCEPTED_TYPES = {
    "int": (pa.types.is_integer, "an integer type"),
    "date": (lambda t: pa.types.is_date(t) or pa.types.is_string(t) or pa.types.is_large_string(t),
             "date32, date64 or text YYYY-MM-DD"),
    "ac_type": (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "text"),
}  # fmt: skip
"""Parquet column types each kind accepts: a bool or float column is refused, not silently cast to integers."""


def _to_numpy(values: pa.ChunkedArray, column: Column) -> npt.NDArray[np.generic]:
    """A column as numpy: integers with -1 for a null, dates with NaT, text with "".

    The values are read from the Arrow buffers directly: pyarrow's own ``to_numpy`` and Python scalars go through its
    pandas conversion layer, which imports pandas (0.3 s, more than reading the reference fleet's files).
    """
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    accepts, described = _ACCEPTED_TYPES[column.kind]
    if not (accepts(values.type) or pa.types.is_null(values.type)):
        raise pa.ArrowTypeError(f"column of type {values.type}, not {described}")
    if values.type != _ARROW_TYPES[column.kind]:  # a cast loads pyarrow.compute (0.1 s): only when it changes a type
        values = values.cast(_ARROW_TYPES[column.kind])
    if column.kind == "int":
        return _fixed_width(values, np.dtype(np.int64), np.int64(-1))
    if column.kind == "date":
        days = _fixed_width(values, np.dtype(np.int32), np.int32(0)).astype(np.int64).view("datetime64[D]")
        days[~_valid(values)] = np.datetime64("NaT")
        return days
    texts = ["" if text is None else text for text in values.to_pylist()]
    row = next((i for i, text in enumerate(texts) if "\x00" in text), None)
    if row is not None:
        raise pa.ArrowInvalid(f"row {row + 1} = {printable(texts[row])} holds a NUL byte")
    return np.array(texts, dtype=str)


def _fixed_width(values: pa.ChunkedArray, dtype: np.dtype[Any], null: np.generic) -> npt.NDArray[np.generic]:
    """A column of a fixed-width type (int64, date32) as a new numpy array, ``null`` where a value is missing."""
    if values.num_chunks == 0:
        return np.empty(0, dtype)
    parts = []
    for chunk in values.chunks:
        buffers = chunk.buffers()
        if pa.types.is_null(chunk.type) or buffers[1] is None:
            parts.append(np.full(len(chunk), null, dtype))
            continue
        parts.append(np.frombuffer(buffers[1], dtype, count=chunk.offset + len(chunk))[chunk.offset :])
    data = np.concatenate(parts)
    if values.null_count:
        data[~_valid(values)] = null
    return data


def _valid(values: pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    """Which values of a column are present (not null)."""
    masks = []
    for chunk in values.chunks:
        bitmap = chunk.buffers()[0]
        if chunk.null_count == 0 or bitmap is None:
            masks.append(np.full(len(chunk), chunk.null_count == 0))
            continue
        bits = np.unpackbits(np.frombuffer(bitmap, np.uint8), bitorder="little")
        masks.append(bits[chunk.offset : chunk.offset + len(chunk)].astype(bool))
    return np.concatenate(masks) if masks else np.empty(0, bool)


def write_inputs(inputs: LifecycleInputs, path: str | Path, fmt: Literal["csv", "parquet"] = "csv") -> Path:
    """Write inputs as an inputs directory that :class:`DirectorySource` reads back unchanged.

    Args:
        inputs: the inputs; written as they are, valid or not.
        path: the directory; created when missing; files of the same names are replaced.
        fmt: the table format, ``csv`` or ``parquet``.

    Returns:
        The directory.
    """
    if fmt not in ("csv", "parquet"):
        raise ConfigError(f"expected csv or parquet, got {fmt!r}", key="format")
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"version_date": inputs.version_date.isoformat(), "days": inputs.days}
    (directory / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    for name in TABLES:
        arrow = pa.table({column.name: _to_arrow(inputs.table(name)[column.name], column) for column in COLUMNS[name]})
        other = directory / f"{name}.{'parquet' if fmt == 'csv' else 'csv'}"
        other.unlink(missing_ok=True)
        if fmt == "csv":
            pa_csv.write_csv(arrow, directory / f"{name}.csv")
        else:
            pq.write_table(arrow, directory / f"{name}.parquet")
    return directory


def _to_arrow(values: npt.NDArray[Any], column: Column) -> pa.Array:
    if column.kind == "int":
        mask = values == -1 if column.nullable else None
        return pa.array(np.asarray(values, dtype=np.int64), mask=mask)
    if column.kind == "date":
        dates = np.asarray(values, dtype="datetime64[D]")
        return pa.array(dates, type=pa.date32(), mask=np.isnat(dates))
    return pa.array(np.asarray(values, dtype=str), type=pa.string())


def inputs_payload(inputs: LifecycleInputs) -> dict[str, Any]:
    """Inputs as the payload of an ``environment`` checkpoint (the blob a job's inputs travel in)."""
    return {
        "version_date": inputs.version_date,
        "days": inputs.days,
        "tables": {name: dict(inputs.table(name)) for name in TABLES},
    }


def inputs_from_payload(payload: dict[str, Any]) -> LifecycleInputs:
    """The inputs an ``environment`` checkpoint holds (see :func:`inputs_payload`).

    Raises:
        InputError: the payload lacks a table or the environment.
    """
    try:
        tables = payload["tables"]
        return LifecycleInputs(payload["version_date"], int(payload["days"]), *(tables[name] for name in TABLES))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError("environment", [f"the inputs blob is incomplete: {exc!r}"]) from exc
