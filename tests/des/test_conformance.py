"""The conformance suite of the two DES engines: the compiled kernel gives the Python engine's summary, field by field.

Both engines run the same scenario, seed and replication, and every field of their summaries must be equal (floats
bit for bit, so well within the 1e-12 relative the model asks; the sketches' buckets identical), the event counts
too. Wall-clock figures are the only ones left out. The scenarios are those of three families:

- every scenario the validation table of DES_MODEL.md builds (each replication it runs goes through both engines);
- every example scenario under ``config/scenarios``;
- 200 random scenarios per run drawn by hypothesis (``tests/des/strategies.py``): random DAGs, resource kinds, caps,
  FIFO limits, weights, priorities, space demands, distributions, join overheads, attributes, arrival processes,
  branches, variants, and (in about half) failures, timeouts, retries, backoffs, skips and fallbacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simfleet.shared.messages.des import ReplicationSummary
from simfleet.worker.des import engines
from simfleet.worker.des.engine import run_replication
from simfleet.worker.des.scenario import Scenario, load_scenario, parse_scenario
from simfleet.worker.des.validation import run_validation

from .helpers import assert_same_run
from .strategies import random_scenarios

EXAMPLES = sorted((Path(__file__).parents[2] / "config" / "scenarios").glob("*.yaml"))


def test_every_scenario_of_the_validation_table_runs_alike_on_both_engines(monkeypatch: Any) -> None:
    compared: list[str] = []

    def compare(scenario: Scenario, seed: int, replication: int, engine: Any = None) -> ReplicationSummary:
        compared.append(scenario.name)
        assert_same_run(scenario, seed, replication)
        return run_replication(scenario, seed, replication)

    monkeypatch.setattr(engines, "run_replication", compare)
    rows = run_validation(scale=0.02)
    assert len(rows) >= 30
    # Every case but the one that watches requests with an observer (the Python engine's alone) ran through both.
    assert len(compared) >= 40
    built = {"validation", "tandem", "one-request", "retry-ps", "priority-mm1", "accounting", "branch-ps",
             "arrival-rates"}  # fmt: skip
    assert set(compared) == built


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_every_example_scenario_runs_alike_on_both_engines(path: Path) -> None:
    scenario = load_scenario(path)
    for replication in (0, 1):
        summary = assert_same_run(scenario, scenario.seed, replication)
        assert summary["overall"]["completed"] > 0


RANDOM_EXAMPLES = 200
"""Random scenarios per run of the suite (hypothesis draws new ones each run; about half can fail)."""


@settings(max_examples=RANDOM_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.booleans().flatmap(lambda failures: random_scenarios(failures=failures)),
       seed=st.integers(0, 2**31), replication=st.integers(0, 3))  # fmt: skip
def test_random_scenarios_run_alike_on_both_engines(data: dict[str, Any], seed: int, replication: int) -> None:
    assert_same_run(parse_scenario(data), seed, replication)
