"""The per-process session registry of a GPU-role worker: live lifecycle jobs, kept across their stages.

A session is one job's live simulation: its environment and its backend with the population (MP2 goes to result
checkpoints chunk by chunk, so a session does not grow with the days simulated). Several jobs can be live in one
process; their estimated memory is bounded by a budget, and when a new or grown session goes over it, the least
recently used other sessions are dropped. Dropping loses nothing: every stage ends with a checkpoint, so a dropped
job is restored from its checkpoints when its next stage arrives (the same path as after a crash).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from simfleet.shared.messages.lifecycle import JobSpec
from simfleet.worker.lifecycle.backends.base import LifecycleBackend
from simfleet.worker.lifecycle.environment import Environment

log = logging.getLogger(__name__)


@dataclass
class Session:
    """One live job.

    Attributes:
        job_id: the job.
        epoch: the epoch under which this process holds it (set by the claim).
        spec: the job's spec (inputs, days, chunk size, sink, backend, log, persistence).
        env: the dense environment.
        backend: the live simulation (built; populated once ``created``).
        submitted: when the job was submitted (its record's creation time, for the end-to-end figure).
        created: whether the population exists.
        restored: whether the stage running now restored it from checkpoints (counted in the job's summary).
    """

    job_id: str
    epoch: int
    spec: JobSpec
    env: Environment
    backend: LifecycleBackend
    submitted: float = 0.0
    created: bool = False
    restored: bool = False

    def nbytes(self) -> int:
        """Estimated memory: environment arrays (an ensemble's maintenance tables too) and agent state.

        An ensemble's environment holds every member's copy of the fleet, so this grows with variants x replications.
        """
        arrays = [*vars(self.env).values(), *(vars(self.env.maintenance).values() if self.env.maintenance else ())]
        env = sum(int(value.nbytes) for value in arrays if isinstance(value, np.ndarray))
        state = 80 * self.env.n  # nine agent variables plus the backend's static copies, about 80 bytes an agent
        return env + state


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
