"""Forward runs to a precision on the fleet: each round one study of the next replication indices."""

from __future__ import annotations

import json

import yaml

from simfleet.producer.cli import main
from simfleet.producer.precision import run_to_precision
from simfleet.shared.messages import to_wire
from simfleet.worker.des.runner import run_replications
from tests.des.helpers import one_queue


def test_rounds_on_the_fleet_are_studies_of_consecutive_indices_with_the_local_answer(fleet, start_worker, tmp_path,
                                                                                       capsys):  # fmt: skip
    start_worker()
    scenario = one_queue(30, {"dist": "exponential", "mean": 1.0}, horizon_s=1_000)

    def local(probe, replications, seed, first=0):
        return run_replications(probe, replications=first + replications, seed=seed, processes=1, first=first)

    # A precision of 0.1% cannot be reached in 6 replications: the rounds are 2, then 4 more up to the cap.
    on_fleet = fleet.run_des_to_precision(scenario, precision=0.001, replications=2, max_replications=6, seed=5)
    here = run_to_precision(scenario, local, precision=0.001, seed=5, initial=2, cap=6)
    assert on_fleet.rounds == here.rounds == [2, 4] and not on_fleet.reached
    assert [s.replication for s in on_fleet.summaries] == list(range(6))
    records = sorted(fleet.studies(10), key=lambda record: record.created)
    assert [(r.first, r.replications) for r in records] == [(0, 2), (2, 4)]
    answer = {k: v for k, v in to_wire(here.aggregate).items() if k != "run"}
    assert {k: v for k, v in to_wire(on_fleet.aggregate).items() if k != "run"} == answer

    path = tmp_path / "one-queue.yaml"
    path.write_text(yaml.safe_dump({**scenario.to_dict(), "seed": 5}))
    command = ["des", "run", str(path), "--fleet", "--precision", "0.1%", "--replications", "2",
               "--max-replications", "6", "--json"]  # fmt: skip
    assert main(command) == 1
    captured = capsys.readouterr()
    shown = json.loads(captured.out)
    assert {k: v for k, v in shown["aggregate"].items() if k != "run"} == answer
    assert shown["precision"]["rounds"] == [2, 4] and "round 2, replications 2 to 5" in captured.err
