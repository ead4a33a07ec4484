"""Validation of lifecycle inputs before any run (the rules of LIFECYCLE_MODEL.md, "Inputs").

Every check is a vectorised numpy expression over a whole column; Python only formats the first offences. Tables are
checked in the order MP1, MP3, MP4, MP5, and inside a table the values of each column first (kind, range, missing),
then the relations between rows and tables (duplicates, MP1 look-up, limits, coverage of the horizon), so that one
wrong cell is reported once rather than again by every rule that reads it. The first table with offences raises an
:class:`InputError` listing them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from simfleet.shared.errors import ConfigError, InputError, printable
from simfleet.shared.lifecycle_contract import (
    AC_TYPES,
    COLUMNS,
    DATE_RANGE,
    ENGINE_MINUTES_MAX,
    MAX_DAYS,
    MINUTES_PER_DAY,
    ROW_KEYS,
    Column,
    LifecycleInputs,
    Table,
)

LIMIT = 20
"""How many offences an error formats; the rest are counted."""

_UNSHOWN = "(not listed)"
IntArray = npt.NDArray[np.int64]


class _Offences:
    """The offences of one table: all are counted, the first :data:`LIMIT` are formatted."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.shown: list[str] = []
        self.total = 0

    def add(self, rows: npt.NDArray[np.intp], describe: Callable[[int], str]) -> None:
        self.total += len(rows)
        for row in rows[: max(0, LIMIT - len(self.shown))]:
            self.shown.append(describe(int(row)))

    def note(self, message: str) -> None:
        self.add(np.zeros(1, dtype=np.intp), lambda _row: message)

    def raise_if_any(self) -> None:
        if self.total:
            raise InputError(self.table, self.shown + [_UNSHOWN] * (self.total - len(self.shown)), limit=LIMIT)


def validate_inputs(inputs: LifecycleInputs) -> None:
    """Check every input table against the model's contract; return quietly when all hold.

    Raises:
        InputError: for the first table with offences; each names the table, the row key and the field, and the
            expected form.
        ConfigError: the horizon ``days`` is not a positive integer within the limits (:func:`check_horizon`).
    """
    check_horizon(inputs.version_date, inputs.days)
    relations: dict[str, Callable[[], None]] = {
        "mp1": lambda: _check_mp1(inputs.mp1, inputs.days),
        "mp3": lambda: _check_mp3(inputs.mp3, inputs.mp1, inputs.version_date, inputs.days),
        "mp4": lambda: _check_mp4(inputs.mp4, inputs.version_date, inputs.days),
        "mp5": lambda: _check_mp5(inputs.mp5, inputs.mp3, inputs.version_date, inputs.days),
    }
    for name, check_relations in relations.items():
        _check_shape(name, inputs.table(name))
        _check_values(name, inputs.table(name))
        check_relations()


def check_horizon(version_date: object, days: object, *, source: str | None = None, key: str = "days") -> int:
    """Check a horizon against its limits and return it.

    ``days`` must be a positive integer of at most :data:`MAX_DAYS` (MP2 numbers days as ``UInt16``) whose last
    date, ``version_date + days``, ClickHouse's ``Date`` still holds (:data:`DATE_RANGE`).

    Args:
        version_date: D0.
        days: the horizon.
        source: the file the values came from (``meta.yaml``), for the error.
        key: how ``days`` is named (``days`` in ``meta.yaml``, ``--days`` on the command line).

    Raises:
        ConfigError: naming ``key`` (or ``version_date``) and the limit.
    """
    first, last = DATE_RANGE
    if not isinstance(version_date, dt.date) or not first <= version_date <= last:
        shown = printable(version_date)
        raise ConfigError(f"expected a date {first} .. {last}, got {shown}", source=source, key="version_date")
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise ConfigError(f"expected a positive integer, got {printable(repr(days))}", source=source, key=key)
    if days > MAX_DAYS:
        raise ConfigError(f"{days} is over the limit of {MAX_DAYS} days (MP2 numbers days as UInt16)",
                          source=source, key=key)  # fmt: skip
    room = (last - version_date).days
    if days > room:
        raise ConfigError(
            f"{days} days from version_date {version_date} end after {last}, the last date ClickHouse's Date holds; "
            f"at most {room} days from this version_date",
            source=source,
            key=key,
        )
    return days


def row_key(name: str, table: Table, row: int) -> str:
    """How a message names one row: its key columns and its 1-based data row number."""
    parts = ", ".join(f"{column}={_show(table[column][row])}" for column in ROW_KEYS[name] if column in table)
    return f"{parts} (row {row + 1})"


def _show(value: object) -> str:
    if isinstance(value, np.datetime64):
        return "<empty>" if np.isnat(value) else str(value)
    if (isinstance(value, np.integer) and value == -1) or (isinstance(value, str) and value == ""):
        return "<empty>"
    return printable(value)


def _check_shape(name: str, table: Table) -> None:
    expected = ", ".join(column.name for column in COLUMNS[name])
    missing = [column.name for column in COLUMNS[name] if column.name not in table]
    offences = [f"no column {', '.join(missing)}; expected columns {expected}"] if missing else []
    lengths = {column.name: len(table[column.name]) for column in COLUMNS[name] if column.name in table}
    if len(set(lengths.values())) > 1:
        offences.append(f"columns of different lengths {lengths}; expected one length")
    elif not missing and not any(lengths.values()):
        offences.append("no rows; expected at least one row")
    if offences:
        raise InputError(name, offences)


def _check_values(name: str, table: Table) -> None:
    offences = _Offences(name)
    for column in COLUMNS[name]:
        bad = _bad_values(np.asarray(table[column.name]), column)
        offences.add(np.flatnonzero(bad), _value_message(name, table, column))
    offences.raise_if_any()


def _bad_values(values: npt.NDArray[np.generic], column: Column) -> npt.NDArray[np.bool_]:
    if column.kind == "date":
        if values.dtype != np.dtype("datetime64[D]"):
            return np.ones(len(values), dtype=bool)
        first, last = (np.datetime64(date, "D") for date in DATE_RANGE)
        missing = np.isnat(values)
        outside: npt.NDArray[np.bool_] = ~missing & ((values < first) | (values > last))
        return outside if column.nullable else outside | missing
    if column.kind == "ac_type":
        return ~np.isin(values, np.array(AC_TYPES))
    if not np.issubdtype(values.dtype, np.integer):
        return np.ones(len(values), dtype=bool)
    numbers = values.astype(np.int64, copy=False)
    low = (numbers < 0) & (numbers != -1) if column.nullable else numbers < 0
    bad: npt.NDArray[np.bool_] = low | (numbers > column.high)
    return bad


def _value_message(name: str, table: Table, column: Column) -> Callable[[int], str]:
    def describe(row: int) -> str:
        value = _show(table[column.name][row])
        return f"{row_key(name, table, row)}: field {column.name} = {value}; expected {column.expected()}"

    return describe


def _minutes_headroom(offences: _Offences, name: str, table: Table, fields: tuple[str, ...], days: int) -> None:
    """Minutes the engines' ``int32`` cannot carry through the horizon (see :data:`ENGINE_MINUTES_MAX`)."""
    ceiling = ENGINE_MINUTES_MAX - MINUTES_PER_DAY * (days + 1)

    def describe(field: str, values: IntArray) -> Callable[[int], str]:
        return lambda row: (
            f"{row_key(name, table, row)}: field {field} = {values[row]}; expected at most {ceiling} minutes "
            f"(the engines count minutes in int32: {ENGINE_MINUTES_MAX} less {MINUTES_PER_DAY} a day over "
            f"{days} + 1 days)"
        )

    for field in fields:
        values = np.asarray(table[field], dtype=np.int64)
        offences.add(np.flatnonzero(values > ceiling), describe(field, values))


def _type_code(ac_type: npt.NDArray[np.generic]) -> IntArray:
    return np.asarray(ac_type == AC_TYPES[1], dtype=np.int64)


def _day_numbers(dates: npt.NDArray[np.generic]) -> IntArray:
    return np.asarray(dates, dtype="datetime64[D]").view(np.int64)


def duplicates(key: IntArray) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Rows whose ``key`` already occurred on an earlier row, and that earlier (first) row, both ascending by row."""
    if len(key) < 2 or bool(np.all(key[1:] > key[:-1])):
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    repeat = np.concatenate(([False], ordered[1:] == ordered[:-1]))
    run_start = np.maximum.accumulate(np.where(repeat, 0, np.arange(len(key))))
    rows, first = order[repeat], order[run_start[repeat]]
    by_row = np.argsort(rows, kind="stable")
    return rows[by_row], first[by_row]


def dense_rank(values: IntArray, keys: IntArray) -> IntArray:
    """Position of each value in the sorted unique array ``keys``, ``-1`` where it is absent."""
    if len(keys) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    low, high = int(keys[0]), int(keys[-1])
    if high - low < max(4 * len(keys), 1 << 20):
        lookup = np.full(high - low + 1, -1, dtype=np.int64)
        lookup[keys - low] = np.arange(len(keys))
        inside = (values >= low) & (values <= high)
        return np.where(inside, lookup[np.where(inside, values - low, 0)], -1)
    position = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
    return np.where(keys[position] == values, position, -1)


def _add_duplicates(offences: _Offences, name: str, table: Table, key: IntArray, what: str) -> None:
    rows, first = duplicates(key)
    firsts = dict(zip(rows[:LIMIT].tolist(), first[:LIMIT].tolist(), strict=True))
    offences.add(
        rows,
        lambda row: f"{row_key(name, table, row)}: duplicate of row {firsts[row] + 1}; expected one row per {what}",
    )


def _check_mp1(mp1: Table, days: int) -> None:
    offences = _Offences("mp1")
    _minutes_headroom(offences, "mp1", mp1, ("ll", "oh", "br"), days)
    key = np.asarray(mp1["partno"], dtype=np.int64) * 2 + _type_code(mp1["ac_type"])
    _add_duplicates(offences, "mp1", mp1, key, "(partno, ac_type)")
    oh, br, ll = (np.asarray(mp1[field], dtype=np.int64) for field in ("oh", "br", "ll"))
    offences.add(
        np.flatnonzero((oh >= br) | (br > ll)),
        lambda row: (
            f"{row_key('mp1', mp1, row)}: fields oh = "
            f"{oh[row]}, br = {br[row]}, ll = {ll[row]}; expected oh < br <= ll (minutes)"
        ),
    )
    offences.raise_if_any()


def _check_mp3(mp3: Table, mp1: Table, version_date: dt.date, days: int) -> None:
    offences = _Offences("mp3")
    _minutes_headroom(offences, "mp3", mp3, ("sne", "ppr", "ll", "oh", "br"), days)

    def key_of(row: int) -> str:
        return row_key("mp3", mp3, row)

    numbers = np.asarray(mp3["aircraft_number"], dtype=np.int64)
    _add_duplicates(offences, "mp3", mp3, numbers, "aircraft_number")
    psn = np.asarray(mp3["psn"], dtype=np.int64)
    rows, first = duplicates(psn)
    firsts = dict(zip(rows[:LIMIT].tolist(), first[:LIMIT].tolist(), strict=True))
    offences.add(
        rows,
        lambda row: (
            f"{key_of(row)}: field psn = {psn[row]} repeats row {firsts[row] + 1}; expected one airframe per psn"
        ),
    )

    status = np.asarray(mp3["status_id"])
    delivery = np.asarray(mp3["delivery_date"], dtype="datetime64[D]")
    undated = (status == 0) & np.isnat(delivery)
    offences.add(
        np.flatnonzero(undated),
        lambda row: (
            f"{key_of(row)}: field delivery_date = <empty>; expected a "
            "date YYYY-MM-DD when status_id is 0 (not yet delivered)"
        ),
    )
    dated = (status != 0) & ~np.isnat(delivery)
    offences.add(
        np.flatnonzero(dated),
        lambda row: (
            f"{key_of(row)}: field delivery_date = {delivery[row]}; "
            f"expected empty when status_id is {status[row]} (a date only for status 0, not yet delivered)"
        ),
    )
    early = (status == 0) & (delivery < np.datetime64(version_date, "D"))
    offences.add(
        np.flatnonzero(early),
        lambda row: (
            f"{key_of(row)}: field delivery_date = {delivery[row]}; "
            f"expected a date on or after version_date {version_date} (an earlier delivery is status 3)"
        ),
    )
    sne, ppr = np.asarray(mp3["sne"], dtype=np.int64), np.asarray(mp3["ppr"], dtype=np.int64)
    offences.add(
        np.flatnonzero(ppr > sne),
        lambda row: (
            f"{key_of(row)}: field ppr = {ppr[row]}; expected at most "
            f"sne = {sne[row]} (minutes since overhaul cannot exceed minutes since new)"
        ),
    )

    mp1_key = np.asarray(mp1["partno"], dtype=np.int64) * 2 + _type_code(mp1["ac_type"])
    order = np.argsort(mp1_key, kind="stable")
    mp3_key = np.asarray(mp3["partno"], dtype=np.int64) * 2 + _type_code(mp3["ac_type"])
    rank = dense_rank(mp3_key, mp1_key[order])
    offences.add(
        np.flatnonzero(rank < 0),
        lambda row: (
            f"{key_of(row)}: field partno = {mp3['partno'][row]}: no "
            f"mp1 row for partno={mp3['partno'][row]}, ac_type={mp3['ac_type'][row]}; expected every "
            "airframe's (partno, ac_type) in mp1"
        ),
    )
    found = rank >= 0
    mp1_row = order[np.where(found, rank, 0)]
    effective: dict[str, IntArray] = {}
    source: dict[str, npt.NDArray[np.bool_]] = {}
    for field in ("oh", "br", "ll"):
        override = np.asarray(mp3[field], dtype=np.int64)
        source[field] = override >= 0
        effective[field] = np.where(source[field], override, np.asarray(mp1[field], dtype=np.int64)[mp1_row])
    oh, br, ll = effective["oh"], effective["br"], effective["ll"]

    def limits(row: int) -> str:
        shown = ", ".join(
            f"{field} = {effective[field][row]} ({'mp3' if source[field][row] else 'mp1'})"
            for field in ("oh", "br", "ll")
        )
        return f"{key_of(row)}: fields {shown}; expected oh < br <= ll (minutes, mp3 overrides else mp1)"

    offences.add(np.flatnonzero(found & ((oh >= br) | (br > ll))), limits)
    offences.raise_if_any()


def _check_mp4(mp4: Table, version_date: dt.date, days: int) -> None:
    offences = _Offences("mp4")
    day = _day_numbers(mp4["date"]) - _day_numbers(np.array([version_date], dtype="datetime64[D]"))[0]
    code = _type_code(mp4["ac_type"])
    _add_duplicates(offences, "mp4", mp4, day * 2 + code, "(date, ac_type)")
    inside = (day >= 0) & (day <= days)
    for type_code, ac_type in enumerate(AC_TYPES):
        present = np.zeros(days + 1, dtype=bool)
        present[day[inside & (code == type_code)]] = True
        if not present.all():
            missing = np.flatnonzero(~present)
            first = version_date + dt.timedelta(days=int(missing[0]))
            last = version_date + dt.timedelta(days=days)
            offences.note(
                f"ac_type={ac_type}: no row for date={first} (first missing; {len(missing)} of the "
                f"{days + 1} dates {version_date} .. {last} missing); expected one row per ac_type and date"
            )
    offences.raise_if_any()


def _check_mp5(mp5: Table, mp3: Table, version_date: dt.date, days: int) -> None:
    offences = _Offences("mp5")
    numbers = np.asarray(mp3["aircraft_number"], dtype=np.int64)
    rank = dense_rank(np.asarray(mp5["aircraft_number"], dtype=np.int64), np.sort(numbers))
    offences.add(
        np.flatnonzero(rank < 0),
        lambda row: (
            f"{row_key('mp5', mp5, row)}: field aircraft_number = "
            f"{mp5['aircraft_number'][row]}; expected an aircraft_number of mp3"
        ),
    )
    offences.raise_if_any()

    day = _day_numbers(mp5["date"])
    start = int(_day_numbers(np.array([version_date], dtype="datetime64[D]"))[0])
    low = int(day.min()) if len(day) else start
    _add_duplicates(offences, "mp5", mp5, (day - low) * len(numbers) + rank, "(date, aircraft_number)")
    last = int(day.max()) if len(day) else start - 1
    if last < start + days:
        first = version_date + dt.timedelta(days=max(last + 1 - start, 0))
        end = version_date + dt.timedelta(days=days)
        offences.note(
            f"aircraft_number=<any>: no row for date={first} or later (first missing date); expected dates "
            f"through {end} (version_date + days; inside that range a missing row means 0 minutes)"
        )
    offences.raise_if_any()
