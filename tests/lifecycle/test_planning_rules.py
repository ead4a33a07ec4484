"""Hand-computed cases of the planning options (docs/lifecycle.md, "Planning"): the repair shop and its queue, drawn
durations, unplanned removals, and the options the messages refuse.

Each case runs on the numpy backend (every invariant checked daily) and on the per-airframe oracle: both must give the
figures computed here by hand. Fleets: oh 1,000 minutes, 100 minutes a day, repair_time 3, partout and assembly 1 day
(tests/lifecycle/fleets.py), so an airframe with ppr 850 at D0 is sent to repair on day 0 and one with 750 on day 1.
"""

import numpy as np
import pytest

from simfleet.shared.errors import MessageError
from simfleet.shared.messages import decode
from simfleet.shared.messages.plan import Empirical, Ensemble, Lognormal, Maintenance
from simfleet.worker.lifecycle.ensemble import (
    KIND_DURATION,
    KIND_REMOVAL,
    SPREAD_FACTOR,
    draw_scalar,
    lognormal_table,
    replication_key,
    spread_duration,
)

from .fleets import D0, make_inputs
from .oracle import oracle_run
from .variant_tables import run_member

NAT = np.datetime64("NaT")


def on(day):
    """D0 + day as MP2 holds dates."""
    return np.datetime64(D0) + day


@pytest.fixture(params=["numpy", "oracle"])
def run(request):
    """Run one member: ``run(inputs, maintenance, seed=..., replication=...)`` -> MP2 (per airframe, per type)."""
    if request.param == "numpy":
        return run_member
    return lambda inputs, maintenance, **kw: oracle_run(inputs, maintenance=maintenance, **kw)


def of(table, name, acn):
    return table[name][table["aircraft_number"] == acn].tolist()


def dates(table, name, acn):
    """A date column of one airframe as days after D0 (``None`` for no date)."""
    values = table[name][table["aircraft_number"] == acn]
    return [None if np.isnat(v) else int((v - np.datetime64(D0)).astype(int)) for v in values]


def mi8(daily, name):
    return daily[name][daily["ac_type"] == 0].tolist()


ONE_SLOT = {"mi8": Maintenance(repair_slots=1)}


def test_one_slot_three_sent_the_same_day_repair_one_after_another_by_aircraft_number(run):
    planes = [{"aircraft_number": n, "sne": 100, "ppr": 850} for n in (30, 10, 20)]
    airframe, daily = run(make_inputs(planes, days=12, targets={"mi8": [0] * 13}), ONE_SLOT)
    # Day 0: all three to 4; 10 starts on D0, 20 and 30 wait (queued since D0). 10 finishes on day 3 (3 days),
    # 20 starts that day and finishes on day 6, when 30 starts; 30 finishes on day 9.
    assert of(airframe, "status_id", 10) == [2, 4, 4, 4] + [5] * 8
    assert of(airframe, "repair_days", 10) == [0, 1, 2] + [0] * 9
    assert of(airframe, "repair_queued", 10) == [0] * 12
    assert of(airframe, "status_id", 20) == [2] + [4] * 6 + [5] * 5
    assert of(airframe, "repair_queued", 20) == [0, 1, 1, 1] + [0] * 8
    assert of(airframe, "repair_days", 20) == [0, 0, 0, 0, 1, 2] + [0] * 6  # not counted while waiting
    assert of(airframe, "status_id", 30) == [2] + [4] * 9 + [5] * 2
    assert of(airframe, "repair_queued", 30) == [0] + [1] * 6 + [0] * 5
    assert of(airframe, "repair_days", 30) == [0] * 7 + [1, 2, 0, 0, 0]
    # Dates are set when the repair starts: partout D + 1, assembly D + 3 - 1.
    assert dates(airframe, "partout_date", 10) == [1] * 12
    assert dates(airframe, "partout_date", 20) == [None] * 3 + [4] * 9
    assert dates(airframe, "assembly_date", 20) == [None] * 3 + [5] * 9
    assert dates(airframe, "partout_date", 30) == [None] * 6 + [7] * 6
    assert dates(airframe, "assembly_date", 30) == [None] * 6 + [8] * 6
    assert mi8(daily, "repair_queue") == [0, 2, 2, 2, 1, 1, 1, 0, 0, 0, 0, 0]
    assert mi8(daily, "count_4") == [0, 3, 3, 3, 2, 2, 2, 1, 1, 1, 0, 0]
    assert mi8(daily, "trans_2_4") == [3] + [0] * 11
    assert mi8(daily, "trans_4_5") == [0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0]
    assert mi8(daily, "unplanned_2_4") == [0] * 12


def test_the_queue_goes_by_day_joined_before_aircraft_number(run):
    planes = [
        {"aircraft_number": 5, "status": 4},  # MP3's repair holds the only slot until day 2
        {"aircraft_number": 30, "sne": 100, "ppr": 850},  # sent on day 0
        {"aircraft_number": 10, "sne": 100, "ppr": 750},  # sent on day 1
        {"aircraft_number": 20, "sne": 100, "ppr": 750},  # sent on day 1
    ]
    airframe, daily = run(make_inputs(planes, days=13, targets={"mi8": [4] * 14}), ONE_SLOT)
    # 5 finishes on day 2: 30 (joined D0) starts, then 10 on day 5 and 20 on day 8 (both joined D1, by number).
    assert of(airframe, "next_status", 5)[:3] == [4, 4, 5]
    assert dates(airframe, "partout_date", 30) == [None, None] + [3] * 11
    assert dates(airframe, "partout_date", 10) == [None] * 5 + [6] * 8
    assert dates(airframe, "partout_date", 20) == [None] * 8 + [9] * 5
    assert of(airframe, "repair_queued", 30) == [0, 1, 1] + [0] * 10
    assert of(airframe, "repair_queued", 10) == [0, 0, 1, 1, 1, 1] + [0] * 7
    assert of(airframe, "repair_queued", 20) == [0, 0] + [1] * 7 + [0] * 4
    assert mi8(daily, "repair_queue") == [0, 1, 3, 2, 2, 2, 1, 1, 1, 0, 0, 0, 0]
    assert mi8(daily, "trans_4_5") == [0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0]


def test_a_slot_freed_on_the_day_a_lower_number_arrives_goes_to_the_one_waiting_since_the_day_before(run):
    planes = [
        {"aircraft_number": 5, "status": 4, "repair_days": 1},  # finishes on day 1
        {"aircraft_number": 20, "sne": 100, "ppr": 850},  # sent on day 0: waits
        {"aircraft_number": 10, "sne": 100, "ppr": 750},  # sent on day 1, when the slot frees
    ]
    airframe, _ = run(make_inputs(planes, days=6, targets={"mi8": [4] * 7}), ONE_SLOT)
    assert of(airframe, "next_status", 5)[:2] == [4, 5]
    assert dates(airframe, "partout_date", 20) == [None] + [2] * 5  # started on day 1
    assert dates(airframe, "partout_date", 10) == [None] * 4 + [5] * 2  # started on day 4, when 20 is done
    assert of(airframe, "repair_queued", 10) == [0, 0, 1, 1, 1, 0]


def test_mp3_repairs_beyond_the_slots_run_and_the_pre_day_zero_entrant_waits_first(run):
    planes = [
        {"aircraft_number": 1, "status": 4, "repair_days": 0},  # finishes on day 2
        {"aircraft_number": 2, "status": 4, "repair_days": 1},  # finishes on day 1
        {"aircraft_number": 4, "sne": 100, "ppr": 950},  # 950 + 100 > oh: sent to 4 before D0, joins on D0 - 1
        {"aircraft_number": 3, "sne": 100, "ppr": 850},  # sent on day 0
    ]
    airframe, daily = run(make_inputs(planes, days=9, targets={"mi8": [0] * 10}), ONE_SLOT)
    # Both MP3 repairs count down although the shop has one slot; the slot is free only once both are done (day 2).
    assert of(airframe, "repair_days", 1)[:3] == [1, 2, 0]
    assert of(airframe, "repair_days", 2)[:2] == [2, 0]
    assert of(airframe, "status_id", 4)[0] == 4
    assert of(airframe, "repair_queued", 4) == [1, 1, 1] + [0] * 6
    assert of(airframe, "repair_queued", 3) == [0, 1, 1, 1, 1, 1] + [0] * 3
    # 4 joined before 3, so it starts first (day 2), 3 when 4 is done (day 5).
    assert dates(airframe, "partout_date", 4) == [None, None] + [3] * 7
    assert dates(airframe, "partout_date", 3) == [None] * 5 + [6] * 4
    assert mi8(daily, "repair_queue") == [1, 2, 2, 1, 1, 1, 0, 0, 0]
    assert mi8(daily, "count_4") == [3, 4, 3, 2, 2, 2, 1, 1, 1]


def test_a_pre_day_zero_entrant_with_a_free_slot_starts_on_d0_minus_one(run):
    airframe, _ = run(make_inputs([{"aircraft_number": 4, "sne": 100, "ppr": 950}], days=3), ONE_SLOT)
    assert of(airframe, "repair_queued", 4) == [0, 0, 0]
    assert of(airframe, "repair_days", 4) == [1, 2, 0]
    assert dates(airframe, "partout_date", 4) == [0, 0, 0]  # D0 - 1 + partout_time
    assert dates(airframe, "assembly_date", 4) == [1, 1, 1]  # D0 - 1 + 3 - 1


def first_removal(key, idx, threshold, days):
    return next((s for s in range(days) if draw_scalar(key, s, idx, KIND_REMOVAL) < threshold), None)


def test_an_unplanned_removal_happens_on_the_day_the_draw_falls_below_the_hazard(run):
    seed, replication, days = 7, 1, 30
    key = replication_key(seed, replication)
    threshold = int(0.05 * 2**32)
    want = {idx: first_removal(key, idx, threshold, days) for idx in (0, 1)}
    assert want[0] is not None and want[1] is not None and want[0] != want[1]  # a seed that shows both
    planes = [{"aircraft_number": 7}, {"aircraft_number": 9}]  # idx 0 and 1 (aircraft-number order)
    maintenance = {"mi8": Maintenance(removal_hazard=0.05)}
    # Long overhaul intervals: no planned repair within the horizon.
    inputs = make_inputs(planes, days=days, targets={"mi8": [2] * (days + 1)}, mp1_limits=(10**6, 10**5, 10**6))
    airframe, daily = run(inputs, maintenance, seed=seed, replication=replication)
    for idx, acn in enumerate((7, 9)):
        s = want[idx]
        assert of(airframe, "next_status", acn)[: s + 1] == [2] * s + [4]
        assert dates(airframe, "assembly_date", acn)[s] == s + 3 - 1  # MP1's repair time: no spread
        assert mi8(daily, "unplanned_2_4")[s] == 1
        assert mi8(daily, "trans_2_4")[s] == 1
    assert sum(mi8(daily, "unplanned_2_4")) == sum(mi8(daily, "trans_2_4"))
    assert airframe["replication"].tolist() == [replication] * len(airframe["day"])


def test_a_planned_repair_is_not_unplanned_and_the_pre_day_zero_check_draws_no_removal(run):
    # hazard just under 1: every flyer that may go on flying is removed, none of them before D0.
    planes = [{"aircraft_number": 1, "sne": 100, "ppr": 850}, {"aircraft_number": 2}]
    airframe, daily = run(make_inputs(planes, days=1), {"mi8": Maintenance(removal_hazard=0.999999)})
    assert airframe["status_id"].tolist() == [2, 2]
    assert airframe["next_status"].tolist() == [4, 4]
    assert daily["trans_2_4"][0] == 2
    assert daily["unplanned_2_4"][0] == 1


def test_an_empirical_spread_with_one_value_fixes_every_drawn_repair_but_not_mp3s(run):
    planes = [{"aircraft_number": 1, "status": 4}, {"aircraft_number": 2, "sne": 100, "ppr": 850}]
    options = {"mi8": Maintenance(spread=Empirical(days=[7]))}
    airframe, _ = run(make_inputs(planes, days=10, targets={"mi8": [0] * 11}), options)
    assert of(airframe, "next_status", 1)[:3] == [4, 4, 5]  # MP3's repair runs MP1's 3 days, undrawn
    assert of(airframe, "repair_days", 2) == [0, 1, 2, 3, 4, 5, 6, 0, 0, 0]
    assert of(airframe, "next_status", 2)[6:8] == [4, 5]
    assert dates(airframe, "assembly_date", 2) == [6] * 10  # D0 + 7 - assembly_time


def test_a_lognormal_duration_is_the_drawn_quantile_of_mp1s_repair_time(run):
    seed, cv = 3, 0.8
    table = lognormal_table(cv)
    key = replication_key(seed, 0)
    # Airframe idx 1 is sent on day 0: its duration is drawn with day index 1.
    duration = spread_duration(3, SPREAD_FACTOR, table, len(table), draw_scalar(key, 1, 1, KIND_DURATION))
    assert duration == max(1, (3 * table[(draw_scalar(key, 1, 1, KIND_DURATION) * 1024) >> 32] + 32768) >> 16)
    planes = [{"aircraft_number": 1, "status": 3}, {"aircraft_number": 2, "sne": 100, "ppr": 850}]
    days = duration + 3
    options = {"mi8": Maintenance(spread=Lognormal(cv=cv))}
    airframe, _ = run(make_inputs(planes, days=days, targets={"mi8": [0] * (days + 1)}), options, seed=seed)
    assert dates(airframe, "assembly_date", 2)[0] == duration - 1
    assert of(airframe, "next_status", 2)[duration] == 5
    assert of(airframe, "next_status", 2)[duration - 1] == 4


@pytest.mark.parametrize(
    ("ensemble", "field"),
    [
        ({"maintenance": {"mi8": {"repair_slots": 0}}}, "repair_slots"),
        ({"variants": [{"name": "a", "maintenance": {"mi17": {"repair_slots": -2}}}]}, "repair_slots"),
        ({"variants": [{"name": "a", "targets": [{"factor": -0.5}]}]}, "factor"),
        ({"maintenance": {"mi8": {"removal_hazard": 1.0}}}, "removal_hazard"),
        ({"maintenance": {"mi8": {"removal_hazard": -0.1}}}, "removal_hazard"),
        ({"maintenance": {"mi8": {"spread": {"kind": "lognormal", "cv": -1}}}}, "cv"),
        ({"maintenance": {"mi8": {"spread": {"kind": "empirical", "days": []}}}}, "days"),
        ({"maintenance": {"mi8": {"spread": {"kind": "empirical", "days": [3, 0]}}}}, "days"),
        ({"replications": 0}, "replications"),
        ({"variants": []}, "variants"),
        ({"variants": [{"name": "a", "minutes": [{"value": -5}]}]}, "value"),
        ({"variants": [{"name": "a", "targets": [{"factor": 1e19}]}]}, "factor"),
        ({"variants": [{"name": "a", "targets": [{"factor": float("inf")}]}]}, "factor"),
        ({"variants": [{"name": "a", "targets": [{"offset": 10**20}]}]}, "offset"),
        ({"variants": [{"name": "a", "targets": [{"values": {"2025-01-02": 10**7}}]}]}, "values"),
    ],
)
def test_invalid_options_are_refused_naming_the_field(ensemble, field):
    with pytest.raises(MessageError, match=rf"Ensemble.*{field}"):
        decode(Ensemble, ensemble)


def test_valid_options_decode():
    ensemble = decode(
        Ensemble,
        {
            "variants": [{"name": "base"}, {"name": "summer +10%", "targets": [{"factor": 1.1, "ac_type": "mi8"}]}],
            "replications": 4,
            "seed": 9,
            "maintenance": {
                "mi8": {"repair_slots": 1, "removal_hazard": 0.01, "spread": {"kind": "lognormal", "cv": 0.3}}
            },
        },
    )
    assert ensemble.members == 8
    assert ensemble.maintenance_of(1, "mi8").spread == Lognormal(cv=0.3)
    assert ensemble.maintenance_of(1, "mi17") == Maintenance()
