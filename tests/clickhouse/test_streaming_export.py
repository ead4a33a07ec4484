"""MP2 goes to ClickHouse chunk by chunk, and two processes exporting to one embedded database take turns."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from simfleet.shared.clickhouse.client import ClickHouse
from simfleet.shared.clickhouse.migrations import init_db
from simfleet.shared.clickhouse.mp2 import export_mp2_chunks
from simfleet.shared.errors import ExportValidationError
from simfleet.worker.lifecycle.inputs import load_inputs, write_inputs
from simfleet.worker.lifecycle.run import MemorySink, run_local
from simfleet.worker.lifecycle.synth import synthesize


@pytest.fixture(scope="module")
def chunks(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The MP2 of a 50-airframe, 300-day run in chunks of 60 days, as the export stage reads them."""
    folder = tmp_path_factory.mktemp("inputs")
    write_inputs(synthesize(50, 300, seed=4), folder, "parquet")

    class Chunks(MemorySink):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[tuple[dict[str, Any], dict[str, Any]]] = []

        def write(self, first_day: int, airframe: dict[str, Any], daily: dict[str, Any]) -> None:
            self.parts.append(({k: v.copy() for k, v in airframe.items()}, {k: v.copy() for k, v in daily.items()}))

    sink = Chunks()
    run_local(load_inputs(folder), sink=sink, chunk_days=60)
    return sink.parts


class Watched:
    """Hands chunks out one at a time and records how many a consumer still held when it asked for the next."""

    def __init__(self, parts: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        self.parts = parts
        self.alive: list[weakref.ref[np.ndarray[Any, Any]]] = []
        self.held_at_request: list[int] = []

    def __iter__(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for airframe, daily in self.parts:
            gc.collect()
            self.held_at_request.append(sum(ref() is not None for ref in self.alive))
            fresh = {k: v.copy() for k, v in airframe.items()}
            self.alive.append(weakref.ref(fresh["day"]))
            chunk = (fresh, {k: v.copy() for k, v in daily.items()})
            del fresh
            yield chunk
            del chunk


def test_the_export_holds_one_chunk_at_a_time_and_swaps_in_every_row_once(chunks, tmp_path):
    watched = Watched(chunks)
    with ClickHouse(f"chdb://{tmp_path / 'ch'}") as ch:
        init_db(ch)
        reports = export_mp2_chunks(ch, "job-s", watched, airframes=50, days=300, batch_rows=1000)
        rows = ch.rows(f"SELECT count(), uniqExact(day, idx) FROM {ch.database}.mp2 WHERE job_id = 'job-s'")
    assert [r.rows for r in reports] == [50 * 300, 2 * 300] and rows == [(50 * 300, 50 * 300)]
    assert len(watched.held_at_request) == 5 and max(watched.held_at_request) == 0  # the last chunk was let go


def test_a_bad_chunk_leaves_the_previous_export_untouched(chunks, tmp_path):
    with ClickHouse(f"chdb://{tmp_path / 'ch'}") as ch:
        init_db(ch)
        export_mp2_chunks(ch, "job-b", iter(chunks), airframes=50, days=300)
        broken = [chunks[0], chunks[1], ({**chunks[2][0], "status_id": np.full(len(chunks[2][0]["day"]), 9)},
                                         chunks[2][1])]  # fmt: skip
        with pytest.raises(ExportValidationError, match="status_id=9"):
            export_mp2_chunks(ch, "job-b", iter(broken), airframes=50, days=300)
        with pytest.raises(ExportValidationError, match="row count 6000, expected 15000"):
            export_mp2_chunks(ch, "job-b", iter(chunks[:2]), airframes=50, days=300)
        count = ch.rows(f"SELECT count() FROM {ch.database}.mp2 WHERE job_id = 'job-b'")[0][0]
        staging = ch.rows(
            f"SELECT count() FROM system.tables WHERE database = '{ch.database}' AND name LIKE '%staging%'"
        )
    assert count == 50 * 300 and staging == [(0,)]


def test_two_processes_exporting_to_one_embedded_database_take_turns(tmp_path):
    dsn = f"chdb://{tmp_path / 'shared-ch'}"
    script = textwrap.dedent(
        f"""
        import sys
        from simfleet.shared.clickhouse.migrations import open_db
        from simfleet.shared.clickhouse.mp2 import export_mp2
        from simfleet.worker.lifecycle.run import MemorySink, run_local
        from simfleet.worker.lifecycle.synth import synthesize
        sink = MemorySink()
        run_local(synthesize(200, 365, seed=4), sink=sink)
        with open_db({dsn!r}) as ch:
            export_mp2(ch, sys.argv[1], sink.table("mp2"), sink.table("mp2_daily"), airframes=200, days=365,
                       batch_rows=2000)
        print("exported", sys.argv[1])
        """
    )
    runs = [subprocess.Popen([sys.executable, "-c", script, f"job-{i}"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for i in range(2)]  # fmt: skip
    outcomes = [run.communicate(timeout=180) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outcomes]
    with ClickHouse(dsn) as ch:
        counts = ch.rows(f"SELECT job_id, count() FROM {ch.database}.mp2 GROUP BY job_id ORDER BY job_id")
    assert counts == [("job-0", 200 * 365), ("job-1", 200 * 365)]
