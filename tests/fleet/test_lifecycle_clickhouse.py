"""A lifecycle job that reads its inputs from ClickHouse and writes MP2 there (chDB, through a real GPU-role worker)."""

from __future__ import annotations

import numpy as np

from simfleet.shared.clickhouse.client import ClickHouse
from simfleet.shared.clickhouse.inputs import import_inputs
from simfleet.shared.clickhouse.migrations import init_db
from simfleet.shared.messages.lifecycle import ClickHouseInputs
from simfleet.worker.lifecycle.inputs import load_inputs, write_inputs
from simfleet.worker.lifecycle.run import MemorySink, run_local
from simfleet.worker.lifecycle.synth import synthesize


def test_inputs_from_a_clickhouse_version_and_mp2_into_clickhouse(fleet, fleet_settings, start_worker, tmp_path):
    start_worker(role="gpu")
    directory = tmp_path / "inputs"
    write_inputs(synthesize(45, 300, seed=9), directory, "csv")
    inputs = load_inputs(directory)
    with ClickHouse(fleet_settings.clickhouse_dsn) as ch:
        init_db(ch)
        import_inputs(ch, inputs, version_id=7)
    source = ClickHouseInputs(version_date=inputs.version_date, version_id=7)
    job = fleet.run_lifecycle(inputs=source, days=300, chunk_days=120)  # MP2 goes to ClickHouse by default
    summary = job.wait(timeout=120)
    assert summary.sink.kind == "clickhouse" and summary.airframe_rows == 45 * 300
    assert summary.sink.target == fleet_settings.clickhouse_dsn  # chdb:// + the workers' absolute path
    spec = job.record().spec
    assert spec.sink.dsn == "" and spec.inputs.dsn == ""  # no credentials travel: the workers use their own DSN

    local = MemorySink()
    run_local(inputs, sink=local)
    want = local.table("mp2")
    with ClickHouse(fleet_settings.clickhouse_dsn) as ch:
        columns = ", ".join(want)
        result = ch.columns(f"SELECT {columns} FROM {ch.database}.mp2 WHERE job_id = '{job.id}' ORDER BY day, idx")
        got = dict(zip(want, result, strict=True))
        per_day = ch.rows(
            f"SELECT day, sum(count_2) FROM {ch.database}.mp2_daily WHERE job_id = '{job.id}' GROUP BY day ORDER BY day"
        )
    assert len(got["day"]) == 45 * 300
    for name in ("day", "idx", "status_id", "next_status", "sne", "ppr", "repair_days", "daily_flight"):
        np.testing.assert_array_equal(np.asarray(got[name], dtype=np.int64), want[name].astype(np.int64), name)
    in_operation = np.bincount(want["day"][want["status_id"] == 2], minlength=300)
    assert [int(n) for _, n in per_day] == in_operation.tolist()
