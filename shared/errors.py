"""The one exception tree of simfleet.

Every error the project raises on purpose derives from :class:`SimfleetError`, so callers can catch the whole family
in one place. Configuration and input errors name where the problem is (file, key path, table, row, field) and the
expected form, so the message alone is enough to fix the input.
"""

from __future__ import annotations

from collections.abc import Sequence


class SimfleetError(Exception):
    """Root of every error simfleet raises on purpose."""


class ConfigError(SimfleetError):
    """A settings or scenario file is wrong.

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


class SimulationError(SimfleetError):
    """A simulation reached a state its model forbids (an invariant broke, a state could not be restored)."""


class InvariantError(SimulationError):
    """A model invariant failed; the message names the day, the entity and the rule."""
