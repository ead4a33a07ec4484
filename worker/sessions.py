"""The per-process session registry of a GPU-role worker: live lifecycle jobs, kept across their stages.

A session is one job's live simulation (its environment, its backend with the population, and the MP2 chunks it
computed but has not exported yet). Several jobs can be live in one process; their estimated memory is bounded by a
budget, and when a new or grown session goes over it, the least recently used other sessions are dropped. Dropping
loses nothing: every stage ends with a checkpoint, so a dropped job is restored from its checkpoints when its next
stage arrives (the same path as after a crash).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from worker.lifecycle.backends.base import Columns, LifecycleBackend
from worker.lifecycle.environment import Environment
from worker.lifecycle.inputs import LifecycleInputs

log = logging.getLogger(__name__)


def _columns_bytes(columns: Columns) -> int:
    return sum(int(np.asarray(values).nbytes) for values in columns.values())


@dataclass
class ResultChunk:
    """MP2 of days ``first_day .. end_day - 1``, computed by this process."""

    first_day: int
    end_day: int
    airframe: Columns
    daily: Columns


@dataclass
class Session:
    """One live job.

    Attributes:
        job_id: the job.
        epoch: the epoch under which this process holds it (set by the claim).
        spec: the job's spec (inputs, days, chunk size, sink, backend, log, persistence).
        inputs: the validated inputs (kept for the environment checkpoint; dropped once that is written).
        env: the dense environment.
        backend: the live simulation (built; populated once ``created``).
        created: whether the population exists.
        results: MP2 chunks computed here and not exported yet, by first day.
    """

    job_id: str
    epoch: int
    spec: dict[str, Any]
    env: Environment
    backend: LifecycleBackend
    inputs: LifecycleInputs | None = None
    created: bool = False
    results: dict[int, ResultChunk] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Estimated memory: environment arrays, agent state and kept MP2."""
        env = sum(int(value.nbytes) for value in vars(self.env).values() if isinstance(value, np.ndarray))
        state = 64 * self.env.n  # seven agent variables plus the backend's static copies, about 64 bytes an airframe
        kept = sum(_columns_bytes(c.airframe) + _columns_bytes(c.daily) for c in self.results.values())
        return env + state + kept


class SessionRegistry:
    """Live sessions by job id, least recently used first, within a memory budget.

    Args:
        budget_bytes: the sessions' summed :meth:`Session.nbytes` that triggers eviction of the least recently used
            ones (the session just used is never evicted, even alone over budget).
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)

    def jobs(self) -> list[str]:
        """Job ids held, least recently used first."""
        return list(self._sessions)

    def get(self, job_id: str) -> Session | None:
        """The session of ``job_id`` (now the most recently used), or ``None``."""
        session = self._sessions.get(job_id)
        if session is not None:
            self._sessions.move_to_end(job_id)
        return session

    def put(self, session: Session) -> list[str]:
        """Hold ``session`` (most recently used) and evict others while over budget; return the evicted job ids."""
        self._sessions[session.job_id] = session
        self._sessions.move_to_end(session.job_id)
        return self.enforce_budget()

    def enforce_budget(self) -> list[str]:
        """Evict least recently used sessions (never the most recent one) until within budget."""
        evicted = []
        while len(self._sessions) > 1 and self.nbytes() > self.budget_bytes:
            job_id, _ = self._sessions.popitem(last=False)
            evicted.append(job_id)
            log.info("job %s dropped from memory (over the %d MiB budget); its checkpoints stay", job_id,
                     self.budget_bytes // 2**20)  # fmt: skip
        return evicted

    def drop(self, job_id: str) -> None:
        """Forget ``job_id``'s session if held."""
        self._sessions.pop(job_id, None)

    def nbytes(self) -> int:
        """Estimated memory of every held session."""
        return sum(session.nbytes() for session in self._sessions.values())
