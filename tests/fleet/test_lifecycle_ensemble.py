"""Ensemble jobs (plan variants x replications) through the fleet: a real Redis, a real GPU-role worker (numpy)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import msgspec
import numpy as np
import pytest
import yaml

from simfleet.producer.cli import main
from simfleet.shared.clickhouse.client import ClickHouse
from simfleet.shared.errors import ConfigError
from simfleet.shared.messages.lifecycle import JobSpec, StoreInputs
from simfleet.worker.lifecycle.inputs import inputs_payload, load_inputs
from simfleet.worker.lifecycle.run import MemorySink, run_local
from simfleet.worker.lifecycle.variants import load_variants, parse_variants
from simfleet.worker.stages import load_job_inputs

from .lifecycle_helpers import assert_same, make_inputs, read_sink

AIRFRAMES, DAYS = 40, 200
VARIANTS = """\
replications: 2
seed: 9
maintenance:
  mi8: {repair_slots: 2, removal_hazard: 0.004}
  mi17: {repair_slots: 1, removal_hazard: 0.004, spread: {kind: lognormal, cv: 0.5}}
variants:
  - name: plan
  - name: lean
    targets: [{factor: 0.8, start: 2025-03-01}]
"""


@pytest.fixture
def inputs_dir(tmp_path: Path) -> Path:
    return make_inputs(tmp_path / "inputs", AIRFRAMES, DAYS, seed=5)


@pytest.fixture
def variants_file(tmp_path: Path, inputs_dir: Path) -> Path:
    path = tmp_path / "variants.yaml"
    path.write_text(VARIANTS.replace("2025-03-01", str(load_inputs(inputs_dir).version_date.replace(day=20))))
    return path


def local_run(inputs_dir: Path, variants_file: Path):  # type: ignore[no-untyped-def]
    sink = MemorySink()
    report = run_local(load_inputs(inputs_dir), sink=sink, ensemble=load_variants(variants_file))
    return sink.table("mp2"), sink.table("mp2_daily"), report


def test_an_ensemble_job_live_or_restored_at_every_stage_gives_the_local_runs_mp2(fleet, fleet_settings, start_worker,
                                                                                  inputs_dir, variants_file, tmp_path,
                                                                                  capsys):  # fmt: skip
    start_worker(role="gpu")
    want_airframe, want_daily, report = local_run(inputs_dir, variants_file)
    assert want_daily["repair_queue"].sum() > 0 and want_daily["unplanned_2_4"].sum() > 0  # the shop is exercised
    rows = AIRFRAMES * 4 * DAYS

    # Live (the persistent session), MP2 into ClickHouse by the export stage.
    live = fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100, ensemble=variants_file)
    seen = []
    summary = live.wait(timeout=180, on_progress=seen.append)
    assert (summary.airframes, summary.airframe_rows, summary.restores) == (AIRFRAMES, rows, 0)
    assert [(m.variant, m.replication, m.transitions, m.shortfall_days) for m in summary.members] == [
        (m.variant, m.replication, m.transitions, m.shortfall_days) for m in report.members]  # fmt: skip
    figures = live.record().progress
    assert (figures.variants, figures.replications, figures.airframes) == (2, 2, AIRFRAMES)
    assert "2 variants x 2 replications x 40 airframes" in seen[-1].label
    with ClickHouse(fleet_settings.clickhouse_dsn) as ch:
        got = dict(zip(want_airframe, ch.columns(
            f"SELECT {', '.join(want_airframe)} FROM {ch.database}.mp2 WHERE job_id = '{live.id}' "
            "ORDER BY day, variant_id, replication, idx"), strict=True))  # fmt: skip
        daily = dict(zip(want_daily, ch.columns(
            f"SELECT {', '.join(want_daily)} FROM {ch.database}.mp2_daily WHERE job_id = '{live.id}' "
            "ORDER BY day, variant_id, replication, ac_type"), strict=True))  # fmt: skip
        variants = ch.rows(f"SELECT variant_id, name, replications FROM {ch.database}.mp2_variants "
                           f"WHERE job_id = '{live.id}' ORDER BY variant_id")  # fmt: skip
    for got_table, want_table in ((got, want_airframe), (daily, want_daily)):
        for name, values in want_table.items():
            if values.dtype.kind in "iu":  # dates are compared in the Parquet export below
                np.testing.assert_array_equal(np.asarray(got_table[name]).astype(np.int64), values.astype(np.int64),
                                              name)  # fmt: skip
    assert variants == [(0, "plan", 2), (1, "lean", 2)]

    # The fallback mode (restored from the checkpoints at every stage), from the command line, MP2 here as Parquet.
    out = tmp_path / "out"
    assert main(["lifecycle", "submit", "--inputs", str(inputs_dir), "--variants", str(variants_file), "--no-persist",
                 "--chunk-days", "100", "--out", str(out), "--fleet", "--json"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    restored = json.loads(captured.out)
    assert restored["restores"] == 4 and restored["airframe_rows"] == rows and len(restored["members"]) == 4
    assert "2 variants x 2 replications x 40 airframes" in captured.err
    assert_same(read_sink(out, "mp2"), want_airframe)
    assert_same(read_sink(out, "mp2_daily"), want_daily)
    assert main(["job", "status", restored["job_id"]]) == 0
    assert "ensemble: 2 variants x 2 replications x 40 airframes" in capsys.readouterr().out
    assert main(["job", "export", restored["job_id"], "--out", str(tmp_path / "again")]) == 0
    assert f"{rows} airframe rows and 2 chunk(s)" in capsys.readouterr().out


@pytest.mark.parametrize(("text", "key"), [
    ("variants: [{name: a, targets: [{factor: -1}]}]", "variants[0].targets[0].factor"),
    ("variants: [{name: a, minutes: [{value: 60, end: 2099-01-01}]}]", "variants[0].minutes[0].end"),
])  # fmt: skip
def test_a_bad_variants_file_exits_2_naming_the_file_and_key_before_anything_is_sent(fleet, inputs_dir, tmp_path,
                                                                                    capsys, text, key):  # fmt: skip
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["lifecycle", "submit", "--inputs", str(inputs_dir), "--variants", str(path), "--fleet"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{path}: {key}:" in line
    with pytest.raises(ConfigError, match=re.escape(f"ensemble: {key}:")):  # the same data from Python
        fleet.run_lifecycle(inputs=inputs_dir, ensemble=yaml.safe_load(text))
    assert fleet.jobs() == [] and fleet.checkpoints().store.keys("") == []  # type: ignore[attr-defined]


def test_a_worker_refuses_an_ensemble_its_inputs_blob_does_not_fit(fleet, inputs_dir):
    # A job published with an inputs blob alone was not checked against a horizon by its producer: load checks it.
    inputs = load_inputs(inputs_dir)
    ref = fleet.checkpoints().write("blob-job", "environment", 0, inputs_payload(inputs))
    late = inputs.version_date + dt.timedelta(days=DAYS + 1)
    spec = JobSpec(job_id="blob-job", inputs=StoreInputs(key=ref.key, sha256=ref.sha256), days=DAYS,
                   ensemble=parse_variants({"variants": [{"name": "a", "targets": [{"value": 3, "start": late}]}]}))
    with pytest.raises(ConfigError, match=r"job blob-job variants: variants\[0\]\.targets\[0\]\.start: .* outside"):
        load_job_inputs(spec, fleet.checkpoints())
    assert load_job_inputs(msgspec.structs.replace(spec, ensemble=None), fleet.checkpoints())[0].days == DAYS


def test_records_written_before_ensembles_still_decode():
    from simfleet.shared.messages import decode_json
    from simfleet.shared.messages.lifecycle import JobSpec, JobSummary, StageProgress

    spec = decode_json(JobSpec, '{"job_id": "j", "inputs": {"kind": "store", "key": "k", "sha256": "s"}, "days": 9}')
    assert spec.ensemble is None and spec.members == 1
    progress = decode_json(StageProgress, '{"job_id": "j", "stage": "execute", "day": 3, "days": 9, "airframes": 5, '
                           '"percent": 33.3, "days_per_s": 1.0, "rss_mb": 1.0, "device_memory_mb": null, '
                           '"worker": "w", "pid": 1}')  # fmt: skip
    assert (progress.variants, progress.replications) == (1, 1)
    summary = decode_json(JobSummary, '{"job_id": "j", "airframes": 5, "days": 9, "log": "full", "transitions": {}, '
                          '"status_counts_end": {}, "shortfall_days": {}, "airframe_rows": 45, "sink": {"kind": '
                          '"none"}, "timings_s": {}, "end_to_end_s": 1.0, "worker": "w", "epoch": 0, "restores": 0}')
    assert summary.members == []
