"""The inputs directory (CSV and Parquet), meta.yaml, and the validation of every rule of LIFECYCLE_MODEL.md."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simfleet.shared.errors import ConfigError, InputError
from simfleet.shared.lifecycle_contract import TABLES, LifecycleInputs
from simfleet.worker.lifecycle.inputs import DirectorySource, MemorySource, load_inputs, write_inputs
from simfleet.worker.lifecycle.synth import synthesize
from simfleet.worker.lifecycle.validation import validate_inputs

D0 = dt.date(2025, 1, 1)


@pytest.fixture
def fleet() -> LifecycleInputs:
    return synthesize(20, 30, seed=3, version_date=D0)


def changed(inputs: LifecycleInputs, table: str, column: str, row: int, value: Any) -> LifecycleInputs:
    """A copy of ``inputs`` with one cell changed."""
    tables: dict[str, Any] = {
        name: {key: values.copy() for key, values in inputs.table(name).items()} for name in TABLES
    }
    tables[table][column][row] = value
    return dataclasses.replace(inputs, **tables)


def kept(inputs: LifecycleInputs, table: str, keep: Any) -> LifecycleInputs:
    """A copy of ``inputs`` with only the rows ``keep`` (a mask or index array) of one table."""
    rows: dict[str, Any] = {table: {key: values[keep] for key, values in inputs.table(table).items()}}
    return dataclasses.replace(inputs, **rows)


def error_of(inputs: LifecycleInputs) -> str:
    with pytest.raises(InputError) as caught:
        validate_inputs(inputs)
    return str(caught.value)


def row_of(inputs: LifecycleInputs, status: int) -> int:
    return int(np.flatnonzero(inputs.mp3["status_id"] == status)[0])


def assert_same(a: LifecycleInputs, b: LifecycleInputs) -> None:
    assert (a.version_date, a.days) == (b.version_date, b.days)
    for name in TABLES:
        assert list(a.table(name)) == list(b.table(name))
        for column, values in a.table(name).items():
            assert np.array_equal(values, b.table(name)[column], equal_nan=values.dtype.kind == "M"), (name, column)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_written_inputs_load_back_unchanged(fleet: LifecycleInputs, tmp_path: Path, fmt: Any) -> None:
    write_inputs(fleet, tmp_path, fmt)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["meta.yaml"] + [f"{n}.{fmt}" for n in TABLES]
    loaded = load_inputs(tmp_path)
    assert_same(fleet, loaded)
    assert loaded.mp3["sne"].dtype == np.int64 and loaded.mp5["date"].dtype == np.dtype("datetime64[D]")
    assert loaded.mp3["ll"].min() == -1 and np.isnat(loaded.mp3["delivery_date"]).any()


def test_rewriting_in_the_other_format_replaces_the_files(fleet: LifecycleInputs, tmp_path: Path) -> None:
    write_inputs(fleet, tmp_path, "csv")
    write_inputs(fleet, tmp_path, "parquet")
    assert_same(fleet, DirectorySource(tmp_path).load())


def test_memory_source_hands_back_its_inputs(fleet: LifecycleInputs) -> None:
    assert MemorySource(fleet).load() is fleet


def test_load_inputs_can_shorten_the_horizon_and_refuses_a_longer_one(fleet: LifecycleInputs, tmp_path: Path) -> None:
    write_inputs(fleet, tmp_path, "parquet")
    assert load_inputs(tmp_path, days=10).days == 10
    with pytest.raises(InputError, match=r"(?s)mp4: .*ac_type=mi8: no row for date=2025-02-01"):
        load_inputs(tmp_path, days=40)
    with pytest.raises(ConfigError, match="days"):
        load_inputs(tmp_path, days=0)


def test_synthetic_fleet_is_valid(fleet: LifecycleInputs) -> None:
    validate_inputs(fleet)


# One test per kind of bad input: each message names the table, the row key and the field, and the expected form.


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("mp1", "partno=8100000, ac_type=mi26 (row 1)"),
        ("mp3", "aircraft_number="),
        ("mp4", "date=2025-01-01, ac_type=mi26"),
    ],
)
def test_unknown_ac_type(fleet: LifecycleInputs, table: str, key: str) -> None:
    message = error_of(changed(fleet, table, "ac_type", 0, "mi26"))
    assert message.startswith(f"{table}: 1 problem(s)")
    assert key in message and "field ac_type = mi26; expected one of mi8, mi17" in message


def test_status_outside_0_to_6(fleet: LifecycleInputs) -> None:
    number = fleet.mp3["aircraft_number"][4]
    message = error_of(changed(fleet, "mp3", "status_id", 4, 7))
    assert f"aircraft_number={number} (row 5): field status_id = 7; expected an integer 0..6" in message


def test_status_0_needs_a_delivery_date(fleet: LifecycleInputs) -> None:
    row = row_of(fleet, 1)
    message = error_of(changed(fleet, "mp3", "status_id", row, 0))
    assert f"aircraft_number={fleet.mp3['aircraft_number'][row]}" in message
    assert "field delivery_date = <empty>; expected a date YYYY-MM-DD when status_id is 0" in message


def test_delivery_date_on_a_delivered_airframe(fleet: LifecycleInputs) -> None:
    row = row_of(fleet, 2)
    message = error_of(changed(fleet, "mp3", "delivery_date", row, np.datetime64("2025-01-10")))
    assert "mp3: " in message and f"aircraft_number={fleet.mp3['aircraft_number'][row]}" in message
    assert "field delivery_date = 2025-01-10; expected empty when status_id is 2" in message


def test_delivery_before_the_first_day(fleet: LifecycleInputs) -> None:
    row = row_of(fleet, 0)
    message = error_of(changed(fleet, "mp3", "delivery_date", row, np.datetime64("2024-12-31")))
    assert "field delivery_date = 2024-12-31; expected a date on or after version_date 2025-01-01" in message


def test_oh_not_below_br_uses_the_mp3_override_over_mp1(fleet: LifecycleInputs) -> None:
    number = fleet.mp3["aircraft_number"][2]
    message = error_of(changed(fleet, "mp3", "br", 2, 200_000))
    assert message.startswith("mp3: 1 problem(s)")
    assert f"aircraft_number={number} (row 3): fields oh = 270000 (mp1), br = 200000 (mp3)" in message
    assert "expected oh < br <= ll" in message


def test_br_above_ll_uses_the_mp3_override_over_mp1(fleet: LifecycleInputs) -> None:
    message = error_of(changed(fleet, "mp3", "ll", 0, 500_000))
    assert "br = " in message and "(mp1), ll = 500000 (mp3); expected oh < br <= ll" in message


def test_limits_of_mp1_itself(fleet: LifecycleInputs) -> None:
    message = error_of(changed(fleet, "mp1", "oh", 1, 1_600_000))
    assert "mp1: 1 problem(s)" in message
    assert "partno=8100001, ac_type=mi8 (row 2): fields oh = 1600000, br = 1550000, ll = 1800000" in message


@pytest.mark.parametrize(
    ("table", "column", "value", "shown", "expected"),
    [
        ("mp3", "sne", -5, "-5", "an integer 0..4294967295 (minutes)"),
        ("mp3", "ppr", -1, "<empty>", "an integer 0..4294967295 (minutes)"),
        ("mp3", "ll", -7, "-7", "an integer 0..4294967295 (minutes) or empty"),
        ("mp3", "mfg_date", np.datetime64("NaT"), "<empty>", "a date YYYY-MM-DD"),
        ("mp1", "repair_time", 70_000, "70000", "an integer 0..65535 (days)"),
        ("mp4", "ops_target", -1, "<empty>", "an integer 0..65535 (aircraft)"),
        ("mp5", "daily_minutes", 1441, "1441", "an integer 0..1440 (minutes)"),
    ],
)
def test_negative_missing_or_out_of_range_value(
    fleet: LifecycleInputs, table: str, column: str, value: Any, shown: str, expected: str
) -> None:
    message = error_of(changed(fleet, table, column, 0, value))
    assert message.startswith(f"{table}: 1 problem(s)")
    assert f"(row 1): field {column} = {shown}; expected {expected}" in message


def test_ppr_above_sne(fleet: LifecycleInputs) -> None:
    row = row_of(fleet, 2)
    message = error_of(changed(fleet, "mp3", "ppr", row, int(fleet.mp3["sne"][row]) + 1))
    assert f"aircraft_number={fleet.mp3['aircraft_number'][row]}" in message and "field ppr = " in message


def test_missing_mp1_row_for_an_airframe(fleet: LifecycleInputs) -> None:
    message = error_of(changed(fleet, "mp3", "partno", 0, 999))
    assert f"aircraft_number={fleet.mp3['aircraft_number'][0]} (row 1): field partno = 999: no mp1 row for " in message
    assert "partno=999, ac_type=" in message


def test_duplicate_aircraft_number(fleet: LifecycleInputs) -> None:
    number = fleet.mp3["aircraft_number"][0]
    message = error_of(changed(fleet, "mp3", "aircraft_number", 5, number))
    assert f"mp3: 1 problem(s)\n  - aircraft_number={number} (row 6): duplicate of row 1; " in message
    assert "expected one row per aircraft_number" in message


def test_duplicate_psn(fleet: LifecycleInputs) -> None:
    psn = fleet.mp3["psn"][3]
    message = error_of(changed(fleet, "mp3", "psn", 9, psn))
    assert f"aircraft_number={fleet.mp3['aircraft_number'][9]} (row 10): field psn = {psn} repeats row 4" in message


def test_duplicate_partno_and_type_in_mp1(fleet: LifecycleInputs) -> None:
    message = error_of(changed(fleet, "mp1", "partno", 2, 8100000))
    assert "mp1: 1 problem(s)\n  - partno=8100000, ac_type=mi8 (row 3): duplicate of row 1" in message


def test_duplicate_date_and_type_in_mp4(fleet: LifecycleInputs) -> None:
    message = error_of(changed(fleet, "mp4", "date", 2, np.datetime64("2025-01-01")))
    assert "date=2025-01-01, ac_type=mi8 (row 3): duplicate of row 1; expected one row per (date, ac_type)" in message


def test_duplicate_date_and_aircraft_in_mp5(fleet: LifecycleInputs) -> None:
    message = error_of(changed(fleet, "mp5", "date", 20, np.datetime64("2025-01-01")))
    number = fleet.mp5["aircraft_number"][0]
    assert f"date=2025-01-01, aircraft_number={number} (row 21): duplicate of row 1" in message


def test_mp5_names_an_aircraft_not_in_mp3(fleet: LifecycleInputs) -> None:
    message = error_of(changed(fleet, "mp5", "aircraft_number", 3, 77))
    assert "mp5: 1 problem(s)" in message
    assert (
        "date=2025-01-01, aircraft_number=77 (row 4): field aircraft_number = 77; expected an aircraft_number "
        "of mp3" in message
    )


def test_mp4_missing_a_type_on_a_date(fleet: LifecycleInputs) -> None:
    gap = (fleet.mp4["ac_type"] == "mi17") & (fleet.mp4["date"] >= np.datetime64("2025-01-10"))
    gap &= fleet.mp4["date"] <= np.datetime64("2025-01-11")
    message = error_of(kept(fleet, "mp4", ~gap))
    assert "mp4: 1 problem(s)" in message
    assert "ac_type=mi17: no row for date=2025-01-10 (first missing; 2 of the 31 dates" in message


def test_mp4_not_reaching_the_last_date(fleet: LifecycleInputs) -> None:
    message = error_of(kept(fleet, "mp4", fleet.mp4["date"] < np.datetime64("2025-01-31")))
    assert "ac_type=mi8: no row for date=2025-01-31" in message
    assert "ac_type=mi17: no row for date=2025-01-31" in message


def test_mp5_not_reaching_the_last_date(fleet: LifecycleInputs) -> None:
    message = error_of(kept(fleet, "mp5", fleet.mp5["date"] < np.datetime64("2025-01-29")))
    assert "mp5: 1 problem(s)" in message
    assert "no row for date=2025-01-29 or later (first missing date); expected dates through 2025-01-31" in message


def test_a_missing_mp5_row_inside_the_range_is_allowed(fleet: LifecycleInputs) -> None:
    validate_inputs(kept(fleet, "mp5", np.arange(len(fleet.mp5["date"])) != 50))


def test_at_most_20_offences_are_listed_with_a_count_of_the_rest(fleet: LifecycleInputs) -> None:
    bad = dataclasses.replace(fleet, mp5={**fleet.mp5, "daily_minutes": np.full(len(fleet.mp5["date"]), -3)})
    message = error_of(bad)
    rows = len(fleet.mp5["date"])
    assert message.startswith(f"mp5: {rows} problem(s)")
    assert message.count("\n  - ") == 20 and message.endswith(f"\n  ... and {rows - 20} more")
    assert "(row 20): field daily_minutes = -3" in message and "(row 21)" not in message


def test_a_missing_column_is_named(fleet: LifecycleInputs) -> None:
    mp4 = {key: values for key, values in fleet.mp4.items() if key != "ops_target"}
    message = error_of(dataclasses.replace(fleet, mp4=mp4))
    assert "mp4: " in message and "no column ops_target; expected columns date, ac_type, ops_target" in message


# Files and meta.yaml.


def test_a_missing_table_file(fleet: LifecycleInputs, tmp_path: Path) -> None:
    write_inputs(fleet, tmp_path, "csv")
    (tmp_path / "mp4.csv").unlink()
    with pytest.raises(InputError, match=r"(?s)mp4: .*mp4\.csv or mp4\.parquet: no file"):
        load_inputs(tmp_path)


def test_a_table_in_both_formats(fleet: LifecycleInputs, tmp_path: Path) -> None:
    write_inputs(fleet, tmp_path, "csv")
    (tmp_path / "mp1.parquet").write_bytes(b"")
    with pytest.raises(InputError, match=r"both \.csv and \.parquet exist"):
        load_inputs(tmp_path)


def test_a_missing_column_in_a_file(fleet: LifecycleInputs, tmp_path: Path) -> None:
    write_inputs(fleet, tmp_path, "csv")
    path = tmp_path / "mp5.csv"
    path.write_text(path.read_text().replace('"daily_minutes"', '"minutes"'))
    with pytest.raises(InputError, match="no column daily_minutes; expected columns date, aircraft_number"):
        load_inputs(tmp_path)


def test_an_empty_cell_in_a_file_is_a_missing_value(fleet: LifecycleInputs, tmp_path: Path) -> None:
    write_inputs(fleet, tmp_path, "csv")
    path = tmp_path / "mp3.csv"
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[5] = ""
    path.write_text("\n".join([*lines[:2], ",".join(cells), *lines[3:]]) + "\n")
    with pytest.raises(InputError, match=r"aircraft_number=\d+ \(row 2\): field sne = <empty>; expected an integer"):
        load_inputs(tmp_path)


def test_a_cell_of_the_wrong_kind_names_the_file_and_field(fleet: LifecycleInputs, tmp_path: Path) -> None:
    write_inputs(fleet, tmp_path, "csv")
    path = tmp_path / "mp4.csv"
    path.write_text(path.read_text().replace("2025-01-05", "2025-13-05", 1))
    with pytest.raises(InputError, match=r"mp4\.csv: cannot be read: .*2025-13-05"):
        load_inputs(tmp_path)


@pytest.mark.parametrize(
    ("meta", "key"),
    [
        ("days: 30\n", "version_date"),
        ("version_date: 2025-01-01\n", "days"),
        ("version_date: 2025-13-01\ndays: 30\n", "version_date"),
        ("version_date: 2025-01-01\ndays: 0\n", "days"),
        ("version_date: 2025-01-01\ndays: ten\n", "days"),
        ("version_date: 2025-01-01\ndays: 30\nhorizon_days: 30\n", "horizon_days"),
    ],
)
def test_bad_meta_yaml_names_the_key(fleet: LifecycleInputs, tmp_path: Path, meta: str, key: str) -> None:
    write_inputs(fleet, tmp_path, "parquet")
    (tmp_path / "meta.yaml").write_text(meta)
    with pytest.raises(ConfigError) as caught:
        load_inputs(tmp_path)
    assert caught.value.key == key and str(caught.value).startswith(f"{tmp_path / 'meta.yaml'}: {key}: ")


@pytest.mark.parametrize("meta", [None, "- a list\n", "version_date: [\n"])
def test_missing_or_malformed_meta_yaml(fleet: LifecycleInputs, tmp_path: Path, meta: str | None) -> None:
    write_inputs(fleet, tmp_path, "parquet")
    if meta is None:
        (tmp_path / "meta.yaml").unlink()
    else:
        (tmp_path / "meta.yaml").write_text(meta)
    with pytest.raises(ConfigError, match=r"meta\.yaml"):
        load_inputs(tmp_path)


def test_a_parquet_table_in_row_groups_with_empty_cells_reads_as_pyarrow_converts_it(tmp_path: Path) -> None:
    """The columns are read from Arrow's buffers (not through pyarrow's pandas layer): chunks, offsets and nulls."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from simfleet.shared.lifecycle_contract import COLUMNS
    from simfleet.worker.lifecycle.inputs import read_table

    rows = 50
    arrays = {}
    for column in COLUMNS["mp3"]:
        if column.kind == "int":
            arrays[column.name] = pa.array([None if i % 7 == 3 else i * 11 for i in range(rows)], pa.int64())
        elif column.kind == "date":
            arrays[column.name] = pa.array([None if i % 5 == 1 else D0 + dt.timedelta(days=i) for i in range(rows)],
                                           pa.date32())  # fmt: skip
        else:
            arrays[column.name] = pa.array([None if i % 4 == 2 else ("mi8", "mi17")[i % 2] for i in range(rows)])
    path = tmp_path / "mp3.parquet"
    pq.write_table(pa.table(arrays), path, row_group_size=16)
    assert pq.ParquetFile(path).num_row_groups == 4
    got = read_table(path, "mp3")
    for column in COLUMNS["mp3"]:
        values = pq.read_table(path).column(column.name)
        if column.kind == "int":
            expected = pc.fill_null(values, -1).to_numpy()
        elif column.kind == "date":
            expected = np.asarray(values.to_numpy(), dtype="datetime64[D]")
        else:
            expected = pc.fill_null(values, "").to_numpy(zero_copy_only=False).astype(str)
        assert got[column.name].dtype == expected.dtype, column.name
        assert np.array_equal(got[column.name], expected, equal_nan=column.kind == "date"), column.name
