"""The fuzz families and how a run's cases are drawn from them, each family driven by a seeded ``random.Random``.

The families live beside this module: ``scenario_cases`` (DES scenarios), ``inputs_cases`` (lifecycle input
folders), ``command_cases`` (flags, API calls, interrupted runs), all starting from ``templates``. Every generator
yields :class:`~tests.fuzz.harness.Case` objects. A case is ``expect="error"`` when its mutation makes
the input bad whatever else is in it (a NaN where a number belongs, a FIFO where a table belongs), and
``expect="either"`` when the mutated input may still be valid (a rate of 1e308 may be refused or run to a guard).
The base inputs are small so that a valid case runs in well under a second: the DES scenarios are the example
scenarios cut to 20 simulated seconds, the lifecycle inputs a synthetic fleet of 12 airframes over 40 days.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from tests.fuzz.command_cases import api_cases, flag_cases, interrupt_cases
from tests.fuzz.harness import Case
from tests.fuzz.inputs_cases import inputs_cases
from tests.fuzz.scenario_cases import scenario_cases
from tests.fuzz.templates import Templates

GENERATORS: dict[str, Callable[[Templates, random.Random, int], Iterator[Case]]] = {
    "scenario": scenario_cases,
    "inputs": inputs_cases,
    "flags": flag_cases,
    "api": api_cases,
    "interrupt": interrupt_cases,
}

SHARES = {"scenario": 0.45, "inputs": 0.35, "flags": 0.1, "api": 0.05, "interrupt": 0.05}
"""How a run's cases are spread over the families (flags and API calls are fixed lists, repeated to fill)."""


def make_cases(templates: Templates, total: int, seed: int) -> list[Case]:
    """``total`` cases over every family, the same for the same ``seed``."""
    cases: list[Case] = []
    for family, share in SHARES.items():
        rng = random.Random(f"{seed}-{family}")
        wanted = max(1, round(total * share))
        made: list[Case] = []
        while len(made) < wanted:
            batch = list(GENERATORS[family](templates, rng, wanted - len(made)))
            if not batch:
                break
            made.extend(batch)
        cases.extend(made[:wanted])
    return cases
