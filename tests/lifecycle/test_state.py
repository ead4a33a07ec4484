"""State export and import: a run cut after any day, saved, loaded into a fresh backend and continued, gives the
MP2 and the counters of an uninterrupted run."""

import json

import msgpack
import numpy as np
import pytest

from simfleet.shared.errors import InvariantError
from simfleet.worker.lifecycle.backends import get_backend
from simfleet.worker.lifecycle.environment import build_environment
from simfleet.worker.lifecycle.synth import synthesize

from .fleets import random_inputs


def started(env):
    sim = get_backend()
    sim.build(env)
    sim.create()
    return sim


def through_json(state):
    return json.loads(json.dumps({k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in state.items()}))


def through_msgpack(state):
    def pack(value):
        if isinstance(value, np.ndarray):
            return {"dtype": value.dtype.str, "shape": list(value.shape), "data": value.tobytes()}
        return value

    def unpack(value):
        if isinstance(value, dict):
            return np.frombuffer(value["data"], dtype=value["dtype"]).reshape(value["shape"])
        return value

    wire = msgpack.packb({k: pack(v) for k, v in state.items()})
    return {k: unpack(v) for k, v in msgpack.unpackb(wire).items()}


def assert_joined_equal(head, tail, whole):
    for name in whole:
        joined = np.concatenate([part[name] for part in (head, tail) if part])
        np.testing.assert_array_equal(joined, whole[name], err_msg=name)


@pytest.mark.parametrize("cut", [0, 1, 7, 18, 29, 30])
def test_state_saved_after_any_day_continues_into_identical_mp2(cut):
    env = build_environment(random_inputs(np.random.default_rng(cut + 11), 12, 30))
    whole = started(env)
    whole.step(30)
    want, want_daily = whole.read_chunk()

    first = started(env)
    first.step(cut)
    head, head_daily = first.read_chunk()
    second = get_backend()
    second.build(build_environment(random_inputs(np.random.default_rng(cut + 11), 12, 30)))
    second.load_state_dict(through_json(first.state_dict()))
    assert second.day == cut
    second.step(30)
    tail, tail_daily = second.read_chunk()
    assert_joined_equal(head, tail, want)
    assert_joined_equal(head_daily, tail_daily, want_daily)


@pytest.mark.parametrize("cuts", [(100,), (1, 365, 366), (250, 500, 730)])
def test_a_synthetic_fleet_cut_several_times_ends_with_the_same_state_and_counters(cuts):
    env = build_environment(synthesize(80, 730, seed=4))
    whole = started(env)
    whole.step(730)
    sim = started(env)
    for cut in cuts:
        sim.step(cut - sim.day)
        state = through_msgpack(sim.state_dict())
        sim = get_backend()
        sim.build(env)
        sim.load_state_dict(state)
    sim.step(730)
    want, got = whole.state_dict(), sim.state_dict()
    assert want.keys() == got.keys()
    for name in want:
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want[name]), err_msg=name)
    assert int(want["transitions"].sum()) > 0


def test_state_is_plain_data_in_idx_order():
    env = build_environment(random_inputs(np.random.default_rng(3), 9, 5))
    sim = started(env)
    sim.step(2)
    state = sim.state_dict()
    assert state["day"] == 2 and isinstance(state["day"], int)
    for name in ("status", "sne", "ppr", "repair_days", "partout_date", "assembly_date", "active_date"):
        assert isinstance(state[name], np.ndarray) and state[name].shape == (9,), name
    assert state["transitions"].shape == (8, 2) and state["shortfall_days"].shape == (2,)
    _, daily = sim.read_chunk()
    assert daily["trans_2_3"].sum() == state["transitions"][0].sum()


def test_a_state_of_another_fleet_is_refused():
    sim = started(build_environment(random_inputs(np.random.default_rng(3), 9, 5)))
    other = get_backend()
    other.build(build_environment(random_inputs(np.random.default_rng(3), 10, 5)))
    with pytest.raises(InvariantError, match="shape"):
        other.load_state_dict(sim.state_dict())
