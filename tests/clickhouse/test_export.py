from pathlib import Path

import numpy as np
import pytest

from shared.clickhouse.des import TABLES, export_des_study
from shared.clickhouse.export import ExportValidationError, export_partition
from shared.clickhouse.inputs import ClickHouseSource, import_inputs
from worker.des.aggregate import aggregate
from worker.des.runner import run_replications
from worker.des.scenario import load_scenario
from worker.lifecycle.synth import synthesize
from worker.lifecycle.validation import validate_inputs

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"
RESOURCES = TABLES["des_resources"]


def count(ch, table, where="1"):
    return ch.rows(f"SELECT count() FROM {ch.database}.{table} WHERE {where}")[0][0]


@pytest.fixture(scope="module")
def study():
    scenario = load_scenario(SCENARIOS / "mixed_workload.yaml")
    summaries = run_replications(scenario, replications=3, seed=2, processes=1)
    return scenario, summaries, aggregate(summaries)


def rates(scenario):
    return {name: rt.rate_per_min for name, rt in scenario.request_types.items()}


def test_des_study_export_writes_one_row_per_replication_type_and_figure(ch, study):
    scenario, summaries, agg = study
    reports = export_des_study(ch, "s1", summaries, agg, rates(scenario))
    assert [r.rows for r in reports] == [3 * 4, 3 * 5, reports[2].rows]
    p95 = ch.rows(f"SELECT p95_s FROM {ch.database}.des_replications WHERE request_type = 'deep-research' "
                  "ORDER BY replication")  # fmt: skip
    assert [row[0] for row in p95] == [s["types"]["deep-research"]["p95_s"] for s in summaries]
    merged = ch.rows(f"SELECT merged FROM {ch.database}.des_aggregates WHERE name = '(all)' AND figure = 'p95_s'")
    assert merged[0][0] == pytest.approx(agg["overall"]["merged"]["p95_s"])


def test_exporting_the_same_study_twice_leaves_one_copy(ch, study):
    scenario, summaries, agg = study
    export_des_study(ch, "s1", summaries, agg, rates(scenario))
    export_des_study(ch, "s1", summaries, agg, rates(scenario))
    export_des_study(ch, "s2", summaries, agg, rates(scenario))
    assert count(ch, "des_replications", "study_id = 's1'") == 12
    assert count(ch, "des_replications") == 24


def resource_columns(n, replication_offset=0):
    return {
        "scenario": ["x"] * n,
        "replication": np.arange(n, dtype=np.uint32) + replication_offset,
        "resource": ["cpu"] * n,
        "kind": ["rate"] * n,
        "capacity": np.full(n, 4.0),
        "offered_load": [0.5] * n,
        "utilisation": np.full(n, 0.5),
        "mean_busy": np.full(n, 1.0),
        "max_busy": np.full(n, 3.0),
        "mean_waiting": np.zeros(n),
        "max_waiting": np.zeros(n, dtype=np.uint32),
    }


def test_a_failure_after_the_first_batch_writes_nothing_and_a_retry_leaves_one_copy(ch):
    export_partition(ch, RESOURCES, ("job",), resource_columns(10), batch_rows=4)

    def fail_after_first(batch, rows):
        if batch == 1:
            raise ConnectionError("network went away")

    with pytest.raises(ConnectionError):
        export_partition(
            ch, RESOURCES, ("job",), resource_columns(1000, 100), batch_rows=100, on_batch=fail_after_first
        )
    # The earlier complete export is still what readers see: nothing of the failed attempt leaked in.
    assert count(ch, "des_resources", "study_id = 'job'") == 10
    report = export_partition(ch, RESOURCES, ("job",), resource_columns(1000, 100), batch_rows=100)
    assert report.batches == 10
    assert count(ch, "des_resources", "study_id = 'job'") == 1000
    assert ch.rows(f"SELECT min(replication), uniqExact(replication) FROM {ch.database}.des_resources")[0] == (
        100,
        1000,
    )
    staging = [t for (t,) in ch.rows(f"SHOW TABLES FROM {ch.database}") if "staging" in t]
    assert staging == []


def test_duplicate_keys_are_named_and_nothing_is_written(ch):
    columns = resource_columns(5)
    columns["replication"] = np.array([0, 1, 2, 2, 4], dtype=np.uint32)
    with pytest.raises(ExportValidationError) as info:
        export_partition(ch, RESOURCES, ("dup",), columns)
    assert "des_resources partition 'dup'" in str(info.value)
    assert "replication=2, resource=cpu: duplicate key (replication, resource)" in str(info.value)
    assert count(ch, "des_resources", "study_id = 'dup'") == 0


def test_out_of_range_values_and_a_wrong_row_count_are_named(ch):
    columns = resource_columns(4)
    columns["utilisation"] = np.array([0.5, -0.2, 0.5, np.nan])
    with pytest.raises(ExportValidationError) as info:
        export_partition(ch, RESOURCES, ("bad",), columns, expected_rows=5)
    message = str(info.value)
    assert "row count 4, expected 5" in message
    assert "replication=1" in message and "utilisation=-0.2" in message
    assert "replication=3" in message and "utilisation=nan" in message
    assert count(ch, "des_resources", "study_id = 'bad'") == 0


def test_inputs_import_round_trips_and_reimport_replaces_the_version(ch):
    inputs = synthesize(40, 90, seed=3)
    import_inputs(ch, inputs, version_id=1)
    import_inputs(ch, inputs, version_id=1)
    assert count(ch, "mp5", "version_id = 1") == 40 * 91
    back = ClickHouseSource(ch, inputs.version_date, 1).load()
    validate_inputs(back)
    assert back.days == 90
    for name in ("mp1", "mp3", "mp4", "mp5"):
        for column, values in inputs.table(name).items():
            ours = np.sort(np.asarray(values).astype(str))
            theirs = np.sort(np.asarray(back.table(name)[column]).astype(str))
            assert np.array_equal(ours, theirs), (name, column)
