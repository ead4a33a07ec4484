"""Fleet-wide counters: what happened on the fleet, kept in one Redis hash for the metrics exporter.

``simfleet:counters`` (in the result backend's Redis, beside the job records) holds one field per counter. The
fleet only ever adds to them, each inside a write it makes anyway (a server-side script or a pipeline that exists
already), so counting costs no extra round trip on the paths that run per chunk or per replication; only failures,
which are rare, pay one. ``simfleet exporter`` reads the hash at each scrape and serves the fields as Prometheus
counters (:mod:`simfleet.worker.metrics`); a counter lives as long as Redis's data, like the records.
"""

from __future__ import annotations

import contextlib
import logging

import redis

log = logging.getLogger(__name__)

COUNTERS_KEY = "simfleet:counters"

TAKEOVER_JOB = "takeovers:lifecycle_job"
"""Lifecycle jobs taken from an owner whose heartbeat expired (their epoch bumped by the watchdog)."""
TAKEOVER_REPLICATION = "takeovers:des_replication"
"""DES replications published again because the worker running them died."""
CHECKPOINT_FAILURE = "checkpoint_failures:{}"
"""Checkpoints that could not be written (``write``) or read back (``read``: missing, damaged, checksum)."""
CHECKPOINTS_WRITTEN = "checkpoints_written"
CHECKPOINT_BYTES = "checkpoint_written_bytes"
CHECKPOINT_SECONDS = "checkpoint_write_seconds"
JOBS_ENDED = "jobs_ended:{}"
"""Lifecycle jobs that ended, by final state (done, failed, cancelled)."""
JOB_END_TO_END_SUM = "job_end_to_end_seconds_sum"
JOB_END_TO_END_COUNT = "job_end_to_end_count"
"""Seconds from submission to the summary of every job that finished (done), and how many there were."""
DES_REPLICATIONS = "des_replications"
"""DES replications completed (the copy that counts, once per replication)."""
DES_EVENTS = "des_events"
DES_SECONDS = "des_replication_seconds"
"""Events simulated and wall-clock seconds spent by every finished replication run (a duplicate copy included)."""


def count_failure(client: redis.Redis, operation: str) -> None:
    """Add one checkpoint failure of ``operation`` (``read`` or ``write``); never raises (the failure matters more)."""
    with contextlib.suppress(redis.RedisError, OSError):
        client.hincrby(COUNTERS_KEY, CHECKPOINT_FAILURE.format(operation), 1)


def read_counters(client: redis.Redis) -> dict[str, float]:
    """Every counter, by field."""
    found: dict[str, float] = {}
    for field, value in client.hgetall(COUNTERS_KEY).items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        try:
            found[name] = float(value)
        except ValueError:
            log.warning("counter %s holds %r, not a number; left out", name, value)
    return found


__all__ = [
    "CHECKPOINTS_WRITTEN",
    "CHECKPOINT_BYTES",
    "CHECKPOINT_FAILURE",
    "CHECKPOINT_SECONDS",
    "COUNTERS_KEY",
    "DES_EVENTS",
    "DES_REPLICATIONS",
    "DES_SECONDS",
    "JOBS_ENDED",
    "JOB_END_TO_END_COUNT",
    "JOB_END_TO_END_SUM",
    "TAKEOVER_JOB",
    "TAKEOVER_REPLICATION",
    "count_failure",
    "read_counters",
]
