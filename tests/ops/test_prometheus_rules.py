"""The alert rules and the scrape config, checked by Prometheus's own tool: ``promtool check`` parses them as
Prometheus will, and ``promtool test rules`` runs ops/prometheus/alerts_test.yml, where each alert must fire on
exporter-shaped series after its ``for:`` (with the labels and annotations an operator reads) and stay quiet on
input that looks alike. Debian/Ubuntu ship promtool in the ``prometheus`` package."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "ops" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERTS_TEST = PROMETHEUS / "alerts_test.yml"
SCRAPE_CONFIG = PROMETHEUS / "prometheus.yml"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not on PATH: install it with `apt-get install --no-install-recommends prometheus`",
)


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def alert_names() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    tests = yaml.safe_load(ALERTS_TEST.read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = alert_names()
    assert len(names) == len(set(names)), "two alerts share a name"
    assert set(names) - fires == set(), "alerts that no test makes fire"
    assert set(names) - quiet == set(), "alerts without a case where they must not fire"
    assert fires | quiet <= set(names), "tests of alerts alerts.yml does not have"


@needs_promtool
def test_promtool_accepts_the_alert_rules() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in checked.stdout


@needs_promtool
def test_promtool_accepts_the_scrape_config(tmp_path: Path) -> None:
    # The config reads Flower's password from a file on the Prometheus host: check a copy that points at a real one.
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    password = tmp_path / "flower-password"
    password.write_text("secret\n")
    password.chmod(0o600)
    files = 0
    for job in config["scrape_configs"]:
        auth = job.get("basic_auth")
        if auth and "password_file" in auth:
            auth["password_file"] = str(password)
            files += 1
    assert files, "the scrape config no longer reads a password file: drop this rewrite"
    config["rule_files"] = [str(PROMETHEUS / name) for name in config["rule_files"]]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    checked = promtool("check", "config", str(copy), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "is valid prometheus config file syntax" in checked.stdout
    assert f"SUCCESS: {len(alert_names())} rules found" in checked.stdout


@needs_promtool
def test_each_alert_fires_on_exporter_series_after_its_for_and_not_on_lookalikes() -> None:
    tested = promtool("test", "rules", ALERTS_TEST.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@needs_promtool
def test_a_broken_rule_fails_the_unit_tests(tmp_path: Path) -> None:
    # The unit tests are able to fail: the same tests against rules with the Redis memory threshold raised to 95%.
    text = ALERTS.read_text()
    assert "> 0.8" in text
    (tmp_path / "alerts.yml").write_text(text.replace("> 0.8", "> 0.95"))
    shutil.copy(ALERTS_TEST, tmp_path / "alerts_test.yml")
    tested = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert tested.returncode != 0
    assert "SimfleetRedisMemoryNearLimit" in tested.stdout + tested.stderr
