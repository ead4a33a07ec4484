"""The three folders install as simfleet.shared, simfleet.worker and simfleet.producer, and nothing else."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("shared", "worker", "producer")


def test_every_package_folder_is_listed_under_its_simfleet_name():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {f"simfleet.{name}": name for name in FOLDERS}
    found = sorted(
        "simfleet." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    )
    assert sorted(config["packages"]) == found


def test_the_wheel_holds_only_the_simfleet_namespace(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path)],
        check=True,
    )
    (wheel,) = tmp_path.glob("simfleet-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"simfleet", wheel.name.split("-py3")[0] + ".dist-info"}
    names = zipfile.ZipFile(wheel).namelist()
    assert "simfleet/worker/celery_main.py" in names and "simfleet/shared/py.typed" in names


def test_outside_the_checkout_only_the_simfleet_names_import(tmp_path):
    code = (
        "import importlib.util, simfleet.worker.stages, simfleet.producer.cli, simfleet.shared.errors\n"
        "print([importlib.util.find_spec(n) is None for n in ('shared', 'worker', 'producer')])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[True, True, True]"
