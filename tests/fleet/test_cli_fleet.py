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
    options = {"slas": ["deep-research:p95<30"], "replications": 2, "max_replications": 4, "seed": 8,
               "rel_tol": 0.15}  # fmt: skip
    on_fleet = fleet.sla_search(scenario, **options)

    def local(probe, replications, seed, first=0):
        return run_replications(probe, replications=first + replications, seed=seed, processes=1, first=first)

    assert on_fleet.to_dict() == search_sla(scenario, local, **options).to_dict()
    assert on_fleet.converged and any(p.replications > 3 for p in on_fleet.probes), "more replications were added"


def test_a_submission_nobody_consumes_says_so_and_ctrl_c_says_how_to_cancel(fleet_settings, tmp_path, capsys):
    import os
    import signal
    import subprocess
    import sys
    import time

    from simfleet.shared.settings import CONFIG_ENV
    from simfleet.worker.lifecycle.inputs import write_inputs
    from simfleet.worker.lifecycle.synth import synthesize

    from .conftest import wait_until

    inputs = tmp_path / "inputs"
    write_inputs(synthesize(20, 100, seed=1), inputs, "csv")
    err = tmp_path / "submit.err"
    with err.open("w") as stderr:
        submit = subprocess.Popen(
            [sys.executable, "-m", "simfleet.producer.cli", "lifecycle", "submit", "--inputs", str(inputs), "--fleet"],
            env={**os.environ, CONFIG_ENV: fleet_settings.source}, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    started = time.monotonic()
    wait_until(lambda: "no worker consumes simulation.macroproperty.load" in err.read_text(), "the warning", 20)
    assert time.monotonic() - started < 15
    submit.send_signal(signal.SIGINT)
    assert submit.wait(20) == 130
    text = err.read_text()
    job_id = text.split("job ")[1].split()[0]
    assert f"job {job_id} goes on on the fleet" in text and f"simfleet job cancel {job_id}" in text
    assert "Traceback" not in text
    assert main(["job", "cancel", job_id]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert main(["job", "status", job_id, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "cancelled" and status["failure"]["error_type"] == "Cancelled"
    assert main(["job", "cancel", job_id]) == 1  # already ended
