import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from producer.cli import main
from shared.errors import SimulationError
from worker.lifecycle.backends import get_backend
from worker.lifecycle.environment import build_environment
from worker.lifecycle.inputs import write_inputs
from worker.lifecycle.run import MemorySink, run_local
from worker.lifecycle.synth import synthesize

from .fleets import random_inputs


@pytest.fixture(scope="module")
def reference_fleet():
    return synthesize(279, 3650, seed=1)


def full_run(inputs, **kwargs):
    sink = MemorySink()
    report = run_local(inputs, sink=sink, **kwargs)
    return report, sink.table("mp2"), sink.table("mp2_daily")


def test_ten_years_of_the_reference_fleet_are_plausible_with_every_invariant_held(reference_fleet):
    report, airframe, daily = full_run(reference_fleet, debug=True)
    assert report.airframe_rows == 279 * 3650 == len(airframe["day"])
    assert 150 <= report.transitions["2->4"] <= 260  # reference: about 200
    assert 25 <= report.transitions["2->6"] <= 60  # reference: about 40
    assert report.transitions["4->5"] <= report.transitions["2->4"] + 10
    assert sum(report.status_counts_end.values()) == 279
    # Operation never exceeds the plan, and equals it whenever nothing fell short.
    nxt = daily["ops_current"][2:]
    planned = daily["ops_target"][2:]
    assert np.all(nxt <= planned)
    assert np.all((nxt == planned) | (daily["shortfall"][:-2] > 0))


def test_same_inputs_give_the_same_mp2_bit_for_bit(reference_fleet):
    inputs = synthesize(60, 400, seed=5)
    _, a1, d1 = full_run(inputs)
    _, a2, d2 = full_run(inputs, chunk_days=17)
    for name in a1:
        np.testing.assert_array_equal(a1[name], a2[name])
    for name in d1:
        np.testing.assert_array_equal(d1[name], d2[name])


def test_aggregates_only_gives_the_same_daily_table_without_the_per_airframe_log():
    inputs = synthesize(60, 200, seed=6)
    _, _, full_daily = full_run(inputs)
    report, airframe, daily = full_run(inputs, log="aggregates")
    assert airframe == {} and report.airframe_rows == 0
    for name in full_daily:
        np.testing.assert_array_equal(full_daily[name], daily[name])


@pytest.mark.parametrize("cut", [0, 1, 7, 18, 29])
def test_state_saved_after_any_day_continues_into_identical_mp2(cut):
    inputs = random_inputs(np.random.default_rng(cut + 11), 12, 30)
    env = build_environment(inputs)
    whole = get_backend(debug=True)
    whole.build(env)
    whole.create()
    whole.step(30)
    want, want_daily = whole.read_chunk()

    first = get_backend(debug=True)
    first.build(env)
    first.create()
    first.step(cut)
    head, head_daily = first.read_chunk()
    state = json.loads(
        json.dumps({k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in first.state_dict().items()})
    )
    second = get_backend(debug=True)
    second.build(build_environment(inputs))
    second.load_state_dict(state)
    assert second.day == cut
    second.step(30)
    tail, tail_daily = second.read_chunk()
    for name in want:
        joined = np.concatenate([head[name], tail[name]]) if head else tail[name]
        np.testing.assert_array_equal(joined, want[name], err_msg=name)
    for name in want_daily:
        joined = np.concatenate([head_daily[name], tail_daily[name]]) if head_daily else tail_daily[name]
        np.testing.assert_array_equal(joined, want_daily[name], err_msg=name)


@pytest.mark.parametrize("name", ["cupy", "flamegpu", "fortran"])
def test_backends_that_cannot_run_here_say_so(name):
    with pytest.raises(SimulationError, match=name):
        get_backend(name)


def test_lifecycle_run_command_writes_parquet_and_reports(tmp_path, capsys):
    inputs = synthesize(30, 100, seed=3)
    write_inputs(inputs, tmp_path / "in", "csv")
    assert main(["lifecycle", "run", "--inputs", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--json",
                 "--chunk-days", "40"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["airframe_rows"] == 30 * 100
    assert set(report["timings_s"]) == {"load", "create", "run", "collect"}
    parts = sorted((tmp_path / "out" / "mp2").glob("*.parquet"))
    assert [p.name for p in parts] == ["part-00000.parquet", "part-00040.parquet", "part-00080.parquet"]
    assert sum(pq.read_metadata(p).num_rows for p in parts) == 3000
    assert not list((tmp_path / "out").rglob("*.tmp"))
    assert main(["lifecycle", "run", "--inputs", str(tmp_path / "in"), "--days", "10", "--log", "aggregates"]) == 0
    assert "transitions:" in capsys.readouterr().out
