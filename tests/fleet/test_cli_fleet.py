import json
from pathlib import Path

from simfleet.producer.cli import main
from simfleet.producer.sla import search_sla
from simfleet.worker.des.runner import run_replications
from simfleet.worker.des.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


def test_des_run_on_the_fleet_prints_the_same_answer_as_locally(fleet, start_worker, capsys):
    start_worker()
    scenario = str(SCENARIOS / "web_search_load_test.yaml")
    assert main(["des", "run", scenario, "--fleet", "--replications", "4", "--seed", "3", "--json"]) == 0
    captured = capsys.readouterr()
    on_fleet = json.loads(captured.out)
    assert "study " in captured.err and "100.0%" in captured.err
    assert main(["des", "run", scenario, "--replications", "4", "--seed", "3", "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert on_fleet["types"] == local["types"] and on_fleet["resources"] == local["resources"]


def test_sla_search_on_the_fleet_probes_exactly_like_the_local_search(fleet, start_worker):
    start_worker()
    scenario = load_scenario(SCENARIOS / "deep_research_sla.yaml")
    options = {"request_type": "deep-research", "metric": "p95", "threshold_s": 30.0, "replications": 3, "seed": 8}
    on_fleet = fleet.sla_search(scenario, **options)

    def local(probe, replications, seed):
        return run_replications(probe, replications=replications, seed=seed, processes=1)

    assert on_fleet.probes == search_sla(scenario, local, **options).probes
    assert on_fleet.converged and len(on_fleet.probes) <= 8
