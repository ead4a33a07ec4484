"""Every argument of the client API and of the fleet commands is checked before anything is published.

A refused call raises a :class:`ConfigError` whose ``key`` names the argument and whose message says what it accepts
(never a TypeError, a msgspec error or kombu's EncodeError), and leaves the fleet as it was: against a real Redis,
no key appears in the broker or the result backend, and no blob in the checkpoint store.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest

from simfleet.producer.cli import main
from simfleet.producer.fleet.lifecycle import LifecycleJob
from simfleet.producer.fleet.study import Study
from simfleet.shared.errors import ConfigError, ScenarioError
from simfleet.shared.messages.lifecycle import ClickHouseInputs, ClickHouseSink, StoreInputs
from simfleet.shared.messages.study import StudyRecord
from simfleet.worker.des.scenario import Scenario
from simfleet.worker.lifecycle.inputs import write_inputs
from simfleet.worker.lifecycle.synth import synthesize
from tests.fleet.conftest import fleet, fleet_settings, redis_server  # noqa: F401  (real Redis fixtures)

SCENARIO = Path(__file__).resolve().parents[2] / "config" / "scenarios" / "web_search_load_test.yaml"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs") / "inputs"
    write_inputs(synthesize(10, 30, seed=1), folder, "csv")
    return folder


class Untouched:
    """What a refused call must leave as it was: every key in the broker and the result backend, and the store."""

    def __init__(self, server, store: Path) -> None:
        self.dbs = [server.client(0), server.client(1)]
        self.store = store
        self.before = self.snapshot()

    def snapshot(self) -> tuple[list[list[bytes]], list[Path]]:
        keys = [sorted(db.keys("*")) for db in self.dbs]
        blobs = sorted(self.store.rglob("*")) if self.store.exists() else []
        return keys, blobs

    def check(self) -> None:
        assert self.snapshot() == self.before, "a refused call left something in Redis or the store"


def queued(server, queue: str) -> int:
    """Messages waiting in ``queue``, over its priority levels (kombu keeps one list per level)."""
    broker = server.client(0)
    return sum(broker.llen(key) for key in broker.keys(f"{queue}*") if broker.type(key) == b"list")


@pytest.fixture
def untouched(fleet, redis_server, tmp_path):  # noqa: F811
    return Untouched(redis_server, tmp_path / "checkpoints")


LIFECYCLE_REFUSALS = [
    ("days", 0, "must be a whole number from 1 to 65535, got 0"),
    ("days", 65_536, "from 1 to 65535, got 65536"),
    ("days", 1.5, r"got 1.5 \(float\)"),
    ("days", "30", r"got '30' \(str\)"),
    ("days", True, r"got True \(bool\)"),
    ("days", np.int64(0), "got 0"),
    ("chunk_days", 0, "from 1 to 65535"),
    ("chunk_days", 70_000, "from 1 to 65535"),
    ("chunk_days", True, r"\(bool\)"),
    ("chunk_days", 30.0, r"\(float\)"),
    ("chunk_days", None, r"\(NoneType\)"),
    ("persistent", "no", "must be True or False"),
    ("persistent", 1, "must be True or False"),
    ("sink", "s3", "must be one of clickhouse, none, got 's3'"),
    ("sink", 5, "'clickhouse', 'none', a ClickHouseSink or a NoSink"),
    ("sink", ClickHouseSink(batch_rows=0), "batch_rows"),
    ("backend", "turbo", "must be one of numpy, cupy, flamegpu, numba, got 'turbo'"),
    ("backend", 3, "must be one of numpy, cupy, flamegpu, numba"),
    ("log", "some", "must be one of full, aggregates"),
    ("log", None, "must be one of full, aggregates"),
    ("priority", "urgent", "must be one of high, normal, background"),
    ("priority", 0, "must be one of high, normal, background"),
    ("job_id", "../../x", "not a valid id: 1 to 64 characters of A-Z a-z 0-9 . _ -"),
    ("job_id", "", "not a valid id"),
    ("job_id", "a" * 65, "not a valid id"),
    ("job_id", "a b", "not a valid id"),
    ("job_id", "-lead", "not a valid id"),
    ("job_id", 5, r"must be a string \(1 to 64"),
    ("via", "ftp", "must be one of store, clickhouse"),
    ("inputs", 42, "an inputs directory .str or Path., a StoreInputs or a ClickHouseInputs, got int"),
    ("inputs", None, "got NoneType"),
    ("inputs", ClickHouseInputs(version_date=dt.date(2025, 1, 1), version_id=-1), "version_id"),
]


@pytest.mark.parametrize(("option", "value", "message"), LIFECYCLE_REFUSALS,
                         ids=[f"{o}={v!r}"[:40] for o, v, _ in LIFECYCLE_REFUSALS])  # fmt: skip
def test_a_bad_lifecycle_option_is_named_and_nothing_is_published(fleet, untouched, inputs, option, value, message):  # noqa: F811
    arguments = {"inputs": inputs, "days": 30, option: value}
    with pytest.raises(ConfigError, match=message) as refused:
        fleet.run_lifecycle(**arguments)
    assert refused.value.key == option
    untouched.check()


def test_inputs_that_are_not_a_directory_need_days(fleet, untouched):  # noqa: F811
    with pytest.raises(ConfigError, match="days: is required") as refused:
        fleet.run_lifecycle(inputs=StoreInputs(key="k/environment", sha256="0"))
    assert refused.value.key == "days"
    untouched.check()


def test_numpy_integers_are_taken_as_ints_and_the_job_is_published(fleet, redis_server, inputs):  # noqa: F811
    job = fleet.run_lifecycle(inputs=inputs, days=np.int64(30), chunk_days=np.int32(10), persistent=np.bool_(True),
                              job_id="numpy-ints", sink="none")  # fmt: skip
    spec = job.record().spec
    assert (spec.days, spec.chunk_days, spec.persistent) == (30, 10, True)
    assert type(spec.days) is int and type(spec.chunk_days) is int
    assert queued(redis_server, fleet.settings.queues.lifecycle_load) == 1


STUDY_REFUSALS = [
    ("replications", 0, "must be a whole number of at least 1, got 0"),
    ("replications", -2, "of at least 1, got -2"),
    ("replications", 1.5, r"\(float\)"),
    ("replications", True, r"\(bool\)"),
    ("replications", "3", r"\(str\)"),
    ("seed", -1, "must be a whole number from 0 to 9223372036854775807, got -1"),
    ("seed", 2**63, "from 0 to 9223372036854775807"),
    ("seed", np.uint64(2**63), "from 0 to 9223372036854775807"),
    ("seed", 1.0, r"\(float\)"),
    ("seed", "1", r"\(str\)"),
    ("priority", "asap", "must be one of high, normal, background, got 'asap'"),
    ("priority", None, "must be one of high, normal, background"),
    ("scenario", 42, r"a Scenario, a scenario file \(str or Path\) or its plain-data form \(dict\), got int"),
    ("scenario", ["web"], "got list"),
    ("scenario", b"bytes", "got bytes"),
]


@pytest.mark.parametrize(("option", "value", "message"), STUDY_REFUSALS,
                         ids=[f"{o}={v!r}"[:40] for o, v, _ in STUDY_REFUSALS])  # fmt: skip
def test_a_bad_study_option_is_named_and_nothing_is_published(fleet, untouched, option, value, message):  # noqa: F811
    arguments = {"scenario": SCENARIO, "replications": 2, option: value}
    scenario = arguments.pop("scenario")
    with pytest.raises(ConfigError, match=message) as refused:
        fleet.run_des(scenario, **arguments)
    assert refused.value.key == option
    untouched.check()


def test_an_invalid_scenario_is_a_scenario_error_and_nothing_is_published(fleet, untouched, tmp_path):  # noqa: F811
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nhorizon_s: -1\n")
    with pytest.raises(ScenarioError):
        fleet.run_des(bad)
    with pytest.raises(ScenarioError):
        fleet.run_des({"name": "x", "surprise": 1})
    untouched.check()


def test_numpy_replications_and_seed_are_taken_and_the_study_is_published(fleet, redis_server):  # noqa: F811
    study = fleet.run_des(SCENARIO, replications=np.int64(2), seed=np.uint64(2**63 - 1), priority="high")
    record = fleet.study(study.id).record
    assert (record.replications, record.seed) == (2, 2**63 - 1) and type(record.seed) is int
    assert queued(redis_server, fleet.settings.queues.des_run) == 2


@pytest.mark.parametrize("bad_id", ["../../x", "a/b", "", "x" * 65, 7, None])
def test_handles_refuse_an_id_outside_the_rule_before_asking_redis(fleet, untouched, bad_id):  # noqa: F811
    for call, key in ((fleet.job, "job_id"), (fleet.study, "study_id"), (fleet.jobs_exists, "job_id"),
                      (lambda value: LifecycleJob(fleet, value), "job_id")):  # fmt: skip
        with pytest.raises(ConfigError, match=r"valid id|must be a string") as refused:
            call(bad_id)
        assert refused.value.key == key
    untouched.check()


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, "5", True])
def test_waits_refuse_a_timeout_that_is_not_a_finite_number_above_zero(fleet, timeout):  # noqa: F811
    record = StudyRecord(study_id="s1", scenario="s", source="s", replications=1, seed=1, priority="normal",
                         created=0.0, task_ids=["s1-0"])  # fmt: skip
    for wait in (LifecycleJob(fleet, "lc-1").wait, Study(fleet, record).wait, Study(fleet, record).summaries,
                 lambda timeout: fleet.wait_all([], timeout=timeout)):  # fmt: skip
        with pytest.raises(ConfigError, match="a finite number of seconds above 0 or None") as refused:
            wait(timeout=timeout)
        assert refused.value.key == "timeout"


def test_wait_all_names_a_handle_that_is_not_one(fleet):  # noqa: F811
    with pytest.raises(ConfigError, match="LifecycleJob and Study handles") as refused:
        fleet.wait_all(["lc-1"])
    assert refused.value.key == "handles"


def test_listing_limits_and_evaluator_options_are_checked(fleet):  # noqa: F811
    for call, key in ((lambda: fleet.jobs(limit=0), "limit"), (lambda: fleet.studies(limit="10"), "limit"),
                      (lambda: fleet.evaluator(priority="asap"), "priority"),
                      (lambda: fleet.evaluator(timeout_s=0.0), "timeout_s")):  # fmt: skip
        with pytest.raises(ConfigError) as refused:
            call()
        assert refused.value.key == key


def test_sla_search_takes_a_scenario_file_like_run_des_and_checks_its_options(fleet, untouched, monkeypatch):  # noqa: F811
    import simfleet.producer.sla as sla  # the client imports the search when it is called

    seen = {}

    def search(scenario, evaluate, **options):
        seen.update(scenario=scenario, **options)
        return "searched"

    monkeypatch.setattr(sla, "search_sla", search)
    options = {"request_type": "web-search", "metric": "p95", "threshold_s": 1.0}
    assert fleet.sla_search(str(SCENARIO), replications=np.int64(2), seed=np.int64(3), **options) == "searched"
    assert isinstance(seen["scenario"], Scenario) and (seen["replications"], seen["seed"]) == (2, 3)
    assert type(seen["seed"]) is int
    for bad, key in (({"scenario": 42}, "scenario"), ({"priority": "asap"}, "priority"),
                     ({"seed": -1}, "seed"), ({"replications": 0}, "replications"),
                     ({"timeout_s": math.nan}, "timeout_s")):  # fmt: skip
        arguments = {"scenario": SCENARIO, "replications": 2, "seed": 1, **options, **bad}
        with pytest.raises(ConfigError) as refused:
            fleet.sla_search(arguments.pop("scenario"), **arguments)
        assert refused.value.key == key
    untouched.check()


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["lifecycle", "submit", "--fleet", "--inputs", "x", "--timeout", "0"], "--timeout"),
        (["lifecycle", "submit", "--fleet", "--inputs", "x", "--timeout", "nan"], "--timeout"),
        (["lifecycle", "submit", "--fleet", "--inputs", "x", "--days", "0"], "--days"),
        (["lifecycle", "submit", "--fleet", "--inputs", "x", "--days", "65536"], "--days"),
        (["lifecycle", "submit", "--fleet", "--inputs", "x", "--chunk-days", "70000"], "--chunk-days"),
        (["lifecycle", "submit", "--fleet", "--inputs", "x", "--job-id", "../../x"], "--job-id"),
        (["job", "status", "../../x"], "job_id"),
        (["job", "cancel", "a/b"], "job_id"),
        (["job", "delete", ".."], "job_id"),
        (["job", "export", "../x", "--out", "y"], "job_id"),
        (["job", "list", "--limit", "0"], "--limit"),
        (["study", "status", "../x"], "study_id"),
        (["study", "cancel", "a b"], "study_id"),
        (["checkpoint", "show", "../x"], "job_id"),
        (["checkpoint", "verify", "../x"], "job_id"),
        (["checkpoint", "prune", "--older-than", "-5"], "--older-than"),
        (["checkpoint", "prune", "--older-than", "nan"], "--older-than"),
    ],
)
def test_the_command_line_refuses_bad_ids_and_numbers_naming_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as ended:
        main(argv)
    assert ended.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err
