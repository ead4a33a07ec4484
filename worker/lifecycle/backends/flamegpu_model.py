"""The lifecycle model as a FLAME GPU 2 model: one agent per airframe, two RTC agent functions, three host functions.

One simulated day is one FLAME GPU step of five layers:

1. ``begin_day`` (host): zero the day's counters; on the first day, load MP5 into the ``minutes`` macro property.
2. ``decide`` (RTC agent function ``decide_day``): rules 1-3 of LIFECYCLE_MODEL.md for each airframe from its
   start-of-day state (delivery, repair progress, flight, limit checks), and its quota request class (a)-(d), if
   any. Requesters stamp themselves into the ``requests`` macro property and count themselves per block of
   airframes and per class.
3. ``grant`` (host): from the number eligible per type and class, how many each class gets of the MP4 target for
   D+1 (class by class until the target is used up), published as the environment arrays ``take`` and ``eligible``.
4. ``apply`` (RTC agent function ``apply_grant``): a requester is granted when its whole class is, or when fewer
   requesters of its class and type come before it in ``idx`` (= aircraft-number) order than its class takes; the
   next status becomes current and the airframe's MP2 row is written to the ``mp2_rows`` macro property.
5. ``export_log`` (host, only when rows are logged): on the days the backend asks, write ``mp2_rows`` to a raw
   binary file, which the backend reads with numpy.

The exact grant stays on the device: "how many requesters come before me" is a prefix count, taken as the sum of
the per-block counts before the airframe's block plus the stamped requesters inside it (at most
:data:`BLOCK_SIZE` reads), so the work per airframe grows with ``n / BLOCK_SIZE``, not with ``n``. Stamps (a number
that grows every simulated day) mean ``requests`` is never cleared.

Host functions never raise into FLAME GPU: they record the error on the :class:`DayBus`, and the backend raises it
after the step. The bus is the only thing they share with the backend, so no reference cycle runs through C++.
"""

from __future__ import annotations

import os
import string
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from simfleet.worker.lifecycle.backends.mp2_log import AIRFRAME_STATE
from simfleet.worker.lifecycle.environment import Environment

AGENT = "airframe"
UINT_VARIABLES = ("idx", "ac_type", "status", "next_status", "request_class")
"""Unsigned agent variables: ``next_status`` and ``request_class`` carry ``decide``'s result to ``apply``."""
INT_VARIABLES = (
    "ll",
    "oh",
    "br",
    "repair_time",
    "partout_time",
    "repair_minus_assembly",
    "delivery_day",
    "sne",
    "ppr",
    "repair_days",
    "partout_date",
    "assembly_date",
    "active_date",
    "flight",
)
"""Signed (int32) agent variables: static limits and times, the state, dates as day numbers, the day's flight."""
CLASSES = 4
"""Quota request classes: (a) flyers that passed the checks, (b) status 3, (c) status 5, (d) ready status 1."""
BLOCK_SIZE = 256
"""Airframes per block of the grant's prefix count."""

ELIGIBLE_COLUMN = 0
COUNT_COLUMN = ELIGIBLE_COLUMN + CLASSES
TO4_COLUMN = COUNT_COLUMN + 7
TO6_COLUMN = TO4_COLUMN + 1
REPAIRED_COLUMN = TO6_COLUMN + 1
DELIVERED_COLUMN = REPAIRED_COLUMN + 1
TALLY_COLUMNS = DELIVERED_COLUMN + 1
"""Columns of the ``tallies`` macro property (one row per type): requesters per class, airframes per status on D,
then the day's 2->4, 2->6, 4->5 and 0->3 decisions."""

DECIDE = """
FLAMEGPU_AGENT_FUNCTION(decide_day, flamegpu::MessageNone, flamegpu::MessageNone) {
    const unsigned int day = FLAMEGPU->environment.getProperty<unsigned int>("day");
    const int today = FLAMEGPU->environment.getProperty<int>("d0") + static_cast<int>(day);
    const unsigned int idx = FLAMEGPU->getVariable<unsigned int>("idx");
    const unsigned int ac_type = FLAMEGPU->getVariable<unsigned int>("ac_type");
    const unsigned int status = FLAMEGPU->getVariable<unsigned int>("status");
    const int repair_time = FLAMEGPU->getVariable<int>("repair_time");
    int sne = FLAMEGPU->getVariable<int>("sne");
    int ppr = FLAMEGPU->getVariable<int>("ppr");
    int repair_days = FLAMEGPU->getVariable<int>("repair_days");
    int flight = 0;
    unsigned int next_status = status;
    unsigned int request_class = 0u;
    auto tallies = FLAMEGPU->environment.getMacroProperty<unsigned int, $TYPES, $TALLY_COLUMNS>("tallies");
    tallies[ac_type][$COUNT_COLUMN + status] += 1u;
    if (status == 0u) {
        if (FLAMEGPU->getVariable<int>("delivery_day") == today) {
            next_status = 3u;
            sne = 0;
            ppr = 0;
            tallies[ac_type][$DELIVERED_COLUMN] += 1u;
        }
    } else if (status == 2u) {
        auto minutes = FLAMEGPU->environment.getMacroProperty<uint16_t, $DAYS_PLUS_ONE, $AIRFRAMES>("minutes");
        flight = static_cast<uint16_t>(minutes[day][idx]);
        const int tomorrow = static_cast<uint16_t>(minutes[day + 1u][idx]);
        sne += flight;
        ppr += flight;
        const int sne_tomorrow = sne + tomorrow;
        if (sne_tomorrow > FLAMEGPU->getVariable<int>("ll")) {
            next_status = 6u;
            tallies[ac_type][$TO6_COLUMN] += 1u;
        } else if (ppr + tomorrow > FLAMEGPU->getVariable<int>("oh")) {
            if (sne_tomorrow < FLAMEGPU->getVariable<int>("br")) {
                next_status = 4u;
                repair_days = 0;
                FLAMEGPU->setVariable<int>("partout_date", today + FLAMEGPU->getVariable<int>("partout_time"));
                const int repair_minus_assembly = FLAMEGPU->getVariable<int>("repair_minus_assembly");
                FLAMEGPU->setVariable<int>("assembly_date", today + repair_minus_assembly);
                tallies[ac_type][$TO4_COLUMN] += 1u;
            } else {
                next_status = 6u;
                tallies[ac_type][$TO6_COLUMN] += 1u;
            }
        } else {
            next_status = 3u;  // unless granted in apply
            request_class = 1u;
        }
    } else if (status == 3u) {
        request_class = 2u;
    } else if (status == 4u) {
        repair_days += 1;
        if (repair_days >= repair_time) {
            next_status = 5u;
            ppr = 0;
            repair_days = 0;
            tallies[ac_type][$REPAIRED_COLUMN] += 1u;
        }
    } else if (status == 5u) {
        request_class = 3u;
    } else if (status == 1u && repair_time <= static_cast<int>(day) + 1) {
        request_class = 4u;
    }
    if (request_class != 0u) {
        const unsigned int key = ac_type * $CLASSES + (request_class - 1u);
        auto requests = FLAMEGPU->environment.getMacroProperty<unsigned int, $KEYS, $AIRFRAMES>("requests");
        auto block_requests = FLAMEGPU->environment.getMacroProperty<unsigned int, $KEYS, $BLOCKS>("block_requests");
        requests[key][idx].exchange(FLAMEGPU->environment.getProperty<unsigned int>("stamp"));
        block_requests[key][idx / $BLOCK_SIZE] += 1u;
        tallies[ac_type][$ELIGIBLE_COLUMN + request_class - 1u] += 1u;
    }
    FLAMEGPU->setVariable<int>("sne", sne);
    FLAMEGPU->setVariable<int>("ppr", ppr);
    FLAMEGPU->setVariable<int>("repair_days", repair_days);
    FLAMEGPU->setVariable<int>("flight", flight);
    FLAMEGPU->setVariable<unsigned int>("next_status", next_status);
    FLAMEGPU->setVariable<unsigned int>("request_class", request_class);
    return flamegpu::ALIVE;
}
"""

APPLY = """
FLAMEGPU_AGENT_FUNCTION(apply_grant, flamegpu::MessageNone, flamegpu::MessageNone) {
    const unsigned int idx = FLAMEGPU->getVariable<unsigned int>("idx");
    const unsigned int status = FLAMEGPU->getVariable<unsigned int>("status");
    const unsigned int request_class = FLAMEGPU->getVariable<unsigned int>("request_class");
    unsigned int next_status = FLAMEGPU->getVariable<unsigned int>("next_status");
    int active_date = FLAMEGPU->getVariable<int>("active_date");
    if (request_class != 0u) {
        const unsigned int key = FLAMEGPU->getVariable<unsigned int>("ac_type") * $CLASSES + (request_class - 1u);
        const unsigned int take = FLAMEGPU->environment.getProperty<unsigned int, $KEYS>("take", key);
        const unsigned int eligible = FLAMEGPU->environment.getProperty<unsigned int, $KEYS>("eligible", key);
        bool granted = take >= eligible;
        if (!granted && take > 0u) {
            // Requesters of this class and type with a smaller idx: whole blocks first, then this block's part.
            const unsigned int stamp = FLAMEGPU->environment.getProperty<unsigned int>("stamp");
            auto requests = FLAMEGPU->environment.getMacroProperty<unsigned int, $KEYS, $AIRFRAMES>("requests");
            auto block_requests =
                FLAMEGPU->environment.getMacroProperty<unsigned int, $KEYS, $BLOCKS>("block_requests");
            const unsigned int block = idx / $BLOCK_SIZE;
            unsigned int ahead = 0u;
            for (unsigned int b = 0u; b < block && ahead < take; ++b) {
                ahead += static_cast<unsigned int>(block_requests[key][b]);
            }
            for (unsigned int j = block * $BLOCK_SIZE; j < idx && ahead < take; ++j) {
                if (static_cast<unsigned int>(requests[key][j]) == stamp) {
                    ahead += 1u;
                }
            }
            granted = ahead < take;
        }
        if (granted) {
            if (status == 1u) {
                const int today = FLAMEGPU->environment.getProperty<int>("d0")
                    + static_cast<int>(FLAMEGPU->environment.getProperty<unsigned int>("day"));
                active_date = today + 1 - FLAMEGPU->getVariable<int>("repair_time");
            }
            next_status = 2u;
        }
    }
    FLAMEGPU->setVariable<unsigned int>("status", next_status);
    FLAMEGPU->setVariable<int>("active_date", active_date);
$LOG_ROW
    return flamegpu::ALIVE;
}
"""

LOG_ROW_HEAD = """\
    auto rows = FLAMEGPU->environment.getMacroProperty<int, $WINDOW, $COLUMNS, $AIRFRAMES>("mp2_rows");
    const unsigned int row = FLAMEGPU->environment.getProperty<unsigned int>("log_row");
"""
ROW_VALUES = {
    "status_id": "static_cast<int>(status)",
    "next_status": "static_cast<int>(next_status)",
    "daily_flight": 'FLAMEGPU->getVariable<int>("flight")',
    "sne": 'FLAMEGPU->getVariable<int>("sne")',
    "ppr": 'FLAMEGPU->getVariable<int>("ppr")',
    "repair_days": 'FLAMEGPU->getVariable<int>("repair_days")',
    "partout_date": 'FLAMEGPU->getVariable<int>("partout_date")',
    "assembly_date": 'FLAMEGPU->getVariable<int>("assembly_date")',
    "active_date": "active_date",
}
"""The C++ value of each per-airframe MP2 column at the end of ``apply`` (end-of-day values, as NumpyBackend)."""


@dataclass(frozen=True)
class Layout:
    """Sizes compiled into the RTC sources (macro property dimensions are template arguments there).

    The last dimension of every macro property is at least 2: FLAME GPU takes a view whose remaining lengths are
    all 1 for a scalar and refuses to index it, so ``block_requests[key][0]`` of a ``[keys][1]`` property fails.
    ``airframes`` is therefore at least 2 (rows past the fleet stay unused).
    """

    airframes: int
    days: int
    types: int
    window_days: int
    log_rows: bool

    @classmethod
    def of(cls, env: Environment, *, window_days: int, log_rows: bool) -> Layout:
        """The layout of ``env``."""
        return cls(max(env.n, 2), env.days, env.n_types, window_days, log_rows)

    @property
    def keys(self) -> int:
        """Request keys: one per (type, class)."""
        return self.types * CLASSES

    @property
    def blocks(self) -> int:
        """Blocks of :data:`BLOCK_SIZE` airframes (at least 2, see above)."""
        return max(-(-self.airframes // BLOCK_SIZE), 2)

    def substitutions(self) -> dict[str, int]:
        """Placeholder values for the RTC sources."""
        return {
            "AIRFRAMES": self.airframes,
            "DAYS_PLUS_ONE": self.days + 1,
            "TYPES": self.types,
            "CLASSES": CLASSES,
            "KEYS": self.keys,
            "BLOCKS": self.blocks,
            "BLOCK_SIZE": BLOCK_SIZE,
            "WINDOW": self.window_days,
            "COLUMNS": len(AIRFRAME_STATE),
            "TALLY_COLUMNS": TALLY_COLUMNS,
            "ELIGIBLE_COLUMN": ELIGIBLE_COLUMN,
            "COUNT_COLUMN": COUNT_COLUMN,
            "TO4_COLUMN": TO4_COLUMN,
            "TO6_COLUMN": TO6_COLUMN,
            "REPAIRED_COLUMN": REPAIRED_COLUMN,
            "DELIVERED_COLUMN": DELIVERED_COLUMN,
        }


def rtc_sources(layout: Layout) -> dict[str, str]:
    """The CUDA C++ source of each agent function by name, with the layout's sizes filled in."""
    values = layout.substitutions()
    log_row = ""
    if layout.log_rows:
        lines = [
            f"    rows[row][{column}][idx].exchange({ROW_VALUES[name]});" for column, name in enumerate(AIRFRAME_STATE)
        ]
        log_row = string.Template(LOG_ROW_HEAD).substitute(values) + "\n".join(lines)
    return {
        "decide_day": string.Template(DECIDE).substitute(values),
        "apply_grant": string.Template(APPLY).substitute(values, LOG_ROW=log_row),
    }


@dataclass
class DayBus:
    """What the host functions and the backend's day loop hand each other.

    Attributes:
        minutes_file: raw uint16 ``[days + 1, airframes]`` MP5, imported on the first day (then deleted).
        quota: MP4 target per type for D+1 (set by the backend before each day).
        export_to: where ``export_log`` writes the MP2 rows at the end of the day (``None``: not this day).
        tallies: ``[types, TALLY_COLUMNS]`` read by ``grant``.
        take: ``[class][type]`` airframes granted per class.
        shortfall: per type, the target for D+1 no eligible airframe could fill.
        error: an exception raised inside a host function, raised again by the backend after the step.
    """

    minutes_file: str
    types: int
    minutes_loaded: bool = False
    quota: list[int] = field(default_factory=list)
    export_to: str | None = None
    tallies: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, TALLY_COLUMNS), dtype=np.int64))
    take: list[list[int]] = field(default_factory=list)
    shortfall: list[int] = field(default_factory=list)
    error: BaseException | None = None


def grant_quota(eligible: list[list[int]], quota: list[int]) -> tuple[list[list[int]], list[int]]:
    """Per type, give ``quota`` to the classes in priority order: ``(take[class][type], shortfall[type])``."""
    take = [[0] * len(quota) for _ in eligible]
    shortfall = []
    for t, target in enumerate(quota):
        remaining = target
        for k, members in enumerate(eligible):
            take[k][t] = min(members[t], remaining)
            remaining -= take[k][t]
        shortfall.append(remaining)
    return take, shortfall


def begin_day(host: Any, bus: DayBus) -> None:
    """Zero the day's counters; load MP5 the first time."""
    environment = host.environment
    if not bus.minutes_loaded:
        environment.importMacroProperty("minutes", bus.minutes_file)
        bus.minutes_loaded = True
        os.remove(bus.minutes_file)
    for name in ("tallies", "block_requests"):
        environment.getMacroPropertyUInt(name).zero()


def grant(host: Any, bus: DayBus) -> None:
    """Read the day's tallies, grant the quota per class, publish ``take`` and ``eligible`` for ``apply``."""
    tallies = host.environment.getMacroPropertyUInt("tallies")
    values = [[int(tallies[t][c].get()) for c in range(TALLY_COLUMNS)] for t in range(bus.types)]
    del tallies  # a live host copy would go stale once the device writes again
    bus.tallies = np.array(values, dtype=np.int64).reshape(bus.types, TALLY_COLUMNS)
    eligible = bus.tallies[:, ELIGIBLE_COLUMN : ELIGIBLE_COLUMN + CLASSES].T.tolist()
    bus.take, bus.shortfall = grant_quota(eligible, bus.quota)
    by_key = [(t, k) for t in range(bus.types) for k in range(CLASSES)]
    host.environment.setPropertyArrayUInt("take", [bus.take[k][t] for t, k in by_key])
    host.environment.setPropertyArrayUInt("eligible", [eligible[k][t] for t, k in by_key])


def export_log(host: Any, bus: DayBus) -> None:
    """Write the MP2 rows collected since the last export, if the backend asked for them today."""
    if bus.export_to is not None:
        host.environment.exportMacroProperty("mp2_rows", bus.export_to)


def host_function(fg: Any, body: Callable[[Any, DayBus], None], bus: DayBus) -> Any:
    """A ``pyflamegpu.HostFunction`` running ``body(host, bus)``, keeping any exception on the bus."""

    class Hook(fg.HostFunction):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()

        def run(self, host: Any) -> None:
            if bus.error is not None:
                return
            try:
                body(host, bus)
            except BaseException as exc:
                if exc.__traceback__ is not None:
                    traceback.clear_frames(exc.__traceback__)  # drop host-side macro property copies
                bus.error = exc

    Hook.__name__ = Hook.__qualname__ = body.__name__
    return Hook()


def describe(fg: Any, env: Environment, layout: Layout, bus: DayBus) -> tuple[Any, Any]:
    """The FLAME GPU model of ``env``: ``(ModelDescription, AgentDescription)``."""
    model = fg.ModelDescription("simfleet_lifecycle")
    agent = model.newAgent(AGENT)
    for name in UINT_VARIABLES:
        agent.newVariableUInt(name, 0)
    for name in INT_VARIABLES:
        agent.newVariableInt(name, 0)
    environment = model.Environment()
    environment.newPropertyInt("d0", env.d0, True)
    for name in ("day", "stamp", "log_row"):
        environment.newPropertyUInt(name, 0)
    environment.newPropertyArrayUInt("take", [0] * layout.keys)
    environment.newPropertyArrayUInt("eligible", [0] * layout.keys)
    environment.newMacroPropertyUInt16("minutes", layout.days + 1, layout.airframes)
    environment.newMacroPropertyUInt("tallies", layout.types, TALLY_COLUMNS)
    environment.newMacroPropertyUInt("requests", layout.keys, layout.airframes)
    environment.newMacroPropertyUInt("block_requests", layout.keys, layout.blocks)
    if layout.log_rows:
        environment.newMacroPropertyInt("mp2_rows", layout.window_days, len(AIRFRAME_STATE), layout.airframes)
    sources = rtc_sources(layout)
    decide = agent.newRTCFunction("decide_day", sources["decide_day"])
    apply = agent.newRTCFunction("apply_grant", sources["apply_grant"])
    model.newLayer("begin_day").addHostFunction(host_function(fg, begin_day, bus))
    model.newLayer("decide").addAgentFunction(decide)
    model.newLayer("grant").addHostFunction(host_function(fg, grant, bus))
    model.newLayer("apply").addAgentFunction(apply)
    if layout.log_rows:
        model.newLayer("export_log").addHostFunction(host_function(fg, export_log, bus))
    return model, agent
