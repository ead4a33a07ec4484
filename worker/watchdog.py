"""Liveness of workers: the heartbeat thread, and the watchdog that hands a dead worker's work to the fleet.

Every worker's main process refreshes its heartbeat (:mod:`simfleet.shared.heartbeats`) from a thread; a pool
process can die and be replaced without the node being taken for dead. When the whole worker dies its key expires,
and the watchdog (a thread in every worker, one sweep at a time fleet-wide under a Redis lock, or ``simfleet
watchdog``) then:

1. for each lifecycle job it owned: bumps the job's epoch and clears its owner (fencing: the old owner, if only cut
   off, can no longer write), and publishes the job's due stage again, from the job's record, to the stage's shared
   queue with the new epoch; any copy of an older message still about (in the dead worker's queue, or taken and not
   acknowledged) carries the old epoch and is refused when it arrives;
2. deletes the dead worker's own queue through kombu's API (everything in it is superseded);
3. publishes again the DES tasks (a replication, or a batch of them) it had started and not finished, with their task
   ids and chord membership, so a study does not wait for the broker's visibility timeout (the first copy to finish
   is the one counted; a batch's copy runs only the replications the dead worker had not recorded).

It also publishes the due stage of a job that has no owner and whose due message was never published (a producer
or a watchdog that died between recording and publishing), once the record has been still for ``grace_s``; and a due
stage whose message was lost in flight (Redis died as a worker took it: kombu removes a message from its list before
it records it as taken), seen on two sweeps as published, not started, in no queue and held by no worker. It never
edits the broker's private structures: recovery is always a new publication from the records. Jobs taken and
replications published again are counted as takeovers (:mod:`simfleet.shared.counters`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from celery import Celery
from kombu.entity import Exchange, Queue
from kombu.exceptions import ChannelError

from simfleet.shared.celery_app import DES_RUN, STAGE_TASKS, create_app, publish_stage, stage_queues, stage_task_id
from simfleet.shared.checkpoints import Checkpoints
from simfleet.shared.counters import COUNTERS_KEY, TAKEOVER_REPLICATION
from simfleet.shared.heartbeats import Heartbeats
from simfleet.shared.jobs import WATCHDOG_LOCK, JobRecord, Jobs
from simfleet.shared.messages import to_wire
from simfleet.shared.messages.lifecycle import StageMessage
from simfleet.shared.redis_client import BACKOFF_CAP_S, UNAVAILABLE, connect
from simfleet.shared.settings import Settings
from simfleet.shared.studies import Studies

log = logging.getLogger(__name__)
RETENTION_EVERY_S = 3600.0
"""How often a watchdog looks for ended jobs whose checkpoints are past their retention."""


@dataclass
class Handover:
    """What one sweep did about one silent worker (or about unpublished due stages, with ``owner`` empty).

    ``replications`` lists the ``des.run`` tasks published again (by task id); ``replication_count`` the
    replications they carry (a batch counts each of its replications).
    """

    owner: str
    jobs: dict[str, int] = field(default_factory=dict)
    republished: int = 0
    queue_deleted: int = 0
    replications: list[str] = field(default_factory=list)
    replication_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "owner": self.owner,
            "jobs": self.jobs,
            "republished": self.republished,
            "queue_deleted": self.queue_deleted,
            "replications": self.replications,
            "replication_count": self.replication_count,
        }


class Watchdog:
    """Finds work whose worker stopped beating and hands it to the rest of the fleet.

    Args:
        settings: the fleet's settings.
        app: the Celery app to publish with (default: one built from ``settings``).
        grace_s: how long an unowned job's due message may stay unpublished before the watchdog publishes it.
    """

    def __init__(self, settings: Settings, app: Celery | None = None, *, grace_s: float | None = None) -> None:
        self.settings = settings
        self.client = connect(settings.result_backend, retry_s=settings.redis_retry_s)
        self.jobs = Jobs(self.client, expires_s=settings.records_expire_s)
        self.heartbeats = Heartbeats(self.client)
        self.studies = Studies(self.client, expires_s=settings.records_expire_s)
        self.app = app or create_app(settings, name="simfleet-watchdog")
        self._own_app = app is None
        self.shared = stage_queues(settings)
        self.grace_s = 2 * settings.gpu_worker.heartbeat_ttl_s if grace_s is None else grace_s
        self._last_retention = 0.0
        self._quiet_until = 0.0
        self._was_down = False
        self._suspects: dict[tuple[str, int, int], float] = {}

    def close(self) -> None:
        """Release connections."""
        self.client.close()
        if self._own_app:
            self.app.close()

    # ------------------------------------------------------------------------------------------------- sweeps

    def sweep(self) -> list[Handover]:
        """One look at every active job and every running replication; nothing if another sweep holds the lock.

        After Redis was unreachable, the watchdog takes no work from silent workers for a heartbeat TTL and two beats:
        every heartbeat may have expired during the outage, and live workers need to beat again (their clients back
        off a little) to show they are alive. Lost stages are looked for at once: that needs no heartbeat.
        """
        started = time.monotonic()
        try:
            self.client.ping()
        except UNAVAILABLE:
            self._was_down = True
            raise
        gpu = self.settings.gpu_worker
        # A ping that kept retrying this long means Redis was away long enough for a live worker's heartbeat to
        # expire (it had missed two beats' slack of its TTL); a merely slow ping (a busy machine) does not.
        outage_s = max(gpu.heartbeat_interval_s, gpu.heartbeat_ttl_s - 2 * gpu.heartbeat_interval_s)
        if self._was_down or time.monotonic() - started > outage_s:
            self._was_down = False
            self._quiet_until = time.monotonic() + gpu.heartbeat_ttl_s + 2 * gpu.heartbeat_interval_s + BACKOFF_CAP_S
        quiet = time.monotonic() < self._quiet_until
        # The lock lives as long as a heartbeat: a worker killed mid-sweep holds it no longer than its own silence
        # takes to be noticed (with 60 s, every takeover of the fleet waited up to a minute behind a dead sweeper).
        lock = self.client.lock(WATCHDOG_LOCK, timeout=max(gpu.heartbeat_ttl_s, 2 * gpu.watchdog_interval_s))
        if not lock.acquire(blocking=False):
            return []
        try:
            handovers: dict[str, Handover] = {}
            records = [r for r in map(self.jobs.get, self.jobs.active()) if r is not None and not r.ended]
            acted = self._sweep_jobs(records, handovers) if not quiet else set()
            self._sweep_lost_stages([r for r in records if r.job_id not in acted], handovers)
            if not quiet:
                self._sweep_replications(handovers)
            if time.monotonic() - self._last_retention > RETENTION_EVERY_S:
                self._last_retention = time.monotonic()
                self.expire_checkpoints()
            for handover in handovers.values():
                log.warning(
                    "worker %s is silent: jobs %s released (new epochs %s), %d stage(s) published again, its queue "
                    "deleted (%d message(s)), %d replication(s) published again",
                    handover.owner or "-", ", ".join(handover.jobs) or "-", handover.jobs, handover.republished,
                    handover.queue_deleted, handover.replication_count,
                )  # fmt: skip
            return list(handovers.values())
        finally:
            lock.release()

    def _sweep_jobs(self, records: list[JobRecord], handovers: dict[str, Handover]) -> set[str]:
        """Hand on the jobs of silent owners and publish unpublished due stages; return the jobs it acted on."""
        dead_queues: dict[str, str] = {}
        acted = set()
        for seen in records:
            record: JobRecord | None = seen
            released = False
            if seen.owner:
                if self.heartbeats.alive(seen.owner):
                    continue
                epoch = self.jobs.release(seen.job_id, seen.owner)
                if epoch < 0:
                    continue
                handovers.setdefault(seen.owner, Handover(seen.owner)).jobs[seen.job_id] = epoch
                dead_queues[seen.owner] = seen.owner_queue
                acted.add(seen.job_id)
                released = True
                record = self.jobs.get(seen.job_id)
            if record is None or record.owner or record.due_sent or record.due is None:
                continue
            if not released and time.time() - record.updated < self.grace_s:
                continue
            self.publish_due(record.due, record.epoch, record.spec.priority)
            self.jobs.mark_sent(record.job_id, record.epoch, record.seq)
            acted.add(record.job_id)
            owner = seen.owner if released else ""
            handovers.setdefault(owner, Handover(owner)).republished += 1
        for owner, queue in dead_queues.items():
            if queue:
                handovers[owner].queue_deleted = self.delete_queue(queue)
        return acted

    def _sweep_lost_stages(self, records: list[JobRecord], handovers: dict[str, Handover]) -> None:
        """Publish again a due stage that was published, never started, and is in no queue and no worker's hands."""
        now = time.time()
        suspects: dict[tuple[str, int, int], float] = {}
        targets: dict[tuple[str, int, int], tuple[StageMessage, str, str]] = {}
        for record in records:
            job_id = record.job_id
            if record.due is None or not record.due_sent or record.due_started:
                continue
            if now - record.updated < self.grace_s:
                continue
            queue = record.owner_queue or self.shared[STAGE_TASKS[record.due.stage]]
            if self.queue_size(queue):
                continue
            key = (job_id, record.epoch, record.seq)
            suspects[key] = self._suspects.get(key, now)
            targets[key] = (record.due, queue, record.spec.priority)
        self._suspects = suspects
        interval = self.settings.gpu_worker.watchdog_interval_s
        confirmed = [key for key, since in suspects.items() if now - since >= interval]
        if not confirmed:
            return
        held = self.held_task_ids()
        for key in confirmed:
            due, queue, priority = targets[key]
            message = msgspec.structs.replace(due, epoch=key[1])
            if stage_task_id(message) in held or self.jobs.get(key[0]) is None:
                continue
            publish_stage(self.app, message, queue, priority)
            del self._suspects[key]
            log.warning("job %s: stage %d (%s) was published but is in no queue and no worker's hands (lost in "
                        "flight when the broker's connection dropped); published again to %s", key[0], key[2],
                        message.stage, queue)  # fmt: skip
            handovers.setdefault("", Handover("")).republished += 1

    def queue_size(self, queue: str) -> int:
        """Messages waiting in ``queue`` (all its priority levels), through kombu's passive declare.

        On Redis an empty queue has no list at all, which a passive declare reports as not found: that is 0.
        """
        with self.app.connection_for_write() as connection:
            declared = Queue(queue, Exchange(queue, type="direct"), routing_key=queue).bind(connection.default_channel)
            try:
                return int(declared.queue_declare(passive=True).message_count)
            except ChannelError:
                return 0

    def held_task_ids(self) -> set[str]:
        """Task ids the live workers are running or hold reserved (Celery's remote control)."""
        live = len(self.heartbeats.nodes())
        inspect = self.app.control.inspect(timeout=1.0, limit=live or None)
        held: set[str] = set()
        for replies in (inspect.active() or {}, inspect.reserved() or {}):
            for requests in replies.values():
                held.update(str(request.get("id")) for request in requests)
        return held

    def _sweep_replications(self, handovers: dict[str, Handover]) -> None:
        for node in self.studies.nodes_running():
            if self.heartbeats.alive(node):
                continue
            for running in self.studies.take_running(node):
                if self.app.backend.get_task_meta(running.task_id).get("status") == "SUCCESS":
                    continue
                self.app.send_task(
                    DES_RUN,
                    args=(to_wire(running.request),),
                    kwargs={"study_id": running.request.study_id},
                    task_id=running.task_id,
                    group_id=running.group_id,
                    group_index=running.group_index,
                    chord=running.chord,
                    priority=running.priority,
                    queue=running.queue,
                    exchange=running.queue,
                    routing_key=running.queue,
                )
                handover = handovers.setdefault(node, Handover(node))
                handover.replications.append(running.task_id)
                handover.replication_count += running.request.count
            if node in handovers and handovers[node].replication_count:
                self.client.hincrby(COUNTERS_KEY, TAKEOVER_REPLICATION, handovers[node].replication_count)

    # ---------------------------------------------------------------------------------------------- actions

    def publish_due(self, due: StageMessage, epoch: int, priority: str) -> None:
        """Publish a job's due stage at ``epoch`` to the stage's shared queue."""
        message = msgspec.structs.replace(due, epoch=epoch)
        publish_stage(self.app, message, self.shared[STAGE_TASKS[message.stage]], priority)

    def delete_queue(self, queue: str) -> int:
        """Delete a dead worker's own queue (purging what it held); return how many messages it held."""
        with self.app.connection_for_write() as connection:
            bound = Queue(queue, Exchange(queue, type="direct"), routing_key=queue).bind(connection.default_channel)
            purged = int(bound.purge() or 0)
            bound.delete()
        return purged

    def expire_checkpoints(self) -> list[str]:
        """Drop the checkpoints of ended jobs past ``stores.checkpoint_retention_s``; return those jobs."""
        checkpoints = Checkpoints.from_settings(self.settings, self.client)
        expired = []
        for job_id in self.jobs.listed(limit=100_000):
            record = self.jobs.get(job_id)
            ended = record is not None and record.ended and checkpoints.refs(job_id)
            if ended and record is not None and checkpoints.expire(job_id, record.finished):
                expired.append(job_id)
        return expired


class Liveness:
    """The heartbeat and watchdog threads of a worker's main process."""

    def __init__(self, settings: Settings, node: str, info: dict[str, Any]) -> None:
        self.settings = settings
        self.node = node
        self.info = info
        self.watchdog = Watchdog(settings)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Beat once now (so the fleet sees this worker at once), then start the threads."""
        gpu = self.settings.gpu_worker
        self._beat()
        self._threads.append(self._loop("heartbeat", gpu.heartbeat_interval_s, self._beat))
        self._threads.append(self._loop("watchdog", gpu.watchdog_interval_s, self.watchdog.sweep))

    def stop(self) -> None:
        """Stop the threads and remove the heartbeat (a clean shutdown)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self.watchdog.heartbeats.stop(self.node)
        self.watchdog.close()

    def _beat(self) -> None:
        self.watchdog.heartbeats.beat(self.node, self.settings.gpu_worker.heartbeat_ttl_s, self.info)

    def _loop(self, name: str, interval_s: float, action: Callable[[], Any]) -> threading.Thread:
        def run() -> None:
            while not self._stop.wait(interval_s):
                try:
                    action()
                except Exception:  # a Redis hiccup must not kill the thread; the next round tries again
                    log.exception("%s round failed", name)

        thread = threading.Thread(target=run, name=f"simfleet-{name}", daemon=True)
        thread.start()
        return thread


__all__ = ["Handover", "Liveness", "Watchdog"]
