"""The one exception tree of simfleet.

Every error the project raises on purpose derives from :class:`SimfleetError`, so callers can catch the whole family
in one place, and every one of them is defined here. Configuration and input errors name where the problem is (file,
key path, table, row, field) and the expected form, so the message alone is enough to fix the input. Errors about
work on the fleet carry fields a script can branch on (:class:`WorkFailed`: the job or study, the stage, the error
type, whether it timed out). Driver errors (Redis, ClickHouse) are translated at the boundary, with the cause
chained.

::

    SimfleetError
    ├── ConfigError ── ScenarioError
    ├── InputError ── ExportValidationError
    ├── SimulationError ── InvariantError
    ├── MemoryLimitExceeded
    ├── CheckpointError
    ├── StaleOwner ── StaleEpoch
    ├── MessageError
    ├── FleetUnavailable
    ├── ClickHouseError
    ├── FleetError
    └── WorkFailed ── JobFailed, StudyFailed
"""

from __future__ import annotations

from collections.abc import Sequence


class SimfleetError(Exception):
    """Root of every error simfleet raises on purpose."""


class ConfigError(SimfleetError):
    """A settings or scenario file, a flag or an argument is wrong.

    Args:
        message: what is wrong and what was expected.
        source: the file (or other origin) the value came from.
        key: the key path inside it, dotted (``request_types.web-search.dag.nodes.plan``).
    """

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None) -> None:
        self.source = source
        self.key = key
        self.reason = message
        where = ": ".join(part for part in (source, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class ScenarioError(ConfigError):
    """A DES scenario is invalid (unknown key, bad rate, cycle, unknown template, impossible demand)."""


class InputError(SimfleetError):
    """Simulation input data is wrong; names the table, the row key and the field of each offence.

    Args:
        table: the input table (``mp3``) or file.
        offences: one line per offending row; at most ``limit`` are shown, with a count of the rest.
        limit: how many offences to list.
        unlisted: offences found but not described (a check that names only its first few), counted with the rest.
    """

    def __init__(self, table: str, offences: Sequence[str], *, limit: int = 20, unlisted: int = 0) -> None:
        self.table = table
        self.offences = list(offences)
        self.count = len(self.offences) + unlisted
        shown = self.offences[:limit]
        rest = self.count - len(shown)
        lines = [f"{table}: {self.count} problem(s)"] + [f"  - {line}" for line in shown]
        if rest:
            lines.append(f"  ... and {rest} more")
        super().__init__("\n".join(lines))


class ExportValidationError(InputError):
    """Rows about to be exported break the table's contract (type range, key, count); nothing was written."""


class SimulationError(SimfleetError):
    """A simulation reached a state its model forbids (an invariant broke, a state could not be restored)."""


class InvariantError(SimulationError):
    """A model invariant failed; the message names the day, the entity and the rule."""


class MemoryLimitExceeded(SimfleetError):
    """A replication grew past the per-replication memory limit of the CPU worker role."""


class CheckpointError(SimfleetError):
    """A checkpoint cannot be written, found or trusted (names the job, the blob and what is wrong)."""


class StaleOwner(SimfleetError):
    """A write was refused because the writer's epoch is no longer the job's epoch (it lost the job)."""


class StaleEpoch(StaleOwner):
    """A stage message that is not the job's current one (older epoch, or a stage already done): refused."""


class MessageError(SimfleetError):
    """A message that crossed the broker is not of its declared type (malformed, foreign, or from another version).

    Args:
        what: the message's type or the task that received it.
        path: where in the message (``$.epoch``), when known.
        reason: what is wrong.
    """

    def __init__(self, what: str, reason: str, *, path: str = "") -> None:
        self.what = what
        self.path = path
        self.reason = reason
        super().__init__(f"{what}: {reason}" + (f" (at {path})" if path else ""))


class FleetUnavailable(SimfleetError):
    """Redis (the broker or the result backend) cannot be reached, or refused our credentials.

    Args:
        url: the URL tried, with its password replaced by ``***``.
        reason: the driver's reason, in one line.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"the fleet's Redis at {url} is unreachable: {reason}")


class ClickHouseError(SimfleetError):
    """ClickHouse could not be reached or refused a statement (names the DSN without its password)."""


class FleetError(SimfleetError):
    """The local fleet could not be started, reached or stopped."""


class WorkFailed(SimfleetError):
    """Work on the fleet (a lifecycle job or a DES study) failed, was cancelled, or was not done in the time given.

    Attributes:
        work_id: the job id or study id.
        stage: the stage or task that failed (``lifecycle.execute``, ``des.run``), empty when none did.
        error_type: the worker's exception type (``InputError``), ``Timeout`` or ``Cancelled``.
        reason: the worker's message.
        timed_out: the wait gave up; the work may still finish.
    """

    kind = "work"

    def __init__(
        self, work_id: str, reason: str, *, stage: str = "", error_type: str = "", timed_out: bool = False
    ) -> None:
        self.work_id = work_id
        self.stage = stage
        self.error_type = error_type
        self.reason = reason
        self.timed_out = timed_out
        where = f" in {stage}" if stage else ""
        kind = f"{error_type}: " if error_type and error_type not in ("Timeout", "Cancelled") else ""
        super().__init__(f"{self.kind} {work_id}{where}: {kind}{reason}")

    @property
    def cancelled(self) -> bool:
        """The work was cancelled by an operator."""
        return self.error_type == "Cancelled"


class JobFailed(WorkFailed):
    """A lifecycle job failed, was cancelled, or did not finish in the time given."""

    kind = "job"


class StudyFailed(WorkFailed):
    """A DES study failed, was cancelled, or did not finish in the time given."""

    kind = "study"


def printable(value: object, limit: int = 60) -> str:
    """``value`` as a short text safe to print in an error message.

    Control and other non-printable characters are escaped (no raw binary reaches a terminal); the text is cut to
    ``limit`` characters, with ``...`` marking the cut.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="backslashreplace")
    text = str(value)
    safe = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."
