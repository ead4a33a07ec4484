"""The messages of a DES study: what one ``des.run`` task receives, and the progress a replication reports.

A study is published as a Celery chord: one ``des.run`` per batch of replications (one replication, or a contiguous
run of short ones), each with a :class:`ReplicationRequest`, and a ``des.aggregate`` callback that receives the
batches' summaries (:class:`~simfleet.shared.messages.des.ReplicationSummary`, a list per batch) and returns the
study's aggregate (:class:`~simfleet.shared.messages.des.StudyAggregate`).
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
MAX_BATCH = 10_000
"""The most replications one ``des.run`` task may carry (its result holds every one's summary, about 10 kB each)."""
MAX_INDEX = 2**63 - 1
"""The largest replication index a message may name (indices travel as signed 64-bit integers)."""

Engine = Literal["compiled", "python"]
"""Which DES engine runs a replication: the compiled kernel or the Python reference engine. Both give the same
summary for the same scenario, seed and replication (bit for bit, but for wall-clock figures)."""
ENGINES: tuple[Engine, ...] = ("compiled", "python")
DEFAULT_ENGINE: Engine = "compiled"
"""The engine of a study that names none: the compiled kernel (docs/des.md, "The compiled kernel")."""


class ReplicationRequest(Message, frozen=True):
    """A batch of replications of a study: ``replication`` .. ``replication + count - 1``, run one after the other.

    A batch is a contiguous range, so it is never empty and holds no index twice; its last index must fit in a signed
    64-bit integer. Batching short replications saves Celery's per-task cost; it never changes a summary (replication
    ``i`` is the same run in any batch).

    Attributes:
        study_id: the study.
        replication: the index of the batch's first replication (its random streams derive from ``seed`` and the
            index).
        seed: the study's seed.
        scenario: the scenario document as JSON (the format of docs/scenarios.md), validated by the worker like a
            scenario file, with errors naming the key.
        count: how many replications the batch holds, 1 to :data:`MAX_BATCH` (default 1).
        engine: the engine that runs them (:data:`Engine`; default the compiled kernel). It never changes a summary,
            only the time it takes.
    """

    study_id: WorkId
    replication: Annotated[int, msgspec.Meta(ge=0, le=MAX_INDEX)]
    seed: Annotated[int, msgspec.Meta(ge=0, le=SEED_MAX)]
    scenario: Annotated[str, msgspec.Meta(max_length=MAX_SCENARIO_BYTES)]
    count: Annotated[int, msgspec.Meta(ge=1, le=MAX_BATCH)] = 1
    engine: Engine = DEFAULT_ENGINE

    def __post_init__(self) -> None:
        if self.replication > MAX_INDEX - (self.count - 1):
            raise ValueError(f"the batch's last replication index, {self.replication} + {self.count} - 1, is above "
                             f"{MAX_INDEX}")  # fmt: skip

    @property
    def indices(self) -> range:
        """The replication indices of the batch, in the order it runs them."""
        return range(self.replication, self.replication + self.count)


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
        batch: replications per ``des.run`` task (the last task may hold fewer): task ``k`` (id
            ``<study>-<first + k * batch>``) runs ``batch`` replications from that index.
        engine: the DES engine its replications run on.
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
    batch: Annotated[int, msgspec.Meta(ge=1, le=MAX_BATCH)] = 1
    engine: Engine = DEFAULT_ENGINE

    def batches(self) -> list[range]:
        """The replication indices of each task, in task order (``task_ids``'s order)."""
        end = self.first + self.replications
        return [range(start, min(start + self.batch, end)) for start in range(self.first, end, self.batch)]


__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "MAX_BATCH",
    "MAX_INDEX",
    "MAX_REPLICATION_INDEX",
    "MAX_SCENARIO_BYTES",
    "SEED_MAX",
    "Engine",
    "ReplicationProgress",
    "ReplicationRequest",
    "StudyRecord",
]
