"""The producer's client refuses bad options before it publishes anything (no Redis is reached for these)."""

from __future__ import annotations

import pytest

from simfleet.producer.fleet.client import Fleet
from simfleet.shared.errors import ConfigError
from simfleet.shared.settings import load_settings
from simfleet.worker.lifecycle.inputs import write_inputs
from simfleet.worker.lifecycle.synth import synthesize

UNREACHABLE = {"SIMFLEET_BROKER_URL": "redis://:x@127.0.0.1:1/0", "SIMFLEET_RESULT_BACKEND": "redis://:x@127.0.0.1:1/1"}


@pytest.fixture
def fleet():
    with Fleet(load_settings(env=UNREACHABLE)) as client:
        yield client


@pytest.fixture
def inputs(tmp_path):
    write_inputs(synthesize(10, 30, seed=1), tmp_path / "inputs", "csv")
    return tmp_path / "inputs"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"backend": "turbo"}, r"backend: must be one of numpy, cupy, flamegpu, numba, got 'turbo'"),
        ({"priority": "urgent"}, r"priority: must be one of high, normal, background, got 'urgent'"),
        ({"log": "some"}, r"log: must be one of full, aggregates, got 'some'"),
        ({"chunk_days": 0}, r"chunk_days: must be a whole number from 1 to 65535, got 0"),
        ({"job_id": "../etc"}, r"job_id: '../etc' is not a valid id: 1 to 64 characters"),
    ],
)
def test_options_are_checked_against_their_registries_before_anything_is_published(fleet, inputs, option, message):
    with pytest.raises(ConfigError, match=message) as refused:
        fleet.run_lifecycle(inputs=inputs, **option)
    assert refused.value.key == next(iter(option))


def test_a_study_with_no_replication_or_an_unknown_priority_is_refused(fleet):
    with pytest.raises(ConfigError, match="priority"):
        fleet.run_des("config/scenarios/web_search_load_test.yaml", priority="asap")
    with pytest.raises(ConfigError, match="replications: must be a whole number of at least 1, got 0"):
        fleet.run_des("config/scenarios/web_search_load_test.yaml", replications=0)


def test_an_unreachable_fleet_is_one_error_naming_the_url_without_its_password(fleet, inputs):
    from simfleet.shared.errors import FleetUnavailable

    with pytest.raises(FleetUnavailable) as unreachable:
        fleet.run_lifecycle(inputs=inputs)
    assert unreachable.value.url == "redis://:***@127.0.0.1:1/1" and "x@" not in str(unreachable.value)
