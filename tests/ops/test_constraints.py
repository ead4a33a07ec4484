"""ops/constraints.txt, the pins the images install with: complete, consistent with pyproject.toml, and used.

A deployment must install what the tests ran with, not whatever is newest on the day of the build. So every runtime
dependency of the project (and the ``s3`` extra the images install) is pinned, the pin satisfies pyproject's range,
everything those need in turn is pinned too, and both Dockerfile targets install through the file.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "ops" / "constraints.txt"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def pins() -> dict[str, Version]:
    pinned: dict[str, Version] = {}
    for number, line in enumerate(CONSTRAINTS.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line.strip())
            assert match, f"ops/constraints.txt:{number}: not name==version: {line!r}"
            name = canonicalize_name(match.group(1))
            assert name not in pinned, f"ops/constraints.txt:{number}: {name} pinned twice"
            pinned[name] = Version(match.group(2))
    return pinned


def runtime_requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    return [Requirement(text) for text in [*project["dependencies"], *project["optional-dependencies"]["s3"]]]


def load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("pin_constraints", ROOT / "ops" / "pin_constraints.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("requirement", runtime_requirements(), ids=str)
def test_every_runtime_dependency_is_pinned_within_pyprojects_range(requirement: Requirement) -> None:
    pinned = pins()
    name = canonicalize_name(requirement.name)
    assert name in pinned, f"{name} is not in ops/constraints.txt: run ops/pin_constraints.py"
    assert requirement.specifier.contains(pinned[name], prereleases=True), (
        f"ops/constraints.txt pins {name}=={pinned[name]}, outside pyproject's {requirement.specifier}"
    )


def test_everything_the_dependencies_need_is_pinned_too() -> None:
    """The installed closure of the runtime dependencies, by name: an unpinned transitive package would float."""
    generator = load_generator()
    needed = set(generator.closure(generator.runtime_requirements(PYPROJECT))) - {"simfleet"}
    missing = sorted(needed - set(pins()))
    assert missing == [], f"not pinned in ops/constraints.txt: {missing}; run ops/pin_constraints.py"


def test_development_tools_stay_out_of_the_images() -> None:
    dev = PYPROJECT["project"]["optional-dependencies"]["dev"]
    development = {canonicalize_name(Requirement(text).name) for text in dev}
    runtime = {canonicalize_name(requirement.name) for requirement in runtime_requirements()}
    leaked = sorted((development - runtime - {"setuptools"}) & set(pins()))
    assert leaked == []


def test_the_gpu_image_pins_cupy_for_cuda_12() -> None:
    assert "cupy-cuda12x" in pins()


def test_both_dockerfile_targets_install_through_the_constraints_file() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert text.count("COPY ops/constraints.txt /tmp/constraints.txt") == 2
    installs = re.findall(r"RUN PIP_CONSTRAINT=/tmp/constraints.txt pip install -c /tmp/constraints.txt [^\n]+", text)
    assert len(installs) == 2
    assert "ops/constraints.txt" not in (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
