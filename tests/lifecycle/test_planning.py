"""What planners read from an ensemble (bands, per-replication totals) and the two searches of the inverse question.

The tables are checked against figures worked out by hand on small crafted ``mp2_daily`` tables; the searches
against a made-up monotone model (exact answers, probe lists, rounds) and on a small synthetic fleet against
separate runs of the candidates around the answer (brute force).
"""

from __future__ import annotations

import datetime as dt

import msgspec
import numpy as np
import pytest

from simfleet.shared.errors import ConfigError
from simfleet.shared.lifecycle_contract import AC_TYPES
from simfleet.shared.messages.plan import Change, Ensemble, Maintenance, Variant
from simfleet.worker.lifecycle.planning import (
    DailySink,
    bands,
    base_plan,
    largest_target_factor,
    replication_totals,
    smallest_repair_slots,
    year_shortfall_days,
)
from simfleet.worker.lifecycle.run import run_local
from simfleet.worker.lifecycle.synth import synthesize


def daily_table(shortfall, ops_current=None, ops_target=None, shuffle=0):
    """An ``mp2_daily`` table from ``[variant, replication, type, day]`` arrays (rows in the backends' order)."""
    shortfall = np.asarray(shortfall)
    v, r, t, d = shortfall.shape
    ops_current = np.zeros_like(shortfall) if ops_current is None else np.asarray(ops_current)
    ops_target = np.zeros_like(shortfall) if ops_target is None else np.asarray(ops_target)
    day, variant, replication, ac_type = np.meshgrid(np.arange(d), np.arange(v), np.arange(r), np.arange(t),
                                                     indexing="ij")  # fmt: skip
    index = (variant.ravel(), replication.ravel(), ac_type.ravel(), day.ravel())
    table = {
        "day": day.ravel().astype(np.uint16),
        "variant_id": variant.ravel().astype(np.uint16),
        "replication": replication.ravel().astype(np.uint16),
        "date": np.datetime64("2025-01-01") + day.ravel(),
        "ac_type": ac_type.ravel().astype(np.uint8),
        "ops_target": ops_target[index],
        "ops_current": ops_current[index],
        "shortfall": shortfall[index],
    }
    if shuffle:
        order = np.random.default_rng(shuffle).permutation(len(table["day"]))
        table = {name: column[order] for name, column in table.items()}
    return table


# ------------------------------------------------------------------------------------------------ bands, totals


def test_bands_are_the_mean_and_linear_percentiles_over_replications():
    ops = np.zeros((1, 3, 2, 2), dtype=np.int64)
    ops[0, :, 0, 0] = [12, 20, 10]  # sorted 10, 12, 20: p5 at rank 0.1 -> 10.2, p95 at rank 1.9 -> 19.2
    ops[0, :, 1, 1] = [5, 5, 5]
    short = np.zeros_like(ops)
    short[0, :, 0, 1] = [0, 4, 0]  # sorted 0, 0, 4: mean 4/3, p5 0, p95 at rank 1.9 -> 3.6
    target = np.full_like(ops, 7)
    out = bands(daily_table(short, ops, target, shuffle=3))
    assert list(out["variant_id"]) == [0, 0, 0, 0]
    assert list(out["ac_type"]) == [0, 0, 1, 1]
    assert list(out["day"]) == [0, 1, 0, 1]
    assert list(out["ops_target"]) == [7, 7, 7, 7]
    assert out["ops_current_mean"][0] == pytest.approx(14.0)
    assert out["ops_current_p5"][0] == pytest.approx(10.2)
    assert out["ops_current_p95"][0] == pytest.approx(19.2)
    assert out["ops_current_mean"][3] == out["ops_current_p5"][3] == out["ops_current_p95"][3] == 5
    assert out["shortfall_mean"][1] == pytest.approx(4 / 3)
    assert out["shortfall_p5"][1] == 0
    assert out["shortfall_p95"][1] == pytest.approx(3.6)
    assert str(out["date"][1]) == "2025-01-02"


def test_with_one_replication_the_band_is_the_value():
    rng = np.random.default_rng(5)
    ops = rng.integers(0, 30, (2, 1, 2, 6))
    out = bands(daily_table(rng.integers(0, 3, ops.shape), ops))
    assert np.array_equal(out["ops_current_mean"], ops[:, 0].reshape(-1))
    assert np.array_equal(out["ops_current_p5"], out["ops_current_mean"])
    assert np.array_equal(out["ops_current_p95"], out["ops_current_mean"])
    assert list(out["variant_id"]) == [0] * 12 + [1] * 12


def test_totals_count_days_aircraft_days_and_the_worst_365_day_year():
    short = np.zeros((1, 2, 2, 370), dtype=np.int64)  # 370 days: a year and a last partial year of 5 days
    short[0, 0, 0, 0:10] = 1  # year 1: 10 days
    short[0, 0, 0, 365:370] = 3  # year 2 (5 days): 5 days, 15 aircraft-days
    short[0, 1, 0, 360:370] = 2  # 5 days in each year
    short[0, 1, 1, 364:366] = 7  # a day at the end of year 1, a day at the start of year 2
    ops = np.zeros_like(short)
    ops[0, 0, 1, :] = 3
    ops[0, 0, 1, :37] = 13  # mean (37 * 13 + 333 * 3) / 370 = 4
    totals = replication_totals(daily_table(short, ops, shuffle=1))
    assert list(totals["replication"]) == [0, 0, 1, 1]
    assert list(totals["ac_type"]) == [0, 1, 0, 1]
    assert list(totals["shortfall_days"]) == [15, 0, 10, 2]
    assert list(totals["shortfall_aircraft_days"]) == [25, 0, 20, 14]
    assert list(totals["worst_year_shortfall_days"]) == [10, 0, 5, 1]
    assert totals["ops_current_mean"][1] == pytest.approx(4.0)
    assert year_shortfall_days(daily_table(short))[0, 0, 0].tolist() == [10, 5]


def test_a_table_missing_a_row_is_refused():
    table = daily_table(np.zeros((1, 2, 2, 3), dtype=np.int64))
    table = {name: column[1:] for name, column in table.items()}
    with pytest.raises(ValueError, match="not one per variant"):
        bands(table)


def test_totals_of_a_real_ensemble_agree_with_the_run_report():
    inputs = synthesize(30, 400, seed=2)
    ensemble = Ensemble(variants=[Variant(name="base"), Variant(name="up", targets=[Change(factor=1.2)])],
                        replications=2, maintenance={"mi8": Maintenance(removal_hazard=0.004)})  # fmt: skip
    sink = DailySink()
    report = run_local(inputs, log="aggregates", sink=sink, ensemble=ensemble)
    totals = replication_totals(sink.table("mp2_daily"))
    for member in report.members:
        for t, name in enumerate(AC_TYPES):
            row = (member.variant_id * 2 + member.replication) * 2 + t
            assert (totals["variant_id"][row], totals["replication"][row], totals["ac_type"][row]) == (
                member.variant_id, member.replication, t)  # fmt: skip
            assert totals["shortfall_days"][row] == member.shortfall_days[name]
            assert totals["shortfall_aircraft_days"][row] == member.shortfall_aircraft_days[name] > 0
    assert report.shortfall_aircraft_days == {
        name: sum(m.shortfall_aircraft_days[name] for m in report.members) for name in AC_TYPES
    }
    assert len(bands(sink.table("mp2_daily"))["day"]) == 2 * 2 * 400


# ------------------------------------------------------------------------------------------------ searches, made up


def made_up_model(slots_needed=None, factor_limit=None, luck=(0,)):
    """A stand-in for the ensemble run: shortfall days fall with slots and rise with the target factor.

    Type t with s slots falls short on ``10 * max(0, slots_needed[t] - s) + luck[r]`` days; a target factor f
    (the last target change) gives each type ``floor(1000 * max(0, f - factor_limit))`` days.
    """
    calls = []

    def run(ensemble):
        calls.append(ensemble)
        short = np.zeros((len(ensemble.variants), ensemble.replications, 2, 365), dtype=np.int64)
        for v, variant in enumerate(ensemble.variants):
            for r in range(ensemble.replications):
                for t, name in enumerate(AC_TYPES):
                    days = luck[r % len(luck)]
                    if slots_needed is not None:
                        days += 10 * max(0, slots_needed[t] - ensemble.maintenance_of(v, name).repair_slots)
                    if factor_limit is not None:
                        days += int(np.floor(1000 * max(0.0, variant.targets[-1].factor - factor_limit)))
                    short[v, r, t, : min(days, 365)] = 1
        return daily_table(short)

    return run, calls


def test_slot_search_doubles_then_tries_every_count_in_the_bracket():
    run, calls = made_up_model(slots_needed=(6, 1))
    # mi8 needs 6 slots (5: 10 days, 6: 0); mi17 one; mi8 has 23 airframes, mi17 17 in this fleet
    result = smallest_repair_slots(synthesize(40, 30, seed=1), 5, run=run)
    assert result.answer == {"mi8": 6, "mi17": 1}
    assert result.fleet == {"mi8": 23, "mi17": 17}
    assert len(calls) == len(result.runs) == 2
    mi8 = [(p.round, p.slots, p.passed) for p in result.probes if p.ac_type == "mi8"]
    assert mi8 == [(1, 1, False), (1, 2, False), (1, 4, False), (1, 8, True), (1, 16, True), (1, 23, True),
                   (2, 5, False), (2, 6, True), (2, 7, True)]  # fmt: skip
    assert [p.slots for p in result.probes if p.ac_type == "mi17"] == [1, 2, 4, 8, 16, 17]
    assert [len(ensemble.variants) for ensemble in calls] == [6, 3]


def test_slot_search_says_when_even_unlimited_slots_fail_and_judges_replications():
    run, _ = made_up_model(slots_needed=(0, 0), luck=(0, 4, 30))
    fleet = synthesize(40, 30, seed=1)
    three = Ensemble(replications=3)
    assert smallest_repair_slots(fleet, 12, base=three, run=run).answer == {"mi8": 1, "mi17": 1}  # mean 34/3
    result = smallest_repair_slots(fleet, 12, base=three, statistic="p95", run=run)  # 95th percentile 27.4 > 12
    assert result.answer == {"mi8": None, "mi17": None}
    assert len(result.runs) == 1
    assert smallest_repair_slots(fleet, 28, base=three, statistic="p95", run=run).answer == {"mi8": 1, "mi17": 1}
    assert result.probes[0].worst_year == [0, 4, 30]


def test_factor_search_narrows_a_nested_bracket_to_the_tolerance():
    run, calls = made_up_model(factor_limit=3.3)  # passes up to 3.3 + 0.005 (at most 5 days per type)
    result = largest_target_factor(synthesize(40, 30, seed=1), 10, per_round=4, tolerance=0.01, run=run)
    assert result.converged
    assert 3.3 - 0.01 < result.answer <= 3.305
    assert [b[1] is None for b in result.bracket][:1] == [True]  # 0.5 .. 2: nothing fails yet, upper doubles
    for (low, high), (new_low, new_high) in zip(result.bracket, result.bracket[1:], strict=False):
        assert new_low >= low
        assert high is None or (new_high is not None and new_high <= high)
    low, high = result.bracket[-1]
    assert high - low < 0.01 and result.answer == low
    assert len(calls) == len(result.runs) == len({p.round for p in result.probes})
    assert all(len(ensemble.variants) == 4 for ensemble in calls)
    assert all((p.value <= 10) == p.passed for p in result.probes)
    assert all(p.passed for p in result.probes if p.factor <= result.answer)


def test_factor_search_reports_no_limit_when_the_largest_factor_passes():
    run, _ = made_up_model(factor_limit=100.0)
    result = largest_target_factor(synthesize(40, 30, seed=1), 0, start=2.0, max_factor=8.0, run=run)
    assert result.answer is None and not result.converged
    assert result.bracket[-1] == (8.0, None)


def test_a_base_with_several_variants_or_bad_arguments_is_refused():
    two = Ensemble(variants=[Variant(name="a"), Variant(name="b")])
    with pytest.raises(ConfigError, match=r"v\.yaml: variants: .*one variant"):
        base_plan(two, source="v.yaml")
    fleet = synthesize(20, 30, seed=1)
    with pytest.raises(ConfigError, match="max_shortfall_days"):
        smallest_repair_slots(fleet, -1)
    with pytest.raises(ConfigError, match="statistic"):
        largest_target_factor(fleet, 1, statistic="median")
    with pytest.raises(ConfigError, match="tolerance"):
        largest_target_factor(fleet, 1, tolerance=0.0)


# ------------------------------------------------------------------------------------------------ searches, for real


@pytest.fixture(scope="module")
def fleet():
    return synthesize(50, 400, seed=1)  # a year and 35 days: the first year's repairs fill the shop


BASE = Ensemble(variants=[Variant(name="base", targets=[Change(factor=0.8)])], replications=2, seed=3,
                maintenance={t: Maintenance(removal_hazard=0.003) for t in AC_TYPES})  # fmt: skip


def worst_year_mean(inputs, ensemble):
    """The mean over replications of each type's and of the total's worst year, one separate run per variant."""
    sink = DailySink()
    run_local(inputs, log="aggregates", sink=sink, ensemble=ensemble)
    years = year_shortfall_days(sink.table("mp2_daily"))[0]  # [replication, type, year]
    return years.max(axis=2).mean(axis=0), years.sum(axis=1).max(axis=1).mean()


def with_slots(slots):
    maintenance = {t: msgspec.structs.replace(BASE.maintenance[t], repair_slots=s) for t, s in slots.items()}
    return msgspec.structs.replace(BASE, variants=[msgspec.structs.replace(BASE.variants[0],
                                                                           maintenance=maintenance)])  # fmt: skip


def test_the_slot_search_matches_separate_runs_around_its_answer(fleet):
    limit = 30
    result = smallest_repair_slots(fleet, limit, base=BASE)
    answer = result.answer
    assert answer["mi8"] is not None and answer["mi8"] > 1 and answer["mi17"] is not None
    assert len(result.runs) == 2
    passes, _ = worst_year_mean(fleet, with_slots(answer))
    assert (passes <= limit).all()
    for t, name in enumerate(AC_TYPES):
        if answer[name] == 1:
            continue
        fewer, _ = worst_year_mean(fleet, with_slots({**answer, name: answer[name] - 1}))
        assert fewer[t] > limit, name
        probed = [p for p in result.probes if p.ac_type == name and p.slots == answer[name]]
        assert probed and probed[0].value == pytest.approx(passes[t])


def test_the_factor_search_matches_separate_runs_at_its_bracket(fleet):
    limit = 20
    result = largest_target_factor(fleet, limit, base=BASE, per_round=6, tolerance=0.02)
    low, high = result.bracket[-1]
    assert result.converged and 0 < low == result.answer and high - low < 0.02

    def total(factor):
        plan = msgspec.structs.replace(BASE.variants[0], targets=[*BASE.variants[0].targets, Change(factor=factor)])
        return worst_year_mean(fleet, msgspec.structs.replace(BASE, variants=[plan]))[1]

    assert total(low) <= limit < total(high)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (Change(factor=1e19), r"ensemble: variants\[0\]\.targets\[0\]\.factor: Expected `float` <= 1000"),
        (Change(offset=5, start=dt.date(2031, 1, 1)), r"targets\[0\]\.start: 2031-01-01 is outside"),
    ],
)
def test_run_local_checks_an_ensemble_built_in_python(change, says):
    ensemble = Ensemble(variants=[Variant(name="a", targets=[change])])
    with pytest.raises(ConfigError, match=says):
        run_local(synthesize(5, 30, seed=1), ensemble=ensemble)
