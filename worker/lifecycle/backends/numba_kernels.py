"""The day rules of LIFECYCLE_MODEL.md as numba-compiled kernels, for :mod:`.numba_backend`.

One call of :func:`simulate_days` runs a whole chunk of days. Airframes stay in ``idx`` order (aircraft-number
order). What costs time in a compiled loop over a fleet of random statuses is the branch on the status, mispredicted
about every other airframe; so a day is laid out to keep the work that touches every airframe free of branches, and
to reach the rare events through short lists:

1. :func:`_fly`, the only loop over every airframe: flying (``sne``/``ppr`` += the day's minutes, 0 unless in
   status 2) and step 3's test for tomorrow, as selects with no branch, so the compiler may vectorise it. It flags
   the flyers that must leave operation.
2. The repairs under way (an unordered list of the airframes in status 4) count down; the day's deliveries come from
   a schedule made when the population is set. Both are applied to the status only after the grant, so that a
   status of 3 or 5 during the grant still means "requests as class (b) or (c)".
3. The flagged flyers leave (to 4 or 6; see :func:`_leave` and :func:`_leave_for_shops`).
4. The quota: per type, requesters per class come from the status tally kept up to date with each day's transitions
   (class (a): the flyers minus those leaving), so no loop counts them; class by class until Q is used up gives how
   many of each class are granted. :func:`_grant` then finds them: the first ones of classes (b), (c), (d) by a scan
   from the first airframe that stops when it has them all, and the refused flyers of class (a), the last ones, by a
   scan from the end.

A day's per-airframe MP2 row is written by :func:`_log_day` after the day, in the schema's dtypes (dates as int64
day numbers with NaT for none).

Ensembles and maintenance options (docs/lifecycle.md, "Planning"): a quota group (member x type) is what a type is
in a single run, so ``type_code`` holds group numbers (``uint8``, or ``int32`` beyond 256 groups) and every
per-type array is per group; the grant scans each member's agents on their own. Agents of an ensemble may fly
another agent's MP5 column: the day's two rows are then gathered into a scratch pair first (a single run reads
MP5's rows as they are); when every member flies a contiguous run of columns, as a stacked environment's members
do, the gather is one slice copy per member. With maintenance options (the last part of this module) the repair
list holds the repairs under way only, a day's entrants start a repair or join their group's queue, and unplanned
removals are flagged after :func:`_fly`; without them, none of this runs.

The repair shop of a group (member x type) has ``slots`` places; airframes sent to repair while it is full wait in
the group's queue, first come first served by (day joined, aircraft number). The queue of each group is a ring
buffer in one shared ``int32`` array: group ``g`` owns ``queue_store[base[g] : base[g] + capacity[g]]``, where
``capacity[g]`` is the group's number of agents (an airframe waits at most once at a time). Inside a day the
waiting airframes are served first, then the day's entrants in idx order (which is aircraft-number order inside a
group), so no sort is ever needed: the ring keeps the order by itself.

Random draws (removals, repair durations) are :func:`.ensemble.draw` computed on ``uint64`` scalars: every constant
and operand is ``np.uint64``, since numba turns a mix of ``uint64`` and ``int64`` into ``float64``.

The ``plan`` tuple the kernels pass around holds, in this order: ``slots`` (``int64[groups]``), ``hazard``
(``uint64[groups]``, 32-bit thresholds), ``spread_kind`` (``int64[groups]``), ``spread_table`` (``int64[groups,
width]``), ``spread_len`` (``uint64[groups]``), ``rng_key`` (``uint64[groups]``), ``fleet_idx`` (``uint64[n]``, the
agent's idx in its fleet), ``under`` (``int64[groups]``, repairs under way), then the queue: ``queue_store``
(``int32[n]``), ``base``, ``capacity``, ``head``, ``length`` (``int64[groups]``). A run without maintenance options
passes zero-length arrays (``slots.shape[0] == 0``), and the kernels take today's path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np

from simfleet.shared.lifecycle_contract import TRANSITIONS
from simfleet.worker.lifecycle.ensemble import KIND_DURATION, KIND_REMOVAL, SPREAD_DAYS, SPREAD_NONE
from simfleet.worker.lifecycle.environment import NO_DATE

F = TypeVar("F", bound=Callable[..., Any])

NAT = np.iinfo(np.int64).min
"""What a date column of MP2 holds for "no date" (``datetime64[D]`` NaT)."""
CLASSES = 4
"""Quota priority classes: (a) flying and fit, (b) serviceable, (c) reserve, (d) inactive and ready."""
STATIC_FIELDS = ("type_code", "ll", "oh", "br", "repair_time", "partout_time", "repair_minus_assembly", "delivery_day")
"""The per-airframe constants the kernels read, in this order (``type_code``, the quota group, as uint8 or int32;
the rest int32)."""
TRANSITION_PAIRS = TRANSITIONS
T23, T24, T26, T32, T52, T12, T45, T03 = (
    TRANSITIONS.index(pair) for pair in ((2, 3), (2, 4), (2, 6), (3, 2), (5, 2), (1, 2), (4, 5), (0, 3))
)
"""Where each transition the kernels count sits in :data:`~simfleet.worker.lifecycle.schema.TRANSITIONS`."""
REQUESTING = ((1, 3), (2, 5), (3, 1))
"""Classes (b), (c), (d) and the status their members are in."""


GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
MIX_2 = np.uint64(0x94D049BB133111EB)
SHIFT_2, SHIFT_27, SHIFT_30, SHIFT_31, SHIFT_32 = (np.uint64(b) for b in (2, 27, 30, 31, 32))
REMOVAL, DURATION = np.uint64(KIND_REMOVAL), np.uint64(KIND_DURATION)
DAY_BEFORE: Any = np.int64(-1)
"""The day index of the pre-day-0 check (typed int64: a literal would compile a callee once more)."""
HALF_FIXED = 1 << 15
"""Rounding half up of a fixed-point (16 fractional bits) product."""


def _compiled(function: F) -> F:
    """``numba.njit`` with the on-disk cache, keeping the function's type for mypy."""
    return cast(F, numba.njit(cache=True, nogil=True)(function))


@_compiled
def _leaving(sne_tomorrow: int, ppr_tomorrow: int, ll: int, oh: int, br: int) -> int:
    """Step 3's checks for tomorrow: 0 (may go on flying), 4 (to repair) or 6 (to storage)."""
    if sne_tomorrow > ll:
        return 6
    if ppr_tomorrow > oh:
        return 4 if sne_tomorrow < br else 6
    return 0


@_compiled
def check_before_day_zero(d0: int, day_zero: Any, static: Any, state: Any, plan: Any, work: Any) -> None:
    """MP3's state to the population at D0: earlier deliveries done, then step 3's checks as of D0 - 1.

    ``day_zero`` is each agent's MP5 minutes of day 0. With maintenance options the airframes sent to repair are
    admitted to their shop (``plan``'s ``under`` holds MP3's repairs per group) with day index -1; the repair list
    and queues in ``plan`` and ``work`` are rebuilt from the state afterwards.
    """
    _, ll, oh, br, _, partout_time, repair_minus_assembly, delivery_day = static
    status, sne, ppr, repair_days, partout, assembly = state[:6]
    maintained = plan[0].shape[0] > 0
    for i in range(status.shape[0]):
        if status[i] == 0 and delivery_day[i] != NO_DATE and delivery_day[i] < d0:
            status[i], sne[i], ppr[i] = 3, 0, 0
        elif status[i] == 2:
            decided = _leaving(sne[i] + day_zero[i], ppr[i] + day_zero[i], ll[i], oh[i], br[i])
            if decided == 4:
                repair_days[i] = 0
                if maintained:
                    admit(i, DAY_BEFORE, d0 - 1, static, state, plan, work[3], work[4])
                else:
                    partout[i] = d0 - 1 + partout_time[i]
                    assembly[i] = d0 - 1 + repair_minus_assembly[i]
            if decided:
                status[i] = decided


@_compiled
def simulate_days(
    first: int,
    d0: int,
    block: int,
    minutes: Any,
    view: Any,
    targets: Any,
    static: Any,
    ready_range: tuple[int, int],
    deliveries: Any,
    state: Any,
    tally: Any,
    work: Any,
    plan: Any,
    rows: Any,
    totals: Any,
) -> None:
    """Simulate days ``first .. first + len(totals[0]) - 1``, changing ``state``, ``tally`` and ``work`` in place.

    Args:
        first: the first day index.
        d0: day number of D0.
        block: agents per member (airframes of the fleet): member ``m`` holds agents ``m * block ..`` and groups
            ``m * groups / members ..``.
        minutes: MP5 as ``[day, column]``.
        view: the MP5 column each agent flies (``int64[n]``; zero-length: see the next), the first column each
            member flies (``int64[members]``, member ``m`` flying ``block`` columns from there; zero-length with
            the first or when column = agent) and a scratch pair of rows (``uint16[2, n]``) the day's rows are
            gathered into.
        targets: MP4 as ``[day, group]``.
        static: the per-airframe constants, in :data:`STATIC_FIELDS` order.
        ready_range: the smallest and largest ``repair_time`` (from day ``largest - 1`` on, every status 1 requests).
        deliveries: the airframes in status 0 by delivery day, and where each day starts in that list.
        state: the agent variables, in :data:`~.numpy_backend.STATE_FIELDS` order.
        tally: airframes per status and type, ``[7, types]``, kept up to date with the day's transitions.
        work: the flags of leaving flyers (``uint8``, padded to whole 8-byte words), two scratch lists (``int32[n]``),
            the repairs under way (``int32[n]``: every airframe in status 4 but those waiting for a slot) and how many
            there are (``int64[1]``).
        plan: the maintenance options and repair queues (see the module docstring; zero-length arrays for none).
        rows: the per-airframe MP2 columns of :data:`~.mp2_log.AIRFRAME_STATE`, each ``days * n`` long (rows by day,
            then idx), or zero-length columns for no per-airframe log; then ``repair_queued`` (``uint8``, zero-length
            without maintenance options).
        totals: per day and group, zero-filled on entry: granted ``[days, groups]``, shortfall ``[days, groups]``,
            status counts ``[days, 7, groups]``, transitions ``[days, 8, groups]``, requesters ``[days, 4, groups]``,
            waiting for a repair slot at the start of the day ``[days, groups]``, unplanned removals ``[days,
            groups]``.
    """
    ac_type, ll, oh, _, repair_time, _, _, _ = static
    status, sne, ppr, repair_days = state[:4]
    repair_duration, queued_since = state[7], state[8]
    delivery_order, delivery_bounds = deliveries
    flags, chosen, deferred, repairing, sizes = work
    granted, shortfall, counts, transitions, eligible, queue, unplanned = totals
    columns, offsets, pair = view
    n, types = status.shape[0], targets.shape[1]
    full, queued_log = rows[0].shape[0] > 0, rows[9].shape[0] > 0
    maintained, removals = plan[0].shape[0] > 0, plan[1].shape[0] > 0 and plan[1].max() > 0
    under, waiting = plan[7], plan[12]
    gather = columns.shape[0] > 0 or offsets.shape[0] > 0
    if gather:
        _gather(minutes[first], columns, offsets, block, pair[first % 2])
    left = np.zeros((CLASSES, types), dtype=np.int64)
    for r in range(granted.shape[0]):
        s = first + r
        today = d0 + s
        counts[r] = tally
        if gather:
            _gather(minutes[s + 1], columns, offsets, block, pair[(s + 1) % 2])
            minutes_today, minutes_tomorrow = pair[s % 2], pair[(s + 1) % 2]
        else:
            minutes_today, minutes_tomorrow = minutes[s], minutes[s + 1]
        if full:
            rows[0][r * n : (r + 1) * n] = status
        if queued_log:
            for i in range(n):
                rows[9][r * n + i] = queued_since[i] != NO_DATE
        if maintained:
            queue[r] = waiting
        _fly(minutes_today, minutes_tomorrow, status, sne, ppr, ll, oh, flags)
        if removals:
            flag_removals(s, status, ac_type, flags, plan, chosen)
        n_deferred = _count_down(repairing, sizes, repair_days, repair_duration, ppr, ac_type, deferred, under,
                                 transitions[r])  # fmt: skip
        for j in range(delivery_bounds[s], delivery_bounds[s + 1]):
            i = delivery_order[j]
            if status[i] == 0:
                sne[i], ppr[i] = 0, 0
                transitions[r, T03, ac_type[i]] += 1
                deferred[n_deferred] = i
                n_deferred += 1
        if maintained:
            serve_queue(s, today, static, state, plan, repairing, sizes)
            _leave_for_shops(s, today, minutes_tomorrow, static, state, flags, repairing, sizes, plan, transitions[r],
                             unplanned[r])  # fmt: skip
        else:
            _leave(today, minutes_tomorrow, static, state[:6], flags, repairing, sizes, transitions[r])
        if ready_range[0] <= s + 1 < ready_range[1]:
            for i in range(n):
                if status[i] == 1 and s + 1 >= repair_time[i]:
                    eligible[r, 3, ac_type[i]] += 1
        for t in range(types):
            eligible[r, 0, t] = tally[2, t] - transitions[r, T24, t] - transitions[r, T26, t]
            eligible[r, 1, t], eligible[r, 2, t] = tally[3, t], tally[5, t]
            if s + 1 >= ready_range[1]:
                eligible[r, 3, t] = tally[1, t]
            remaining = targets[s + 1, t]
            for cls in range(CLASSES):
                left[cls, t] = min(eligible[r, cls, t], remaining)
                remaining -= left[cls, t]
            granted[r, t], shortfall[r, t] = targets[s + 1, t] - remaining, remaining
            transitions[r, T32, t], transitions[r, T52, t], transitions[r, T12, t] = left[1, t], left[2, t], left[3, t]
            left[0, t] = eligible[r, 0, t] - left[0, t]  # class (a): from here, how many are refused
            transitions[r, T23, t] = left[0, t]
        _grant(s, today, left, status, ac_type, repair_time, state[6], chosen, block)
        for j in range(n_deferred):
            i = deferred[j]
            status[i] = 5 if status[i] == 4 else 3
        for t in range(types):
            for kind, (a, b) in enumerate(TRANSITION_PAIRS):
                tally[a, t] -= transitions[r, kind, t]
                tally[b, t] += transitions[r, kind, t]
        if full:
            _log_day(r * n, minutes_today, state, rows)


@_compiled
def _gather(row: Any, columns: Any, offsets: Any, block: int, out: Any) -> None:
    """One MP5 row in agent order: ``out[i] = row[columns[i]]``, or member by member from ``offsets``."""
    for m in range(offsets.shape[0]):
        out[m * block : (m + 1) * block] = row[offsets[m] : offsets[m] + block]
    for i in range(columns.shape[0]):
        out[i] = row[columns[i]]


@_compiled
def _fly(today: Any, tomorrow: Any, status: Any, sne: Any, ppr: Any, ll: Any, oh: Any, flags: Any) -> None:
    """Every airframe: fly the day's minutes if in status 2; flag the flyers that cannot fly tomorrow's."""
    for i in range(status.shape[0]):
        flying = status[i] == 2
        flight = np.int32(today[i]) if flying else np.int32(0)
        sne_end, ppr_end = sne[i] + flight, ppr[i] + flight
        sne[i], ppr[i] = sne_end, ppr_end
        dn = np.int32(tomorrow[i])
        flags[i] = flying & ((sne_end + dn > ll[i]) | (ppr_end + dn > oh[i]))


@_compiled
def _count_down(
    repairing: Any,
    sizes: Any,
    repair_days: Any,
    repair_duration: Any,
    ppr: Any,
    ac_type: Any,
    deferred: Any,
    under: Any,
    transitions: Any,
) -> int:
    """Rule 2 for every repair under way; the finished ones leave the list and go into ``deferred`` (4 -> 5).

    ``under`` (repairs under way per group; zero-length without maintenance options) loses the finished ones.

    Returns:
        How many went into ``deferred``.
    """
    done = 0
    j, count = 0, sizes[0]
    while j < count:
        i = repairing[j]
        repair_days[i] += 1
        if repair_days[i] >= repair_duration[i]:
            repair_days[i], ppr[i] = 0, 0
            transitions[T45, ac_type[i]] += 1
            if under.shape[0] > 0:
                under[ac_type[i]] -= 1
            deferred[done] = i
            done += 1
            count -= 1
            repairing[j] = repairing[count]  # not counted down yet today: stay on j
        else:
            j += 1
    sizes[0] = count
    return done


@_compiled
def _leave(today: int, tomorrow: Any, static: Any, state: Any, flags: Any, repairing: Any, sizes: Any, tr: Any) -> None:
    """The flagged flyers go to repair (with its dates, and into the repair list) or to storage.

    ``state`` holds the first six agent variables only: what a day of today's model passes costs less to pass.
    """
    ac_type, ll, oh, br, _, partout_time, repair_minus_assembly, _ = static
    status, sne, ppr, repair_days, partout, assembly = state
    words = flags.view(np.uint64)
    for w in range(words.shape[0]):
        if words[w] == 0:
            continue
        for i in range(8 * w, 8 * w + 8):
            if flags[i] == 0:
                continue
            decided = _leaving(sne[i] + tomorrow[i], ppr[i] + tomorrow[i], ll[i], oh[i], br[i])
            if decided == 4:
                tr[T24, ac_type[i]] += 1
                status[i], repair_days[i] = 4, 0
                partout[i] = today + partout_time[i]
                assembly[i] = today + repair_minus_assembly[i]
                repairing[sizes[0]] = i
                sizes[0] += 1
            else:
                tr[T26, ac_type[i]] += 1
                status[i] = 6


@_compiled
def _leave_for_shops(
    s: int,
    today: int,
    tomorrow: Any,
    static: Any,
    state: Any,
    flags: Any,
    repairing: Any,
    sizes: Any,
    plan: Any,
    tr: Any,
    unplanned: Any,
) -> None:
    """:func:`_leave` with maintenance options: flag 2 is also a removal to repair, an unplanned one.

    Unplanned removals are counted in ``unplanned``; an airframe sent to repair is admitted to its group's shop
    (:func:`admit`).
    """
    ac_type, ll, oh, br = static[:4]
    status, sne, ppr, repair_days = state[:4]
    words = flags.view(np.uint64)
    for w in range(words.shape[0]):
        if words[w] == 0:
            continue
        for i in range(8 * w, 8 * w + 8):
            if flags[i] == 0:
                continue
            if flags[i] == 2:
                decided = 4
                unplanned[ac_type[i]] += 1
            else:
                decided = _leaving(sne[i] + tomorrow[i], ppr[i] + tomorrow[i], ll[i], oh[i], br[i])
            if decided == 4:
                tr[T24, ac_type[i]] += 1
                status[i], repair_days[i] = 4, 0
                admit(i, s, today, static, state, plan, repairing, sizes)
            else:
                tr[T26, ac_type[i]] += 1
                status[i] = 6


@_compiled
def _grant(
    s: int, today: int, left: Any, status: Any, ac_type: Any, repair_time: Any, active: Any, chosen: Any, block: int
) -> None:
    """Apply the quota decided in ``left[class, group]``: how many to grant of classes (b), (c), (d), to refuse of (a).

    The granted ones of (b), (c), (d) are the first of their class and group by aircraft number, found by a scan from
    the start that stops as soon as it has them all; they move to 2 only once the refused flyers, the last of class
    (a) of their group, are found by a scan from the end (every airframe in status 2 then is a class-(a) flyer).
    Agents come in blocks of ``block`` (the members of an ensemble; one block in a single run), each holding its own
    groups: each block is scanned on its own, and only as far as its own grants need.
    """
    n, groups = status.shape[0], left.shape[1]
    blocks = n // block if block > 0 else 0
    per_block = groups // blocks if blocks > 0 else 0
    n_chosen = 0
    for b in range(blocks):
        first, last = b * block, (b + 1) * block
        own = left[:, b * per_block : (b + 1) * per_block]
        for cls, member in REQUESTING:
            pending = own[cls].sum()
            i = first
            while pending > 0 and i < last:
                if status[i] == member and left[cls, ac_type[i]] > 0 and (member != 1 or s + 1 >= repair_time[i]):
                    left[cls, ac_type[i]] -= 1
                    pending -= 1
                    chosen[n_chosen] = i
                    n_chosen += 1
                i += 1
        pending = own[0].sum()
        i = last - 1
        while pending > 0 and i >= first:
            if status[i] == 2 and left[0, ac_type[i]] > 0:
                status[i] = 3
                left[0, ac_type[i]] -= 1
                pending -= 1
            i -= 1
    for j in range(n_chosen):
        i = chosen[j]
        if status[i] == 1:
            active[i] = today + 1 - repair_time[i]
        status[i] = 2


@_compiled
def _log_day(base: int, today: Any, state: Any, rows: Any) -> None:
    """The day's per-airframe MP2 rows (``status_id``, the status spent on the day, is written before it starts)."""
    status, sne, ppr, repair_days, partout, assembly, active = state[:7]
    status_id, next_status, daily_flight, sne_log, ppr_log, repair_log, partout_log, assembly_log, active_log = rows[:9]
    for i in range(status.shape[0]):
        row = base + i
        next_status[row] = status[i]
        daily_flight[row] = today[i] if status_id[row] == 2 else 0
        sne_log[row], ppr_log[row], repair_log[row] = sne[i], ppr[i], repair_days[i]
        partout_log[row] = NAT if partout[i] == NO_DATE else partout[i]
        assembly_log[row] = NAT if assembly[i] == NO_DATE else assembly[i]
        active_log[row] = NAT if active[i] == NO_DATE else active[i]


# ------------------------------------------------------------------------------------ maintenance options


@_compiled
def mix64(x: Any) -> Any:
    """The SplitMix64 finaliser on a ``uint64`` (wrap-around arithmetic)."""
    x = x + GOLDEN
    x = (x ^ (x >> SHIFT_30)) * MIX_1
    x = (x ^ (x >> SHIFT_27)) * MIX_2
    return x ^ (x >> SHIFT_31)


@_compiled
def draw(key: Any, day: int, idx: Any, kind: Any) -> Any:
    """:func:`.ensemble.draw` for one airframe: 32 random bits (a ``uint64`` below 2**32); ``day`` >= 0."""
    counter = (np.uint64(day) << SHIFT_32) | (idx << SHIFT_2) | kind
    return mix64(key ^ mix64(counter)) >> SHIFT_32


@_compiled
def flag_removals(s: int, status: Any, group: Any, flags: Any, plan: Any, flyers: Any) -> None:
    """Step 3's unplanned removals: a flyer that may go on flying (flag 0) is flagged 2 when its draw says so.

    The flyers of groups with a hazard are first listed into ``flyers`` (scratch, ``int32[n]``) without a branch
    (one on the status would be mispredicted about every other airframe); only they draw.
    """
    hazard, key, fleet_idx = plan[1], plan[5], plan[6]
    count = 0
    for i in range(status.shape[0]):
        flyers[count] = i
        count += (status[i] == 2) & (flags[i] == 0) & (hazard[group[i]] > 0)
    for j in range(count):
        i = flyers[j]
        g = group[i]
        if draw(key[g], s, fleet_idx[i], REMOVAL) < hazard[g]:
            flags[i] = 2


@_compiled
def start_repair(i: int, s: int, decided_on: int, static: Any, state: Any, plan: Any, repairing: Any,
                 sizes: Any) -> None:  # fmt: skip
    """Agent ``i`` starts a repair on day index ``s`` (date ``decided_on``): its duration, dates, and a place.

    The duration is MP1's ``repair_time`` or one drawn with day ``s + 1`` (the rule of docs/lifecycle.md); the
    repair is counted down from the next day on.
    """
    group, _, _, _, repair_time, partout_time, repair_minus_assembly, _ = static
    repair_days, partout, assembly, repair_duration, queued_since = state[3], state[4], state[5], state[7], state[8]
    spread_kind, table, length, key, fleet_idx, under = plan[2], plan[3], plan[4], plan[5], plan[6], plan[7]
    g = group[i]
    duration: Any = np.int64(repair_time[i])
    if spread_kind[g] != SPREAD_NONE:
        u = draw(key[g], s + 1, fleet_idx[i], DURATION)
        entry = table[g, np.int64((u * length[g]) >> SHIFT_32)]
        duration = entry if spread_kind[g] == SPREAD_DAYS else max(1, (duration * entry + HALF_FIXED) >> 16)
    repair_duration[i] = duration
    repair_days[i] = 0
    partout[i] = decided_on + partout_time[i]
    assembly[i] = decided_on + duration - (repair_time[i] - repair_minus_assembly[i])
    queued_since[i] = NO_DATE
    repairing[sizes[0]] = i
    sizes[0] += 1
    under[g] += 1


@_compiled
def admit(i: int, s: int, decided_on: int, static: Any, state: Any, plan: Any, repairing: Any, sizes: Any) -> None:
    """Agent ``i`` is sent to repair on day index ``s``: it starts if its group's shop has a free slot, else waits.

    Call it for a day's entrants in idx order, after :func:`serve_queue`: those waiting from earlier days come
    first, so an entrant finds a free slot only when nobody of its group waits.
    """
    slots, under, store, base, capacity, head, length = plan[0], plan[7], plan[8], plan[9], plan[10], plan[11], plan[12]
    g = static[0][i]
    if under[g] < slots[g]:
        start_repair(i, s, decided_on, static, state, plan, repairing, sizes)
    else:
        state[8][i] = decided_on
        store[base[g] + (head[g] + length[g]) % capacity[g]] = i
        length[g] += 1


@_compiled
def serve_queue(s: int, decided_on: int, static: Any, state: Any, plan: Any, repairing: Any, sizes: Any) -> None:
    """Day ``s``: the waiting airframes take the slots left free after the day's finished repairs, in queue order."""
    slots, under, store, base, capacity, head, length = plan[0], plan[7], plan[8], plan[9], plan[10], plan[11], plan[12]
    for g in range(slots.shape[0]):
        while length[g] > 0 and under[g] < slots[g]:
            i = store[base[g] + head[g]]
            head[g] = (head[g] + 1) % capacity[g]
            length[g] -= 1
            start_repair(i, s, decided_on, static, state, plan, repairing, sizes)
