"""The ids a caller may give a job or a study.

An id becomes part of Redis keys, checkpoint keys (folder names in a directory store, object keys in S3), Celery
task ids and ClickHouse partition values, so it is held to a small character set: 1 to 64 characters of
``A-Z a-z 0-9 . _ -``, starting with a letter or a digit. No ``/``, no ``..`` path component, no spaces or control
characters can reach any of those places. Every id is checked where it enters (the client API, the command line)
and again where a worker decodes a message.
"""

from __future__ import annotations

import re

from simfleet.shared.errors import ConfigError, printable

ID_MAX = 64
"""The longest id, in characters."""
ID_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{ID_MAX - 1}}}")
ID_RULE = f"1 to {ID_MAX} characters of A-Z a-z 0-9 . _ -, starting with a letter or a digit"


def check_id(value: object, *, what: str) -> str:
    """Return ``value`` if it is a valid id, else raise :class:`ConfigError` naming ``what`` and the rule."""
    if not isinstance(value, str):
        raise ConfigError(f"must be a string ({ID_RULE}), got {type(value).__name__}", key=what)
    if not ID_PATTERN.fullmatch(value):
        raise ConfigError(f"{printable(value)!r} is not a valid id: {ID_RULE}", key=what)
    return value
