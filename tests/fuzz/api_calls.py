"""The Python API as the fuzz cases call it: a fleet client on an unreachable Redis, so that a bad call that is not
refused before anything is sent ends in ``FleetUnavailable`` (which the harness counts as a failure to check)."""

from __future__ import annotations

from typing import Any

from simfleet.producer.fleet.client import Fleet


def run_lifecycle(**kwargs: Any) -> None:
    with Fleet.from_settings() as fleet:
        fleet.run_lifecycle(**kwargs)


def run_des(**kwargs: Any) -> None:
    with Fleet.from_settings() as fleet:
        fleet.run_des(**kwargs)


def sla_search(**kwargs: Any) -> None:
    with Fleet.from_settings() as fleet:
        fleet.sla_search(**kwargs)


def job(**kwargs: Any) -> None:
    with Fleet.from_settings() as fleet:
        fleet.job(**kwargs)


def study(**kwargs: Any) -> None:
    with Fleet.from_settings() as fleet:
        fleet.study(**kwargs)
