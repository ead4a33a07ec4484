"""What the lifecycle fleet tests share: synthetic inputs, the local run to compare with, reading MP2 back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from simfleet.producer.fleet.client import Fleet
from simfleet.shared.celery_app import publish_stage, stage_queues
from simfleet.shared.messages.lifecycle import StageMessage
from simfleet.worker.lifecycle.inputs import load_inputs, write_inputs
from simfleet.worker.lifecycle.run import MemorySink, run_local
from simfleet.worker.lifecycle.synth import synthesize

from .conftest import wait_until


def make_inputs(path: Path, aircraft: int, days: int, seed: int, fmt: str = "parquet") -> Path:
    write_inputs(synthesize(aircraft, days, seed=seed), path, fmt)  # type: ignore[arg-type]
    return path


def local_mp2(inputs_dir: Path) -> tuple[dict, dict]:
    sink = MemorySink()
    run_local(load_inputs(inputs_dir), sink=sink)
    return sink.table("mp2"), sink.table("mp2_daily")


def read_sink(out: Path, name: str) -> dict:
    files = sorted((out / name).glob("part-*.parquet"))
    table = pq.ParquetDataset(files).read()
    return {c: table.column(c).to_numpy() for c in table.column_names}


def assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for column in want:
        np.testing.assert_array_equal(np.asarray(got[column]), np.asarray(want[column]), err_msg=column)


def assert_mp2_is_the_local_runs(out: Path, inputs_dir: Path) -> None:
    want_airframe, want_daily = local_mp2(inputs_dir)
    assert_same(read_sink(out, "mp2"), want_airframe)
    assert_same(read_sink(out, "mp2_daily"), want_daily)


def wait_for_stage(fleet: Fleet, job_id: str, seq: int, timeout_s: float = 120.0) -> None:
    """Until the job's record says stage ``seq`` is due (running or about to run)."""
    wait_until(lambda: (r := fleet.records.get(job_id)) is not None and r.seq >= seq, f"stage {seq} of {job_id}",
               timeout_s=timeout_s, interval_s=0.01)  # fmt: skip


def send_stage(fleet: Fleet, message: StageMessage) -> None:
    """Publish a stage message to its shared queue, as a producer or the watchdog would."""
    from simfleet.shared.celery_app import STAGE_TASKS

    publish_stage(fleet.app, message, stage_queues(fleet.settings)[STAGE_TASKS[message.stage]], "normal")
