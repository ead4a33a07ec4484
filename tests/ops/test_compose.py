"""docker-compose.yml, the Dockerfile and the ops/ files, checked without Docker or network.

Docker is not available here, so these tests read the files: they parse, the fleet's services are there with the
choices that matter (Redis persistence, noeviction, password; Flower's basic auth; scalable workers), and every
command a container runs names a real entry point of this project.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from celery.bin.celery import celery as celery_cli

from simfleet.producer.cli import build_parser
from simfleet.shared.celery_app import create_app
from simfleet.shared.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
REDIS_CONF = ROOT / "ops" / "redis" / "redis.conf"
K8S_CPU_WORKER = ROOT / "ops" / "k8s" / "cpu-worker.yaml"
FLEET_SERVICES = {"redis", "clickhouse", "gpu-worker", "cpu-worker", "flower", "producer", "lifecycle-producer"}
# ${VAR}, ${VAR:-default}, ${VAR-default}, or the escaped dollar $$.
_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def expand(text: str) -> str:
    """Compose's interpolation with every variable unset: each takes its default."""
    return _INTERPOLATION.sub(lambda m: "$" if m.group(0) == "$$" else m.group("default") or "", text)


def load_compose() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(compose, dict)
    return compose


COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
# The services that run this project's image (the rest are stock Redis and ClickHouse images).
PROJECT_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return [expand(part) for part in command] if isinstance(command, list) else shlex.split(expand(command))


def commands_of(service: dict[str, Any]) -> list[list[str]]:
    """The commands a service runs: its command, or each ``&&`` step of a ``sh -c`` script."""
    if service.get("entrypoint") == ["sh", "-c"]:
        (script,) = service["command"]
        return [shlex.split(expand(step)) for step in script.split("&&")]
    return [command_of(service)]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: expand(str(value)) for key, value in environment.items()}


def redis_conf_directives() -> dict[str, str]:
    directives = {}
    for line in REDIS_CONF.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            directives[key.lower()] = value.strip()
    return directives


def redis_settings() -> dict[str, str]:
    """Redis's effective settings in compose: the mounted config file, then the command's --flags over it."""
    redis = SERVICES["redis"]
    settings: dict[str, str] = {}
    mounts = [str(volume).split(":")[0] for volume in redis.get("volumes", [])]
    if "./ops/redis/redis.conf" in mounts:
        settings.update(redis_conf_directives())
    command = command_of(redis)
    for i, part in enumerate(command):
        if part.startswith("--"):
            settings[part[2:]] = command[i + 1] if i + 1 < len(command) else ""
    return settings


# ----------------------------------------------------------------------------------------------------- the file


def test_compose_file_has_the_fleet_services() -> None:
    assert set(SERVICES) >= FLEET_SERVICES


def test_gpu_worker_reserves_a_device_and_shares_the_checkpoint_volume() -> None:
    gpu = SERVICES["gpu-worker"]
    args = build_parser().parse_args(command_of(gpu)[1:])
    assert (args.family, args.role, args.device) == ("worker", "gpu", 0)
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["device_ids"] == ["0"]
    assert "checkpoints:/checkpoints" in gpu["volumes"]
    env = environment_of(gpu)
    assert env["SIMFLEET_STORES__CHECKPOINT_URL"] == "/checkpoints"
    settings = load_settings(ROOT / "config" / "fleet.yaml", env=env)
    assert settings.stores.checkpoint_url == "/checkpoints" and settings.gpu_worker.backend == "numpy"


def test_lifecycle_producer_synthesizes_then_submits_through_the_fleet() -> None:
    synth, submit = commands_of(SERVICES["lifecycle-producer"])
    synth_args = build_parser().parse_args(synth[1:])
    submit_args = build_parser().parse_args(submit[1:])
    assert (synth_args.aircraft, synth_args.days) == (279, 3650)
    assert submit_args.fleet and submit_args.to_clickhouse and str(submit_args.inputs) == str(synth_args.out)
    assert submit_args.via == "clickhouse"  # the inputs reach the workers through ClickHouse, not a shared directory
    assert "volumes" not in SERVICES["lifecycle-producer"]


def test_every_compose_variable_has_a_default_so_no_env_file_is_needed() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    without_default = [
        m.group(0) for m in _INTERPOLATION.finditer(text) if m.group(0) != "$$" and not m.group("default")
    ]
    assert without_default == []


def test_every_named_volume_is_declared_and_checkpoints_is_ready_for_the_gpu_worker() -> None:
    declared = set(COMPOSE["volumes"])
    assert "checkpoints" in declared
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"


# -------------------------------------------------------------------------------------------------------- Redis


def test_redis_persists_with_aof_refuses_eviction_and_requires_a_password() -> None:
    settings = redis_settings()
    assert SERVICES["redis"]["image"].startswith("redis:7")
    assert settings.get("appendonly") == "yes"
    assert settings.get("maxmemory-policy") == "noeviction"
    assert settings.get("requirepass")


def test_redis_conf_syncs_every_second_and_keeps_protected_mode() -> None:
    directives = redis_conf_directives()
    assert directives["appendonly"] == "yes"
    assert directives["appendfsync"] == "everysec"
    assert directives["maxmemory-policy"] == "noeviction"
    assert directives["protected-mode"] == "yes"
    assert "requirepass" not in directives, "the password comes from the environment, not from a file in git"


def test_redis_has_a_ping_healthcheck_keeps_its_data_on_a_named_volume_and_publishes_no_port() -> None:
    redis = SERVICES["redis"]
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"]) and "ping" in " ".join(redis["healthcheck"]["test"])
    assert any(str(volume).split(":")[0] in COMPOSE["volumes"] for volume in redis["volumes"])
    assert "ports" not in redis


@pytest.mark.parametrize("service", PROJECT_SERVICES)
def test_project_services_reach_redis_with_its_password_and_settings_validate(service: str) -> None:
    environment = environment_of(SERVICES[service])
    password = redis_settings()["requirepass"]
    for key in ("SIMFLEET_BROKER_URL", "SIMFLEET_RESULT_BACKEND"):
        url = urlsplit(environment[key])
        assert (url.hostname, url.port, url.password) == ("redis", 6379, password)
    settings = load_settings(ROOT / "config" / "fleet.yaml", env=environment)  # the image's settings file + env
    assert settings.broker_url == environment["SIMFLEET_BROKER_URL"]


# ------------------------------------------------------------------------------------- workers, Flower, producer


def test_cpu_worker_runs_two_replicas_after_redis_is_healthy() -> None:
    worker = SERVICES["cpu-worker"]
    assert command_of(worker)[:4] == ["simfleet", "worker", "--role", "cpu"]
    assert worker["deploy"]["replicas"] >= 2
    assert "container_name" not in worker, "a fixed container name forbids replicas"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"


def test_flower_listens_on_5555_with_basic_auth() -> None:
    flower = SERVICES["flower"]
    command = command_of(flower)
    auth = [part.split("=", 1)[1] for part in command if part.startswith("--basic-auth=")]
    assert len(auth) == 1
    user, _, password = auth[0].partition(":")
    assert user and password
    assert "--port=5555" in command and "--address=0.0.0.0" in command
    assert any(str(port).endswith("5555") for port in flower["ports"])


def test_clickhouse_has_credentials_a_volume_and_the_http_port() -> None:
    clickhouse = SERVICES["clickhouse"]
    assert clickhouse["image"].startswith("clickhouse/clickhouse-server")
    environment = environment_of(clickhouse)
    assert environment["CLICKHOUSE_USER"] and environment["CLICKHOUSE_PASSWORD"]
    assert any(str(volume).endswith(":/var/lib/clickhouse") for volume in clickhouse["volumes"])
    assert any(str(port).endswith("8123:8123") for port in clickhouse["ports"])


@pytest.mark.parametrize("service", PROJECT_SERVICES)
def test_project_services_reach_clickhouse_over_http_with_its_credentials(service: str) -> None:
    server = environment_of(SERVICES["clickhouse"])
    dsn = urlsplit(environment_of(SERVICES[service])["SIMFLEET_CLICKHOUSE_DSN"])
    assert (dsn.scheme, dsn.hostname, dsn.port) == ("http", "clickhouse", 8123)
    assert (dsn.username, dsn.password, dsn.path) == (
        server["CLICKHOUSE_USER"],
        server["CLICKHOUSE_PASSWORD"],
        "/" + server["CLICKHOUSE_DB"],
    )


def test_producer_is_a_one_shot_example_that_runs_after_the_workers() -> None:
    producer = SERVICES["producer"]
    assert producer["restart"] == "no"
    assert "profiles" in producer or "cpu-worker" in producer.get("depends_on", {})
    argv = command_of(producer)
    assert argv[:3] == ["simfleet", "des", "run"] and "--fleet" in argv
    scenario = build_parser().parse_args(argv[1:]).scenario
    assert (ROOT / scenario).is_file(), f"the image's config/ holds {scenario}"


@pytest.mark.parametrize("service", PROJECT_SERVICES)
def test_project_service_commands_name_a_real_entry_point(service: str) -> None:
    for argv in commands_of(SERVICES[service]):
        if argv[0] == "simfleet":
            args = build_parser().parse_args(argv[1:])
            assert callable(args.handler)
        elif argv[0] == "celery":
            assert_celery_command(argv)
        else:
            pytest.fail(f"{service} runs {argv[0]!r}, neither simfleet nor celery")


def assert_celery_command(argv: list[str]) -> None:
    app_index = argv.index("-A") + 1
    module, _, attribute = argv[app_index].partition(":")
    assert (module, attribute) == ("simfleet.worker.celery_main", "app")
    assert importlib.util.find_spec(module) is not None
    subcommand = argv[app_index + 1]
    assert subcommand in celery_cli.list_commands(click.Context(celery_cli))  # flower arrives as a celery plugin
    if subcommand == "flower":
        import flower.options  # noqa: F401  (defines Flower's options)
        from tornado.options import options

        known = set(options.as_dict())
        given = {part[2:].split("=", 1)[0].replace("-", "_") for part in argv[app_index + 2 :] if part.startswith("--")}
        assert given <= known


# --------------------------------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    logical = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in logical.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_builds_on_python_311_or_newer_and_installs_the_project() -> None:
    instructions = dockerfile_instructions()
    base = next(rest for keyword, rest in instructions if keyword == "FROM")
    match = re.fullmatch(r"python:3\.(\d+)(-slim)?(\S*)", base)
    assert match and int(match.group(1)) >= 11, base
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    assert any(re.search(r"pip install '?(\.|/\S+)(\[s3\])?'?(\s|$)", run) for run in runs)  # with the S3 store
    copied = " ".join(rest for keyword, rest in instructions if keyword == "COPY")
    for needed in ("pyproject.toml", "shared/", "worker/", "producer/", "config/"):
        assert needed in copied


def test_dockerfile_runs_as_a_non_root_user_and_prints_help_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    instructions = dockerfile_instructions()
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    workdirs = [rest for keyword, rest in instructions if keyword == "WORKDIR"]
    assert workdirs[-1] == "/app"
    command = yaml.safe_load(next(rest for keyword, rest in instructions if keyword == "CMD"))
    assert command == ["simfleet", "--help"]
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(command[1:])
    assert exit_info.value.code == 0
    assert "usage: simfleet" in capsys.readouterr().out


def test_dockerignore_keeps_the_virtualenv_out_of_the_build_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".venv" in ignored and ".git" in ignored


# ------------------------------------------------------------------------------------------------- Kubernetes


def test_k8s_worker_runs_the_cpu_worker_command_and_keda_watches_every_des_run_priority_list() -> None:
    documents = [doc for doc in yaml.safe_load_all(K8S_CPU_WORKER.read_text(encoding="utf-8")) if doc]
    by_kind = {doc["kind"]: doc for doc in documents}
    assert set(by_kind) >= {"Deployment", "ScaledObject", "TriggerAuthentication"}
    container = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert command_of(container)[:4] == ["simfleet", "worker", "--role", "cpu"]
    build_parser().parse_args(command_of(container)[1:])
    assert by_kind["ScaledObject"]["spec"]["scaleTargetRef"]["name"] == by_kind["Deployment"]["metadata"]["name"]
    # Celery's Redis transport keeps one list per priority step: "<queue>" for 0, "<queue>:<step>" otherwise.
    app = create_app(Settings())
    steps = app.conf.broker_transport_options["priority_steps"]
    separator = app.conf.broker_transport_options["sep"]
    queue = Settings().queues.des_run
    expected = {queue if step == 0 else f"{queue}{separator}{step}" for step in steps}
    triggers = by_kind["ScaledObject"]["spec"]["triggers"]
    assert {t["metadata"]["listName"] for t in triggers if t["type"] == "redis"} == expected
