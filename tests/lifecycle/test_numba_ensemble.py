"""The numba backend on ensembles and maintenance options: the numpy backend's MP2 and state bit for bit (both log
modes), with full repair shops, queues, drawn durations and unplanned removals, and states that cross between the
two backends mid-run with a queue pending."""

import dataclasses
import datetime as dt
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simfleet.shared.messages.plan import Change, Empirical, Ensemble, Lognormal, Maintenance, Variant
from simfleet.worker.lifecycle.backends import get_backend
from simfleet.worker.lifecycle.ensemble import ensemble_environment
from simfleet.worker.lifecycle.environment import NO_DATE, build_environment

from .fleets import D0, random_inputs

STATE_ARRAYS = ("status", "sne", "ppr", "repair_days", "partout_date", "assembly_date", "active_date",
                "repair_duration", "queued_since", "transitions", "shortfall_days")  # fmt: skip


def simulate(name, env, *, log="full", chunk=1000, debug=False, state=None, until=None):
    """MP2 (per airframe, per type: chunks joined) and the final state of a run from day 0 or from ``state``."""
    sim = get_backend(name, debug=debug)
    sim.build(env, log=log)
    if state is None:
        sim.create()
    else:
        sim.load_state_dict(state)
    parts = []
    while sim.day < (env.days if until is None else until):
        sim.step(min(chunk, (env.days if until is None else until) - sim.day))
        parts.append(sim.read_chunk())
    tables = []
    for k in (0, 1):
        pieces = [part[k] for part in parts if part[k]]
        tables.append({c: np.concatenate([p[c] for p in pieces]) for c in pieces[0]} if pieces else {})
    return tables[0], tables[1], sim.state_dict()


def assert_tables(ours, theirs):
    assert list(ours) == list(theirs)
    for name in theirs:
        assert ours[name].dtype == theirs[name].dtype, name
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def assert_states(ours, theirs):
    assert ours["day"] == theirs["day"]
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(np.asarray(ours[name]), np.asarray(theirs[name]), err_msg=name)


def through_json(state):
    return json.loads(json.dumps({k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in state.items()}))


def changes(draw, *, kinds, low, high):
    """Zero to two changes of a plan table: a factor or an offset, over every type or one, from D0 or a later day."""
    out = []
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(kinds))
        ac_type = draw(st.sampled_from(["", "mi8", "mi17"]))
        start = D0 + dt.timedelta(days=draw(st.integers(0, 10))) if draw(st.booleans()) else None
        if kind == "factor":
            factor = draw(st.sampled_from([0.0, 0.5, 0.8, 1.25, 1.4, 2.0]))
            out.append(Change(factor=factor, ac_type=ac_type, start=start))
        else:
            out.append(Change(offset=draw(st.integers(low, high)), ac_type=ac_type, start=start))
    return out


@st.composite
def maintenances(draw):
    """One type's options: few slots (full shops, queues), a hazard up to 0.02, no, lognormal or empirical spread."""
    spread = draw(st.sampled_from(["none", "lognormal", "empirical"]))
    return Maintenance(
        repair_slots=draw(st.one_of(st.none(), st.integers(1, 3))),
        removal_hazard=draw(st.sampled_from([0.0, 0.005, 0.02])),
        spread=None if spread == "none" else Lognormal(cv=draw(st.sampled_from([0.0, 0.3, 1.0])))
        if spread == "lognormal" else Empirical(days=draw(st.lists(st.integers(1, 9), min_size=1, max_size=5))),
    )  # fmt: skip


@st.composite
def ensembles(draw):
    """1-4 variants (targets, minutes, repair-time changes; own options for some), 1-3 replications, a seed."""
    variants = []
    for v in range(draw(st.integers(1, 4))):
        own = {t: draw(maintenances()) for t in ("mi8", "mi17") if draw(st.integers(0, 3)) == 0}
        variants.append(Variant(
            name=f"v{v}",
            targets=changes(draw, kinds=["factor", "offset"], low=-2, high=3),
            minutes=changes(draw, kinds=["factor", "offset"], low=-80, high=120),
            repair_time=[Change(offset=draw(st.integers(-3, 6)), ac_type=t)
                         for t in draw(st.lists(st.sampled_from(["", "mi8", "mi17"]), max_size=1))],
            maintenance=own,
        ))  # fmt: skip
    return Ensemble(
        variants=variants,
        replications=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, 2**63 - 1)),
        maintenance={t: draw(maintenances()) for t in ("mi8", "mi17")},
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 9),
    days=st.integers(1, 30),
    ensemble=ensembles(),
    chunk=st.integers(1, 31),
    debug=st.booleans(),
)
def test_numba_runs_an_ensemble_exactly_like_numpy(seed, n, days, ensemble, chunk, debug):
    env = ensemble_environment(build_environment(random_inputs(np.random.default_rng(seed), n, days)), ensemble)
    want_airframe, want_daily, want_state = simulate("numpy", env)
    airframe, daily, state = simulate("numba", env, chunk=chunk, debug=debug)
    assert_tables(airframe, want_airframe)
    assert_tables(daily, want_daily)
    assert_states(state, want_state)
    assert state["backend"] == "numba"
    _, aggregates, aggregates_state = simulate("numba", env, log="aggregates", chunk=chunk, debug=debug)
    assert_tables(aggregates, want_daily)
    assert_states(aggregates_state, want_state)


def queued_fleet():
    """A stacked run whose shops are full from the first days: one slot, hazards, drawn durations, two variants."""
    inputs = random_inputs(np.random.default_rng(0), 16, 40)
    shop = Maintenance(repair_slots=1, removal_hazard=0.02, spread=Lognormal(cv=0.8))
    ensemble = Ensemble(
        variants=[Variant(name="base"), Variant(name="busy", targets=[Change(factor=1.4)],
                                                 minutes=[Change(offset=60, ac_type="mi8")],
                                                 repair_time=[Change(offset=2)],
                                                 maintenance={"mi17": Maintenance(repair_slots=2,
                                                                                  spread=Empirical(days=[2, 5, 9]))})],
        replications=2,
        seed=5,
        maintenance={"mi8": shop, "mi17": shop},
    )  # fmt: skip
    return ensemble_environment(build_environment(inputs), ensemble)


@pytest.mark.parametrize(("before", "after"), [("numpy", "numba"), ("numba", "numpy"), ("numba", "numba")])
@pytest.mark.parametrize("cut", [0, 9, 23])
def test_a_state_cut_with_a_queue_pending_continues_on_either_backend(before, after, cut):
    env = queued_fleet()
    want_airframe, want_daily, want_state = simulate("numpy", env)
    first_airframe, first_daily, state = simulate(before, env, until=cut)
    waiting = np.asarray(state["queued_since"]) != NO_DATE
    drawn = np.asarray(state["repair_duration"]) != env.repair_time
    assert waiting.any() and (drawn.any() or cut == 0)  # airframes wait at the cut; drawn repairs are under way
    rest_airframe, rest_daily, final = simulate(after, env, state=through_json(state))
    for whole, parts in ((want_airframe, (first_airframe, rest_airframe)), (want_daily, (first_daily, rest_daily))):
        joined = {c: np.concatenate([p[c] for p in parts if p]) for c in whole}
        assert_tables(joined, whole)
    assert_states(final, want_state)


def test_a_state_without_the_planning_fields_loads_on_numba_as_on_numpy():
    env = queued_fleet()
    _, _, state = simulate("numpy", env, until=7)
    old = {k: v for k, v in state.items() if k not in ("repair_duration", "queued_since")}
    want = simulate("numpy", env, state=old)
    got = simulate("numba", env, state=old)
    assert_tables(got[0], want[0])
    assert_tables(got[1], want[1])
    assert_states(got[2], want[2])
    after_load = get_backend("numba")
    after_load.build(env)
    after_load.load_state_dict(old)
    loaded = after_load.state_dict()
    np.testing.assert_array_equal(loaded["repair_duration"], env.repair_time)
    assert (loaded["queued_since"] == NO_DATE).all()


def test_shops_that_never_fill_give_todays_run_on_numba():
    inputs = random_inputs(np.random.default_rng(2), 10, 30)
    env = build_environment(inputs)
    roomy = ensemble_environment(env, Ensemble(maintenance={"mi8": Maintenance(repair_slots=100),
                                                            "mi17": Maintenance(repair_slots=100)}))  # fmt: skip
    assert roomy.maintenance is not None  # the planning path runs, with slots that never fill
    want_airframe, want_daily, want_state = simulate("numba", env)
    airframe, daily, state = simulate("numba", roomy, debug=True)
    assert_tables(airframe, want_airframe)
    assert_tables(daily, want_daily)
    assert_states(state, want_state)


def test_agents_flying_other_agents_columns_fly_them_on_numba_as_on_numpy():
    # A stacked environment gives each member a contiguous run of MP5 columns; any other layout is gathered column by
    # column: here each airframe flies its neighbour's minutes.
    env = build_environment(random_inputs(np.random.default_rng(6), 10, 25))
    shifted = dataclasses.replace(env, minutes_col=np.roll(np.arange(env.n), 1))
    want_airframe, want_daily, want_state = simulate("numpy", shifted)
    airframe, daily, state = simulate("numba", shifted, chunk=7)
    assert_tables(airframe, want_airframe)
    assert_tables(daily, want_daily)
    assert_states(state, want_state)
    assert not np.array_equal(airframe["daily_flight"], simulate("numba", env)[0]["daily_flight"])
