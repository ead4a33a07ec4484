"""Synthetic fleets: determinism, validity, and closeness to LIFECYCLE_MODEL.md's reference points."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simfleet.producer.cli import main
from simfleet.shared.errors import ConfigError
from simfleet.shared.lifecycle_contract import TABLES, LifecycleInputs
from simfleet.worker.lifecycle.inputs import load_inputs, write_inputs
from simfleet.worker.lifecycle.synth import synthesize
from simfleet.worker.lifecycle.validation import validate_inputs


@pytest.fixture(scope="module")
def reference() -> LifecycleInputs:
    return synthesize(279, 3650, seed=11)


def file_bytes(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_seed_writes_the_same_bytes(tmp_path: Path, fmt: Any) -> None:
    write_inputs(synthesize(60, 200, seed=5), tmp_path / "a", fmt)
    write_inputs(synthesize(60, 200, seed=5), tmp_path / "b", fmt)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")


def test_a_different_seed_gives_a_different_fleet(tmp_path: Path) -> None:
    write_inputs(synthesize(60, 200, seed=5), tmp_path / "a", "csv")
    write_inputs(synthesize(60, 200, seed=6), tmp_path / "b", "csv")
    a, b = file_bytes(tmp_path / "a"), file_bytes(tmp_path / "b")
    assert a["meta.yaml"] == b["meta.yaml"]
    assert all(a[f"{name}.csv"] != b[f"{name}.csv"] for name in TABLES)


def test_the_reference_fleet_validates(reference: LifecycleInputs) -> None:
    validate_inputs(reference)
    assert len(reference.mp4["date"]) == 2 * 3651 and len(reference.mp5["date"]) == 279 * 3651


def test_type_ratio_and_start_mix_are_near_the_reference_points(reference: LifecycleInputs) -> None:
    mp3 = reference.mp3
    assert np.sum(mp3["ac_type"] == "mi8") == 163 and np.sum(mp3["ac_type"] == "mi17") == 116
    share = np.bincount(mp3["status_id"], minlength=7) / 279
    assert share[1] == pytest.approx(0.42, abs=0.03)
    assert share[2] == pytest.approx(0.55, abs=0.02)
    assert share[4] == pytest.approx(0.03, abs=0.01)
    assert 1 <= np.sum(mp3["status_id"] == 0) <= 10 and share[[3, 5, 6]].sum() == 0


def test_deliveries_fall_inside_the_horizon_and_start_new(reference: LifecycleInputs) -> None:
    mp3 = reference.mp3
    pending = mp3["status_id"] == 0
    start = np.datetime64(reference.version_date, "D")
    assert np.all(mp3["delivery_date"][pending] > start)
    assert np.all(mp3["delivery_date"][pending] < start + reference.days)
    assert np.all(mp3["sne"][pending] == 0) and np.all(mp3["ppr"][pending] == 0)
    assert np.all(mp3["mfg_date"] <= np.where(pending, mp3["delivery_date"], start))


def test_hours_are_spread_below_the_limits(reference: LifecycleInputs) -> None:
    mp1: dict[str, Any] = reference.mp1
    mp3: dict[str, Any] = reference.mp3
    row = {(int(p), str(t)): i for i, (p, t) in enumerate(zip(mp1["partno"], mp1["ac_type"], strict=True))}
    rows = np.array([row[(int(p), str(t))] for p, t in zip(mp3["partno"], mp3["ac_type"], strict=True)])
    ll = np.where(mp3["ll"] >= 0, mp3["ll"], mp1["ll"][rows])
    flying = mp3["status_id"] == 2
    assert np.all(mp3["sne"] < ll) and np.all(mp3["ppr"] <= mp1["oh"][rows])
    ppr = mp3["ppr"][flying] / 270_000
    assert 0.35 < ppr.mean() < 0.65 and ppr.min() < 0.1 and ppr.max() > 0.9
    assert np.mean(mp3["sne"][flying] > 0.8 * mp1["br"][rows][flying]) > 0.1
    assert set(mp1["repair_time"]) <= set(range(120, 241)) and set(mp1["partout_time"]) == {7}
    assert set(mp1["ll"]) == {1_800_000, 1_080_000} and set(mp1["br"]) == {1_550_000, 970_000}


def test_daily_flight_is_constant_within_a_month_and_peaks_in_summer(reference: LifecycleInputs) -> None:
    minutes = reference.mp5["daily_minutes"].reshape(3651, 279)
    months = (np.datetime64(reference.version_date, "D") + np.arange(3651)).astype("datetime64[M]")
    assert minutes.min() >= 70 and minutes.max() <= 155
    same_month = months[1:] == months[:-1]
    assert np.all(minutes[1:][same_month] == minutes[:-1][same_month])
    assert not np.all(minutes[1:][~same_month] == minutes[:-1][~same_month])
    calendar_month = months.astype(np.int64) % 12
    assert minutes[calendar_month == 6].mean() > minutes[calendar_month == 0].mean() + 15


def test_targets_change_monthly_within_the_reference_range(reference: LifecycleInputs) -> None:
    mp4 = reference.mp4
    for ac_type, fleet in (("mi8", 163), ("mi17", 116)):
        target = mp4["ops_target"][mp4["ac_type"] == ac_type]
        assert target.min() >= 40 and target.max() <= 130
        assert len(np.unique(target)) > 12
        assert np.mean(target < fleet * 0.55) > 0.5 and np.any(target > fleet * 0.6)


def test_targets_scale_with_the_fleet() -> None:
    small = synthesize(279, 60, seed=3).mp4["ops_target"].mean()
    large = synthesize(2790, 60, seed=3).mp4["ops_target"].mean()
    assert large / small == pytest.approx(10, rel=0.1)


@pytest.mark.parametrize(("aircraft", "days"), [(0, 10), (10, 0), (-1, 10)])
def test_a_fleet_needs_aircraft_and_days(aircraft: int, days: int) -> None:
    with pytest.raises(ConfigError):
        synthesize(aircraft, days, seed=1)


def test_a_one_day_single_aircraft_fleet_is_valid() -> None:
    validate_inputs(synthesize(1, 1, seed=1, version_date=dt.date(2030, 6, 30)))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_cli_writes_an_inputs_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    out = tmp_path / "fleet"
    code = main(
        [
            "lifecycle",
            "synth",
            "--aircraft",
            "30",
            "--days",
            "60",
            "--seed",
            "2",
            "--out",
            str(out),
            "--format",
            fmt,
            "--version-date",
            "2026-03-01",
        ]
    )
    assert code == 0
    summary = capsys.readouterr().out
    assert summary.count("\n") == 1
    assert f"wrote {out}: 30 aircraft (18 mi8, 12 mi17), 60 days from 2026-03-01" in summary
    inputs = load_inputs(out)
    assert inputs.days == 60 and inputs.version_date == dt.date(2026, 3, 1) and len(inputs.mp3["psn"]) == 30
    assert (out / f"mp5.{fmt}").is_file()


def test_cli_reports_a_bad_fleet_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse refuses it, naming the flag
        main(["lifecycle", "synth", "--aircraft", "0", "--out", str(tmp_path / "x")])
    assert exited.value.code == 2
    assert "argument --aircraft: must be between 1 and" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
