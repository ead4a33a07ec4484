"""The fleet's Prometheus endpoint, scraped over HTTP as Prometheus would: a real Redis, real worker processes, and
``simfleet exporter`` as a process of its own; the alert rules and the dashboard checked against what it serves."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from simfleet.producer.cli import main
from simfleet.shared.celery_app import PRIORITY_STEPS, priority_list
from simfleet.shared.checkpoints import Checkpoints
from simfleet.shared.errors import ConfigError
from simfleet.shared.settings import PRIORITIES, Settings, load_settings
from simfleet.shared.stores import open_store
from simfleet.worker.supervisor import wait_for
from simfleet.worker.watchdog import Watchdog
from tests.conftest import free_port
from tests.fleet.conftest import settings_text, wait_until
from tests.fleet.lifecycle_helpers import make_inputs

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
SCRAPE_CONFIG = ROOT / "ops" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "simfleet.json"
SCENARIO = ROOT / "config" / "scenarios" / "web_search_load_test.yaml"
PRIORITY_NAMES = {**{step: name for name, step in PRIORITIES.items()}, 9: "lowest"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Exporter:
    """A ``simfleet exporter`` process on a free port, and what it serves."""

    def __init__(self, config: str, log: Path, credentials: tuple[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.credentials = credentials
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "simfleet.producer.cli", "exporter", "--config", config, "--port",
                 str(self.port)], stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

        def answers() -> bool:
            assert self.process.poll() is None, f"exporter exited: {log.read_text()}"
            try:
                return self.get("/healthz")[0] == 200
            except OSError:
                return False

        wait_for(answers, "the exporter", 60, interval_s=0.1)

    def get(self, path: str, credentials: tuple[str, str] | None = None) -> tuple[int, str]:
        """Status and body of a GET (with basic auth when ``credentials`` are given)."""
        request = urllib.request.Request(self.url + path)
        if credentials is not None:
            token = base64.b64encode(":".join(credentials).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def text(self) -> str:
        status, body = self.get("/metrics", self.credentials)
        assert status == 200, body
        return body

    def scrape(self) -> Samples:
        """Every sample served now, by name and labels."""
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(self.text()) for s in family.samples}  # fmt: skip

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels} not served; served: {sorted({n for n, _ in samples})}"
    return samples[key]


def labelled(samples: Samples, name: str) -> list[dict[str, str]]:
    """The label sets served for ``name``."""
    return [dict(labels) for sample, labels in samples if sample == name]


@pytest.fixture
def exporter(fleet_settings: Settings, tmp_path: Path) -> Iterator[Exporter]:
    served = Exporter(fleet_settings.source, tmp_path / "exporter.log")
    yield served
    served.stop()


def test_queue_lengths_and_waiting_work_are_what_redis_holds(fleet, exporter, redis_server, tmp_path):
    job = fleet.run_lifecycle(inputs=make_inputs(tmp_path / "inputs", 20, 60, seed=1), sink="none", priority="high")
    # One replication per task (batch=1): the compiled kernel's short replications would be batched otherwise.
    fleet.run_des(SCENARIO, replications=3, seed=1, priority="background", batch=1)
    study = fleet.run_des(SCENARIO, replications=2, seed=2, priority="high", batch=1)
    samples = exporter.scrape()
    broker = redis_server.client(0)
    for queue in fleet.settings.queues.all():
        lists = {step: broker.llen(priority_list(queue, step)) for step in PRIORITY_STEPS}
        assert value(samples, "simfleet_queue_messages", queue=queue, kind="shared") == sum(lists.values())
        for step, length in lists.items():
            assert value(samples, "simfleet_queue_messages_by_priority", queue=queue,
                         priority=PRIORITY_NAMES[step]) == length  # fmt: skip
    assert value(samples, "simfleet_queue_messages_by_priority", queue="des.run", priority="background") == 3
    assert value(samples, "simfleet_queue_messages_by_priority", queue="des.run", priority="high") == 2
    assert value(samples, "simfleet_queue_messages", queue="simulation.macroproperty.load", kind="shared") == 1
    assert value(samples, "simfleet_jobs", state="queued") == 1 and value(samples, "simfleet_jobs", state="done") == 0
    assert value(samples, "simfleet_job_info", job_id=job.id, state="queued", owner="") == 1
    assert value(samples, "simfleet_job_day", job_id=job.id) == 0
    assert value(samples, "simfleet_job_horizon_days", job_id=job.id) == 60
    assert not labelled(samples, "simfleet_job_owner_up")  # nobody owns it yet: not a dead owner
    assert value(samples, "simfleet_studies_running") == 2
    assert value(samples, "simfleet_study_replications", study_id=study.id, state="waiting") == 2
    assert value(samples, "simfleet_workers", role="cpu") == value(samples, "simfleet_workers", role="gpu") == 0
    assert value(samples, "simfleet_redis_up") == 1
    assert value(samples, "simfleet_redis_used_memory_bytes", server="broker") > 0


def test_a_finished_study_counts_its_replications_and_events(fleet, start_worker, exporter):
    worker = start_worker(concurrency=2)
    study = fleet.run_des(SCENARIO, replications=4, seed=3)
    study.wait(timeout=120)
    events = sum(summary.events for summary in study.summaries())
    samples = exporter.scrape()
    assert value(samples, "simfleet_des_replications_total") == 4
    assert value(samples, "simfleet_des_events_total") == events
    assert value(samples, "simfleet_des_replication_seconds_total") > 0
    assert value(samples, "simfleet_studies_running") == 0 and not labelled(samples, "simfleet_study_replications")
    assert value(samples, "simfleet_workers", role="cpu") == 1
    age = value(samples, "simfleet_worker_heartbeat_age_seconds", worker=worker.name, role="cpu")
    assert 0 <= age <= fleet.settings.gpu_worker.heartbeat_ttl_s


@pytest.mark.death
def test_jobs_checkpoints_and_a_takeover_are_counted(fleet, fleet_settings, start_worker, exporter, redis_server,
                                                     tmp_path):  # fmt: skip
    first = start_worker(role="gpu")
    small = fleet.run_lifecycle(inputs=make_inputs(tmp_path / "small", 30, 400, seed=2), chunk_days=100, sink="none")
    summary = small.wait(timeout=120)
    samples = exporter.scrape()
    assert value(samples, "simfleet_jobs", state="done") == 1
    assert value(samples, "simfleet_jobs_ended_total", state="done") == 1
    assert value(samples, "simfleet_job_end_to_end_seconds_count") == 1
    assert summary.end_to_end_s <= value(samples, "simfleet_job_end_to_end_seconds_sum") < summary.end_to_end_s + 5
    assert value(samples, "simfleet_checkpoints_written_total") == 1 + 2 * 4  # the population, then per chunk two
    assert value(samples, "simfleet_checkpoint_written_bytes_total") > 0
    assert value(samples, "simfleet_checkpoint_failures_total", operation="read") == 0

    checkpoints = Checkpoints(redis_server.client(1), open_store(fleet_settings.stores.checkpoint_url))
    damaged = next(ref for ref in checkpoints.refs(small.id) if ref.kind == "result")
    checkpoints.store.put(damaged.key, b"not a checkpoint")
    assert main(["checkpoint", "verify", small.id]) != 0
    assert value(exporter.scrape(), "simfleet_checkpoint_failures_total", operation="read") == 1

    big = fleet.run_lifecycle(inputs=make_inputs(tmp_path / "big", 400, 3650, seed=4), chunk_days=365, sink="none")
    wait_until(lambda: (r := big.record()).owner == first.name and r.airframes, "the job loaded", timeout_s=120,
               interval_s=0.01)  # fmt: skip
    first.kill()  # no other worker: no watchdog runs, so the dead owner stays the job's owner

    def owner_seen_dead() -> Samples | None:
        samples = exporter.scrape()
        return samples if value(samples, "simfleet_job_owner_up", job_id=big.id) == 0 else None

    dead = wait_until(owner_seen_dead, "the owner's heartbeat expired", timeout_s=60, interval_s=0.2)
    assert value(dead, "simfleet_takeovers_total", work="lifecycle_job") == 0
    dog = Watchdog(fleet_settings, grace_s=0.0)
    try:
        # The killed worker's own watchdog may have held the sweep lock when it died: it expires within a heartbeat.
        handovers = wait_until(dog.sweep, "a sweep took the job over", timeout_s=30, interval_s=0.2)
        assert [handover.owner for handover in handovers] == [first.name]
    finally:
        dog.close()
    record = big.record()
    samples = exporter.scrape()
    assert value(samples, "simfleet_takeovers_total", work="lifecycle_job") == 1
    assert value(samples, "simfleet_job_epoch", job_id=big.id) == record.epoch == 1
    assert value(samples, "simfleet_job_info", job_id=big.id, state=record.state, owner="") == 1
    assert value(samples, "simfleet_job_day", job_id=big.id) == max(record.day, record.progress.day
                                                                     if record.progress else 0)  # fmt: skip
    assert value(samples, "simfleet_job_airframes", job_id=big.id) == 400
    assert not labelled(samples, "simfleet_job_owner_up") and value(samples, "simfleet_workers", role="gpu") == 0
    broker = redis_server.client(0)
    waiting = {q: sum(broker.llen(priority_list(q, s)) for s in PRIORITY_STEPS) for q in fleet.settings.queues.all()}
    assert sum(waiting.values()) == 1  # the job's due stage, published again to its shared queue
    for queue, length in waiting.items():
        assert value(samples, "simfleet_queue_messages", queue=queue, kind="shared") == length
    assert not [q for q in labelled(samples, "simfleet_queue_messages") if q["kind"] == "worker"]  # its queue is gone


def test_metrics_ask_for_the_password_when_one_is_set(redis_server, tmp_path):
    config = tmp_path / "fleet.yaml"
    text = settings_text(redis_server, tmp_path).replace("metrics: {", "metrics: {user: scraper, password: s3cret, ")
    config.write_text(text)
    served = Exporter(str(config), tmp_path / "exporter.log", credentials=("scraper", "s3cret"))
    try:
        assert served.get("/metrics")[0] == 401
        assert served.get("/metrics", ("scraper", "wrong"))[0] == 401
        assert served.get("/metrics", ("scraper", "s3cret"))[0] == 200
        assert served.get("/healthz") == (200, "ok\n")  # probes need no password; it tells only up or down
        redis_server.kill()
        status, body = served.get("/healthz")
        assert status == 503 and body.startswith("redis unreachable")
        assert value(served.scrape(), "simfleet_redis_up") == 0
    finally:
        served.stop()


def test_a_busy_port_or_a_bad_one_is_one_line_naming_the_flag(fleet_settings, capsys):
    with pytest.raises(SystemExit):
        main(["exporter", "--port", "70000"])
    assert "argument --port: must be between 0 and 65535" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["exporter", "--config", fleet_settings.source, "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"simfleet: error: --port: cannot listen on 127.0.0.1:{port}: Address already in use"]


# ------------------------------------------------------------------------------------- rules and dashboard

AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
                "quantile", "limitk", "limit_ratio"}  # fmt: skip
"""PromQL's aggregation operators: ``sum by (x) (...)`` puts a keyword, not a bracket, after the name."""
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                   "offset", "inf", "nan", *AGGREGATIONS}  # fmt: skip
TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|\$\{?\w+\}?|\d+(?:\.\d+)?(?:e[+-]?\d+)?[a-z]*|[A-Za-z_:][\w:]*|\S'
)


def series_in(expr: str) -> set[str]:
    """The series names a PromQL expression reads: identifiers that are not functions, keywords, label names (in
    ``{...}`` or a ``by (...)`` list), strings, numbers, durations or Grafana variables."""
    tokens = TOKEN.findall(expr)
    names, depth_braces, depth_brackets, grouping = set(), 0, 0, False
    for i, token in enumerate(tokens):
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token == "{":
            depth_braces += 1
        elif token == "}":
            depth_braces -= 1
        elif token == "[":
            depth_brackets += 1
        elif token == "]":
            depth_brackets -= 1
        elif token == ")" and grouping:
            grouping = False
        elif depth_braces or depth_brackets or grouping or not re.fullmatch(r"[A-Za-z_:][\w:]*", token):
            continue
        elif token in PROMQL_KEYWORDS:
            grouping = token in ("by", "without", "on", "ignoring", "group_left", "group_right") and following == "("
        elif following != "(":
            names.add(token)
    return names


def test_the_expression_reader_finds_series_and_nothing_else():
    expr = ('sum by (queue) (rate(simfleet_a_total{queue=~"x.*", kind="shared"}[5m])) / on() group_left '
            'simfleet_b > 0.8 and ignoring(job) up{job="simfleet"} == 1e3 or $__rate_interval')  # fmt: skip
    assert series_in(expr) == {"simfleet_a_total", "simfleet_b", "up"}


def served_names(text: str) -> set[str]:
    """Every series name a query may use, from the families served (empty families included: a job's series are
    declared even when no job runs), with the suffixes Prometheus gives counters, summaries and histograms."""
    suffixes = {"counter": ["_total"], "summary": ["", "_sum", "_count"], "histogram": ["_bucket", "_sum", "_count"]}
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, [""]))
        names.update(sample.name for sample in family.samples)
    return names


def dashboard_expressions() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    panels = [p for p in document["panels"]] + [c for p in document["panels"] for c in p.get("panels", [])]
    expressions = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    expressions += [v["query"] for v in document["templating"]["list"] if v.get("type") == "query"]
    return expressions


def test_alert_rules_and_the_dashboard_read_only_series_the_exporter_serves(exporter):
    served = served_names(exporter.text()) | {"up"}  # up: Prometheus's own, for the exporter's scrape
    rules = yaml.safe_load(ALERTS.read_text())
    expressions = {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}
    expressions.update({f"dashboard: {expr}": expr for expr in dashboard_expressions()})
    unknown = {where: sorted(series_in(expr) - served) for where, expr in expressions.items()}
    assert not {where: names for where, names in unknown.items() if names}
    read = set().union(*map(series_in, expressions.values()))
    assert {"simfleet_job_owner_up", "simfleet_queue_messages", "simfleet_checkpoint_failures_total",
            "simfleet_redis_maxmemory_bytes", "simfleet_job_last_progress_timestamp_seconds"} <= read  # fmt: skip


def test_alert_rules_have_the_structure_prometheus_expects():
    rules = yaml.safe_load(ALERTS.read_text())
    assert set(rules) == {"groups"} and rules["groups"]
    alerts = []
    for group in rules["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Z][A-Za-z]+", rule["alert"]) and rule["expr"].strip()
            assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]
            assert rule["labels"]["severity"] in ("warning", "critical")
            assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip()
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
            alerts.append(rule["alert"])
    assert len(set(alerts)) == len(alerts)
    assert {"SimfleetJobOwnerDead", "SimfleetJobWithoutProgress", "SimfleetQueueGrowing", "SimfleetCheckpointFailures",
            "SimfleetRedisMemoryNearLimit"} <= set(alerts)  # fmt: skip
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["simfleet"]["static_configs"][0]["targets"] == ["127.0.0.1:9810"]  # metrics.host:metrics.port
    assert "basic_auth" in jobs["flower"]


def test_the_dashboard_is_grafana_json_with_a_prometheus_datasource():
    document = json.loads(DASHBOARD.read_text())
    assert document["uid"] and document["title"] and document["schemaVersion"] >= 36
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    for panel in document["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"] and panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24
    boxes = [p["gridPos"] for p in document["panels"]]
    for i, a in enumerate(boxes):  # no two panels overlap
        for b in boxes[i + 1 :]:
            overlap_x = a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            overlap_y = a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
            assert not (overlap_x and overlap_y), (a, b)


@pytest.mark.parametrize(
    ("metrics", "said"),
    [
        ("{user: scraper}", "metrics.password: set both metrics.user and metrics.password"),
        ("{password: s3cret}", "metrics.user: set both metrics.user and metrics.password"),
        ("{port: 70000}", "metrics.port: not a TCP port: 70000"),
        ("{host: ''}", "metrics.host: expected an address to listen on"),
        ("{hots: 127.0.0.1}", "metrics.hots: unknown key"),
    ],
)
def test_bad_metrics_settings_are_one_error_naming_the_key(tmp_path, metrics, said):
    config = tmp_path / "fleet.yaml"
    config.write_text(f"metrics: {metrics}\n")
    with pytest.raises(ConfigError, match=re.escape(said)):
        load_settings(config, env={})
