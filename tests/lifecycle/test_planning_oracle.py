"""The planning options against independent implementations: the per-airframe oracle (repair shop, queue, drawn
durations, unplanned removals), variants applied to the input tables, and today's deterministic run.

The numpy backend runs with every invariant checked daily. One member of an ensemble is run as the last replication
of a single unchanged variant (tests/lifecycle/variant_tables.py), so its draws are those of its replication.
"""

import dataclasses
import datetime as dt

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from simfleet.shared.lifecycle_contract import AC_TYPES
from simfleet.shared.messages.plan import Change, Empirical, Ensemble, Lognormal, Maintenance, Variant

from .fleets import D0, random_inputs, run_model
from .oracle import oracle_run
from .variant_tables import run_ensemble, run_member, select, variant_inputs


def cheap(examples):
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


NEW_COLUMNS = ("variant_id", "replication", "repair_queued", "repair_queue", "unplanned_2_4")


def assert_same(ours, theirs, *, but=()):
    assert ours.keys() == theirs.keys()
    for name in ours:
        if name in but:
            continue
        assert ours[name].dtype == theirs[name].dtype, name
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


spreads = st.one_of(
    st.none(),
    st.builds(Lognormal, cv=st.floats(0, 1)),
    st.builds(Empirical, days=st.lists(st.integers(1, 12), min_size=1, max_size=5)),
)
options = st.builds(
    Maintenance,
    repair_slots=st.sampled_from([1, 1, 2, 3, None]),
    spread=spreads,
    removal_hazard=st.one_of(st.sampled_from([0.0, 0.02, 0.05]), st.floats(0.005, 0.05)),
)


def busy_inputs(seed, busy=True, n=None, days=None):
    """A random fleet (tests/lifecycle/fleets.py) of ``n`` airframes over ``days`` (default: 3-12 and 5-30 drawn from
    the seed); ``busy``: most of it flying close to its overhaul interval, with repairs worth doing, so that shops
    fill up."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 13)) if n is None else n
    days = int(rng.integers(5, 31)) if days is None else days
    inputs = random_inputs(rng, n, days)
    if not busy:
        return inputs
    mp1, mp3 = dict(inputs.mp1), dict(inputs.mp3)
    mp1["br"] = mp1["ll"] + 1
    mp3["br"] = np.full(n, -1)
    idle = np.isin(mp3["status_id"], (1, 3, 5, 6)) & (rng.random(n) < 0.7)
    mp3["status_id"] = np.where(idle, 2, mp3["status_id"])
    mp3["ppr"] = np.maximum(mp1["oh"][0] - rng.integers(0, 400, n), 0)
    return dataclasses.replace(inputs, mp1=mp1, mp3=mp3)


fleets = st.builds(busy_inputs, st.integers(0, 2**32 - 1), st.sampled_from([True, True, True, False]))


@cheap(100)
@given(
    inputs=fleets,
    mi8=options,
    mi17=options,
    seed=st.integers(0, 2**63 - 1),
    replication=st.integers(0, 2),
    chunk=st.integers(1, 40),
)
def test_a_member_with_full_shops_removals_and_spreads_equals_the_oracle(inputs, mi8, mi17, seed, replication, chunk):
    maintenance = {"mi8": mi8, "mi17": mi17}
    ours = run_member(inputs, maintenance, seed=seed, replication=replication, chunk_days=chunk)
    theirs = oracle_run(inputs, maintenance=maintenance, seed=seed, replication=replication)
    event(f"queue: {bool(theirs[1]['repair_queue'].any())}")
    event(f"unplanned: {bool(theirs[1]['unplanned_2_4'].any())}")
    assert_same(ours[0], theirs[0])
    assert_same(ours[1], theirs[1])


# ------------------------------------------------------------------------------------------------ variants

HORIZON = 20


def dates(days=HORIZON):
    return st.builds(lambda k: D0 + dt.timedelta(days=k), st.integers(0, days))


def changes(*, offset, value, factor, dated=True):
    """Changes to one table: ``offset``/``value``/``factor`` bound what a change does."""
    what = [
        st.fixed_dictionaries({"factor": st.floats(0, factor)}),
        st.fixed_dictionaries({"offset": st.integers(-offset, offset)}),
        st.fixed_dictionaries({"value": st.integers(0, value)}),
    ]
    if dated:
        what.append(st.fixed_dictionaries({"values": st.dictionaries(dates(), st.integers(0, value), min_size=1,
                                                                      max_size=3)}))  # fmt: skip
    where = st.fixed_dictionaries(
        {"ac_type": st.sampled_from(["", "mi8", "mi17"])},
        optional={"start": dates(), "end": dates()} if dated else {},
    )
    return st.lists(st.builds(lambda a, b: Change(**a, **b), st.one_of(what), where), max_size=2)


variants = st.lists(
    st.builds(
        Variant,
        name=st.just("v"),
        targets=changes(offset=3, value=70_000, factor=3.0),
        minutes=changes(offset=150, value=1_500, factor=8.0),
        repair_time=changes(offset=6, value=8, factor=3.0, dated=False),
        maintenance=st.dictionaries(st.sampled_from(AC_TYPES), options, max_size=1),
    ),
    min_size=3,
    max_size=4,
)


@cheap(40)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 8),
    days=st.integers(1, HORIZON),
    plans=variants,
    mi8=options,
    mi17=options,
    ensemble_seed=st.integers(0, 2**63 - 1),
)
def test_each_member_of_an_ensemble_equals_a_single_run_of_its_variants_tables(
    seed, n, days, plans, mi8, mi17, ensemble_seed
):
    inputs = busy_inputs(seed, n=n, days=days)
    plans = [_renamed(p, k) for k, p in enumerate(plans)]
    ensemble = Ensemble(variants=plans, replications=2, seed=ensemble_seed, maintenance={"mi8": mi8, "mi17": mi17})
    airframe, daily = run_ensemble(inputs, ensemble, chunk_days=7)
    assert len(airframe["day"]) == days * n * len(plans) * 2
    for v, plan in enumerate(plans):
        changed = variant_inputs(inputs, plan)
        maintenance = {t: ensemble.maintenance_of(v, t) for t in AC_TYPES}
        for r in range(2):
            ours = select(airframe, daily, variant=v, replication=r)
            assert (ours[0]["variant_id"] == v).all() and (ours[1]["variant_id"] == v).all()
            single = run_member(changed, maintenance, seed=ensemble_seed, replication=r)
            oracle = oracle_run(changed, maintenance=maintenance, seed=ensemble_seed, replication=r)
            for want in (single, oracle):
                assert_same(ours[0], want[0], but=("variant_id",))
                assert_same(ours[1], want[1], but=("variant_id",))


def _renamed(plan, k):
    return Variant(name=f"v{k}", targets=plan.targets, minutes=plan.minutes, repair_time=plan.repair_time,
                   maintenance=plan.maintenance)  # fmt: skip


# ------------------------------------------------------------------------------------------- today's model


@cheap(30)
@given(inputs=fleets)
def test_one_plain_variant_is_todays_run_with_the_new_columns_zero(inputs):
    today = run_model(inputs)
    for ensemble in (Ensemble(), Ensemble(variants=[Variant(name="same", targets=[Change(factor=1.0)])])):
        ours = run_ensemble(inputs, ensemble, chunk_days=9)
        assert_same(ours[0], today[0])
        assert_same(ours[1], today[1])
    for table in today:
        for name in NEW_COLUMNS:
            if name in table:
                assert not table[name].any(), name


DETERMINISTIC = [
    Maintenance(),
    Maintenance(repair_slots=10_000),
    Maintenance(spread=Lognormal(cv=0)),
    Maintenance(repair_slots=10_000, removal_hazard=0.0, spread=Lognormal(cv=0.0)),
]


@cheap(30)
@given(
    inputs=fleets,
    mi8=st.sampled_from(DETERMINISTIC),
    mi17=st.sampled_from(DETERMINISTIC),
    seed=st.integers(0, 2**63 - 1),
)
def test_replications_without_chance_or_a_limit_equal_the_deterministic_run(inputs, mi8, mi17, seed):
    today = run_model(inputs)
    ensemble = Ensemble(replications=3, seed=seed, maintenance={"mi8": mi8, "mi17": mi17})
    airframe, daily = run_ensemble(inputs, ensemble, chunk_days=11)
    for r in range(3):
        ours = select(airframe, daily, variant=0, replication=r)
        assert_same(ours[0], today[0], but=("replication",))
        assert_same(ours[1], today[1], but=("replication",))
        assert (ours[0]["replication"] == r).all() and (ours[1]["replication"] == r).all()
