"""The demo's lifecycle ensemble: four plan variants x three replications, their shortfall printed side by side."""

from __future__ import annotations

from simfleet.producer.demo import demo_ensemble, lifecycle_ensemble
from simfleet.worker.lifecycle.inputs import write_inputs
from simfleet.worker.lifecycle.synth import synthesize


def test_the_demo_prints_four_variants_side_by_side_with_their_spread(tmp_path):
    write_inputs(synthesize(30, 120, seed=1), tmp_path / "in", "parquet")
    text = lifecycle_ensemble(tmp_path / "in", days=90)
    lines = text.splitlines()
    assert lines[0].startswith("== lifecycle ensemble, run here: 4 plan variants x 3 replications")
    assert "30 airframes x 90 days" in lines[0]
    assert lines[1] == "days with a shortfall over 90 days, by variant (3 replications each)"
    rows = lines[5:]
    assert [row.split("  ")[0] for row in rows] == [variant.name for variant in demo_ensemble().variants]
    assert all(row.count("..") == 2 for row in rows)
