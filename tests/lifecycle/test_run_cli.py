"""``simfleet lifecycle run``: a local run that reports and writes MP2 as Parquet."""

import json

import pyarrow.parquet as pq
import pytest

from simfleet.producer.cli import main
from simfleet.shared.lifecycle_contract import AIRFRAME_COLUMNS, DAILY_COLUMNS
from simfleet.worker.lifecycle.inputs import write_inputs
from simfleet.worker.lifecycle.synth import synthesize


@pytest.fixture(scope="module")
def inputs_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lifecycle") / "in"
    write_inputs(synthesize(30, 100, seed=3), folder, "csv")
    return folder


def test_run_writes_parquet_chunks_and_a_json_report(inputs_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(["lifecycle", "run", "--inputs", str(inputs_dir), "--out", str(out), "--json", "--chunk-days", "40"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["airframe_rows"] == 30 * 100
    assert set(report["timings_s"]) == {"load", "create", "run", "collect"}
    assert set(report["transitions"]) == {"2->3", "2->4", "2->6", "3->2", "5->2", "1->2", "4->5", "0->3"}
    assert sum(report["status_counts_end"].values()) == 30
    parts = sorted((out / "mp2").glob("*.parquet"))
    assert [p.name for p in parts] == ["part-00000.parquet", "part-00040.parquet", "part-00080.parquet"]
    assert sum(pq.read_metadata(p).num_rows for p in parts) == 3000
    assert pq.read_schema(parts[0]).names == [c.name for c in AIRFRAME_COLUMNS]
    daily = sorted((out / "mp2_daily").glob("*.parquet"))
    assert pq.read_schema(daily[0]).names == [c.name for c in DAILY_COLUMNS]
    assert sum(pq.read_metadata(p).num_rows for p in daily) == 2 * 100
    assert not list(out.rglob("*.tmp"))


def test_run_with_aggregates_only_prints_the_summary_and_writes_no_per_airframe_table(inputs_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["lifecycle", "run", "--inputs", str(inputs_dir), "--days", "10", "--log", "aggregates",
                 "--out", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    for label in ("transitions:", "status at the end:", "days with a shortfall:", "time: load"):
        assert label in text
    assert "x 10 days" in text
    assert not (out / "mp2").exists()
    assert sum(pq.read_metadata(p).num_rows for p in (out / "mp2_daily").glob("*.parquet")) == 2 * 10
