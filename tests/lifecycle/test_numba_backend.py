"""The numba backend: the oracle's and the numpy backend's MP2 bit for bit, states that cross between the two
backends, and a debug mode that catches what the compiled kernel could get wrong."""

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simfleet.shared.errors import InvariantError, SimulationError
from simfleet.worker.lifecycle.backends import get_backend
from simfleet.worker.lifecycle.backends.numba_backend import NumbaBackend
from simfleet.worker.lifecycle.environment import build_environment
from simfleet.worker.lifecycle.run import MemorySink, run_local
from simfleet.worker.lifecycle.synth import synthesize

from .fleets import make_inputs, random_inputs
from .oracle import oracle_run


def assert_same(ours, theirs):
    assert list(ours) == list(theirs)
    for name in theirs:
        assert ours[name].dtype == theirs[name].dtype, name
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def mp2(inputs, backend, **kwargs):
    sink = MemorySink()
    report = run_local(inputs, sink=sink, backend=backend, **kwargs)
    return sink.table("mp2"), sink.table("mp2_daily"), report


def with_repair_times(inputs, mi8, mi17):
    """The fleet with a repair time of its own per type, so that inactive airframes become ready on two days."""
    mp1 = dict(inputs.mp1)
    mp1["repair_time"] = np.where(mp1["ac_type"] == "mi8", mi8, mi17)
    return dataclasses.replace(inputs, mp1=mp1)


def through_json(state):
    return json.loads(json.dumps({k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in state.items()}))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 14),
    days=st.integers(1, 40),
    chunk=st.integers(1, 50),
    repair_times=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    debug=st.booleans(),
)
def test_numba_equals_the_oracle_and_the_numpy_backend(seed, n, days, chunk, repair_times, debug):
    inputs = with_repair_times(random_inputs(np.random.default_rng(seed), n, days), *repair_times)
    airframe, daily, report = mp2(inputs, "numba", chunk_days=chunk, debug=debug)
    want_airframe, want_daily = oracle_run(inputs)
    assert_same(airframe, want_airframe)
    assert_same(daily, want_daily)
    numpy_airframe, numpy_daily, numpy_report = mp2(inputs, "numpy", chunk_days=chunk)
    assert_same(airframe, numpy_airframe)
    assert_same(daily, numpy_daily)
    assert report.to_dict() | {"timings_s": {}} == numpy_report.to_dict() | {"timings_s": {}}


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("seed", [1, 2])
def test_aggregates_only_gives_the_numpy_daily_table_and_no_per_airframe_rows(seed, debug):
    inputs = synthesize(60, 300, seed=seed)
    _, want_daily, want_report = mp2(inputs, "numpy", log="aggregates")
    airframe, daily, report = mp2(inputs, "numba", log="aggregates", chunk_days=97, debug=debug)
    assert airframe == {} and report.airframe_rows == 0
    assert_same(daily, want_daily)
    assert report.transitions == want_report.transitions
    assert report.status_counts_end == want_report.status_counts_end


def test_a_synthetic_fleet_over_the_days_inactive_airframes_become_ready_equals_numpy():
    # Repair times of 120-240 days: from day 119 to 239 only some inactive airframes may be granted.
    inputs = synthesize(120, 400, seed=7)
    want_airframe, want_daily, want_report = mp2(inputs, "numpy")
    airframe, daily, report = mp2(inputs, "numba", chunk_days=150)
    assert_same(airframe, want_airframe)
    assert_same(daily, want_daily)
    assert report.transitions == want_report.transitions and sum(report.transitions.values()) > 0


def test_steps_read_together_give_one_chunk_in_day_order():
    env = build_environment(random_inputs(np.random.default_rng(4), 11, 30))
    whole = NumbaBackend()
    whole.build(env)
    whole.create()
    whole.step(30)
    want = whole.read_chunk()
    pieces = NumbaBackend()
    pieces.build(env)
    pieces.create()
    for days in (1, 9, 5, 100):
        pieces.step(days)
    assert pieces.day == 30
    got = pieces.read_chunk()
    assert_same(got[0], want[0])
    assert_same(got[1], want[1])
    assert pieces.read_chunk() == ({}, {})


def started(name, env):
    sim = get_backend(name)
    sim.build(env)
    sim.create()
    return sim


@pytest.mark.parametrize(("before", "after"), [("numpy", "numba"), ("numba", "numpy"), ("numba", "numba")])
@pytest.mark.parametrize("cuts", [(0,), (1, 17), (5, 6, 29), (30,)])
def test_a_state_cut_and_continued_on_either_backend_gives_identical_mp2(before, after, cuts):
    env = build_environment(with_repair_times(random_inputs(np.random.default_rng(sum(cuts)), 13, 30), 2, 9))
    whole = started("numpy", env)
    whole.step(30)
    want_airframe, want_daily = whole.read_chunk()
    sim, names = started(before, env), [before]
    parts = []
    for cut in cuts:
        sim.step(cut - sim.day)
        parts.append(sim.read_chunk())
        state = through_json(sim.state_dict())
        sim = get_backend(after if len(names) % 2 else before)
        names.append(sim.name)
        sim.build(env)
        sim.load_state_dict(state)
        assert sim.day == cut
    sim.step(30)
    parts.append(sim.read_chunk())
    assert after in names
    for whole_table, k in ((want_airframe, 0), (want_daily, 1)):
        for column in whole_table:
            joined = np.concatenate([part[k][column] for part in parts if part[k]])
            np.testing.assert_array_equal(joined, whole_table[column], err_msg=column)
    want, got = whole.state_dict(), sim.state_dict()
    for name in want:
        if name != "backend":
            np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want[name]), err_msg=name)


def test_state_is_the_numpy_backends_plain_data():
    env = build_environment(random_inputs(np.random.default_rng(3), 9, 5))
    ours, theirs = started("numba", env), started("numpy", env)
    ours.step(2)
    theirs.step(2)
    state, want = ours.state_dict(), theirs.state_dict()
    assert state.keys() == want.keys() and state["backend"] == "numba" and state["day"] == 2
    for name in want:
        if isinstance(want[name], np.ndarray):
            assert state[name].dtype == want[name].dtype and state[name].shape == want[name].shape, name


def test_a_state_of_another_fleet_or_with_an_unknown_status_is_refused():
    sim = started("numba", build_environment(random_inputs(np.random.default_rng(3), 9, 5)))
    other = get_backend("numba")
    other.build(build_environment(random_inputs(np.random.default_rng(3), 10, 5)))
    with pytest.raises(InvariantError, match="shape"):
        other.load_state_dict(sim.state_dict())
    state = sim.state_dict()
    state["status"][4] = 7
    with pytest.raises(InvariantError, match=r"status holds 0\.\.7"):
        sim.load_state_dict(state)


def test_a_fleet_that_could_overflow_int32_is_refused_like_numpy():
    inputs = make_inputs([{"aircraft_number": 1, "sne": 2**31 - 1000}], days=2, mp1_limits=(2**31 - 1, 1_000, 8_000))
    for name in ("numpy", "numba"):
        with pytest.raises(SimulationError, match="overflow int32"):
            get_backend(name).build(build_environment(inputs))


class GreedyNumbaBackend(NumbaBackend):
    """A broken backend: its kernel grants against a quota one above the plan's."""

    def build(self, env, *, log="full"):
        super().build(env, log=log)
        self.targets = self.targets + 1


class MiscountingNumbaBackend(NumbaBackend):
    """A broken backend: its status tally, which gives the requesters per class, starts one airframe off."""

    def _reset_counters(self):
        super()._reset_counters()
        self._tally[3, 0] += 1


def test_debug_mode_catches_a_kernel_that_grants_past_the_quota():
    planes = [{"aircraft_number": n, "status": 2} for n in (30, 10, 20)]
    env = build_environment(make_inputs(planes, days=3, targets={"mi8": [3, 3, 1, 1]}))
    sim = GreedyNumbaBackend(debug=True)
    sim.build(env)
    sim.create()
    sim.step(1)  # quota 3 (4 for the kernel) for day 1: three flyers, nothing to break
    with pytest.raises(InvariantError, match=r"^day 1 \(2025-01-02\): aircraft_number 20: granted 2 > Q = 1"):
        sim.step(1)
    quiet = GreedyNumbaBackend()
    quiet.build(env)
    quiet.create()
    quiet.step(3)  # without debug mode nothing is checked
    assert quiet.day == 3


def test_debug_mode_catches_a_wrong_status_tally():
    env = build_environment(random_inputs(np.random.default_rng(8), 12, 10))
    sim = MiscountingNumbaBackend(debug=True)
    sim.build(env)
    sim.create()
    # The tally sees a serviceable airframe that is not there: the grant falls short of the plan on day 0.
    with pytest.raises(InvariantError, match=r"^day 0 \(2025-01-01\): aircraft_number \d+: in operation on D\+1"):
        sim.step(10)
