from pathlib import Path

import numpy as np
import pytest

from simfleet.shared.clickhouse.client import arrow_batch
from simfleet.shared.clickhouse.des import TABLES, export_des_study
from simfleet.shared.clickhouse.export import export_partition, validate_columns
from simfleet.shared.clickhouse.inputs import ClickHouseSource, import_inputs
from simfleet.shared.clickhouse.mp2 import export_mp2
from simfleet.shared.clickhouse.schema import ColumnSpec, TableSpec, mp2_tables
from simfleet.shared.errors import ExportValidationError
from simfleet.worker.des.aggregate import aggregate
from simfleet.worker.des.runner import run_replications
from simfleet.worker.des.scenario import load_scenario
from simfleet.worker.lifecycle.run import MemorySink, run_local
from simfleet.worker.lifecycle.synth import synthesize
from simfleet.worker.lifecycle.validation import validate_inputs

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"
RESOURCES = TABLES["des_resources"]
MP2 = {table.name: table for table in mp2_tables()}["mp2"]
MP2_REPAIR_DATES = ("partout_date", "assembly_date", "active_date")


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
    assert [row[0] for row in p95] == [s.types["deep-research"].p95_s for s in summaries]
    merged = ch.rows(f"SELECT merged FROM {ch.database}.des_aggregates WHERE name = '(all)' AND figure = 'p95_s'")
    assert merged[0][0] == pytest.approx(agg.overall.merged.p95_s)


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
        "wasted_work_per_s": np.zeros(n),
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


def test_many_offences_list_twenty_and_count_every_one(ch):
    columns = resource_columns(1000)
    columns["utilisation"] = np.where(np.arange(1000) % 2 == 0, -0.5, 0.5)  # 500 out of range
    columns["replication"] = np.repeat(np.arange(500, dtype=np.uint32), 2)  # 500 repeated keys
    with pytest.raises(ExportValidationError) as info:
        export_partition(ch, RESOURCES, ("many",), columns)
    message = str(info.value)
    assert message.startswith("des_resources partition 'many': 1000 problem(s)")
    assert len([line for line in message.splitlines() if line.startswith("  - ")]) == 20
    assert message.endswith("  ... and 980 more")
    assert count(ch, "des_resources", "study_id = 'many'") == 0


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


@pytest.fixture(scope="module")
def mp2():
    sink = MemorySink()
    run_local(synthesize(25, 60, seed=5), sink=sink)
    return sink.table("mp2"), sink.table("mp2_daily")


def test_mp2_round_trips_every_value_null_dates_included_in_batches(ch, mp2):
    airframe, daily = mp2
    reports = export_mp2(ch, "job-rt", airframe, daily, airframes=25, days=60, batch_rows=400)
    assert [(r.rows, r.batches) for r in reports] == [(25 * 60, 4), (len(daily["day"]), 1)]
    names = list(airframe)
    back = ch.rows(f"SELECT job_id, {', '.join(names)} FROM {ch.database}.mp2 ORDER BY day, idx")
    assert {row[0] for row in back} == {"job-rt"}
    order = np.lexsort((airframe["idx"], airframe["day"]))
    for position, name in enumerate(names, start=1):
        ours = airframe[name][order]
        theirs = [row[position] for row in back]
        if ours.dtype.kind == "M":
            ours = [None if np.isnat(v) else v.astype(object) for v in ours]
            assert any(v is None for v in ours) or name == "date", name
        assert list(ours) == theirs, name


def test_the_arrow_stream_a_server_gets_carries_the_partition_value_in_every_row(ch, mp2):
    airframe, _ = mp2
    ch.command(f"CREATE TABLE {ch.database}.mp2_copy AS {ch.database}.mp2")
    ch._insert_arrow("mp2_copy", arrow_batch(airframe), {"job_id": "server-path"})
    rows = ch.rows(
        f"SELECT job_id, count(), countIf(partout_date IS NULL), sum(sne) FROM {ch.database}.mp2_copy GROUP BY job_id"
    )
    assert rows == [("server-path", 25 * 60, int(np.isnat(airframe["partout_date"]).sum()), int(airframe["sne"].sum()))]


def mp2_rows(days, airframes):
    day, idx = np.divmod(np.arange(days * airframes), airframes)
    n = len(day)
    columns = {name: np.zeros(n, dtype=np.uint32) for name in ("psn", "aircraft_number", "daily_flight", "sne", "ppr")}
    columns.update(
        day=day.astype(np.uint16),
        variant_id=np.zeros(n, dtype=np.uint16),
        replication=np.zeros(n, dtype=np.uint16),
        repair_queued=np.zeros(n, dtype=np.uint8),
        idx=idx.astype(np.uint32),
        date=np.datetime64("2025-01-01") + day,
        ac_type=np.zeros(n, dtype=np.uint8),
        status_id=np.full(n, 2, dtype=np.uint8),
        next_status=np.full(n, 2, dtype=np.uint8),
        repair_days=np.zeros(n, dtype=np.uint16),
        **{name: np.full(n, np.datetime64("NaT"), dtype="datetime64[D]") for name in MP2_REPAIR_DATES},
    )
    return columns


def test_a_repeated_key_is_named_wherever_it_lies(ch):
    columns = mp2_rows(days=400, airframes=1000)  # 400,000 rows in key order
    assert validate_columns(MP2, columns, ("ok",), expected_rows=400_000) == 400_000
    boundary = 1 << 18  # the first row of the second slice of the in-order check repeats the last of the first
    columns["idx"][boundary] = columns["idx"][boundary - 1]
    columns["day"][boundary] = columns["day"][boundary - 1]
    with pytest.raises(ExportValidationError, match=r"day=262, variant_id=0, replication=0, idx=143: duplicate key "
                       r"\(day, variant_id, replication, idx\)"):
        validate_columns(MP2, columns, ("dup",))
    shuffled = {name: values[::-1].copy() for name, values in mp2_rows(days=3, airframes=4).items()}
    assert validate_columns(MP2, shuffled, ("reversed",)) == 12
    shuffled["idx"][5] = shuffled["idx"][0]
    with pytest.raises(ExportValidationError, match=r"(?s)1 problem.*day=1, variant_id=0, replication=0, idx=3: dup"):
        export_partition(ch, MP2, ("reversed",), shuffled)
    assert count(ch, "mp2") == 0


def test_a_value_the_column_type_cannot_hold_is_named_not_wrapped():
    columns = mp2_rows(days=2, airframes=3)
    columns["sne"] = columns["sne"].astype(np.int64)
    columns["sne"][4] = 2**32
    with pytest.raises(ExportValidationError,
                       match=r"day=1, variant_id=0, replication=0, idx=1: sne=4294967296 outside \[0, 4294967295\]"):
        validate_columns(MP2, columns, ("wide",))


def test_keys_too_wide_to_pack_into_one_integer_are_still_checked():
    table = TableSpec(
        "wide_keys",
        "two UInt64 keys whose ranges multiply past what one int64 holds",
        (
            ColumnSpec("a", "UInt64", "first key"),
            ColumnSpec("b", "UInt64", "second key"),
            ColumnSpec("p", "String", ""),
        ),
        order_by=("p", "a", "b"),
        partition_by=("p",),
        row_key=("a", "b"),
    )
    a = np.array([0, 2**40, 2**40, 7, 2**41], dtype=np.uint64)
    b = np.array([5, 0, 2**40, 5, 2**41], dtype=np.uint64)
    assert validate_columns(table, {"a": a, "b": b}, ("x",)) == 5
    a[3] = 0
    with pytest.raises(ExportValidationError, match=r"a=0, b=5: duplicate key \(a, b\)"):
        validate_columns(table, {"a": a, "b": b}, ("x",))
