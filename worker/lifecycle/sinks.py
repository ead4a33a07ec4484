"""Where MP2 goes while a lifecycle run goes on: sinks receive it chunk by chunk (a few hundred days at a time).

A chunk is two columnar tables (dicts of numpy arrays, columns and dtypes of :mod:`~simfleet.worker.lifecycle.schema`):
per airframe and day (empty when the run logs aggregates only) and per type and day. A sink that writes each chunk out
and forgets it keeps a run's memory flat however long it is. :class:`MemorySink` keeps everything (tests, small
runs); :class:`ParquetSink` writes one file per chunk and table under a temporary name, then renames it, so a reader
never sees half a file; :class:`NullSink` drops everything (a run for its report only); :class:`TeeSink` fans out.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from simfleet.worker.lifecycle.backends.base import Columns

TABLES = ("mp2", "mp2_daily")
"""The two MP2 tables: per airframe and day, per type and day."""


class Sink(abc.ABC):
    """Receives MP2 chunks in day order.

    Attributes:
        keeps_rows: the sink holds every chunk in memory until the run ends (the memory rule counts them).
    """

    keeps_rows = False

    @abc.abstractmethod
    def write(self, first_day: int, airframe: Columns, daily: Columns) -> None:
        """Take the chunk that starts on day ``first_day`` (``airframe`` is ``{}`` with aggregates only)."""

    def close(self) -> None:  # noqa: B027 - most sinks have nothing to finish
        """The run is over."""


class NullSink(Sink):
    """Drops every chunk."""

    def write(self, first_day: int, airframe: Columns, daily: Columns) -> None:
        """Drop the chunk."""


class MemorySink(Sink):
    """Keeps every chunk; :meth:`table` concatenates them."""

    keeps_rows = True

    def __init__(self) -> None:
        self.airframe: list[Columns] = []
        self.daily: list[Columns] = []

    def write(self, first_day: int, airframe: Columns, daily: Columns) -> None:
        """Keep the chunk."""
        if airframe:
            self.airframe.append(airframe)
        if daily:
            self.daily.append(daily)

    def table(self, name: str) -> Columns:
        """``mp2`` (per airframe) or ``mp2_daily`` (per type), all chunks concatenated (``{}`` if none)."""
        if name not in TABLES:
            raise ValueError(f"unknown MP2 table {name!r} (known: {', '.join(TABLES)})")
        chunks = self.airframe if name == "mp2" else self.daily
        if not chunks:
            return {}
        return {column: np.concatenate([chunk[column] for chunk in chunks]) for column in chunks[0]}


class TeeSink(Sink):
    """Hands every chunk to several sinks, in order."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks
        self.keeps_rows = any(sink.keeps_rows for sink in sinks)

    def write(self, first_day: int, airframe: Columns, daily: Columns) -> None:
        """Pass the chunk on."""
        for sink in self.sinks:
            sink.write(first_day, airframe, daily)

    def close(self) -> None:
        """Close every sink."""
        for sink in self.sinks:
            sink.close()


class ParquetSink(Sink):
    """Writes ``<directory>/mp2/part-<first day>.parquet`` and ``<directory>/mp2_daily/part-<first day>.parquet``.

    Args:
        directory: created if missing; a rerun into the same directory replaces parts of the same first day.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.files: list[Path] = []

    def write(self, first_day: int, airframe: Columns, daily: Columns) -> None:
        """Write the chunk's tables, each atomically (temporary name, fsync, rename)."""
        for name, columns in zip(TABLES, (airframe, daily), strict=True):
            if not columns:
                continue
            folder = self.directory / name
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"part-{first_day:05d}.parquet"
            partial = target.with_suffix(".parquet.tmp")
            pq.write_table(pa.table(columns), partial)
            with open(partial, "rb") as written:
                os.fsync(written.fileno())
            partial.replace(target)
            self.files.append(target)
