"""The numpy backend on whole fleets: plausibility, determinism, aggregates-only mode, debug mode, sinks."""

import importlib.util

import numpy as np
import pyarrow.parquet as pq
import pytest

from simfleet.shared.errors import InvariantError, SimulationError
from simfleet.worker.lifecycle.backends import get_backend
from simfleet.worker.lifecycle.backends.numpy_backend import NumpyBackend
from simfleet.worker.lifecycle.environment import build_environment
from simfleet.worker.lifecycle.run import run_local
from simfleet.worker.lifecycle.sinks import MemorySink, ParquetSink
from simfleet.worker.lifecycle.synth import synthesize

from .fleets import make_inputs, random_inputs


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


@pytest.mark.parametrize(("name", "module"), [("cupy", "cupy"), ("flamegpu", "pyflamegpu"), ("fortran", None)])
def test_backends_that_cannot_run_here_say_so(name, module):
    if module is not None and importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here: the conformance suite runs {name} instead")
    with pytest.raises(SimulationError, match=name):
        get_backend(name)


class GreedyBackend(NumpyBackend):
    """A broken backend: grants one more than the quota whenever it can."""

    def _grant(self, classes, quota):
        return super()._grant(classes, [q + 1 for q in quota])


class ForgetfulBackend(NumpyBackend):
    """A broken backend: never lets a repair finish."""

    def build(self, env, *, log="full"):
        super().build(env, log=log)
        self.repair_time = self.repair_time + 10_000


def test_debug_mode_names_the_day_the_airframe_and_the_rule():
    planes = [{"aircraft_number": n, "status": 2} for n in (30, 10, 20)]
    env = build_environment(make_inputs(planes, days=3, targets={"mi8": [3, 3, 1, 1]}))
    sim = GreedyBackend(debug=True)
    sim.build(env)
    sim.create()
    sim.step(1)  # quota 3 for day 1: three flyers, nothing to break
    # Day 1 grants 2 of quota 1 for day 2; the second by aircraft number, 20, is the one too many.
    with pytest.raises(InvariantError, match=r"^day 1 \(2025-01-02\): aircraft_number 20: granted 2 > Q = 1"):
        sim.step(1)


def test_debug_mode_is_silent_about_a_backend_that_only_breaks_the_plan_not_an_invariant():
    # A never-ending repair breaks no invariant (the rules, not the checks, say when a repair ends).
    env = build_environment(random_inputs(np.random.default_rng(6), 12, 20))
    sim = ForgetfulBackend(debug=True)
    sim.build(env)
    sim.create()
    sim.step(20)
    assert sim.day == 20


def test_parquet_sink_writes_each_chunk_once_and_atomically(tmp_path):
    inputs = synthesize(20, 50, seed=8)
    sink = ParquetSink(tmp_path)
    run_local(inputs, sink=sink, chunk_days=20)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert names == [f"{table}/part-{day:05d}.parquet" for table in ("mp2", "mp2_daily") for day in (0, 20, 40)]
    memory = MemorySink()
    run_local(inputs, sink=memory, chunk_days=50)
    table = pq.read_table(tmp_path / "mp2").to_pydict()
    np.testing.assert_array_equal(np.array(table["sne"]), memory.table("mp2")["sne"])
