"""The messages of a DES study: what one ``des.run`` task receives, and the progress a replication reports.

A study is published as a Celery chord: one ``des.run`` per replication, each with a :class:`ReplicationRequest`,
and a ``des.aggregate`` callback that receives the replications' summaries
(:class:`~simfleet.shared.messages.des.ReplicationSummary`) and returns the study's aggregate
(:class:`~simfleet.shared.messages.des.StudyAggregate`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from simfleet.shared.messages import Message, WorkId

SEED_MAX = 2**63 - 1
"""The largest study seed: it travels as a signed 64-bit integer (msgpack, Redis, ClickHouse ``Int64``)."""
MAX_REPLICATION_INDEX = 2**31 - 1
"""The largest replication index a study may start from (a study that adds replications to earlier ones starts at
their count, so that every probe of a search uses the same indices: common random numbers)."""
MAX_SCENARIO_BYTES = 16 * 2**20
"""The largest scenario a study message may carry (a scenario is a few kilobytes; this bounds a poisoned one)."""


class ReplicationRequest(Message, frozen=True):
    """One replication of a study.

    Attributes:
        study_id: the study.
        replication: the replication's index (its random streams derive from ``seed`` and this index).
        seed: the study's seed.
        scenario: the scenario document as JSON (the format of docs/scenarios.md), validated by the worker like a
            scenario file, with errors naming the key.
    """

    study_id: WorkId
    replication: Annotated[int, msgspec.Meta(ge=0)]
    seed: Annotated[int, msgspec.Meta(ge=0, le=SEED_MAX)]
    scenario: Annotated[str, msgspec.Meta(max_length=MAX_SCENARIO_BYTES)]


class ReplicationProgress(Message, frozen=True):
    """What a running replication reports (Celery PROGRESS meta).

    Attributes:
        study_id: the study.
        replication: the replication's index.
        sim_time_s: simulated seconds so far.
        horizon_s: the scenario's horizon.
        percent: ``sim_time_s`` over ``horizon_s``.
        events: events handled so far.
        events_per_s: events per wall-clock second.
        in_flight: requests in the system now.
    """

    study_id: WorkId
    replication: int
    sim_time_s: float
    horizon_s: float
    percent: float
    events: int
    events_per_s: float
    in_flight: int


class StudyRecord(Message, frozen=True):
    """What the fleet keeps about a published study (``simfleet study status|list|cancel``).

    Attributes:
        study_id: the study (also the task id of its aggregation).
        scenario: the scenario's name.
        source: where the scenario came from (a file name, or ``<dict>``).
        replications: how many.
        seed: the study's seed.
        priority: its Celery priority class.
        created: when it was published (Unix seconds).
        task_ids: the replications' task ids, in replication order.
        state: ``running`` until an operator cancels it (done and failed are read from the tasks).
        first: the index of its first replication (it runs ``first`` .. ``first + replications - 1``); a search
            that adds replications to a probe publishes the new ones as a study starting where the others end.
    """

    study_id: WorkId
    scenario: str
    source: str
    replications: int
    seed: int
    priority: Literal["high", "normal", "background"]
    created: float
    task_ids: list[str]
    state: Literal["running", "cancelled"] = "running"
    first: Annotated[int, msgspec.Meta(ge=0, le=MAX_REPLICATION_INDEX)] = 0


__all__ = [
    "MAX_REPLICATION_INDEX",
    "MAX_SCENARIO_BYTES",
    "SEED_MAX",
    "ReplicationProgress",
    "ReplicationRequest",
    "StudyRecord",
]
