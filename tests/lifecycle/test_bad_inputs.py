"""Bad lifecycle inputs as a user meets them on the command line (issue 12).

Every case runs ``simfleet`` in-process and checks what a user would: exit code 2, one message naming the file,
table, key or flag, no traceback, and no ``--out`` left behind (nor a hidden staging folder beside it).
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simfleet.producer.cli import main
from simfleet.shared.lifecycle_contract import MAX_DAYS
from simfleet.worker.lifecycle import environment
from simfleet.worker.lifecycle.inputs import write_inputs
from simfleet.worker.lifecycle.synth import synthesize

AIRCRAFT, DAYS = 12, 40


def cli(argv: Sequence[str]) -> int:
    """The exit code of ``simfleet argv``: main's return, or argparse's exit."""
    try:
        return main(list(argv))
    except SystemExit as exited:
        return int(exited.code or 0)


@pytest.fixture
def inputs_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    write_inputs(synthesize(AIRCRAFT, DAYS, seed=3), folder, "csv")
    return folder


def run_fails(inputs: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """Run ``lifecycle run`` expecting exit 2; return stderr after checking nothing was written."""
    assert cli(["lifecycle", "run", "--inputs", str(inputs), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "Traceback" not in err and "internal error" not in err
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    return err


# ------------------------------------------------------------------------------------- files that are not data


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("psn,aircraft_number\n1,2\n".encode("utf-16"), "UTF-16"),
        (gzip.compress(b"psn,aircraft_number\n1,2\n"), "gzip-compressed"),
        (bytes(range(256)) * 4, "binary data"),
        ("psn,ac_type\n1,mi8\u00e9\n".encode("latin-1"), "not UTF-8"),
    ],
    ids=["utf16", "gzip", "binary", "latin1"],
)
def test_a_table_that_is_not_utf8_text_is_refused_naming_the_file(inputs_dir, tmp_path, capsys, content, says):
    (inputs_dir / "mp3.csv").write_bytes(content)
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert f"mp3: 1 problem(s)\n  - {inputs_dir / 'mp3.csv'}: " in err and says in err


def test_invalid_utf8_past_the_first_block_is_refused_naming_the_file(inputs_dir, tmp_path, capsys):
    text = (inputs_dir / "mp1.csv").read_bytes()
    (inputs_dir / "mp1.csv").write_bytes(text + b"\n" * 5000 + b"8100000,mi\xff8,1,1,1,1,1,1\n")
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert f"{inputs_dir / 'mp1.csv'}: cannot be read" in err and "UTF8" in err


def test_a_parquet_table_that_is_not_parquet_is_refused(inputs_dir, tmp_path, capsys):
    (inputs_dir / "mp4.csv").unlink()
    (inputs_dir / "mp4.parquet").write_bytes(gzip.compress(b"not parquet"))
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert f"{inputs_dir / 'mp4.parquet'}: gzip-compressed data; expected a Parquet file" in err


def test_a_directory_where_a_table_file_belongs_is_refused(inputs_dir, tmp_path, capsys):
    (inputs_dir / "mp5.csv").unlink()
    (inputs_dir / "mp5.csv").mkdir()
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert f"{inputs_dir / 'mp5.csv'}: is a directory, not a regular file" in err


@pytest.mark.timeout(30)
def test_a_fifo_is_refused_at_once_without_blocking(inputs_dir, tmp_path, capsys):
    (inputs_dir / "mp3.csv").unlink()
    os.mkfifo(inputs_dir / "mp3.csv")
    codes: list[int] = []
    worker = threading.Thread(target=lambda: codes.append(cli(["lifecycle", "run", "--inputs", str(inputs_dir)])),
                              daemon=True)  # fmt: skip
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "reading a FIFO blocked"
    assert codes == [2]
    assert f"{inputs_dir / 'mp3.csv'}: is a FIFO (named pipe), not a regular file" in capsys.readouterr().err


def test_a_device_is_refused_not_read_forever(inputs_dir, tmp_path, capsys):
    (inputs_dir / "mp3.csv").unlink()
    (inputs_dir / "mp3.csv").symlink_to("/dev/zero")
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert f"{inputs_dir / 'mp3.csv'}: is a device, not a regular file" in err


def test_a_symlink_loop_is_refused_naming_the_file(inputs_dir, tmp_path, capsys):
    (inputs_dir / "mp3.csv").unlink()
    (inputs_dir / "mp3.csv").symlink_to(inputs_dir / "mp3.csv")
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert f"{inputs_dir / 'mp3.csv'}: cannot be opened: Too many levels of symbolic links" in err


def test_an_unreadable_table_is_refused_naming_the_file(inputs_dir, tmp_path, capsys, monkeypatch):
    (inputs_dir / "mp3.csv").chmod(0)
    if os.geteuid() == 0:  # root reads whatever the mode says: let the open fail as it does for everyone else
        real_open = os.open

        def denied(path, flags, *args, **kwargs):
            if str(path).endswith("mp3.csv"):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", denied)
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert f"{inputs_dir / 'mp3.csv'}: cannot be opened: Permission denied" in err


def test_a_repeated_csv_column_is_refused(inputs_dir, tmp_path, capsys):
    lines = (inputs_dir / "mp4.csv").read_text().splitlines()
    (inputs_dir / "mp4.csv").write_text("\n".join([lines[0] + ",ops_target"] + [f"{line},1" for line in lines[1:]]))
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert f"{inputs_dir / 'mp4.csv'}: column ops_target appears more than once" in err


def test_a_repeated_parquet_column_is_refused(inputs_dir, tmp_path, capsys):
    (inputs_dir / "mp1.csv").unlink()
    table = pa.table([pa.array([1]), pa.array(["mi8"]), pa.array([2])], names=["partno", "ac_type", "partno"])
    pq.write_table(table, inputs_dir / "mp1.parquet")
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert f"{inputs_dir / 'mp1.parquet'}: column partno appears more than once" in err


# -------------------------------------------------------------------------------------------------- empty tables


def test_a_header_only_csv_is_an_empty_table_named_as_such(inputs_dir, tmp_path, capsys):
    header = (inputs_dir / "mp3.csv").read_text().splitlines()[0]
    (inputs_dir / "mp3.csv").write_text(header + "\n")
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert f"mp3: 1 problem(s)\n  - {inputs_dir / 'mp3.csv'}: no rows" in err


def test_a_zero_row_parquet_is_an_empty_table_named_as_such(inputs_dir, tmp_path, capsys):
    write_inputs(synthesize(AIRCRAFT, DAYS, seed=3), inputs_dir, "parquet")
    pq.write_table(pq.read_table(inputs_dir / "mp1.parquet").slice(0, 0), inputs_dir / "mp1.parquet")
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert f"mp1: 1 problem(s)\n  - {inputs_dir / 'mp1.parquet'}: no rows" in err


# ------------------------------------------------------------------------------------------------------ meta.yaml


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"version_date: '2025-01-01'\ndays: \xff\n", "not UTF-8"),
        (b"\x00\x01\x02" * 100, "binary data"),
        (
            b"a: &x [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nb: &y [*x, *x, *x, *x, *x, *x, *x, *x, *x, *x]\nc: [*y, *y]\n",
            "holds more than 100 values",
        ),
        (b"version_date: '2025-01-01'\ndays: 40\ndays: 30\n", "days: duplicate key"),
        (b"- 1\n- 2\n", "expected a mapping"),
        (b"#" * 70_000, "larger than the limit of 65,536 bytes"),
        (b"version_date: '2025-01-01'\ndays: 70000\n", f"days: 70000 is over the limit of {MAX_DAYS} days"),
        (
            b"version_date: '2149-01-01'\ndays: 365\n",
            "days: 365 days from version_date 2149-01-01 end after 2149-06-06",
        ),
        (b"version_date: '1969-12-31'\ndays: 5\n", "version_date: expected a date 1970-01-01 .. 2149-06-06"),
        (b"version_date: '2025-01-01'\ndays: true\n", "days: expected a positive integer, got True"),
        (b"a: " + b"{b: " * 5000 + b"1" + b"}" * 5000, "nests deeper than 8 levels"),
        (b"version_date: '2025-01-01\ndays: 3\n", "not valid YAML: found unexpected end of stream (line 3"),
    ],
    ids=[
        "latin1",
        "binary",
        "alias",
        "duplicate",
        "list",
        "huge",
        "max-days",
        "date-range",
        "before-1970",
        "bool",
        "deep",
        "unclosed",
    ],
)
def test_a_bad_meta_yaml_names_the_file_and_key(inputs_dir, tmp_path, capsys, content, says):
    (inputs_dir / "meta.yaml").write_bytes(content)
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert f"simfleet: error: {inputs_dir / 'meta.yaml'}: " in err and says in err


def test_meta_yaml_as_a_directory_is_refused(inputs_dir, tmp_path, capsys):
    (inputs_dir / "meta.yaml").unlink()
    (inputs_dir / "meta.yaml").mkdir()
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert f"{inputs_dir / 'meta.yaml'}: is a directory, not a regular file" in err


# ------------------------------------------------------------------------------------------------ horizons, flags


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--days", "0"], "argument --days: must be between 1 and 65535, got 0"),
        (["--days", "-1"], "argument --days: must be between 1 and 65535, got -1"),
        (["--days", "70000"], "argument --days: must be between 1 and 65535, got 70000"),
        (["--chunk-days", "0"], "argument --chunk-days: must be at least 1, got 0"),
        (["--chunk-days", "-1"], "argument --chunk-days: must be at least 1, got -1"),
        (["--backend", "tpu"], "argument --backend: invalid choice: 'tpu' (choose from 'numpy', 'cupy'"),
    ],
)
def test_bad_run_flags_are_refused_by_the_parser_naming_the_flag(inputs_dir, tmp_path, capsys, flags, says):
    assert says in run_fails(inputs_dir, tmp_path / "out", capsys, *flags)


def test_days_past_the_date_range_names_the_flag(tmp_path, capsys):
    folder = tmp_path / "in"
    write_inputs(synthesize(AIRCRAFT, 30, seed=3, version_date=dt.date(2149, 5, 1)), folder)
    err = run_fails(folder, tmp_path / "out", capsys, "--days", "60")
    assert "--days: 60 days from version_date 2149-05-01 end after 2149-06-06" in err


def test_a_run_needing_more_memory_than_available_is_refused_before_it_starts(inputs_dir, tmp_path, capsys,
                                                                               monkeypatch):  # fmt: skip
    monkeypatch.setattr(environment, "available_memory_bytes", lambda: 20_000)
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert f"days: {AIRCRAFT} airframes x {DAYS} days needs about" in err
    assert "GiB of memory available; at most" in err and "days fit" in err


def test_a_synthetic_fleet_needing_more_memory_than_available_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(environment, "available_memory_bytes", lambda: 1_000_000)
    out = tmp_path / "fleet"
    assert cli(["lifecycle", "synth", "--aircraft", "5000", "--days", "3650", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "days: 5000 aircraft x 3650 days (18,255,000 mp5 rows) needs about" in err
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--days", "0"], "argument --days: must be between 1 and 65535"),
        (["--aircraft", "-3"], "argument --aircraft: must be between 1 and"),
        (["--seed", "-1"], "argument --seed: must be between 0 and"),
        (["--version-date", "2149-06-01", "--days", "10"], "days: 10 days from version_date 2149-06-01 end after"),
    ],
)
def test_bad_synth_flags_are_refused_naming_the_flag(tmp_path, capsys, flags, says):
    out = tmp_path / "fleet"
    assert cli(["lifecycle", "synth", "--aircraft", "5", "--out", str(out), *flags]) == 2
    assert says in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------------- values


def _edit_parquet(folder: Path, name: str, column: str, values: pa.Array) -> None:
    write_inputs(synthesize(AIRCRAFT, DAYS, seed=3), folder, "parquet")
    table = pq.read_table(folder / f"{name}.parquet")
    table = table.set_column(table.column_names.index(column), column, values)
    pq.write_table(table, folder / f"{name}.parquet")


@pytest.mark.parametrize(("values", "kind"), [([True], "bool"), ([2.0], "double")])
def test_a_bool_or_float_column_is_refused_not_cast_to_integers(inputs_dir, tmp_path, capsys, values, kind):
    _edit_parquet(inputs_dir, "mp3", "status_id", pa.array(values * AIRCRAFT))
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    field = f"{inputs_dir / 'mp3.parquet'}: field status_id: column of type {kind}, not an integer type"
    assert f"{field}; expected an integer 0..6" in err


def test_a_nul_byte_in_a_string_is_refused_and_echoed_escaped(inputs_dir, tmp_path, capsys):
    ac_type = list(synthesize(AIRCRAFT, DAYS, seed=3).mp3["ac_type"])
    ac_type[0] += "\x00"
    _edit_parquet(inputs_dir, "mp3", "ac_type", pa.array(ac_type))
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    shown = f"field ac_type: row 1 = {ac_type[0][:-1]}\\x00 holds a NUL byte; expected one of mi8, mi17"
    assert "mp3: 1 problem(s)" in err and shown in err
    assert "\x00" not in err


def test_dates_clickhouse_would_clamp_are_refused_naming_row_and_field(inputs_dir, tmp_path, capsys):
    dates = np.full(AIRCRAFT, np.datetime64("2000-01-01"), dtype="datetime64[D]")
    dates[4] = np.datetime64("1969-12-31")
    _edit_parquet(inputs_dir, "mp3", "mfg_date", pa.array(dates, type=pa.date32()))
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert "(row 5): field mfg_date = 1969-12-31; expected a date YYYY-MM-DD, 1970-01-01 .. 2149-06-06" in err


def test_ids_outside_uint32_are_refused_naming_row_and_field(inputs_dir, tmp_path, capsys):
    psn = np.arange(AIRCRAFT, dtype=np.int64) + 1
    psn[2] = 2**32
    _edit_parquet(inputs_dir, "mp3", "psn", pa.array(psn))
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    assert "(row 3): field psn = 4294967296; expected an integer 0..4294967295 (serial number)" in err


def test_minutes_the_engines_int32_cannot_carry_name_the_airframe_and_field(inputs_dir, tmp_path, capsys):
    inputs = synthesize(AIRCRAFT, DAYS, seed=3)
    sne = inputs.mp3["sne"].copy()
    sne[0] = 2_147_450_000
    _edit_parquet(inputs_dir, "mp3", "sne", pa.array(sne))
    err = run_fails(inputs_dir, tmp_path / "out", capsys)
    number = inputs.mp3["aircraft_number"][0]
    assert "mp3: " in err and f"aircraft_number={number} (row 1): field sne = 2147450000; expected at most" in err
    assert "int32" in err


# ----------------------------------------------------------------------------------------- nothing half-written


def test_an_unwritable_out_fails_before_the_inputs_are_read(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    missing_inputs = tmp_path / "nowhere"  # would be an error too, but --out is checked first
    assert cli(["lifecycle", "run", "--inputs", str(missing_inputs), "--out", str(blocker / "out")]) == 2
    assert f"--out: {blocker / 'out'}: {blocker} is not a folder" in capsys.readouterr().err


def test_a_failed_run_leaves_the_previous_output_whole(inputs_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(["lifecycle", "run", "--inputs", str(inputs_dir), "--out", str(out), "--chunk-days", "10"]) == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    (inputs_dir / "mp4.csv").write_text("date,ac_type,ops_target\n")
    assert cli(["lifecycle", "run", "--inputs", str(inputs_dir), "--out", str(out)]) == 2
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_an_interrupted_run_leaves_nothing(inputs_dir, tmp_path, capsys, monkeypatch):
    from simfleet.worker.lifecycle.sinks import ParquetSink

    written = ParquetSink.write

    def interrupted(self, first_day, airframe, daily):
        if first_day:
            raise KeyboardInterrupt
        written(self, first_day, airframe, daily)

    monkeypatch.setattr(ParquetSink, "write", interrupted)
    out = tmp_path / "out"
    assert cli(["lifecycle", "run", "--inputs", str(inputs_dir), "--out", str(out), "--chunk-days", "10"]) == 130
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["in"]


def test_a_rerun_replaces_the_output_and_never_mixes_chunks(inputs_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(["lifecycle", "run", "--inputs", str(inputs_dir), "--out", str(out), "--chunk-days", "10"]) == 0
    assert cli(["lifecycle", "run", "--inputs", str(inputs_dir), "--out", str(out), "--chunk-days", "25"]) == 0
    assert sorted(p.name for p in (out / "mp2").iterdir()) == ["part-00000.parquet", "part-00025.parquet"]


def test_synth_rerun_in_another_format_replaces_the_directory(tmp_path, capsys):
    out = tmp_path / "fleet"
    assert cli(["lifecycle", "synth", "--aircraft", "5", "--days", "10", "--out", str(out), "--format", "csv"]) == 0
    assert cli(["lifecycle", "synth", "--aircraft", "5", "--days", "10", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["meta.yaml", "mp1.parquet", "mp3.parquet", "mp4.parquet",
                                                     "mp5.parquet"]  # fmt: skip


def test_an_out_holding_other_files_is_never_replaced(inputs_dir, tmp_path, capsys):
    assert cli(["lifecycle", "run", "--inputs", str(inputs_dir), "--out", str(inputs_dir)]) == 2
    said = f"--out: {inputs_dir} holds meta.yaml and 4 more; it may hold only an earlier output"
    assert said in capsys.readouterr().err
    assert (inputs_dir / "mp3.csv").is_file()
    (tmp_path / "notes.txt").write_text("keep me")
    assert cli(["lifecycle", "synth", "--aircraft", "5", "--days", "10", "--out", str(tmp_path)]) == 2
    assert f"--out: {tmp_path} holds in and 1 more" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_the_memory_rule_lets_the_reference_fleet_run_and_grows_with_chunks_and_kept_rows():
    reference = environment.run_memory_bytes(279, 3650, chunk_days=365, log="full", keep_rows=False)
    assert reference < 100 * 2**20  # 279 airframes x 10 years: a few tens of MB, never refused on a real machine
    aggregates = environment.run_memory_bytes(279, 3650, chunk_days=365, log="aggregates", keep_rows=True)
    kept = environment.run_memory_bytes(279, 3650, chunk_days=365, log="full", keep_rows=True)
    assert aggregates < reference < kept
