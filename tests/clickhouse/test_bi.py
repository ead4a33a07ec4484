import re
from pathlib import Path

import numpy as np
import pytest

from simfleet.shared.clickhouse.mp2 import export_ensemble_mp2, export_mp2
from simfleet.worker.des.aggregate import aggregate
from simfleet.worker.des.runner import run_replications
from simfleet.worker.des.scenario import load_scenario
from simfleet.worker.lifecycle.run import MemorySink, run_local
from simfleet.worker.lifecycle.synth import synthesize
from simfleet.worker.lifecycle.variants import parse_variants

ROOT = Path(__file__).resolve().parents[2]
QUERIES = dict(re.findall(r"```sql\n-- name: ([^\n]+)\n(.*?)```", (ROOT / "docs" / "bi.md").read_text(), flags=re.S))


@pytest.fixture
def loaded(ch):
    inputs = synthesize(30, 90, seed=4)
    sink = MemorySink()
    report = run_local(inputs, sink=sink)
    export_mp2(ch, "job-7", sink.table("mp2"), sink.table("mp2_daily"), airframes=30, days=90)
    export_mp2(ch, "job-7", sink.table("mp2"), sink.table("mp2_daily"), airframes=30, days=90)
    scenario = load_scenario(ROOT / "config" / "scenarios" / "web_search_load_test.yaml")
    summaries = run_replications(scenario, replications=2, seed=1, processes=1)
    from simfleet.shared.clickhouse.des import export_des_study

    export_des_study(ch, "study-9", summaries, aggregate(summaries), {"web-search": 100.0})
    return ch, report


ENSEMBLE = parse_variants({
    "replications": 3, "seed": 11, "maintenance": {"mi8": {"repair_slots": 2, "removal_hazard": 0.004}},
    "variants": [{"name": "plan"}, {"name": "lean", "targets": [{"factor": 0.7}]}],
})  # fmt: skip


@pytest.fixture
def ensemble_job(loaded):
    """An ensemble of 2 variants x 3 replications exported as job-8 (beside job-7), and its MP2 per type and day."""
    ch, _ = loaded
    sink = MemorySink()
    run_local(synthesize(30, 90, seed=4), sink=sink, ensemble=ENSEMBLE)
    export_ensemble_mp2(ch, "job-8", sink.table("mp2"), sink.table("mp2_daily"), ENSEMBLE, airframes=30, days=90)
    return ch, sink.table("mp2_daily")


def run(ch, name, job_id="job-7"):
    return ch.rows(QUERIES[name].replace("{job_id}", job_id))


def test_the_guide_has_every_query_the_issue_asks_for():
    assert {"field by id", "status counts per day", "fleet availability per month"} <= set(QUERIES)


def test_a_field_is_found_by_its_id_and_its_comment_carries_it(loaded):
    ch, _ = loaded
    assert run(ch, "field by id") == [("mp2", "sne", "minutes")]
    ((field_id, comment),) = run(ch, "id of a column, and its comment")
    assert comment.startswith(f"field_id: {field_id};")


def test_status_counts_per_day_cover_the_fleet_once(loaded):
    ch, _ = loaded
    rows = run(ch, "status counts per day")
    per_day = {}
    for date, _, airframes in rows:
        per_day[date] = per_day.get(date, 0) + airframes
    assert len(per_day) == 90 and set(per_day.values()) == {30}  # exported twice, one copy


def test_availability_per_month_is_a_share(loaded):
    ch, _ = loaded
    rows = run(ch, "fleet availability per month")
    assert len(rows) == 3 * 2  # three months, two types
    assert all(0 <= in_operation <= available <= 1 for _, _, in_operation, available in rows)


def test_plan_and_des_queries_run(loaded):
    ch, _ = loaded
    assert len(run(ch, "plan against operation per day (aggregates table)")) == 90 * 2
    rows = run(ch, "p95 latency per request type of every study")
    assert [(r[0], r[2]) for r in rows] == [("study-9", "(all)"), ("study-9", "web-search")]
    assert all(r[3] > 0 and r[4] > 0 and r[5] > 0 for r in rows)


def test_variants_compare_by_the_figures_of_their_replications(ensemble_job):
    ch, daily = ensemble_job
    rows = run(ch, "variants compared", "job-8")
    assert [(name, ac_type) for name, ac_type, *_ in rows] == [("plan", 0), ("plan", 1), ("lean", 0), ("lean", 1)]
    for variant, (name, ac_type, shortfall_days, mean_ops, spread) in zip((0, 0, 1, 1), rows, strict=True):
        per_replication = []
        for replication in range(3):
            mask = (daily["variant_id"] == variant) & (daily["replication"] == replication)
            mask &= daily["ac_type"] == ac_type
            per_replication.append(((daily["shortfall"][mask] > 0).sum(), daily["ops_current"][mask].mean()))
        want_days, want_ops = np.mean(per_replication, axis=0)
        assert (shortfall_days, mean_ops) == pytest.approx((want_days, want_ops)), name
        assert spread == pytest.approx(np.std([ops for _, ops in per_replication], ddof=1)), name


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_every_query_of_the_guide_runs_and_answers(loaded, request, name):
    # tests/docs/test_docs.py leaves the guide's named queries to this module: each one, not only those above.
    ch, _ = loaded
    job_id = "job-7"
    if name == "variants compared":  # the ensemble job's query
        request.getfixturevalue("ensemble_job")
        job_id = "job-8"
    assert run(ch, name, job_id), f"docs/bi.md query {name!r} returned no row"
