"""Debug mode: every invariant of LIFECYCLE_MODEL.md, checked on the host after each simulated day.

:func:`check_day` raises :class:`InvariantError` naming the day (index and date), an offending airframe by
aircraft number, and the rule. Besides the contract's invariants (granted <= Q per type; sne never decreases; ppr
decreases only by the 4->5 reset; status 6 is terminal; at most one status change a day, and only along the model's
transitions; in operation on D+1 == min(Q, eligible) per type) it checks that only status 2 flies and that the day's
aggregates (status counts, transition counts) agree with the per-airframe arrays. Deliveries reset sne and ppr to 0
by rule 1, so a 0->3 is exempt from the two monotonicity rules. With a repair shop (docs/planning.md), an airframe
waits for a slot only in status 4, stays in 4 that day, and its repair_days stays 0.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from simfleet.shared.errors import InvariantError
from simfleet.shared.lifecycle_contract import TRANSITIONS
from simfleet.worker.lifecycle.backends.mp2_log import DayRecord

if TYPE_CHECKING:
    from simfleet.worker.lifecycle.backends.numpy_backend import NumpyBackend

ALLOWED = frozenset(TRANSITIONS)
"""The only status changes of the model (each is one change; no airframe changes twice in a day)."""


def check_day(
    backend: NumpyBackend,
    record: DayRecord,
    old_sne: Any,
    old_ppr: Any,
    eligible: list[list[int]],
) -> None:
    """Check day ``record.day``; ``old_*`` are the start-of-day arrays, ``eligible[class][type]`` the requesters."""
    st, nxt = _host(record.status_id), _host(record.next_status).astype(np.int64)
    st = st.astype(np.int64)
    sne, ppr = _host(record.sne).astype(np.int64), _host(record.ppr).astype(np.int64)
    before_sne, before_ppr = _host(old_sne).astype(np.int64), _host(old_ppr).astype(np.int64)
    acn = backend.acn_internal
    date = dt.date(1970, 1, 1) + dt.timedelta(days=backend.env.d0 + record.day)
    where = f"day {record.day} ({date})"

    def fail(mask: npt.NDArray[np.bool_], rule: str) -> None:
        hits = np.flatnonzero(mask)
        if hits.size:
            raise InvariantError(f"{where}: aircraft_number {acn[hits[0]]}: {rule} ({hits.size} airframe(s))")

    delivered = (st == 0) & (nxt == 3)
    fail((sne < before_sne) & ~delivered, "sne never decreases")
    fail((ppr < before_ppr) & ~delivered & ~((st == 4) & (nxt == 5)), "ppr decreases only by the 4->5 reset")
    fail((st == 6) & (nxt != 6), "status 6 is terminal")
    moved = st != nxt
    pair_ok = np.zeros(moved.shape, dtype=bool)
    for a, b in ALLOWED:
        pair_ok |= (st == a) & (nxt == b)
    fail(moved & ~pair_ok, "at most one status change a day, along a transition of the model")
    fail((_host(record.daily_flight) != 0) & (st != 2), "only status 2 flies")
    if record.repair_queued is not None:
        waiting = _host(record.repair_queued).astype(bool)
        fail(waiting & (st != 4), "only an airframe in status 4 waits for a repair slot")
        fail(waiting & (nxt != 4), "an airframe waiting for a repair slot stays in status 4")
        fail(waiting & (_host(record.repair_days) != 0), "repair_days stays 0 while waiting for a repair slot")
    for t, block in enumerate(backend.blocks):
        operating = np.flatnonzero(nxt[block] == 2)
        quota = record.quota[t]
        expected = min(quota, sum(row[t] for row in eligible))
        if operating.size > quota:
            first = acn[block][operating[quota]]
            raise InvariantError(f"{where}: aircraft_number {first}: granted {operating.size} > Q = {quota} (type {t})")
        if operating.size != expected:
            extra = operating[expected] if operating.size > expected else np.flatnonzero(nxt[block] != 2)[0]
            raise InvariantError(
                f"{where}: aircraft_number {acn[block][extra]}: in operation on D+1 is {operating.size}, expected "
                f"min(Q = {quota}, eligible = {sum(row[t] for row in eligible)}) = {expected} (type {t})"
            )
        counts = np.bincount(st[block], minlength=7)
        if not np.array_equal(counts, record.counts[:, t]):
            raise InvariantError(f"{where}: type {t}: status counts {record.counts[:, t]} != airframes {counts}")
        pairs = [int(np.count_nonzero((st[block] == a) & (nxt[block] == b))) for a, b in TRANSITIONS]
        if pairs != record.transitions[:, t].tolist():
            raise InvariantError(f"{where}: type {t}: transition counts {record.transitions[:, t]} != {pairs}")


def _host(values: Any) -> npt.NDArray[Any]:
    return np.asarray(values.get() if hasattr(values, "get") else values)
