"""A lifecycle ensemble, declared: plan variants, stochastic maintenance, repair-shop capacity, replications.

An :class:`Ensemble` travels in a job's :class:`~simfleet.shared.messages.lifecycle.JobSpec` (and is what a variants
file holds, see :mod:`simfleet.worker.lifecycle.variants`). Without one a job is today's single deterministic run.
Each variant is a set of changes to one fleet's inputs; every variant runs ``replications`` times, member ``m`` being
variant ``m // replications``, replication ``m % replications``. Units: targets in aircraft, minutes of flight per
aircraft and day, repair times in days, hazards per airframe and day in operation.

What a value means is documented in docs/lifecycle.md ("Planning"); the checks that need the inputs (a type or a
date outside the horizon) are made by :func:`simfleet.worker.lifecycle.variants.check_ensemble`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from simfleet.shared.messages import Message

MAX_MEMBERS = 4096
"""Variants x replications of one ensemble, at most (the groups of a stacked run are numbered in ``int32``)."""
VariantName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._+%=-]*$")]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
MAX_FACTOR = 1000.0
"""The largest factor of a change (every column is clipped far below what it could reach)."""
MAX_CHANGE = 1_000_000
"""The largest offset (either sign) or value of a change: beyond every column's limit, so the clip decides."""


class Change(Message, frozen=True):
    """One change to a plan table, applied over a date range to every row of one type (or all types).

    Exactly one of ``factor``, ``offset``, ``value`` or ``values`` is given:

    - ``factor``: multiply (>= 0), rounded half up to a whole number;
    - ``offset``: add (may be negative);
    - ``value``: replace by this value;
    - ``values``: replace by a table of ``date: value``, each value holding from its date to the day before the
      next listed date (the last one to ``end``); dates before the first listed one keep their value.

    A result below 0 is 0, and above the column's limit the limit (1440 minutes, 65535 aircraft or days); repair
    times are at least 1 day.

    Attributes:
        ac_type: ``mi8`` or ``mi17``; empty for every type.
        start: the first date changed (inclusive); ``None`` for D0.
        end: the last date changed (inclusive); ``None`` for the end of the horizon.
    """

    factor: Annotated[float, msgspec.Meta(ge=0, le=MAX_FACTOR)] | None = None
    offset: Annotated[int, msgspec.Meta(ge=-MAX_CHANGE, le=MAX_CHANGE)] | None = None
    value: Annotated[int, msgspec.Meta(ge=0, le=MAX_CHANGE)] | None = None
    values: dict[dt.date, Annotated[int, msgspec.Meta(ge=0, le=MAX_CHANGE)]] | None = None
    ac_type: str = ""
    start: dt.date | None = None
    end: dt.date | None = None


class Lognormal(Message, tag="lognormal", tag_field="kind", frozen=True):
    """Repair durations drawn from a lognormal law with mean MP1's ``repair_time`` and coefficient of variation ``cv``.

    Drawn as one of 1024 equally likely quantiles of that law (rounded half up to whole days, at least 1).
    """

    cv: NonNegative


class Empirical(Message, tag="empirical", tag_field="kind", frozen=True):
    """Repair durations drawn uniformly from a list of observed durations (days, each at least 1)."""

    days: Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=65535)]], msgspec.Meta(min_length=1)]


Spread = Lognormal | Empirical


class Maintenance(Message, frozen=True):
    """The maintenance options of one aircraft type.

    Attributes:
        repair_slots: overhauls the type's shop runs at once (``None``: unlimited, today's model); an airframe sent
            to repair when every slot is taken waits in the repair queue.
        spread: how a repair's duration is drawn (``None``: MP1's ``repair_time``, today's model).
        removal_hazard: the chance per day that an airframe in operation is removed for repair unplanned (0: never).
    """

    repair_slots: Annotated[int, msgspec.Meta(ge=1)] | None = None
    spread: Spread | None = None
    removal_hazard: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.0

    @property
    def stochastic(self) -> bool:
        """Whether replications of it differ."""
        return self.spread is not None or self.removal_hazard > 0


class Variant(Message, frozen=True):
    """One plan variant of the fleet.

    Attributes:
        name: shown in reports and in ClickHouse's ``mp2_variants``.
        targets: changes to MP4 ``ops_target`` (aircraft), in order.
        minutes: changes to MP5 ``daily_minutes`` (minutes per aircraft and day), in order; a changed day of an
            aircraft without an MP5 row starts from 0.
        repair_time: changes to MP1 ``repair_time`` (days), in order (dates do not apply: give none).
        maintenance: per type, replaces the ensemble's ``maintenance`` for that type.
    """

    name: VariantName
    targets: list[Change] = msgspec.field(default_factory=list)
    minutes: list[Change] = msgspec.field(default_factory=list)
    repair_time: list[Change] = msgspec.field(default_factory=list)
    maintenance: dict[str, Maintenance] = msgspec.field(default_factory=dict)


class Ensemble(Message, frozen=True):
    """Variants x replications of one fleet, run as one simulation.

    Attributes:
        variants: at least one; names unique.
        replications: runs of each variant, differing only in their random draws (1 for a deterministic plan).
        seed: the ensemble's seed; replication ``r`` of every variant draws the same numbers where they ask the same
            question (common random numbers), so variants compare on the same luck.
        maintenance: per type, the default of every variant.
    """

    variants: Annotated[list[Variant], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: [Variant(name="base")]
    )
    replications: Annotated[int, msgspec.Meta(ge=1, le=MAX_MEMBERS)] = 1
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0
    maintenance: dict[str, Maintenance] = msgspec.field(default_factory=dict)

    @property
    def members(self) -> int:
        """Variants x replications."""
        return len(self.variants) * self.replications

    def maintenance_of(self, variant: int, ac_type: str) -> Maintenance:
        """The options a variant's type runs with."""
        own = self.variants[variant].maintenance
        return own.get(ac_type) or self.maintenance.get(ac_type) or Maintenance()


__all__ = ["MAX_MEMBERS", "Change", "Empirical", "Ensemble", "Lognormal", "Maintenance", "Spread", "Variant"]
