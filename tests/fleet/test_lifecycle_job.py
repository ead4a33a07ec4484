"""Lifecycle jobs through the fleet: a real Redis, real GPU-role worker processes (running the numpy backend)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from shared.checkpoints import Checkpoints, DirectoryStore
from worker.lifecycle.inputs import load_inputs, write_inputs
from worker.lifecycle.run import MemorySink, run_local
from worker.lifecycle.synth import synthesize

from .conftest import wait_until


@pytest.fixture
def inputs_dir(tmp_path: Path) -> Path:
    path = tmp_path / "inputs"
    write_inputs(synthesize(60, 400, seed=7), path, "parquet")
    return path


def local_mp2(inputs_dir: Path) -> tuple[dict, dict]:
    sink = MemorySink()
    run_local(load_inputs(inputs_dir), sink=sink)
    return sink.table("mp2"), sink.table("mp2_daily")


def read_sink(out: Path, name: str) -> dict:
    files = sorted((out / name).glob("part-*.parquet"))
    table = pq.ParquetDataset(files).read() if files else None
    return {c: table.column(c).to_numpy() for c in table.column_names}


def assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for column in want:
        np.testing.assert_array_equal(np.asarray(got[column]), np.asarray(want[column]), err_msg=column)


def test_a_job_through_the_fleet_gives_the_local_runs_mp2(fleet, start_worker, inputs_dir, tmp_path):
    worker = start_worker(role="gpu")
    out = tmp_path / "out"
    job = fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100, out=out)
    seen = []
    summary = job.result(timeout=120, on_progress=seen.append)
    want_airframe, want_daily = local_mp2(inputs_dir)
    assert_same(read_sink(out, "mp2"), want_airframe)
    assert_same(read_sink(out, "mp2_daily"), want_daily)
    assert summary["airframes"] == 60 and summary["days"] == 400 and summary["airframe_rows"] == 60 * 400
    assert summary["worker"] == worker.name and summary["restores"] == 0
    assert summary["end_to_end_s"] > 0 and {"load", "create", "run", "export"} <= set(summary["timings_s"])
    record = job.record()
    assert record.state == "done" and record.owner == "" and record.epoch == 1
    assert any(p.figures.get("days_per_s", 0) > 0 for p in seen)
