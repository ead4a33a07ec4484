import math

import msgspec
import pytest

from simfleet.shared.errors import MessageError
from simfleet.shared.messages import decode, to_wire
from simfleet.shared.messages.des import (
    RateResourceFigures,
    ReplicationSummary,
    SpaceResourceFigures,
    StudyAggregate,
)
from simfleet.worker.des.aggregate import aggregate
from simfleet.worker.des.engine import Simulation, run_replication

from .helpers import fork_join


def over_msgpack(message, kind):
    """What the broker does to a message: plain data, msgpack bytes, plain data again, then the validating read."""
    return decode(kind, msgspec.msgpack.decode(msgspec.msgpack.encode(to_wire(message))))


@pytest.fixture(scope="module")
def summaries():
    return [run_replication(fork_join(horizon_s=800), seed=3, replication=i) for i in range(3)]


def test_a_summary_survives_a_msgpack_round_trip(summaries):
    summary = summaries[0]
    again = over_msgpack(summary, ReplicationSummary)
    assert again == summary
    assert isinstance(again.resources["cpu"], RateResourceFigures)
    assert isinstance(again.resources["mem"], SpaceResourceFigures)
    assert list(again.resources) == list(summary.resources)


def test_an_aggregate_survives_a_msgpack_round_trip_and_aggregates_alike(summaries):
    agg = aggregate(summaries)
    assert over_msgpack(agg, StudyAggregate) == agg
    assert aggregate(over_msgpack(s, ReplicationSummary) for s in summaries) == agg
    fleet = msgspec.structs.replace(agg, study_id="study-1")
    assert over_msgpack(fleet, StudyAggregate).study_id == "study-1"


def test_the_plain_form_keeps_the_summary_layout(summaries):
    wire = to_wire(summaries[0])
    assert list(wire)[:3] == ["scenario", "seed", "replication"]
    assert wire["resources"]["cpu"]["kind"] == "rate" and wire["resources"]["mem"]["kind"] == "space"
    assert list(wire["resources"]["mem"]) == [
        "kind", "capacity", "utilisation", "mean_in_use", "max_in_use", "mean_waiting", "max_waiting"
    ]  # fmt: skip
    assert set(wire["overall"]["sketch"]) == {
        "relative_accuracy", "keys", "counts", "zero_count", "count", "sum", "min", "max"
    }  # fmt: skip
    # A local study has no study id, and none appears on the wire; a fleet's does.
    assert "study_id" not in to_wire(aggregate(summaries))


def test_an_empty_window_keeps_its_nan_figures_through_msgpack():
    summary = Simulation(fork_join(), 1, 0).summary()
    again = over_msgpack(summary, ReplicationSummary)
    assert math.isnan(again.resources["cpu"].utilisation) and math.isnan(again.little.mean_latency_s)
    assert again.overall.mean_s is None and again.overall.sketch.min is None


def broken(summaries, path, value):
    """The plain form of a summary with the value at ``path`` (keys) replaced."""
    wire = to_wire(summaries[0])
    node = wire
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return wire


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("events",), "many", "$.events"),
        (("replication",), -1, "$.replication"),
        (("overall", "p95_s"), "slow", "$.overall.p95_s"),
        (("types", "r", "sketch", "keys"), [1.5], "$.types[...].sketch.keys[0]"),
        (("resources", "cpu", "max_consumers"), 1.5, "$.resources[...].max_consumers"),
        (("resources", "mem", "kind"), "disk", "$.resources[...].kind"),
    ],
)
def test_a_field_of_the_wrong_type_is_refused_naming_its_path(summaries, path, value, where):
    with pytest.raises(MessageError) as caught:
        decode(ReplicationSummary, broken(summaries, path, value))
    assert caught.value.what == "ReplicationSummary"
    assert caught.value.path == where
    assert where in str(caught.value)


def test_an_unknown_or_missing_field_is_refused_naming_it(summaries):
    with pytest.raises(MessageError, match="unknown field `colour`"):
        decode(ReplicationSummary, {**to_wire(summaries[0]), "colour": "red"})
    with pytest.raises(MessageError) as caught:
        decode(ReplicationSummary, broken(summaries, ("little", "colour"), "red"))
    assert "unknown field `colour`" in caught.value.reason and caught.value.path == "$.little"
    wire = to_wire(summaries[0])
    del wire["overall"]["sketch"]["count"]
    with pytest.raises(MessageError) as caught:
        decode(ReplicationSummary, wire)
    assert "missing required field `count`" in caught.value.reason and caught.value.path == "$.overall.sketch"


def test_an_aggregate_with_a_malformed_stat_is_refused(summaries):
    wire = to_wire(aggregate(summaries))
    wire["resources"]["cpu"]["utilisation"]["n"] = "four"
    with pytest.raises(MessageError) as caught:
        decode(StudyAggregate, wire)
    assert caught.value.what == "StudyAggregate" and caught.value.path == "$.resources[...][...].n"
