"""The fleet's Prometheus series, read from Redis at each scrape (a prometheus-client custom collector).

Nothing is kept between scrapes: every figure is read from the fleet's Redis (the broker's queues, the result
backend's records, heartbeats and counters) when Prometheus asks, so one exporter covers any number of workers on any
number of machines, and two exporters give the same answer. Every series is prefixed ``simfleet_``, has its unit in
its name, and has bounded labels: queue names, priorities, states and roles, a worker's name while it beats, and a
job's or study's id only while it runs. What each series means is listed in docs/operations.md ("Metrics").

Priorities: Celery's Redis transport keeps one list per priority step, ``<queue>`` for step 0 and ``<queue>:<step>``
for steps 3, 6 and 9 (kombu's ``_q_for_pri`` with the fleet's ``sep`` of ``:``); a message of priority ``p`` goes
to the highest step not above ``p``. The steps are labelled by the fleet's priority classes: ``high`` (0),
``normal`` (3), ``background`` (6), and ``lowest`` (9, which the fleet never publishes to).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import msgspec
import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from simfleet.shared import counters
from simfleet.shared.celery_app import PRIORITY_STEPS, create_app, priority_list
from simfleet.shared.checkpoints import REFS_KEY, CheckpointRef
from simfleet.shared.heartbeats import HEARTBEAT_PATTERN, HEARTBEAT_PREFIX
from simfleet.shared.jobs import INDEX_KEY as JOBS_INDEX
from simfleet.shared.jobs import JOB_KEY, WORKER_QUEUE_PREFIX, JobRecord, Jobs
from simfleet.shared.messages import decode_json
from simfleet.shared.messages.study import StudyRecord
from simfleet.shared.redis_client import UNAVAILABLE, connect
from simfleet.shared.settings import PRIORITIES, Settings
from simfleet.shared.studies import INDEX_KEY as STUDIES_INDEX
from simfleet.shared.studies import STUDY_KEY, Studies

log = logging.getLogger(__name__)

JOB_STATES = ("queued", "loading", "loaded", "created", "running", "exporting", "done", "failed", "cancelled")
ROLES = ("cpu", "gpu")
PRIORITY_NAMES = {**{step: name for name, step in PRIORITIES.items()}, 9: "lowest"}
"""The label of each priority step."""
FINAL_TASK_STATES = {"SUCCESS", "FAILURE", "REVOKED"}
MiB = 2**20


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _server(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    return (parts.hostname or parts.path, parts.port)


class FleetCollector(Collector):
    """Reads the fleet's state from Redis whenever it is collected.

    Args:
        settings: the fleet's settings (its Redis URLs, queue names, heartbeat TTL, result expiry).
        timeout_s: how long one Redis reply may take; a scrape never waits on a dead Redis past it.
    """

    def __init__(self, settings: Settings, *, timeout_s: float = 5.0) -> None:
        self.settings = settings
        options = {"retry_s": 1.0, "connect_timeout_s": min(2.0, timeout_s), "socket_timeout_s": timeout_s}
        self.broker = connect(settings.broker_url, **options)
        self.results = connect(settings.result_backend, **options)
        self.separate_results = _server(settings.broker_url) != _server(settings.result_backend)
        self.app = create_app(settings, name="simfleet-exporter")  # only to read task results as Celery stores them

    def close(self) -> None:
        """Release the connections."""
        self.broker.close()
        self.results.close()
        self.app.close()

    def collect(self) -> Iterator[Metric]:
        """Every series, read now; only ``simfleet_redis_up`` (0) and the scrape's seconds when Redis cannot answer."""
        started = time.perf_counter()
        up = GaugeMetricFamily("simfleet_redis_up", "Whether the fleet's Redis (broker and result backend) answered "
                               "this scrape (1) or not (0)")  # fmt: skip
        try:
            families = list(self._read())
            up.add_metric([], 1)
        except (*UNAVAILABLE, redis.RedisError) as exc:
            log.warning("scrape without the fleet's Redis: %s", exc)
            families = []
            up.add_metric([], 0)
        yield from families
        yield up
        seconds = GaugeMetricFamily("simfleet_exporter_scrape_seconds", "Time this scrape took to read Redis")
        seconds.add_metric([], time.perf_counter() - started)
        yield seconds

    # ------------------------------------------------------------------------------------------------- reading

    def _read(self) -> Iterable[Metric]:
        nodes = self._heartbeats()
        yield from self._redis_memory()
        yield from self._queues(nodes)
        yield from self._workers(nodes)
        yield from self._jobs(nodes)
        yield from self._studies()
        yield from self._counters()

    def _heartbeats(self) -> dict[str, tuple[dict[str, Any], float]]:
        """Every live node: what its heartbeat says, and the seconds since it last beat."""
        keys = list(self.results.scan_iter(match=HEARTBEAT_PATTERN, count=500))
        with self.results.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
                pipe.pttl(key)
            replies = pipe.execute()
        ttl_s = self.settings.gpu_worker.heartbeat_ttl_s
        nodes: dict[str, tuple[dict[str, Any], float]] = {}
        for key, raw, left_ms in zip(keys, replies[::2], replies[1::2], strict=True):
            if raw is None or left_ms < 0:
                continue
            try:
                info = json.loads(raw)
            except ValueError:
                info = {}
            node = _text(key)[len(HEARTBEAT_PREFIX) : -len(":heartbeat")]
            nodes[node] = (info if isinstance(info, dict) else {}, max(0.0, ttl_s - left_ms / 1000.0))
        return nodes

    def _redis_memory(self) -> Iterable[Metric]:
        used = GaugeMetricFamily("simfleet_redis_used_memory_bytes", "Memory the fleet's Redis uses (INFO "
                                 "used_memory)", labels=["server"])  # fmt: skip
        limit = GaugeMetricFamily("simfleet_redis_maxmemory_bytes", "The fleet's Redis memory limit (INFO maxmemory; "
                                  "0: none, so it grows until the machine runs out)", labels=["server"])  # fmt: skip
        servers = [("broker", self.broker)] + ([("results", self.results)] if self.separate_results else [])
        for name, client in servers:
            info = client.info("memory")
            used.add_metric([name], float(info.get("used_memory", 0)))
            limit.add_metric([name], float(info.get("maxmemory", 0)))
        yield used
        yield limit

    def _queues(self, nodes: dict[str, tuple[dict[str, Any], float]]) -> Iterable[Metric]:
        shared = self.settings.queues.all()
        owned = {q for info, _ in nodes.values() for q in info.get("queues", []) if q.startswith(WORKER_QUEUE_PREFIX)}
        suffixes = tuple(f":{step}" for step in PRIORITY_STEPS if step)
        for key in self.broker.scan_iter(match=f"{WORKER_QUEUE_PREFIX}*", count=500, _type="list"):
            name = _text(key)
            owned.add(name[: name.rindex(":")] if name.endswith(suffixes) else name)
        queues = [(queue, "shared") for queue in shared] + [(queue, "worker") for queue in sorted(owned)]
        with self.broker.pipeline(transaction=False) as pipe:
            for queue, _ in queues:
                for step in PRIORITY_STEPS:
                    pipe.llen(priority_list(queue, step))
            pipe.hlen("unacked")
            lengths = pipe.execute()
        total = GaugeMetricFamily("simfleet_queue_messages", "Messages waiting in a queue, all priorities together "
                                  "(kind: shared, or a worker's own queue of the jobs it owns)",
                                  labels=["queue", "kind"])  # fmt: skip
        by_priority = GaugeMetricFamily("simfleet_queue_messages_by_priority", "Messages waiting in a queue's list of "
                                        "one priority step", labels=["queue", "priority"])  # fmt: skip
        for index, (queue, kind) in enumerate(queues):
            steps = lengths[index * len(PRIORITY_STEPS) : (index + 1) * len(PRIORITY_STEPS)]
            total.add_metric([queue, kind], float(sum(steps)))
            for step, length in zip(PRIORITY_STEPS, steps, strict=True):
                by_priority.add_metric([queue, PRIORITY_NAMES[step]], float(length))
        unacked = GaugeMetricFamily("simfleet_broker_unacked_messages", "Messages workers have taken and not yet "
                                    "acknowledged (running or reserved tasks)")  # fmt: skip
        unacked.add_metric([], float(lengths[-1]))
        yield from (total, by_priority, unacked)

    def _workers(self, nodes: dict[str, tuple[dict[str, Any], float]]) -> Iterable[Metric]:
        live = GaugeMetricFamily("simfleet_workers", "Workers whose heartbeat is alive, by role", labels=["role"])
        roles = Counter(str(info.get("role") or "unknown") for info, _ in nodes.values())
        for role in sorted({*ROLES, *roles}):
            live.add_metric([role], float(roles[role]))
        age = GaugeMetricFamily("simfleet_worker_heartbeat_age_seconds", "Seconds since a live worker last refreshed "
                                "its heartbeat (taken for dead past gpu_worker.heartbeat_ttl_s)",
                                labels=["worker", "role"])  # fmt: skip
        for node, (info, seconds) in sorted(nodes.items()):
            age.add_metric([node, str(info.get("role") or "unknown")], seconds)
        yield from (live, age)

    def _jobs(self, nodes: dict[str, tuple[dict[str, Any], float]]) -> Iterable[Metric]:
        jobs = Jobs(self.results)
        listed = [_text(member) for member in self.results.zrange(JOBS_INDEX, 0, -1)]
        with self.results.pipeline(transaction=False) as pipe:
            for job_id in listed:
                pipe.hget(JOB_KEY.format(job_id), "state")
            states = Counter(_text(state) for state in pipe.execute() if state is not None)
        by_state = GaugeMetricFamily("simfleet_jobs", "Lifecycle jobs whose records are kept (records_expire_s), by "
                                     "state", labels=["state"])  # fmt: skip
        for state in sorted({*JOB_STATES, *states}):
            by_state.add_metric([state], float(states[state]))
        yield by_state
        live = [record for record in jobs.many(jobs.active()) if not record.ended]
        with self.results.pipeline(transaction=False) as pipe:
            for record in live:
                pipe.lindex(REFS_KEY.format(record.job_id), -1)
            latest = pipe.execute()
        yield from _live_jobs(live, latest, nodes)

    def _studies(self) -> Iterable[Metric]:
        studies = Studies(self.results)
        since = time.time() - self.settings.result_expires_s
        listed = [_text(m) for m in self.results.zrangebyscore(STUDIES_INDEX, since, "+inf")]
        raws = self.results.mget([STUDY_KEY.format(study_id) for study_id in listed]) if listed else []
        records = []
        for study_id, raw in zip(listed, raws, strict=True):
            with contextlib.suppress(Exception):
                if raw is not None:
                    records.append(decode_json(StudyRecord, raw, what=f"study {study_id} record"))
        backend = self.app.backend
        with self.results.pipeline(transaction=False) as pipe:
            for record in records:
                pipe.exists(backend.get_key_for_task(record.study_id))
            aggregated = pipe.execute()
        live = [r for r, ended in zip(records, aggregated, strict=True) if not ended and r.state != "cancelled"]
        done = studies.done_counts([record.study_id for record in live])
        running = [r for r in studies.running() if r.request.study_id in {s.study_id for s in live}]
        metas = self.results.mget([backend.get_key_for_task(r.task_id) for r in running]) if running else []
        rates: dict[str, float] = defaultdict(float)
        for replication, meta in zip(running, metas, strict=True):
            rates[replication.request.study_id] += _events_per_s(backend, meta)
        count = GaugeMetricFamily("simfleet_studies_running", "DES studies published and not yet aggregated, failed "
                                  "or cancelled")  # fmt: skip
        count.add_metric([], float(len(live)))
        replications = GaugeMetricFamily("simfleet_study_replications", "Replications of a running study, by state "
                                         "(done, running, waiting)", labels=["study_id", "state"])  # fmt: skip
        events = GaugeMetricFamily("simfleet_study_events_per_second", "Events per wall-clock second of a running "
                                   "study's replications running now, summed", labels=["study_id"])  # fmt: skip
        under_way = Counter(r.request.study_id for r in running)
        for record, finished in zip(live, done, strict=True):
            study = record.study_id
            waiting = max(0, record.replications - finished - under_way[study])
            for state, value in (("done", finished), ("running", under_way[study]), ("waiting", waiting)):
                replications.add_metric([study, state], float(value))
            events.add_metric([study], rates[study])
        yield from (count, replications, events)

    def _counters(self) -> Iterable[Metric]:
        found = counters.read_counters(self.results)

        def counter(name: str, documentation: str, field: str) -> CounterMetricFamily:
            family = CounterMetricFamily(name, documentation)
            family.add_metric([], found.get(field, 0.0))
            return family

        takeovers = CounterMetricFamily("simfleet_takeovers", "Work handed on because its worker died (lifecycle "
                                        "jobs taken from a dead owner; DES replications published again)",
                                        labels=["work"])  # fmt: skip
        takeovers.add_metric(["lifecycle_job"], found.get(counters.TAKEOVER_JOB, 0.0))
        takeovers.add_metric(["des_replication"], found.get(counters.TAKEOVER_REPLICATION, 0.0))
        failures = CounterMetricFamily("simfleet_checkpoint_failures", "Checkpoints that could not be written, or "
                                       "read back (missing, damaged)", labels=["operation"])  # fmt: skip
        for operation in ("write", "read"):
            failures.add_metric([operation], found.get(counters.CHECKPOINT_FAILURE.format(operation), 0.0))
        ended = CounterMetricFamily("simfleet_jobs_ended", "Lifecycle jobs that ended, by final state",
                                    labels=["state"])  # fmt: skip
        for state in ("done", "failed", "cancelled"):
            ended.add_metric([state], found.get(counters.JOBS_ENDED.format(state), 0.0))
        end_to_end = SummaryMetricFamily("simfleet_job_end_to_end_seconds", "Seconds from submission to summary of "
                                         "the lifecycle jobs that finished",
                                         count_value=int(found.get(counters.JOB_END_TO_END_COUNT, 0)),
                                         sum_value=found.get(counters.JOB_END_TO_END_SUM, 0.0))  # fmt: skip
        yield from (takeovers, failures, ended, end_to_end)
        yield counter("simfleet_checkpoints_written", "Checkpoints written by workers", counters.CHECKPOINTS_WRITTEN)
        yield counter("simfleet_checkpoint_written_bytes", "Bytes of the checkpoints written",
                      counters.CHECKPOINT_BYTES)  # fmt: skip
        yield counter("simfleet_checkpoint_write_seconds", "Seconds spent writing checkpoints (encoding, compressing, "
                      "storing)", counters.CHECKPOINT_SECONDS)  # fmt: skip
        yield counter("simfleet_des_replications", "DES replications completed", counters.DES_REPLICATIONS)
        yield counter("simfleet_des_events", "Events simulated by finished DES replications", counters.DES_EVENTS)
        yield counter("simfleet_des_replication_seconds", "Wall-clock seconds of finished DES replications",
                      counters.DES_SECONDS)  # fmt: skip


def _events_per_s(backend: Any, meta: Any) -> float:
    """The events per second a running replication last reported (its PROGRESS meta), or 0."""
    if meta is None:
        return 0.0
    try:
        decoded = backend.decode_result(meta)
        result = decoded.get("result") if decoded.get("status") == "PROGRESS" else None
        return float(result.get("events_per_s", 0.0)) if isinstance(result, dict) else 0.0
    except Exception:  # a foreign or older result: the rate is unknown, the scrape goes on
        return 0.0


def _live_jobs(
    live: list[JobRecord], latest: list[bytes | None], nodes: dict[str, tuple[dict[str, Any], float]]
) -> Iterable[Metric]:
    """The series of each running lifecycle job (label ``job_id``)."""

    def gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, documentation, labels=["job_id", *labels])

    info = gauge("simfleet_job_info", "A running lifecycle job: its state and its owner (empty when none); always 1",
                 ("state", "owner"))  # fmt: skip
    day = gauge("simfleet_job_day", "Days a running job has simulated (its last progress report, or its checkpoints)")
    horizon = gauge("simfleet_job_horizon_days", "A running job's horizon")
    speed = gauge("simfleet_job_days_per_second", "Simulated days per second of the job's last progress report")
    airframes = gauge("simfleet_job_airframes", "Airframes in a running job's fleet (0 until it is loaded)")
    rss = gauge("simfleet_job_process_memory_bytes", "Resident memory of the worker process running the job, at its "
                "last progress report")  # fmt: skip
    device = gauge("simfleet_job_device_memory_bytes", "Device memory the job's backend holds at its last progress "
                   "report (0 on the host backends)")  # fmt: skip
    ckpt_bytes = gauge("simfleet_job_checkpoint_bytes", "Size of the job's newest checkpoint")
    ckpt_seconds = gauge("simfleet_job_checkpoint_seconds", "Seconds the job has spent writing checkpoints so far")
    epoch = gauge("simfleet_job_epoch", "The job's fencing epoch: how often it was taken from a dead owner or "
                  "cancelled")  # fmt: skip
    owner_up = gauge("simfleet_job_owner_up", "Whether the heartbeat of the job's owner is alive (1) or expired (0); "
                     "absent while no worker owns it")  # fmt: skip
    last = gauge("simfleet_job_last_progress_timestamp_seconds", "When the job last moved: submitted, a stage "
                 "ended, or a progress report (Unix seconds)")  # fmt: skip
    for record, newest in zip(live, latest, strict=True):
        labels = [record.job_id]
        progress = record.progress
        info.add_metric([*labels, record.state, record.owner], 1.0)
        day.add_metric(labels, float(max(record.day, progress.day if progress else 0)))
        horizon.add_metric(labels, float(record.days))
        speed.add_metric(labels, progress.days_per_s if progress else 0.0)
        airframes.add_metric(labels, float(record.airframes or (progress.airframes if progress else 0)))
        rss.add_metric(labels, progress.rss_mb * MiB if progress else 0.0)
        device.add_metric(labels, (progress.device_memory_mb or 0.0) * MiB if progress else 0.0)
        size = 0
        if newest is not None:
            with contextlib.suppress(ValueError, TypeError, msgspec.DecodeError):
                size = CheckpointRef.from_json(newest).size
        ckpt_bytes.add_metric(labels, float(size))
        ckpt_seconds.add_metric(labels, record.due.timings_s.get("checkpoint", 0.0) if record.due else 0.0)
        epoch.add_metric(labels, float(record.epoch))
        if record.owner:
            owner_up.add_metric(labels, 1.0 if record.owner in nodes else 0.0)
        last.add_metric(labels, max(record.created, record.updated, record.progressed))
    yield from (info, day, horizon, speed, airframes, rss, device, ckpt_bytes, ckpt_seconds, epoch, owner_up, last)


__all__ = ["FleetCollector"]
