"""The figures of a DES replication and the aggregate of a study, as declared messages.

A replication's :class:`ReplicationSummary` is what ``des.run`` returns and what the local runner collects; a study's
:class:`StudyAggregate` is what ``des.aggregate`` (and the local runner) makes of the summaries. Both cross the
broker as plain data (:func:`~simfleet.shared.messages.to_wire`) and are read back with
:func:`~simfleet.shared.messages.decode`; their plain form is also the JSON that ``simfleet des`` prints.

Units are in the field names (``_s`` seconds, ``_per_min`` per minute of the measurement window). Only requests
arriving in [warmup, horizon) are counted. A latency figure is ``None`` when nothing completed; a figure divided by
the length of the measurement window is NaN when that window is empty (a replication summarised before it
started), so those are plain floats that may be NaN. The statistics of a study (:class:`Stat`) leave NaN out.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from simfleet.shared.messages import Message

Count = Annotated[int, msgspec.Meta(ge=0)]
"""A number of things (requests, events, replications): never negative."""

LATENCY_FIGURES = (
    "arrived", "completed", "unfinished", "mean_s", "p50_s", "p95_s", "p99_s", "max_s", "throughput_per_min",
    "failed", "timed_out", "success_ratio", "goodput_per_min",
)  # fmt: skip
"""The scalar latency figures, in order; :class:`LatencyFigures` and :class:`LatencyAggregate` have a field of each."""

FINISHED_FIGURES = ("finished", "mean_s", "p50_s", "p95_s", "p99_s", "max_s")
"""The figures over every finished request (successful or not), in order (:class:`FinishedFigures`)."""

NODE_FIGURES = ("attempts", "failed", "timed_out", "fallbacks", "skipped", "branch_skipped")
"""What a replication counts per node of a request type (:class:`NodeFigures`)."""

# ``frozen=True`` is inherited from Message at run time; each class repeats it because mypy's reading of msgspec's
# dataclass_transform takes a subclass without it for a non-frozen dataclass of a frozen one (an error).


class SketchData(Message, frozen=True):
    """A DDSketch of latencies as plain data: its non-empty buckets and the exact count, sum, min and max.

    ``keys`` and ``counts`` are parallel lists of bucket keys and their counts; ``min`` and ``max`` are ``None`` when
    the sketch is empty. Merging two sketches adds their bucket counts, so the quantiles of many replications come
    out as if they were one run.
    """

    relative_accuracy: float
    keys: list[int]
    counts: list[float]
    zero_count: float
    count: Count
    sum: float
    min: float | None
    max: float | None


class FinishedFigures(Message, frozen=True):
    """Latency over every finished request of a type, successful or not (a failed request finishes when it fails).

    The figures are ``None`` when nothing finished.
    """

    finished: Count
    mean_s: float | None
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    max_s: float | None


class LatencyFigures(Message, frozen=True):
    """Latency figures of one request type (or of all) in one replication.

    Every count is of counted requests (arriving in [warmup, horizon)), and
    ``completed + failed + timed_out + unfinished == arrived``.

    Attributes:
        arrived: counted arrivals.
        completed: counted requests that finished successfully.
        unfinished: counted requests still in flight when the run stopped.
        mean_s: mean latency of the successful requests; this and the quantiles and ``max_s`` are ``None`` when
            nothing completed.
        throughput_per_min: successful completions per minute of the measurement window (0 when it is empty).
        sketch: the mergeable sketch of the successful requests' latencies.
        failed: counted requests that failed (a node's last attempt failed and its ``on_failure`` is ``fail``).
        timed_out: counted requests that failed because a node's last attempt timed out.
        success_ratio: ``completed / (completed + failed + timed_out)``; ``None`` when none finished.
        goodput_per_min: successful completions per minute of the window (equal to ``throughput_per_min``; named
            for the model with failures, where finished requests are not all good ones).
        all_finished: latency over every finished request, failed ones included (:class:`FinishedFigures`).
    """

    arrived: Count
    completed: Count
    unfinished: Count
    mean_s: float | None
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    max_s: float | None
    throughput_per_min: float
    sketch: SketchData
    failed: Count = 0
    timed_out: Count = 0
    success_ratio: float | None = None
    goodput_per_min: float = 0.0
    all_finished: FinishedFigures | None = None

    def figure(self, name: str) -> float | None:
        """The latency figure called ``name`` (one of :data:`LATENCY_FIGURES`)."""
        if name not in LATENCY_FIGURES:
            raise KeyError(name)
        value: float | None = getattr(self, name)
        return value


class RateResourceFigures(Message, frozen=True, tag_field="kind", tag="rate"):
    """A rate resource (processor sharing of a capacity) over the measurement window.

    Attributes:
        capacity: the resource's capacity (work units per second).
        offered_load: the utilisation the scenario's rates would give (λ·E[work] / capacity).
        utilisation: measured busy share of the capacity.
        mean_consumers, max_consumers: tools being served at once.
        mean_waiting, max_waiting: tools queued for a service slot.
        wasted_work_per_s: work units per second of the window done by attempts that then failed, timed out or were
            cancelled with their failed request (0 without failures).
    """

    capacity: float
    offered_load: float
    utilisation: float
    mean_consumers: float
    max_consumers: Count
    mean_waiting: float
    max_waiting: Count
    wasted_work_per_s: float = 0.0

    @property
    def kind(self) -> str:
        """``rate`` (the message's tag)."""
        return "rate"

    @property
    def mean_busy(self) -> float:
        """Mean use of the resource: tools being served (``mean_consumers``)."""
        return self.mean_consumers

    @property
    def max_busy(self) -> float:
        """Most use of the resource: tools being served (``max_consumers``)."""
        return self.max_consumers


class SpaceResourceFigures(Message, frozen=True, tag_field="kind", tag="space"):
    """A space resource (held while a tool runs) over the measurement window.

    Attributes:
        capacity: the space there is.
        utilisation: measured share of the space in use.
        mean_in_use, max_in_use: space in use.
        mean_waiting, max_waiting: tools queued for space.
    """

    capacity: float
    utilisation: float
    mean_in_use: float
    max_in_use: float
    mean_waiting: float
    max_waiting: Count

    @property
    def kind(self) -> str:
        """``space`` (the message's tag)."""
        return "space"

    @property
    def mean_busy(self) -> float:
        """Mean use of the resource: space in use (``mean_in_use``)."""
        return self.mean_in_use

    @property
    def max_busy(self) -> float:
        """Most use of the resource: space in use (``max_in_use``)."""
        return self.max_in_use


ResourceFigures = RateResourceFigures | SpaceResourceFigures
"""A resource's figures, told apart on the wire by their ``kind`` field; both have ``mean_busy`` and ``max_busy``."""


class NodeFigures(Message, frozen=True):
    """What happened at one node of a request type, over its counted requests.

    Attributes:
        attempts: attempts started (retries and fallback runs included).
        failed: attempts that failed at their completion (``fail_prob``).
        timed_out: attempts cancelled by their ``timeout_s``.
        fallbacks: times the node ran its fallback template.
        skipped: times the node counted as done after its last attempt failed (``on_failure: skip``).
        branch_skipped: times the node did not run at all (its ``prob`` draw said no).
    """

    attempts: Count = 0
    failed: Count = 0
    timed_out: Count = 0
    fallbacks: Count = 0
    skipped: Count = 0
    branch_skipped: Count = 0


class LittleFigures(Message, frozen=True):
    """Little's law over the measurement window: L (``mean_in_system``) against λ·W (``lambda_w``)."""

    mean_in_system: float
    arrival_rate_per_s: float
    mean_latency_s: float
    lambda_w: float


class ReplicationSummary(Message, frozen=True):
    """The figures of one replication.

    All but ``wall_s`` and ``events_per_s`` are a pure function of (scenario, seed, replication).

    Attributes:
        stable: false when the run was stopped as unstable; ``unstable_reason`` says why.
        stopped_at_horizon: the run reached its horizon (rather than running out of work).
        in_flight: requests in the system when the run stopped (0 after a drain).
        in_system_at_window_end: requests in the system when the measurement window closed (at the horizon, or
            earlier when the run was stopped): set against ``little.mean_in_system``, it tells a run whose backlog
            kept growing from one in a steady state, drained or not.
        end_time_s: simulated time when the run stopped.
        window_s: length of the measurement window [warmup, end].
        types: latency figures per request type, in scenario order; ``overall`` over every type.
        resources: figures per resource, in scenario order (rate resources first).
        events: events processed; ``wall_s`` the time they took, ``events_per_s`` their rate.
        nodes: per request type and node (``VARIANT/NODE`` for a type with variants), what its attempts did.
    """

    scenario: str
    seed: int
    replication: Count
    stable: bool
    unstable_reason: str | None
    stopped_at_horizon: bool
    in_flight: Count
    end_time_s: float
    window_s: float
    types: dict[str, LatencyFigures]
    overall: LatencyFigures
    resources: dict[str, ResourceFigures]
    little: LittleFigures
    events: Count
    wall_s: float
    events_per_s: float
    in_system_at_window_end: Count = 0
    nodes: dict[str, dict[str, NodeFigures]] = msgspec.field(default_factory=dict)


class Stat(Message, frozen=True):
    """A figure over the replications: mean, sample standard deviation, 95% Student-t half-width, count.

    ``n`` is the number of replications that had a value (not ``None``, not NaN). ``mean`` needs one value, ``std``
    and ``ci95`` two; each is ``None`` without them.
    """

    mean: float | None
    std: float | None
    ci95: float | None
    n: Count


class MergedLatency(Message, frozen=True):
    """Latency figures of the merged sketch, as if all replications were one run (``None`` when nothing completed)."""

    completed: Count
    mean_s: float | None
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    max_s: float | None


class LatencyAggregate(Message, frozen=True):
    """A request type's (or all types') latency figures over the replications, their merged sketch and its figures."""

    arrived: Stat
    completed: Stat
    unfinished: Stat
    mean_s: Stat
    p50_s: Stat
    p95_s: Stat
    p99_s: Stat
    max_s: Stat
    throughput_per_min: Stat
    merged: MergedLatency
    sketch: SketchData
    failed: Stat = Stat(mean=None, std=None, ci95=None, n=0)
    timed_out: Stat = Stat(mean=None, std=None, ci95=None, n=0)
    success_ratio: Stat = Stat(mean=None, std=None, ci95=None, n=0)
    goodput_per_min: Stat = Stat(mean=None, std=None, ci95=None, n=0)
    all_finished: dict[str, Stat] = msgspec.field(default_factory=dict)

    def figure(self, name: str) -> Stat:
        """The statistics of the latency figure called ``name`` (one of :data:`LATENCY_FIGURES`)."""
        if name not in LATENCY_FIGURES:
            raise KeyError(name)
        stat: Stat = getattr(self, name)
        return stat


class LittleAggregate(Message, frozen=True):
    """Little's law figures over the replications."""

    mean_in_system: Stat
    arrival_rate_per_s: Stat
    mean_latency_s: Stat
    lambda_w: Stat


class RunAggregate(Message, frozen=True):
    """How the replications ran: events, wall-clock time and speed, in flight at the end, end time."""

    events: Stat
    wall_s: Stat
    events_per_s: Stat
    in_flight: Stat
    end_time_s: Stat


class StudyAggregate(Message, frozen=True, omit_defaults=True):
    """The answer of a study: every figure of its replications as a :class:`Stat`.

    Attributes:
        seed: the study seed; replication ``i`` ran with (seed, i).
        replications: how many were aggregated.
        stable: every replication was stable; ``unstable_replications`` counts those that were not and
            ``unstable_reasons`` lists their distinct reasons, sorted.
        resources: per resource, each figure of its kind (``capacity``, ``utilisation``, ...) by name.
        study_id: the fleet's study id (set by the fleet's aggregation; empty, and left off the wire, for a local run).
        nodes: per request type and node, each :class:`NodeFigures` figure and ``attempts_per_request`` (attempts
            over counted arrivals) as a :class:`Stat`.
    """

    scenario: str
    seed: int
    replications: Count
    stable: bool
    unstable_replications: Count
    unstable_reasons: list[str]
    types: dict[str, LatencyAggregate]
    overall: LatencyAggregate
    resources: dict[str, dict[str, Stat]]
    little: LittleAggregate
    run: RunAggregate
    study_id: str = ""
    nodes: dict[str, dict[str, dict[str, Stat]]] = msgspec.field(default_factory=dict)
