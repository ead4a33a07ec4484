"""Batches of replications on the fleet: several to a ``des.run`` task, the same answer as one per task.

Real Redis, real CPU worker processes. A batch runs its replications one after the other in one pool process; each
is recorded as it ends, so progress counts replications, and a batch published again after its worker died runs only
the replications not yet recorded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from simfleet.producer.cli import main
from simfleet.producer.fleet.batching import batch_size
from simfleet.shared.counters import COUNTERS_KEY, DES_REPLICATIONS
from simfleet.shared.errors import ConfigError, StudyFailed
from simfleet.shared.settings import DesSettings
from simfleet.shared.studies import Studies
from simfleet.worker.des.engine import run_replication
from simfleet.worker.des.runner import run_study
from simfleet.worker.des.scenario import load_scenario, parse_scenario
from tests.des.helpers import without_wall_clock

from .conftest import wait_until
from .test_study import comparable

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


# The tests that look inside a running batch run it on the Python engine, whose replications last long enough to be
# seen (or cut) mid-batch; the kernel runs these in a few hundredths of a second.
def mixed(horizon_s: float, name: str):
    data = load_scenario(SCENARIOS / "mixed_workload.yaml").to_dict()
    return parse_scenario({**data, "horizon_s": horizon_s, "name": name})


def done_lines(worker) -> dict[int, str]:
    """The replications a worker ran to their end, with the task that ran each."""
    lines = [json.loads(line) for line in worker.log.read_text().splitlines() if line.startswith("{")]
    return {int(line["message"].split()[1]): line["task_id"] for line in lines
            if line["message"].startswith("replication ") and " done: " in line["message"]}  # fmt: skip


def test_batches_of_1_3_and_all_give_the_one_replication_per_task_answer_to_the_last_bit(fleet, start_worker):
    worker = start_worker(concurrency=2)
    scenario = mixed(600.0, "mixed-short")
    local = comparable(run_study(scenario, replications=7, seed=11, processes=1))
    for batch in (1, 3, 7):
        study = fleet.run_des(scenario, replications=7, seed=11, batch=batch)
        assert len(study.task_ids) == math.ceil(7 / batch)
        result = study.wait(timeout=120)
        assert result.replications == 7 and comparable(result) == local, f"batch {batch}"
        assert [s.replication for s in study.summaries(timeout=10)] == list(range(7))
        progress = study.progress()
        assert (progress.done, progress.total, progress.state) == (7, 7, "done")
        ran_by = {index: task for index, task in done_lines(worker).items() if task.startswith(study.id)}
        assert ran_by == {i: f"{study.id}-{i - i % batch}" for i in range(7)}, "each replication in its batch's task"
    assert fleet.study_records.done_counts([s.study_id for s in fleet.studies()]) == [7, 7, 7]


def test_a_continuation_study_batches_from_its_first_index(fleet, start_worker):
    start_worker(concurrency=2)
    scenario = mixed(400.0, "mixed-continued")
    study = fleet.run_des(scenario, replications=5, seed=4, first=3, batch=2)
    assert study.task_ids == [f"{study.id}-3", f"{study.id}-5", f"{study.id}-7"]
    study.wait(timeout=120)
    summaries = study.summaries(timeout=10)
    assert [s.replication for s in summaries] == [3, 4, 5, 6, 7]
    assert [without_wall_clock(s) for s in summaries] == [
        without_wall_clock(run_replication(scenario, 4, i)) for i in range(3, 8)
    ]


def test_an_automatic_batch_is_measured_and_spread_over_the_workers(fleet, start_worker):
    start_worker(concurrency=2)
    scenario = mixed(300.0, "mixed-tiny")
    assert fleet.des_processes() == 2, "the worker's heartbeat tells its pool processes"
    study = fleet.run_des(scenario, replications=12, seed=2)
    assert 1 < study.record.batch <= 6, "short replications batched, at most half the study per process"
    assert comparable(study.wait(timeout=120)) == comparable(run_study(scenario, replications=12, seed=2,
                                                                       processes=1))  # fmt: skip
    again = fleet.run_des(scenario, replications=12, seed=2)  # measured by the first study's run times now
    assert fleet.replication_s("mixed-tiny") is not None and again.record.batch > 1
    again.wait(timeout=120)


def test_progress_counts_the_replications_of_a_running_batch(fleet, start_worker):
    start_worker(concurrency=1)
    study = fleet.run_des(mixed(6_000.0, "mixed-long"), replications=4, seed=6, batch=4, engine="python")
    assert len(study.task_ids) == 1
    seen = wait_until(lambda: (p := study.progress()) and 1 <= p.done < 4 and p, "some of the batch recorded")
    assert seen.total == 4 and fleet.task_meta(study.task_ids[0])["status"] != "SUCCESS"
    assert seen.state == "running" and 25.0 <= seen.percent < 100.0
    study.wait(timeout=120)
    assert study.progress().done == 4


def test_a_cancelled_batch_stops_before_its_next_replication(fleet, start_worker):
    worker = start_worker(concurrency=1)
    study = fleet.run_des(mixed(3_000.0, "mixed-cancel"), replications=6, seed=1, batch=6, engine="python")
    wait_until(lambda: study.progress().done >= 1, "a replication of the batch recorded")
    study.cancel()
    with pytest.raises(StudyFailed) as stopped:
        study.wait(timeout=60)
    assert stopped.value.cancelled
    wait_until(lambda: any("the study was cancelled" in line for line in worker.lines()), "the batch to stop")
    assert len(done_lines(worker)) < 6


@pytest.mark.death
def test_a_worker_killed_mid_batch_has_only_its_unrecorded_replications_run_again(fleet, start_worker):
    first, second = start_worker(concurrency=1), start_worker(concurrency=1)
    scenario = mixed(12_000.0, "mixed-batch-death")
    study = fleet.run_des(scenario, replications=4, seed=9, batch=4, engine="python")
    wait_until(lambda: study.progress().done >= 1, "a replication of the batch recorded", timeout_s=120)
    running = fleet.study_records.nodes_running()
    assert len(running) == 1
    victim, survivor = (first, second) if running == [first.name] else (second, first)
    victim.kill()
    recorded = len(fleet.study_records.recorded(study.id, [0, 1, 2, 3]))
    assert 1 <= recorded < 4, "killed mid-batch"
    result = study.wait(timeout=180)
    assert comparable(result) == comparable(run_study(scenario, replications=4, seed=9, processes=1))
    assert [s.replication for s in study.summaries(timeout=10)] == [0, 1, 2, 3]
    assert len(done_lines(survivor)) == 4 - recorded, "only the replications not recorded ran again"
    assert fleet.study_records.done_counts([study.id]) == [4]
    assert int(fleet.redis.hget(COUNTERS_KEY, DES_REPLICATIONS)) == 4, "each replication counted once"
    assert any(f"{recorded} recorded by an earlier copy of this batch are not run again" in line
               for line in survivor.lines())  # fmt: skip


def test_a_replication_recorded_by_two_copies_counts_once(fleet):
    studies = Studies(fleet.redis)
    summary = run_replication(mixed(200.0, "mixed-twice"), 1, 0)
    assert studies.record("node-a", "s1", summary, keep=True)
    assert not studies.record("node-b", "s1", summary, keep=True)
    assert studies.done_counts(["s1"]) == [1] and studies.recorded("s1", [0, 1]) == {0}
    assert int(fleet.redis.hget(COUNTERS_KEY, DES_REPLICATIONS)) == 1
    assert studies.recorded_summaries("s1", range(0, 2)) == {0: summary}
    studies.forget_summaries("s1", range(0, 2))
    assert studies.recorded_summaries("s1", range(0, 2)) == {}


def test_a_bad_batch_message_is_rejected_and_the_worker_keeps_serving(fleet, start_worker):
    worker = start_worker(concurrency=1)
    base = {"study_id": "x", "replication": 0, "seed": 1, "scenario": "{}"}
    fleet.app.send_task("des.run", args=({**base, "count": 0},))
    fleet.app.send_task("des.run", args=({**base, "count": 10_001},))
    fleet.app.send_task("des.run", args=({**base, "replication": 2**63 - 1, "count": 2},))
    study = fleet.run_des(SCENARIOS / "web_search_load_test.yaml", replications=2, batch=2)
    assert study.wait(timeout=60).replications == 2
    lines = "\n".join(worker.lines())
    assert "rejected a malformed message: des.run message: Expected `int` >= 1 (at $.count)" in lines
    assert "rejected a malformed message: des.run message: Expected `int` <= 10000 (at $.count)" in lines
    assert "the batch's last replication index, 9223372036854775807 + 2 - 1, is above 9223372036854775807" in lines


def test_batch_flag_is_refused_without_fleet_and_out_of_range(capsys):
    scenario = str(SCENARIOS / "web_search_load_test.yaml")
    assert main(["des", "run", scenario, "--batch", "3"]) == 2
    assert "--batch: applies only with --fleet" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["des", "sla", scenario, "--fleet", "--batch", "0"])
    assert "--batch" in capsys.readouterr().err


def test_the_batch_size_rule():
    settings = DesSettings(batch_target_s=0.5, max_batch=100)
    assert batch_size(20, 0.1, 2, settings) == 5, "half a second of work per task"
    assert batch_size(20, 0.001, 2, settings) == 10, "never fewer tasks than processes"
    assert batch_size(2_000, 0.001, 2, settings) == 100, "capped by max_batch"
    assert batch_size(20, 2.0, 2, settings) == 1, "long replications one per task"
    assert batch_size(20, 0.1, 2, DesSettings(batch_target_s=0.0)) == 1, "0 s turns batching off"
    assert batch_size(1, 0.001, 1, settings) == 1


def test_fleet_settings_refuse_a_bad_batch_setting(tmp_path):
    from simfleet.shared.settings import load_settings

    config = tmp_path / "fleet.yaml"
    config.write_text("des: {max_batch: 0}\n")
    with pytest.raises(ConfigError) as bad:
        load_settings(config, env={})
    assert bad.value.key == "des.max_batch"
