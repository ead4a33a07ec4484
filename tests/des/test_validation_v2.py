"""The validation cases of model v2 (issue 15): retries, priorities, failure paths, accounting, branches, arrivals.

The cases run at the suite's scale (0.4 of the default horizons, as in ``tests/des/test_cli.py``); their verdicts are
deterministic for a given scale. Besides "every row passes", these tests check the theory column against figures
worked out by hand, that the busy accounting scenario really produces every outcome, and that a case fails when the
engine or the theory it is held to is wrong.
"""

from __future__ import annotations

import math
from functools import cache

import msgspec
import pytest

from simfleet.shared.messages.des import ReplicationSummary
from simfleet.worker.des import validation, validation_v2
from simfleet.worker.des.scenario import Backoff
from simfleet.worker.des.validation import accounting_scenario, cobham_latency, run_validation
from simfleet.worker.des.validation_base import replicate

SCALE = 0.4
V2_CASES = ["retry-ps", "priority-mm1", "constructed-v2", "accounting", "branch-ps", "arrival-rates"]


@cache
def rows_of(name: str) -> tuple[validation.CaseResult, ...]:
    """The rows of one case at the suite's scale, run once per session."""
    return tuple(run_validation(SCALE, only=[name]))


@pytest.mark.parametrize("name", V2_CASES)
def test_every_row_of_the_model_v2_cases_passes(name):
    rows = rows_of(name)
    assert rows
    assert [row.case for row in rows if not row.passed] == []
    for row in rows:
        assert row.error <= row.tolerance
        assert math.isfinite(row.measured)


def test_the_theory_column_holds_the_figures_worked_out_by_hand():
    rows = {row.case: row for name in ("retry-ps", "priority-mm1", "constructed-v2") for row in rows_of(name)}
    theory = {case.split(":")[0]: row.theory for case, row in rows.items()}
    # 1 / (mu (1 - p) - lambda) with mu = 1, p = 0.2, lambda = 0.5.
    assert theory["M/M/1-PS, fail_prob 0.2 retried at once, rho=0.625"] == pytest.approx(10 / 3)
    # W0 = 0.6; high: 0.6 / 0.7 + 1; low: 0.6 / (0.7 * 0.4) + 1.
    assert theory["priority M/M/1 FIFO rho=0.3+0.3, high class"] == pytest.approx(13 / 7)
    assert theory["priority M/M/1 FIFO rho=0.3+0.3, low class"] == pytest.approx(22 / 7)
    exact = {row.theory for row in rows.values() if row.tolerance <= 1e-9}
    assert {8.0, 17.0, 12.5, 5.0, 6.0, 1.75} <= exact
    rates = {row.case.split(":")[0]: row.theory for row in rows_of("arrival-rates")}
    # (60 x 0.3 + 180 x 0.1) / 0.4 and (30 x 900 + 150 x 900 + 0 x 600 + 90 x 1200) / 3600 requests per minute.
    assert rates == {
        "MMPP 60 and 180/min, sojourns 0.3 and 0.1 s": pytest.approx(90.0),
        "hourly schedule 30, 150, 0, 90/min": pytest.approx(75.0),
    }
    (branch,) = rows_of("branch-ps")
    assert branch.theory == pytest.approx(0.5 / (1 - 0.5 * 1.0))


def test_cobham_reduces_to_fifo_m_m_1_when_the_priorities_are_equal():
    # Two classes at one level are one Poisson stream at FIFO M/M/1: 1 / (mu - lambda) each.
    assert cobham_latency([0.3, 0.4], [1.0, 1.0], [0, 0]) == pytest.approx([1 / 0.3, 1 / 0.3])
    # Kleinrock's conservation law: with equal mean work, the rate-weighted mean wait does not depend on the order.
    high, low = cobham_latency([0.3, 0.4], [1.0, 1.0], [5, 2])
    assert (0.3 * (high - 1) + 0.4 * (low - 1)) / 0.7 == pytest.approx(1 / 0.3 - 1)
    assert high < 1 / 0.3 < low


def test_the_accounting_scenario_produces_every_outcome():
    for drain in (True, False):
        summary = replicate(accounting_scenario(drain), 2026, 0)
        overall = summary.overall
        assert overall.completed > 0 and overall.failed > 0 and overall.timed_out > 0
        assert (overall.unfinished > 0) == (not drain)
        nodes = [figures for per_type in summary.nodes.values() for figures in per_type.values()]
        assert sum(n.skipped for n in nodes) > 0
        assert sum(n.fallbacks for n in nodes) > 0
        assert sum(n.branch_skipped for n in nodes) > 0
        assert sum(n.attempts for n in nodes) > sum(f.arrived for f in summary.types.values())


def test_a_backoff_without_its_cap_fails_the_exact_case(monkeypatch):
    # An engine that forgot max_s would wait 1 + 3 + 9 before the retries instead of 1 + 3 + 5.
    # The mutation is the Python engine's (the compiled kernel reads the backoff's parameters), so the case runs there.
    monkeypatch.setattr(Backoff, "delay_s", lambda self, retry: self.base_s * self.factor ** (retry - 1))
    rows = {row.case: row for row in run_validation(SCALE, only=["constructed-v2"], engine="python")}
    failed = [case for case, row in rows.items() if not row.passed]
    assert failed == ["timeout 2, 3 retries, backoff min(5, 3^(k-1)): 4x2 + 1 + 3 + 5"]
    assert rows[failed[0]].measured == pytest.approx(21.0)


def test_the_priority_case_tells_priorities_from_plain_fifo(monkeypatch):
    # Held to plain FIFO M/M/1 (both classes 1 / (1 - 0.6)), the measured latencies fail: the case has the power to
    # see a server that ignores priorities.
    monkeypatch.setattr(validation_v2, "cobham_latency", lambda rates, means, priorities: [2.5, 2.5])
    rows = run_validation(SCALE, only=["priority-mm1"])
    assert len(rows) == 2
    assert not any(row.passed for row in rows)


def test_a_summary_that_loses_failed_requests_fails_the_accounting_case(monkeypatch):
    def forgetful(scenario, seed, replication) -> ReplicationSummary:
        summary = replicate(scenario, seed, replication)
        types = {name: msgspec.structs.replace(figures, failed=0) for name, figures in summary.types.items()}
        return msgspec.structs.replace(summary, types=types)

    monkeypatch.setattr(validation_v2, "replicate", forgetful)
    rows = run_validation(SCALE, only=["accounting"])
    assert len(rows) == 2
    assert not any(row.passed for row in rows)
    assert all(row.error > 0 for row in rows)
