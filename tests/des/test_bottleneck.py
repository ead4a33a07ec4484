"""``des bottleneck``: the resource to add first is measured (one more step, common random numbers), not guessed."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import msgspec
import numpy as np
import pytest

from simfleet.producer.bottleneck import NO_STEP_NOTE, UNSTABLE_NOTE, find_bottlenecks
from simfleet.producer.cli import main
from simfleet.producer.report import json_text
from simfleet.shared.errors import ConfigError
from simfleet.worker.des.runner import run_replications
from simfleet.worker.des.scenario import load_scenario
from tests.des.helpers import one_queue
from tests.fleet.conftest import fleet, fleet_settings, redis_server  # noqa: F401  (real Redis fixtures)

SCENARIO = Path(__file__).resolve().parents[2] / "config" / "scenarios" / "npu_bottleneck.yaml"


def local(scenario, replications, seed, first=0):
    return run_replications(scenario, replications=first + replications, seed=seed, processes=1, first=first)


def refuse_to_run(*_):
    raise AssertionError("a refused call must not run anything")


@pytest.fixture(scope="module")
def npu_study():
    # Calls hold 1 GiB each from admission while they queue for a 2-slot NPU: memory holds most of the waiting.
    scenario = dataclasses.replace(load_scenario(SCENARIO), horizon_s=1_200.0)
    return find_bottlenecks(scenario, local, slas=["deep-research:p95<10", "quick-answer:p95<5"], replications=4)


def test_the_npu_is_the_bottleneck_though_memory_holds_the_waiting(npu_study):
    by_name = {r.name: r for r in npu_study.resources}
    assert npu_study.stable
    assert npu_study.bottleneck is by_name["npu"] and npu_study.resources[0].name == "npu"
    assert npu_study.most_waiting is by_name["memory"]
    assert by_name["memory"].waiting.mean > 2 * by_name["npu"].waiting.mean
    npu_change = by_name["npu"].sensitivities[0].change
    memory = by_name["memory"].sensitivities[0]
    assert npu_change is not None and npu_change.high < 0  # one more slot significantly cuts deep-research's p95
    assert memory.change is not None and (not memory.significant or abs(memory.change.mean) < abs(npu_change.mean))
    assert npu_study.headline().startswith("add npu first: one more step (+1 NPU-s) cuts p95 of deep-research by")
    assert "tools wait mostly at memory" in npu_study.headline()


def test_the_changes_pair_the_same_replications_of_the_base_and_the_step(npu_study):
    base = npu_study.summaries
    assert [(s.replication, s.seed) for s in base] == [(i, 14) for i in range(4)]
    for report in npu_study.resources:
        assert [(s.replication, s.seed) for s in report.summaries] == [(s.replication, s.seed) for s in base]
        for sens in report.sensitivities:
            pairs = zip(report.summaries, base, strict=True)
            differences = [sens.watched.value(o) - sens.watched.value(b) for o, b in pairs]
            assert sens.change is not None
            assert sens.change.mean == pytest.approx(sum(differences) / len(differences))


def test_json_and_csv_name_every_resource_and_term(npu_study):
    data = json.loads(json_text(npu_study.to_dict()))
    assert {r["resource"] for r in data["resources"]} == {"npu", "cpu", "memory"}
    assert [r["rank"] for r in data["resources"]] == [1, 2, 3] and data["resources"][0]["resource"] == "npu"
    assert data["most_waiting_at"] == "memory"
    rows = npu_study.rows()
    assert len(rows) == 3 * 2 and {r["term"] for r in rows} == {"deep-research:p95<10", "quick-answer:p95<5"}


def test_resources_without_a_step_are_listed_with_a_note_and_every_p95_is_watched():
    scenario = one_queue(30, {"dist": "exponential", "mean": 1.0}, horizon_s=600)
    result = find_bottlenecks(scenario, local, replications=2)
    assert [w.text for w in result.watched] == ["r:p95"]
    (cpu,) = result.resources
    assert cpu.note == NO_STEP_NOTE and not cpu.sensitivities and 0.3 < cpu.utilisation.mean < 0.7
    assert result.bottleneck is None and "no resource declares a step" in result.headline()


def test_an_unstable_base_is_said_in_plain_words_and_nothing_is_ranked_on_it():
    scenario = one_queue(90, {"dist": "exponential", "mean": 1.0}, horizon_s=300, step=1)
    result = find_bottlenecks(scenario, local, replications=2)
    assert not result.stable and result.bottleneck is None
    assert "unstable" in result.headline() and "des capacity" in result.headline()
    data = json.loads(json_text(result.to_dict()))
    assert data["base"][0]["mean"] is None and data["resources"][0]["sensitivities"] == []


def test_a_step_whose_run_is_unstable_reports_its_changes_as_unstable():
    scenario = one_queue(30, {"dist": "exponential", "mean": 1.0}, horizon_s=300, step=1)

    def stepped_unstable(probe, replications, seed, first=0):
        summaries = local(probe, replications, seed, first)
        if probe.resources["cpu"].capacity > 1:
            return [msgspec.structs.replace(s, stable=False, unstable_reason="forced") for s in summaries]
        return summaries

    result = find_bottlenecks(scenario, stepped_unstable, replications=2)
    (cpu,) = result.resources
    assert cpu.stable_with_step is False and cpu.note == UNSTABLE_NOTE
    assert cpu.sensitivities[0].change is None and not math.isfinite(cpu.sensitivities[0].changed.mean)
    assert json.loads(json_text(result.to_dict()))["resources"][0]["sensitivities"][0]["change_s"] is None
    assert "unstable" in result.table()


@pytest.mark.parametrize(
    ("options", "key", "named"),
    [({"slas": ["nope:p95<3"]}, "slas", "unknown request type 'nope'"),
     ({"slas": ["deep-research:p90<3"]}, "slas", "unknown metric 'p90'"),
     ({"slas": "deep-research:p95<3"}, "slas", "a list of SLA terms"),
     ({"replications": 1}, "replications", "from 2"), ({"seed": -1}, "seed", "from 0")],
)  # fmt: skip
def test_bad_arguments_are_refused_by_name_before_anything_runs(options, key, named):
    with pytest.raises(ConfigError, match=named) as refused:
        find_bottlenecks(load_scenario(SCENARIO), refuse_to_run, **options)
    assert refused.value.key.startswith(key)


def test_the_command_prints_json_with_every_resource_and_writes_three_files(tmp_path, capsys):
    out = tmp_path / "bottleneck"
    argv = ["des", "bottleneck", str(SCENARIO), "--replications", "2", "--processes", "1", "--json", "--out", str(out)]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["resource"] for r in data["resources"]} == {"npu", "cpu", "memory"}
    assert [w["text"] for w in data["watched"]] == ["deep-research:p95", "quick-answer:p95"]
    assert sorted(p.name for p in out.iterdir()) == ["bottleneck.csv", "bottleneck.json", "sensitivity.png"]
    assert (out / "sensitivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["--sla", "nope:p95<3"], "--sla nope:p95<3: unknown request type 'nope'"),
     (["--sla", "deep-research:p90<3"], "--sla deep-research:p90<3: unknown metric 'p90'"),
     (["--replications", "1"], "argument --replications: must be between 2")],
)  # fmt: skip
def test_the_command_names_the_bad_flag(argv, named, capsys, tmp_path):
    try:
        code = main(["des", "bottleneck", str(SCENARIO), "--out", str(tmp_path / "out"), *argv])
    except SystemExit as stopped:  # argparse's own refusals
        code = stopped.code
    assert code == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_fleet_api_checks_its_arguments_before_publishing(fleet, redis_server, monkeypatch):  # noqa: F811
    before = [sorted(redis_server.client(db).keys("*")) for db in (0, 1)]
    for bad, key in (({"replications": 1}, "replications"), ({"slas": ["nope:p95<3"]}, "slas"),
                     ({"priority": "asap"}, "priority"), ({"timeout_s": 0.0}, "timeout_s"),
                     ({"seed": 2**64}, "seed")):  # fmt: skip
        with pytest.raises(ConfigError) as refused:
            fleet.bottlenecks(str(SCENARIO), **bad)
        assert refused.value.key.startswith(key)
    assert [sorted(redis_server.client(db).keys("*")) for db in (0, 1)] == before
    # A scenario file and numpy integers are taken as run_des takes them (the runs themselves: the local pool here).
    monkeypatch.setattr(fleet, "evaluator", lambda priority, timeout_s, **_: local)
    result = fleet.bottlenecks(str(SCENARIO), slas=["deep-research:p95<10"], replications=np.int64(2), seed=np.int64(3))
    assert (result.replications, result.seed) == (2, 3) and type(result.seed) is int
    assert {r.name for r in result.resources} == {"npu", "cpu", "memory"}
