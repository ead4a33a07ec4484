"""A variants file: the plan variants, replications and maintenance options of a lifecycle ensemble.

The file is YAML (format and units in docs/lifecycle.md, "Planning"); it is read under the safe-file rules of
:mod:`simfleet.shared.user_files`, decoded into the declared :class:`~simfleet.shared.messages.plan.Ensemble` (so a
wrong type or range names its key), then checked against the inputs it will run with (:func:`check_ensemble`): a
type that is not an aircraft type, a date outside the horizon, a change that says nothing or two things. Every
problem is one :class:`~simfleet.shared.errors.ConfigError` naming the file and the key, such as
``variants.yaml: variants[1].targets[0].end: 2031-01-01 is after the horizon's last date 2030-12-31``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from simfleet.shared.errors import ConfigError, MessageError
from simfleet.shared.lifecycle_contract import AC_TYPES
from simfleet.shared.messages import decode, to_wire
from simfleet.shared.messages.plan import MAX_MEMBERS, Change, Ensemble, Maintenance
from simfleet.shared.user_files import read_yaml

MAX_FILE_BYTES = 4 * 2**20
"""A variants file is read up to this size."""


def load_variants(path: str | Path) -> Ensemble:
    """The ensemble of a variants file, decoded (not yet checked against inputs: see :func:`check_ensemble`).

    Raises:
        ConfigError: naming the file and the key of the first problem.
    """
    source = str(path)
    data = read_yaml(path, what="the variants file", max_bytes=MAX_FILE_BYTES, max_depth=12, max_nodes=200_000)
    return parse_variants(data, source)


def parse_variants(data: Any, source: str = "<variants>") -> Ensemble:
    """An :class:`Ensemble` from plain data (a variants file's content, or what an API caller passes).

    Raises:
        ConfigError: naming ``source`` and the key.
    """
    if isinstance(data, Ensemble):  # built in Python, so never validated: check it as if it came off the wire
        data = to_wire(data)
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping with 'variants', got {type(data).__name__}", source=source)
    # A mapping's values are named by their key (msgspec says ``maintenance[...]``): decode those one by one first.
    mappings = [("maintenance", data.get("maintenance"))]
    variants = data.get("variants")
    if isinstance(variants, list):
        mappings += [(f"variants[{v}].maintenance", item.get("maintenance")) for v, item in enumerate(variants)
                     if isinstance(item, dict)]  # fmt: skip
    for key, options in mappings:
        for name, value in options.items() if isinstance(options, dict) else ():
            _decode(Maintenance, value, source, f"{key}.{name}")
    ensemble: Ensemble = _decode(Ensemble, data, source, "")
    return ensemble


def _decode(kind: type[Any], data: Any, source: str, prefix: str) -> Any:
    try:
        return decode(kind, data, what=source)
    except MessageError as exc:
        key = ".".join(part for part in (prefix, _key(exc.path)) if part and part != "(top level)")
        raise ConfigError(exc.reason, source=source, key=key or None) from None


def _key(path: str) -> str:
    """The key of a msgspec path: ``$.variants[0].targets[1].factor`` is ``variants[0].targets[1].factor``."""
    return path.removeprefix("$").removeprefix(".") or "(top level)"


def check_ensemble(ensemble: Ensemble, version_date: dt.date, days: int, *, source: str = "<variants>") -> None:
    """Check an ensemble against the inputs it runs with: D0 = ``version_date``, a horizon of ``days``.

    Changes may name dates D0 .. D0 + ``days`` (the last is MP4's "tomorrow" of the last day).

    Raises:
        ConfigError: naming ``source`` and the key of the first problem.
    """
    last = version_date + dt.timedelta(days=days)

    def fail(key: str, message: str) -> None:
        raise ConfigError(message, source=source, key=key)

    if ensemble.members > MAX_MEMBERS:
        fail("replications", f"{len(ensemble.variants)} variants x {ensemble.replications} replications = "
                             f"{ensemble.members} runs, more than the {MAX_MEMBERS} one ensemble holds")  # fmt: skip
    seen: dict[str, int] = {}
    for v, variant in enumerate(ensemble.variants):
        if variant.name in seen:
            fail(f"variants[{v}].name", f"{variant.name!r} is also the name of variants[{seen[variant.name]}]")
        seen[variant.name] = v
        for table in ("targets", "minutes", "repair_time"):
            for c, change in enumerate(getattr(variant, table)):
                _check_change(change, f"variants[{v}].{table}[{c}]", table, version_date, last, fail)
        _check_maintenance(variant.maintenance, f"variants[{v}].maintenance", fail)
    _check_maintenance(ensemble.maintenance, "maintenance", fail)


def _check_maintenance(options: dict[str, Maintenance], key: str, fail: Any) -> None:
    for name in options:
        if name not in AC_TYPES:
            fail(f"{key}.{name}", f"unknown aircraft type {name!r}; expected one of {', '.join(AC_TYPES)}")


def _check_change(change: Change, key: str, table: str, first: dt.date, last: dt.date, fail: Any) -> None:
    given = [name for name in ("factor", "offset", "value", "values") if getattr(change, name) is not None]
    if len(given) != 1:
        fail(key, "give exactly one of factor, offset, value or values" + (f" (got {', '.join(given)})" if given
                                                                           else ""))  # fmt: skip
    if change.ac_type and change.ac_type not in AC_TYPES:
        fail(f"{key}.ac_type", f"unknown aircraft type {change.ac_type!r}; expected one of {', '.join(AC_TYPES)}")
    if table == "repair_time":
        for name in ("start", "end", "values"):
            if getattr(change, name) is not None:
                fail(f"{key}.{name}", "a repair time has no dates: it applies to every repair of the run")
        return
    for name in ("start", "end"):
        date = getattr(change, name)
        if date is not None and not first <= date <= last:
            fail(f"{key}.{name}", f"{date} is outside the horizon {first} .. {last}")
    if change.start is not None and change.end is not None and change.start > change.end:
        fail(f"{key}.end", f"{change.end} is before start {change.start}")
    if change.values is not None:
        if not change.values:
            fail(f"{key}.values", "expected at least one date: value")
        low, high = change.start or first, change.end or last
        for date in change.values:
            if not low <= date <= high:
                fail(f"{key}.values.{date}", f"{date} is outside the change's range {low} .. {high}")
