"""A sample of the fuzz suite in every ``make test``: each family's cases, seeded, with no crash, hang, partial write
or bad output (``make fuzz`` runs 2,000 and more)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fuzz.generators import GENERATORS, SHARES, make_cases
from tests.fuzz.harness import run_cases
from tests.fuzz.templates import Templates

# Not SIMFLEET_...: that prefix is the settings' own, and the settings refuse a key they do not know.
SAMPLE = int(os.environ.get("FUZZ_SAMPLE", "120"))
SEED = int(os.environ.get("FUZZ_SEED", "3"))


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    return Templates(tmp_path_factory.mktemp("fuzz-templates"))


PARTS = {"scenario": 3, "inputs": 2}
"""The families with the most cases run in parts (every n-th case), so that pytest-xdist spreads them."""


@pytest.mark.parametrize(
    ("family", "part"), [(family, part) for family in sorted(GENERATORS) for part in range(PARTS.get(family, 1))]
)
def test_fuzz_sample(family: str, part: int, templates: Templates, tmp_path: Path) -> None:
    cases = [case for case in make_cases(templates, SAMPLE, SEED) if case.family == family]
    assert cases, f"no {family} cases at a sample of {SAMPLE} ({SHARES[family]:.0%})"
    cases = cases[part :: PARTS.get(family, 1)]
    report = run_cases(cases, tmp_path, parallel=2, deadline_s=60.0)
    print(report.table())
    assert not report.failures, f"{len(report.failures)} failing cases\n{report.describe_failures()}"
