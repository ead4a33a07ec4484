"""Hand-computed cases for every rule of LIFECYCLE_MODEL.md (the backend runs with all invariants checked)."""

import datetime as dt

import numpy as np
import pytest

from simfleet.shared.errors import InputError
from simfleet.worker.lifecycle.synth import synthesize
from simfleet.worker.lifecycle.validation import validate_inputs

from .fleets import D0, make_inputs, run_model


def column(table, name, acn=None):
    values = table[name]
    if acn is None:
        return values.tolist()
    return values[table["aircraft_number"] == acn].tolist()


def test_equality_at_the_life_limit_still_flies():
    # ll 10,000: after flying 100 today, sne + tomorrow's 100 is exactly 10,000 -> stays; one more minute -> storage.
    inputs = make_inputs(
        [{"aircraft_number": 1, "sne": 9_800}, {"aircraft_number": 2, "sne": 9_801, "ac_type": "mi17"}],
        days=1,
        targets={"mi8": [1, 1], "mi17": [1, 1]},
    )
    airframe, _ = run_model(inputs)
    assert column(airframe, "next_status", 1) == [2]
    assert column(airframe, "sne", 1) == [9_900]
    assert column(airframe, "next_status", 2) == [6]


@pytest.mark.parametrize(("sne", "expected"), [(5_000, 4), (7_800, 6)])
def test_overhaul_interval_exceeded_goes_to_repair_or_storage_by_br(sne, expected):
    # oh 1,000, br 8,000: ppr 850 + 100 today + 100 tomorrow > 1,000; sne + 100 < 8,000 decides repair.
    inputs = make_inputs([{"aircraft_number": 7, "sne": sne, "ppr": 850}], days=1)
    airframe, daily = run_model(inputs)
    assert column(airframe, "next_status") == [expected]
    if expected == 4:
        assert column(airframe, "repair_days") == [0]
        assert airframe["partout_date"][0] == np.datetime64(D0) + 1  # D + partout_time (1)
        assert airframe["assembly_date"][0] == np.datetime64(D0) + 2  # D + repair_time (3) - assembly_time (1)
        assert daily["trans_2_4"][0] == 1
    else:
        assert daily["trans_2_6"][0] == 1


def test_repair_counts_days_then_resets_ppr_into_reserve():
    inputs = make_inputs(
        [{"aircraft_number": 3, "status": 4, "ppr": 999, "repair_days": 0}], days=4, targets={"mi8": [0] * 5}
    )
    airframe, daily = run_model(inputs)
    assert column(airframe, "status_id") == [4, 4, 4, 5]
    assert column(airframe, "repair_days") == [1, 2, 0, 0]
    assert column(airframe, "ppr") == [999, 999, 0, 0]
    assert daily["trans_4_5"][daily["ac_type"] == 0].tolist() == [0, 0, 1, 0]


def test_quota_goes_by_priority_class_then_aircraft_number():
    planes = [
        {"aircraft_number": 50, "status": 2},  # (a) flying and fit
        {"aircraft_number": 40, "status": 2},  # (a), lower number first
        {"aircraft_number": 10, "status": 3},  # (b)
        {"aircraft_number": 5, "status": 5},  # (c)
        {"aircraft_number": 1, "status": 1},  # (d) eligible: repair_time 1 <= s + 1
    ]
    for quota, granted in [(1, {40}), (2, {40, 50}), (3, {40, 50, 10}), (4, {40, 50, 10, 5}), (9, {40, 50, 10, 5, 1})]:
        inputs = make_inputs(planes, days=1, targets={"mi8": [0, quota]}, repair_time=1)
        airframe, daily = run_model(inputs)
        chosen = {a for a, s in zip(airframe["aircraft_number"], airframe["next_status"], strict=True) if s == 2}
        assert chosen == granted, quota
        assert daily["shortfall"][0] == max(0, quota - 5)
        # A flying airframe not granted goes to serviceable.
        for acn in (40, 50):
            if acn not in granted:
                assert column(airframe, "next_status", acn) == [3]


def test_inactive_airframe_is_admitted_only_from_day_repair_time_minus_one():
    inputs = make_inputs([{"aircraft_number": 9, "status": 1}], days=4, targets={"mi8": [5] * 5}, repair_time=3)
    airframe, _ = run_model(inputs)
    assert column(airframe, "next_status") == [1, 1, 2, 2]
    # The 1->2 on day 2 sets active_date = D + 1 - repair_time = D0 + 2 + 1 - 3.
    assert airframe["active_date"][2] == np.datetime64(D0)


def test_delivery_is_decided_on_the_delivery_date_and_serviceable_from_the_day_after():
    inputs = make_inputs(
        [{"aircraft_number": 4, "status": 0, "sne": 77, "ppr": 77, "delivery": D0 + dt.timedelta(days=2)}],
        days=5,
        targets={"mi8": [1] * 6},
    )
    airframe, daily = run_model(inputs)
    # Day 2 is the delivery date: spent in 0, next status 3 with sne = ppr = 0; first requests quota on day 3.
    assert column(airframe, "status_id") == [0, 0, 0, 3, 2]
    assert column(airframe, "next_status") == [0, 0, 3, 2, 2]
    assert column(airframe, "sne") == [77, 77, 0, 0, 100]
    assert column(airframe, "ppr")[2] == 0
    assert daily["trans_0_3"][daily["ac_type"] == 0].tolist() == [0, 0, 1, 0, 0]


def test_delivery_on_the_first_day_is_a_transition_of_day_zero():
    inputs = make_inputs([{"aircraft_number": 4, "status": 0, "delivery": D0}], days=2, targets={"mi8": [0] * 3})
    airframe, daily = run_model(inputs)
    assert column(airframe, "status_id") == [0, 3]
    assert daily["trans_0_3"][daily["ac_type"] == 0].tolist() == [1, 0]


def test_pre_day_zero_check_keeps_airframes_from_starting_a_day_they_cannot_fly():
    inputs = make_inputs(
        [
            {"aircraft_number": 1, "sne": 9_950},  # 9,950 + 100 > ll: storage before day 0
            {"aircraft_number": 2, "sne": 100, "ppr": 950},  # 950 + 100 > oh: repair before day 0
            {"aircraft_number": 3, "sne": 100, "ppr": 100},
        ],
        days=1,
        targets={"mi8": [3, 3]},
    )
    airframe, daily = run_model(inputs)
    assert column(airframe, "status_id") == [6, 4, 2]
    assert airframe["partout_date"][1] == np.datetime64(D0)  # decided on D0 - 1, partout_time 1
    assert daily["ops_current"][0] == 1


def test_a_missing_mp5_row_flies_zero_minutes():
    inputs = make_inputs([{"aircraft_number": 8, "sne": 500}], days=2, minutes={8: [None, 30, None]})
    airframe, _ = run_model(inputs)
    assert column(airframe, "daily_flight") == [0, 30]
    assert column(airframe, "sne") == [500, 530]


@pytest.mark.parametrize("table", ["mp4", "mp5"])
def test_plan_or_flight_not_reaching_d0_plus_days_is_an_input_error(table):
    inputs = synthesize(20, 30, seed=2)
    data = inputs.table(table)
    keep = data["date"] < np.datetime64(inputs.version_date) + 30
    shortened = {name: values[keep] for name, values in data.items()}
    broken = type(inputs)(**{**inputs.__dict__, table: shortened})
    with pytest.raises(InputError, match=table):
        validate_inputs(broken)


def test_br_zero_sends_every_overhaul_to_storage():
    # sne + dn < 0 never holds, so an airframe past its overhaul interval is not worth repairing.
    inputs = make_inputs([{"aircraft_number": 1, "sne": 100, "ppr": 850, "br": 0}], days=1)
    airframe, daily = run_model(inputs)
    assert column(airframe, "next_status") == [6]
    assert daily["trans_2_6"][0] == 1


def test_mp3_limits_override_mp1_only_where_set():
    # MP1 ll is 10,000; airframe 2 carries its own 9,000, airframe 1 falls back to MP1.
    planes = [{"aircraft_number": 1, "sne": 8_850}, {"aircraft_number": 2, "sne": 8_850, "ll": 9_000}]
    airframe, _ = run_model(make_inputs(planes, days=1, targets={"mi8": [2, 2]}))
    assert column(airframe, "next_status") == [2, 6]


def test_a_full_overhaul_cycle_flies_repairs_rests_and_flies_again():
    # oh 1,000: ppr 900 + 100 today + 100 tomorrow > 1,000 -> repair (3 days) -> reserve -> granted again.
    inputs = make_inputs([{"aircraft_number": 5, "sne": 900, "ppr": 900}], days=7, targets={"mi8": [1] * 8})
    airframe, daily = run_model(inputs)
    assert column(airframe, "status_id") == [2, 4, 4, 4, 5, 2, 2]
    assert column(airframe, "ppr") == [1_000, 1_000, 1_000, 0, 0, 100, 200]
    assert column(airframe, "repair_days") == [0, 1, 2, 0, 0, 0, 0]
    assert column(airframe, "daily_flight") == [100, 0, 0, 0, 0, 100, 100]
    # Shortfall is for D+1: days 1-4 want one airframe and nobody is eligible (a 4->5 asks from the day after).
    assert daily["shortfall"][daily["ac_type"] == 0].tolist() == [1, 1, 1, 1, 0, 0, 0]
    assert [daily[f"trans_{k}"][daily["ac_type"] == 0].sum() for k in ("2_4", "4_5", "5_2")] == [1, 1, 1]


def test_zero_quota_sends_every_flyer_to_serviceable_and_a_large_quota_reports_the_shortfall():
    planes = [{"aircraft_number": 1}, {"aircraft_number": 2, "status": 3}, {"aircraft_number": 3, "ac_type": "mi17"}]
    airframe, daily = run_model(make_inputs(planes, days=1, targets={"mi8": [1, 0], "mi17": [1, 50]}))
    assert column(airframe, "next_status") == [3, 3, 2]
    assert daily["granted"].tolist() == [0, 1]
    assert daily["shortfall"].tolist() == [0, 49]
    assert daily["trans_2_3"].tolist() == [1, 0]


def test_shortfall_goes_to_status_one_only_after_repair_time():
    # Quota 2 with one serviceable and one inactive airframe: the inactive one waits until s + 1 >= repair_time.
    planes = [{"aircraft_number": 1, "status": 3}, {"aircraft_number": 2, "status": 1}]
    airframe, daily = run_model(make_inputs(planes, days=3, targets={"mi8": [0, 2, 2, 2]}, repair_time=2))
    assert column(airframe, "next_status", 2) == [1, 2, 2]
    assert daily["shortfall"].tolist()[::2] == [1, 0, 0]
    assert daily["trans_1_2"].tolist()[::2] == [0, 1, 0]
