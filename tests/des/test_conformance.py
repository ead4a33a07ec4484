"""The conformance suite of the two DES engines: the compiled kernel gives the Python engine's summary, field by field.

Both engines run the same scenario, seed and replication, and every field of their summaries must be equal (floats
bit for bit, so well within the 1e-12 relative the model asks; the sketches' buckets identical), the event counts
too. Wall-clock figures are the only ones left out. The scenarios are those of three families:

- every scenario the validation table of DES_MODEL.md builds (each replication it runs goes through both engines);
- every example scenario under ``config/scenarios``;
- random scenarios drawn by hypothesis (``tests/des/strategies.py``): random DAGs, resource kinds, caps, weights,
  priorities, space demands, distributions, arrival processes, branches, variants, failures, timeouts, retries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simfleet.shared.messages.des import ReplicationSummary
from simfleet.worker.des import engines
from simfleet.worker.des.compiled import CompiledSimulation
from simfleet.worker.des.engine import Simulation
from simfleet.worker.des.scenario import Scenario, load_scenario
from simfleet.worker.des.validation import run_validation

from .helpers import differences, plain

EXAMPLES = sorted((Path(__file__).parents[2] / "config" / "scenarios").glob("*.yaml"))


def both_engines(scenario: Scenario, seed: int, replication: int) -> ReplicationSummary:
    """Run the replication on both engines; fail on the first fields that differ; the Python engine's summary."""
    python = Simulation(scenario, seed, replication)
    python.run()
    compiled = CompiledSimulation(scenario, seed, replication)
    compiled.run()
    expected = python.summary()
    found = differences(plain(expected), plain(compiled.summary()))
    assert not found, f"{scenario.name}, seed {seed}, replication {replication}:\n" + "\n".join(found[:20])
    assert compiled.events == python.events
    return expected


def test_every_scenario_of_the_validation_table_runs_alike_on_both_engines(monkeypatch: Any) -> None:
    compared: list[str] = []

    def compare(scenario: Scenario, seed: int, replication: int, engine: Any = None) -> ReplicationSummary:
        compared.append(scenario.name)
        return both_engines(scenario, seed, replication)

    monkeypatch.setattr(engines, "run_replication", compare)
    rows = run_validation(scale=0.05)
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
        summary = both_engines(scenario, scenario.seed, replication)
        assert summary.overall.completed > 0
