"""Arrival processes of model v2: a rate schedule, a two-state MMPP and a trace, as read from a scenario and drawn."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from simfleet.shared.errors import ScenarioError
from simfleet.worker.des import arrivals
from simfleet.worker.des.arrivals import (
    ArrivalProcess,
    Mmpp,
    ProcessStream,
    Schedule,
    Trace,
    parse_process,
    read_trace,
)

SOURCE = "scenario.yaml"
KEY = "request_types.chat.arrival"
HORIZON_S = 1_000.0

# Four windows of 100 s repeating every 400 s; the second has no arrivals. Mean: (30 + 0 + 120 + 60) / 4 per minute.
DAY = Schedule((0.0, 100.0, 200.0, 300.0), (30.0, 0.0, 120.0, 60.0), repeat_s=400.0)
# Bursts: 150 per minute for 0.5 s on average, 30 per minute for 2 s; stationary mean 54 per minute.
BURSTY = Mmpp((30.0, 150.0), (2.0, 0.5))


def stream(process: ArrivalProcess, seed: int = 1) -> ProcessStream:
    return ProcessStream(process, np.random.default_rng(seed), np.random.default_rng(seed + 1_000))


def times_before(process: ArrivalProcess, until_s: float, seed: int = 1) -> np.ndarray:
    """Every arrival time in [0, until_s)."""
    draws, now, times = stream(process, seed), 0.0, []
    while True:
        now = draws.next_time(now)
        if now >= until_s:
            return np.array(times)
        times.append(now)


def first_times(draws: ProcessStream, count: int, now: float = 0.0) -> list[float]:
    times = []
    for _ in range(count):
        now = draws.next_time(now)
        times.append(now)
    return times


def parse(spec: Any, base_dir: Path | None = None, horizon_s: float = HORIZON_S) -> ArrivalProcess:
    return parse_process(spec, source=SOURCE, key=KEY, horizon_s=horizon_s, base_dir=base_dir)


@pytest.fixture(scope="module")
def day_times() -> np.ndarray:
    """About 175 000 arrivals of DAY over 500 periods."""
    return times_before(DAY, 500 * 400.0)


def test_a_repeating_schedule_arrives_at_its_mean_rate(day_times):
    assert DAY.mean_rate_per_min(HORIZON_S) == pytest.approx(52.5)
    rate_per_min = len(day_times) / (500 * 400.0) * 60
    assert rate_per_min == pytest.approx(DAY.mean_rate_per_min(HORIZON_S), rel=0.01)


def test_each_window_of_a_schedule_gets_its_own_rate_and_a_window_of_rate_0_gets_none(day_times):
    window = np.searchsorted(DAY.starts_s, day_times % 400.0, side="right") - 1
    counts = np.bincount(window, minlength=4)
    expected = np.array(DAY.rates_per_min) / 60 * 100.0 * 500
    assert counts[1] == 0
    busy = expected > 0
    assert np.all(np.abs(counts[busy] - expected[busy]) < 4 * np.sqrt(expected[busy])), (counts, expected)


def test_an_mmpp_arrives_at_its_stationary_mean_rate_in_bursts():
    assert BURSTY.mean_rate_per_min(HORIZON_S) == pytest.approx(54.0)
    times = times_before(BURSTY, 220_000.0)
    assert len(times) > 190_000
    assert len(times) / 220_000.0 * 60 == pytest.approx(54.0, rel=0.01)
    # Modulation makes counts over a few seconds more variable than a Poisson process of the same mean (whose
    # variance-to-mean ratio is 1); for these figures the ratio over 5 s is about 1.4.
    counts = np.bincount((times // 5.0).astype(int))
    assert counts.var() / counts.mean() > 1.2


def test_an_mmpp_with_a_silent_state_has_no_arrivals_during_it():
    on_off = Mmpp((0.0, 600.0), (10.0, 10.0))
    times = times_before(on_off, 2_000.0)
    assert len(times) == pytest.approx(10_000, rel=0.1)
    # Silent stretches last about 10 s, so gaps of several seconds occur; in the busy state gaps are 0.1 s on average.
    assert np.diff(times).max() > 5.0


def test_an_mmpp_starts_in_its_stationary_state():
    """Over [0, 2 s) a stationary start expects mean rate × 2 s arrivals (a start in the silent state almost none)."""
    on_off = Mmpp((0.0, 600.0), (30.0, 10.0))  # in the busy state a quarter of the time: 2.5 arrivals per second
    counts = [len(times_before(on_off, 2.0, seed)) for seed in range(4_000)]
    assert np.mean(counts) == pytest.approx(5.0, rel=0.15)


def test_a_schedule_without_repeat_keeps_its_last_window_and_a_last_rate_of_0_ends_the_arrivals():
    times = times_before(Schedule((0.0, 10.0), (60.0, 0.0)), math.inf)
    assert len(times) > 0 and times.max() < 10.0
    assert stream(Schedule((0.0, 10.0), (0.0, 60.0))).next_time(0.0) >= 10.0


@pytest.mark.parametrize("process", [DAY, BURSTY, Schedule((0.0, 10.0), (60.0, 5.0))])
def test_after_an_arrival_at_infinity_there_is_none(process):
    assert stream(process).next_time(math.inf) == math.inf


def test_scale_2_of_a_constant_rate_halves_every_time_exactly():
    one = first_times(stream(Schedule((0.0,), (6.0,))), 5_000)
    two = first_times(stream(Schedule((0.0,), (6.0,), scale=2.0)), 5_000)
    assert two == [time / 2 for time in one]


@pytest.mark.parametrize("repeat_s", [None, 400.0])
def test_scale_2_of_a_schedule_uses_the_same_draws_at_twice_the_rate(repeat_s):
    """Arrival n comes where the scaled intensity, integrated from 0, reaches the sum of the first n draws."""
    schedule = Schedule(DAY.starts_s, DAY.rates_per_min, repeat_s=repeat_s)
    draws = np.cumsum(np.random.default_rng(1).standard_exponential(4_000))
    for scale in (1.0, 2.0):
        times = np.array(first_times(stream(schedule.with_scale(scale)), 4_000))
        integrated = np.array([scale * integrated_rate_per_s(schedule, time) for time in times])
        assert integrated == pytest.approx(draws, rel=1e-9)


def integrated_rate_per_s(schedule: Schedule, until_s: float) -> float:
    """Expected arrivals of an unscaled schedule in [0, until_s]."""
    cycles, phase, period = 0, until_s, math.inf
    if schedule.repeat_s is not None:
        period = schedule.repeat_s
        cycles = math.floor(until_s / period)
        phase = until_s - cycles * period
    pieces = list(zip(schedule.starts_s, (*schedule.starts_s[1:], period), schedule.rates_per_min, strict=True))
    per_cycle = sum(rate * (end - start) for start, end, rate in pieces) if cycles else 0.0
    partial = sum(rate * max(0.0, min(end, phase) - start) for start, end, rate in pieces)
    return (cycles * per_cycle + partial) / 60


def test_scale_2_doubles_the_arrivals_of_an_mmpp_with_the_same_sojourns():
    one = times_before(BURSTY, 20_000.0)
    two = times_before(BURSTY.with_scale(2.0), 20_000.0)
    assert len(two) / len(one) == pytest.approx(2.0, rel=0.02)


def test_a_trace_replays_its_times_divided_by_scale_then_ends():
    draws = stream(Trace((1.0, 1.0, 4.0, 9.0), scale=2.0))
    assert first_times(draws, 6) == [0.5, 0.5, 2.0, 4.5, math.inf, math.inf]


def test_mean_rates_follow_the_horizon_where_the_process_has_no_period():
    schedule = Schedule((0.0, 600.0), (10.0, 40.0))
    assert schedule.mean_rate_per_min(1_200.0) == pytest.approx(25.0)
    assert schedule.mean_rate_per_min(300.0) == pytest.approx(10.0)
    assert schedule.with_scale(2.0).mean_rate_per_min(300.0) == pytest.approx(20.0)
    trace = Trace((0.0, 10.0, 20.0, 30.0), scale=2.0)  # arrivals at 0, 5, 10, 15 s
    assert trace.mean_rate_per_min(12.0) == pytest.approx(3 / 12 * 60)
    assert BURSTY.with_scale(0.5).mean_rate_per_min(1.0) == pytest.approx(27.0)


@pytest.mark.parametrize("process", [DAY, Schedule((0.0, 5.0), (1.0, 2.0)), BURSTY, Trace((0.0, 2.5, 2.5, 7.0))])
def test_a_process_survives_to_dict_and_plain_data_exactly(process):
    scaled = process.with_scale(1.7)
    assert type(scaled) is type(process) and scaled.scale == 1.7
    data = json.loads(json.dumps(scaled.to_dict()))
    assert parse(data, base_dir=None, horizon_s=10.0) == scaled


def test_a_trace_read_from_a_file_travels_inline(tmp_path):
    (tmp_path / "arrivals.csv").write_text("arrival_s\n0.5\n2.0\n", encoding="utf-8")
    trace = parse({"process": "trace", "file": "arrivals.csv", "scale": 2.0}, base_dir=tmp_path)
    assert trace == Trace((0.5, 2.0), scale=2.0)
    assert trace.to_dict() == {"process": "trace", "times_s": [0.5, 2.0], "scale": 2.0}


def test_a_trace_file_may_have_a_header_blank_lines_and_windows_line_ends(tmp_path):
    path = tmp_path / "arrivals.csv"
    path.write_bytes(b"time_s\r\n\r\n0\r\n1.5\r\n  \r\n1.5\r\n3.25\r\n\r\n")
    assert read_trace(path, source=SOURCE, key=f"{KEY}.file") == (0.0, 1.5, 1.5, 3.25)
    path.write_text("7\n8\n", encoding="utf-8")
    assert read_trace(path, source=SOURCE, key=f"{KEY}.file") == (7.0, 8.0)


@pytest.mark.parametrize(
    ("text", "row", "reason"),
    [
        ("time_s\n1\n\n3\n2\n", "row 5", "not sorted: 2.0 is before the previous time 3.0"),
        ("1\n2\nsoon\n", "row 3", "expected a number of seconds, got 'soon'"),
        ("header\n1\n-2\n", "row 3", "must be >= 0"),
        ("header\nother header\n1\n", "row 2", "expected a number of seconds"),
        ("1\nnan\n", "row 2", "expected a finite number"),
        ("time_s\n\n", None, "no arrival times"),
    ],
)
def test_a_bad_trace_file_names_the_file_and_row(tmp_path, text, row, reason):
    path = tmp_path / "arrivals.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        parse({"process": "trace", "file": "arrivals.csv"}, base_dir=tmp_path)
    assert (caught.value.source, caught.value.key) == (str(path), row)
    assert reason in caught.value.reason


def test_a_trace_longer_than_the_limit_is_refused_at_the_first_row_beyond_it(tmp_path, monkeypatch):
    monkeypatch.setattr(arrivals, "MAX_TRACE_ROWS", 3)
    path = tmp_path / "arrivals.csv"
    path.write_text("t\n1\n2\n3\n4\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        read_trace(path, source=SOURCE, key=f"{KEY}.file")
    assert (caught.value.source, caught.value.key) == (str(path), "row 5")
    assert "more than 3 arrival times" in caught.value.reason


WINDOWS = [{"start_s": 0, "rate_per_min": 2}, {"start_s": 100, "rate_per_min": 5}]
LATE_START = [{"start_s": 0, "rate_per_min": 0}, {"start_s": 5_000, "rate_per_min": 9}]  # after HORIZON_S


@pytest.mark.parametrize(
    ("spec", "subkey", "reason"),
    [
        ({"windows": WINDOWS}, "process", "must be one of schedule, mmpp, trace, got nothing"),
        ({"process": "hawkes"}, "process", "must be one of schedule, mmpp, trace, got 'hawkes'"),
        ({"process": "schedule", "windows": WINDOWS, "period_s": 9}, "period_s", "allowed: process, repeat_s"),
        ({"process": "schedule", "windows": []}, "windows", "expected a non-empty list"),
        ({"process": "schedule", "windows": [{"start_s": 5, "rate_per_min": 1}]}, "windows[0].start_s", "start at 0"),
        (
            {"process": "schedule", "windows": [*WINDOWS, {"start_s": 50, "rate_per_min": 1}]},
            "windows[2].start_s",
            "must be after the previous window's start_s (100.0)",
        ),
        (
            {"process": "schedule", "windows": [*WINDOWS, {"start_s": 200, "rate_per_min": -1}]},
            "windows[2].rate_per_min",
            "must be >= 0",
        ),
        ({"process": "schedule", "windows": [{"start_s": 0}]}, "windows[0].rate_per_min", "is required"),
        ({"process": "schedule", "windows": [{"start_s": 0, "rate": 1}]}, "windows[0].rate", "unknown key"),
        ({"process": "schedule", "windows": ["0 2"]}, "windows[0]", "expected a {start_s, rate_per_min} mapping"),
        (
            {"process": "schedule", "windows": [{"start_s": 0, "rate_per_min": 0}, {"start_s": 9, "rate_per_min": 0}]},
            "windows",
            "every rate_per_min is 0",
        ),
        (
            {"process": "schedule", "windows": LATE_START},
            "windows",
            "every window before horizon_s (1000.0 s) has rate_per_min 0",
        ),
        ({"process": "schedule", "windows": WINDOWS, "repeat_s": 100}, "repeat_s", "must be beyond the last window"),
        ({"process": "schedule", "windows": WINDOWS, "scale": 0}, "scale", "must be > 0"),
        (
            {"process": "mmpp", "rates_per_min": [1, 2, 3], "mean_sojourn_s": [1, 1]},
            "rates_per_min",
            "expected a list of 2 numbers (one per state), got 3 values",
        ),
        ({"process": "mmpp", "rates_per_min": [0, 0], "mean_sojourn_s": [1, 1]}, "rates_per_min", "both rates are 0"),
        ({"process": "mmpp", "rates_per_min": [1, 2], "mean_sojourn_s": [60, 0]}, "mean_sojourn_s[1]", "must be > 0"),
        ({"process": "mmpp", "rates_per_min": [1, "x"], "mean_sojourn_s": [1, 1]}, "rates_per_min[1]", "finite number"),
        ({"process": "trace", "times_s": [0, 5, 2]}, "times_s[2]", "not sorted: 2.0 is before the previous time 5.0"),
        ({"process": "trace", "times_s": [1, 2], "file": "a.csv"}, "times_s", "give file or times_s, not both"),
        ({"process": "trace", "times_s": [1_000, 2_000]}, "times_s", "no arrival time before horizon_s"),
        ({"process": "trace"}, "file", "expected the path of a CSV file"),
        ({"process": "trace", "file": "missing.csv"}, "file", "cannot read the trace file"),
    ],
)
def test_each_bad_value_names_its_key_path(tmp_path, spec, subkey, reason):
    with pytest.raises(ScenarioError) as caught:
        parse(spec, base_dir=tmp_path)
    assert (caught.value.source, caught.value.key) == (SOURCE, f"{KEY}.{subkey}")
    assert reason in caught.value.reason


def test_a_trace_file_is_refused_where_files_are_not_read(tmp_path):
    (tmp_path / "arrivals.csv").write_text("1\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        parse({"process": "trace", "file": str(tmp_path / "arrivals.csv")}, base_dir=None)
    assert caught.value.key == f"{KEY}.file" and "times_s" in caught.value.reason


def test_an_arrival_that_is_not_a_mapping_names_the_arrival_key():
    with pytest.raises(ScenarioError) as caught:
        parse(["schedule"])
    assert caught.value.key == KEY


@pytest.mark.parametrize("process", [DAY, Schedule((0.0, 30.0), (100.0, 20.0)), BURSTY, Trace(tuple(range(9_000)))])
def test_a_stream_saved_mid_way_continues_exactly_in_a_fresh_one(process):
    original = stream(process, seed=3)
    now = first_times(original, 5_000)[-1]  # past the first block of 2048 draws
    saved = msgpack.unpackb(msgpack.packb(original.state()), strict_map_key=False)
    resumed = stream(process, seed=99)
    resumed.restore(saved)
    assert first_times(resumed, 3_000, now) == first_times(original, 3_000, now)
