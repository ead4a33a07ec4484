"""docker-compose.yml, .env.example, the Dockerfile and ops/redis, checked without Docker or network.

Docker is not available here, so these tests read the files: the compose file is valid against the compose-spec
JSON schema (the copy check-jsonschema ships), refuses to start without its passwords, gives every service a
healthcheck, limits and rotated logs, passes no secret in a command line, and every command a container runs names a
real entry point of this project. Redis's start script is run for real: the config file it writes makes a real
redis-server require the password, which appears in no process's arguments.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import jsonschema
import pytest
import redis
import yaml
from celery.bin.celery import celery as celery_cli

from simfleet.producer.cli import build_parser
from simfleet.shared.settings import load_settings
from simfleet.worker.supervisor import redis_server_binary, wait_for
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
REDIS_CONF = ROOT / "ops" / "redis" / "redis.conf"
FLEET_SERVICES = {
    "redis", "clickhouse", "gpu-worker", "cpu-worker", "flower", "exporter", "producer", "lifecycle-producer",
}  # fmt: skip
ONE_SHOT_SERVICES = {"producer", "lifecycle-producer"}
IMAGE_UID = 10001
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, or the escaped dollar $$.
_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<kind>:?[-?])(?P<rest>[^}]*))?\}")
# What an operator's .env would give the required variables in these tests.
TEST_ENV = {"REDIS_PASSWORD": "redis-secret", "CLICKHOUSE_PASSWORD": "ch-secret", "FLOWER_PASSWORD": "fl-secret"}


def expand(text: str, env: dict[str, str] = TEST_ENV) -> str:
    """Compose's interpolation: a set variable, else its default; a required one that is unset is an error."""

    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, kind, rest = match.group("name"), match.group("kind") or "", match.group("rest") or ""
        if name in env:
            return env[name]
        if kind.endswith("?"):
            raise KeyError(f"compose refuses to start: {rest or name}")
        return rest if kind.endswith("-") else ""

    return _INTERPOLATION.sub(value, text)


def variables() -> dict[str, set[str]]:
    """Every variable the compose file reads, with the forms it is read in (':-', ':?', '')."""
    found: dict[str, set[str]] = {}
    for match in _INTERPOLATION.finditer(COMPOSE_FILE.read_text(encoding="utf-8")):
        if match.group(0) != "$$":
            found.setdefault(match.group("name"), set()).add(match.group("kind") or "")
    return found


def load_compose(env: dict[str, str] = TEST_ENV) -> dict[str, Any]:
    compose = yaml.safe_load(expand(COMPOSE_FILE.read_text(encoding="utf-8"), env))
    assert isinstance(compose, dict)
    return compose


COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
# The services that run this project's images (the rest are stock Redis and ClickHouse images).
PROJECT_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return list(command) if isinstance(command, list) else shlex.split(command)


def commands_of(service: dict[str, Any]) -> list[list[str]]:
    """The commands a service runs: its command, or each ``&&`` step of a ``sh -c`` script."""
    if service.get("entrypoint") == ["sh", "-c"]:
        (script,) = service["command"]
        return [shlex.split(step) for step in script.split("&&")]
    return [command_of(service)]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def redis_conf_directives(text: str | None = None) -> dict[str, str]:
    directives = {}
    for line in (text if text is not None else REDIS_CONF.read_text(encoding="utf-8")).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            directives[key.lower()] = value.strip()
    return directives


def redis_script() -> str:
    redis_service = SERVICES["redis"]
    shell, option, script = redis_service["command"]
    assert (shell, option) == ("sh", "-c")
    return str(script)


# ------------------------------------------------------------------------------------------------------ the file


def test_compose_file_has_the_fleet_services() -> None:
    assert set(SERVICES) >= FLEET_SERVICES


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    text = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(text.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(COMPOSE)]
    assert errors == []
    # ... and the schema bites: a misspelt key of a service is refused.
    broken = json.loads(json.dumps(COMPOSE))
    broken["services"]["redis"]["helthcheck"] = broken["services"]["redis"].pop("healthcheck")
    assert list(validator.iter_errors(broken))


def test_compose_refuses_to_start_without_each_password() -> None:
    for name in TEST_ENV:
        with pytest.raises(KeyError, match=f"set {name} in .env"):
            load_compose({key: value for key, value in TEST_ENV.items() if key != name})


def test_every_password_is_required_and_every_other_variable_has_a_default() -> None:
    for name, forms in variables().items():
        if "PASSWORD" in name:
            assert forms == {":?"}, f"{name} must be written ${{{name}:?message}} everywhere, not {forms}"
        else:
            assert forms == {":-"}, f"{name} needs a default (${{{name}:-value}}) so .env may leave it out"


def test_env_example_lists_every_variable_and_holds_no_password() -> None:
    example = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    assert set(example) == set(variables())
    assert all(example[name] == "" for name in example if "PASSWORD" in name)
    assert "/.env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in (ROOT / ".dockerignore").read_text(encoding="utf-8").split()


@pytest.mark.parametrize("service", sorted(FLEET_SERVICES))
def test_every_service_has_a_healthcheck_limits_and_rotated_logs(service: str) -> None:
    definition = SERVICES[service]
    healthcheck = definition["healthcheck"]
    if service in ONE_SHOT_SERVICES:
        assert healthcheck == {"disable": True} and definition["restart"] == "no"
    else:
        assert healthcheck["test"] and healthcheck["interval"] and healthcheck["retries"] >= 1
    limits = definition["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0 and re.fullmatch(r"\d+[mg]", limits["memory"])
    logging = definition["logging"]
    assert logging["driver"] == "json-file" and {"max-size", "max-file"} <= set(logging["options"])


@pytest.mark.parametrize("service", sorted(FLEET_SERVICES))
def test_no_secret_appears_in_a_command_line_or_a_healthcheck(service: str) -> None:
    definition = SERVICES[service]
    words = [*definition.get("entrypoint", []), *(command_of(definition) if "command" in definition else [])]
    words += definition.get("healthcheck", {}).get("test", [])
    for secret in TEST_ENV.values():
        assert not any(secret in word for word in words), f"{service} shows a password in `ps`"
    assert not any("--requirepass" in word or "--basic-auth" in word for word in words)


def test_every_named_volume_is_declared() -> None:
    declared = set(COMPOSE["volumes"])
    assert "checkpoints" in declared
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"


# -------------------------------------------------------------------------------------------------------- Redis


def test_redis_conf_syncs_every_second_refuses_eviction_and_keeps_protected_mode() -> None:
    directives = redis_conf_directives()
    assert directives["appendonly"] == "yes"
    assert directives["appendfsync"] == "everysec"
    assert directives["maxmemory-policy"] == "noeviction"
    assert directives["protected-mode"] == "yes"
    assert "requirepass" not in directives, "the password comes from the environment, not from a file in git"


def test_redis_includes_the_mounted_conf_keeps_data_on_a_volume_and_publishes_no_port() -> None:
    redis_service = SERVICES["redis"]
    assert redis_service["image"].startswith("redis:7")
    assert "./ops/redis/redis.conf:/usr/local/etc/redis/redis.conf:ro" in redis_service["volumes"]
    assert "include /usr/local/etc/redis/redis.conf" in redis_script()
    assert any(str(volume).split(":")[0] in COMPOSE["volumes"] for volume in redis_service["volumes"])
    assert "ports" not in redis_service
    assert environment_of(redis_service)["REDIS_PASSWORD"] == TEST_ENV["REDIS_PASSWORD"]
    assert "redis-cli" in " ".join(redis_service["healthcheck"]["test"])
    assert environment_of(redis_service)["REDISCLI_AUTH"] == TEST_ENV["REDIS_PASSWORD"]
    maxmemory_gb = float(redis_conf_directives()["maxmemory"].removesuffix("gb"))
    assert float(redis_service["deploy"]["resources"]["limits"]["memory"].removesuffix("g")) > maxmemory_gb


@pytest.mark.timeout(60)
def test_redis_start_script_writes_a_private_config_that_makes_redis_require_the_password(tmp_path: Path) -> None:
    """The compose Redis's script, run here up to the server's start, then a real redis-server on its config."""
    # The mounted file with this machine's port, address and folder in place of the container's (redis-server
    # changes into `dir` as it reads it, so a later line could not override it).
    port = free_port()
    mounted = tmp_path / "mounted.conf"
    mounted.write_text(
        REDIS_CONF.read_text(encoding="utf-8")
        .replace("\nport 6379\n", f"\nport {port}\n")
        .replace("\nbind * -::*\n", "\nbind 127.0.0.1\n")
        .replace("\ndir /data\n", f"\ndir {tmp_path}\n")
    )
    generate = redis_script().split("&& chown")[0]  # umask, then printf into the config file
    generate = generate.replace("/run/redis/", f"{tmp_path}/").replace("/usr/local/etc/redis/redis.conf", str(mounted))
    password = "pw-" + os.urandom(8).hex()
    subprocess.run(["sh", "-c", generate], env={"PATH": os.environ["PATH"], "REDIS_PASSWORD": password}, check=True)
    config = tmp_path / "redis.conf"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert redis_conf_directives(config.read_text()) == {
        "include": str(mounted), "protected-mode": "yes", "requirepass": password,
    }  # fmt: skip
    assert redis_conf_directives(mounted.read_text())["dir"] == str(tmp_path)
    server = subprocess.Popen([redis_server_binary(), str(config)], stdout=subprocess.DEVNULL)
    try:
        with_password = redis.Redis(port=port, password=password, socket_timeout=5)
        wait_for(with_password.ping, "redis with the generated config", 20)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, socket_timeout=5).set("key", "value")
        assert with_password.config_get("appendonly") == {"appendonly": "yes"}
        assert with_password.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert password.encode() not in Path(f"/proc/{server.pid}/cmdline").read_bytes()
    finally:
        server.terminate()
        server.wait(10)


# ------------------------------------------------------------------------------------- workers, Flower, producers


@pytest.mark.parametrize("service", PROJECT_SERVICES)
def test_project_services_reach_redis_with_its_password_and_settings_validate(service: str) -> None:
    environment = environment_of(SERVICES[service])
    for key in ("SIMFLEET_BROKER_URL", "SIMFLEET_RESULT_BACKEND"):
        url = urlsplit(environment[key])
        assert (url.hostname, url.port, url.password) == ("redis", 6379, TEST_ENV["REDIS_PASSWORD"])
    settings = load_settings(ROOT / "config" / "fleet.yaml", env=environment)  # the image's settings file + env
    assert settings.broker_url == environment["SIMFLEET_BROKER_URL"]


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


def test_clickhouse_has_a_volume_and_its_http_port_on_loopback_only() -> None:
    clickhouse = SERVICES["clickhouse"]
    assert clickhouse["image"].startswith("clickhouse/clickhouse-server")
    assert any(str(volume).endswith(":/var/lib/clickhouse") for volume in clickhouse["volumes"])
    assert clickhouse["ports"] == ["127.0.0.1:8123:8123"]


def test_gpu_worker_runs_the_gpu_image_reserves_a_device_and_writes_the_checkpoint_volume() -> None:
    gpu = SERVICES["gpu-worker"]
    assert gpu["build"]["target"] == "gpu" and gpu["image"] != SERVICES["cpu-worker"]["image"]
    args = build_parser().parse_args(command_of(gpu)[1:])
    assert (args.family, args.role, args.device) == ("worker", "gpu", 0)
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["device_ids"] == ["0"]
    assert "checkpoints:/checkpoints" in gpu["volumes"]
    settings = load_settings(ROOT / "config" / "fleet.yaml", env=environment_of(gpu))
    assert settings.stores.checkpoint_url == "/checkpoints" and settings.gpu_worker.backend == "cupy"
    # An empty named volume takes the owner of the image's folder: the worker's user must own /checkpoints.
    gpu_stage = dockerfile_stages()["gpu"]
    assert user_of(gpu_stage) == f"{IMAGE_UID}:{IMAGE_UID}"
    assert owns(gpu_stage, "/checkpoints")
    others = [name for name, service in SERVICES.items() if "checkpoints:/checkpoints" in service.get("volumes", [])]
    assert others == ["gpu-worker"], "only the GPU workers share the checkpoint store; producers get no volume"


def test_cpu_worker_runs_two_replicas_sized_to_its_cpu_limit_after_redis_is_healthy() -> None:
    worker = SERVICES["cpu-worker"]
    assert command_of(worker)[:4] == ["simfleet", "worker", "--role", "cpu"]
    assert worker["deploy"]["replicas"] >= 2
    assert "container_name" not in worker, "a fixed container name forbids replicas"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    concurrency = load_settings(ROOT / "config" / "fleet.yaml", env=environment_of(worker)).cpu_worker.concurrency
    assert concurrency == float(worker["deploy"]["resources"]["limits"]["cpus"])


def test_workers_healthcheck_pings_the_worker_of_this_container() -> None:
    from tests.ops.test_manifests import WORKER_PING

    for service in ("gpu-worker", "cpu-worker"):
        kind, script = SERVICES[service]["healthcheck"]["test"]
        assert kind == "CMD-SHELL" and script == WORKER_PING, "the same probe as Kubernetes'"


def test_flower_asks_for_a_login_given_in_its_environment_and_listens_on_loopback() -> None:
    flower = SERVICES["flower"]
    assert command_of(flower) == ["simfleet", "flower"]
    environment = environment_of(flower)
    assert environment["FLOWER_BASIC_AUTH"] == f"simfleet:{TEST_ENV['FLOWER_PASSWORD']}"
    assert (environment["SIMFLEET_FLOWER__ADDRESS"], environment["SIMFLEET_FLOWER__PORT"]) == ("0.0.0.0", "5555")
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    probe = flower["healthcheck"]["test"]
    assert probe[:3] == ["CMD", "python", "-c"] and "os.environ['FLOWER_BASIC_AUTH']" in probe[3]
    assert "/healthcheck" in probe[3]


def test_exporter_serves_the_fleet_metrics_on_the_compose_network_only() -> None:
    exporter = SERVICES["exporter"]
    assert command_of(exporter) == ["simfleet", "exporter", "--host", "0.0.0.0", "--port", "9810"]
    assert "ports" not in exporter
    assert "9810/healthz" in " ".join(exporter["healthcheck"]["test"])


def test_producer_is_a_one_shot_example_that_runs_after_the_workers() -> None:
    producer = SERVICES["producer"]
    assert producer["restart"] == "no" and producer["profiles"] == ["example"]
    argv = command_of(producer)
    assert argv[:3] == ["simfleet", "des", "run"] and "--fleet" in argv
    scenario = build_parser().parse_args(argv[1:]).scenario
    assert (ROOT / scenario).is_file(), f"the image's config/ holds {scenario}"


def test_lifecycle_producer_sends_its_inputs_through_clickhouse_and_shares_no_directory() -> None:
    producer = SERVICES["lifecycle-producer"]
    synth, submit = commands_of(producer)
    synth_args = build_parser().parse_args(synth[1:])
    submit_args = build_parser().parse_args(submit[1:])
    assert (synth_args.aircraft, synth_args.days) == (279, 3650)
    assert submit_args.fleet and submit_args.to_clickhouse and str(submit_args.inputs) == str(synth_args.out)
    assert submit_args.via == "clickhouse"  # the inputs reach the workers through ClickHouse, not a shared directory
    assert "volumes" not in producer
    assert "SIMFLEET_STORES__CHECKPOINT_URL" not in environment_of(producer)
    assert producer["depends_on"]["clickhouse"]["condition"] == "service_healthy"


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
    assert argv[app_index + 1] in celery_cli.list_commands(click.Context(celery_cli))


# --------------------------------------------------------------------------------------------------- Dockerfile


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's instructions by stage name (``FROM image AS name``), in order."""
    logical = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in logical.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            if keyword.upper() == "FROM":
                image, _, name = rest.partition(" AS ")
                current = stages.setdefault(name.strip(), [])
                rest = image.strip()
            current.append((keyword.upper(), rest.strip()))
    return stages


def user_of(stage: list[tuple[str, str]]) -> str:
    return [rest for keyword, rest in stage if keyword == "USER"][-1]


def owns(stage: list[tuple[str, str]], folder: str) -> bool:
    runs = " ".join(rest for keyword, rest in stage if keyword == "RUN")
    return f"mkdir -p /app/runs {folder}" in runs and f"chown simfleet:simfleet /app/runs {folder}" in runs


def test_dockerfile_has_a_cpu_target_last_and_a_gpu_target_with_cuda_and_cupy() -> None:
    stages = dockerfile_stages()
    assert list(stages) == ["gpu", "cpu"], "cpu last: a plain `docker build .` makes the CPU image"
    cpu_base = stages["cpu"][0][1]
    match = re.fullmatch(r"python:3\.(\d+)(-slim)?(\S*)", cpu_base)
    assert match and int(match.group(1)) >= 11, cpu_base
    gpu_base = stages["gpu"][0][1]
    assert re.fullmatch(r"nvidia/cuda:12\.[\d.]+-runtime-ubuntu\S+", gpu_base), gpu_base
    gpu_runs = " ".join(rest for keyword, rest in stages["gpu"] if keyword == "RUN")
    assert "cupy-cuda12x" in gpu_runs
    assert SERVICES["cpu-worker"]["build"]["target"] == "cpu"


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_each_image_installs_the_project_with_the_pinned_constraints(target: str) -> None:
    stage = dockerfile_stages()[target]
    copied = " ".join(rest for keyword, rest in stage if keyword == "COPY")
    for needed in ("ops/constraints.txt", "pyproject.toml", "shared/", "worker/", "producer/", "config/"):
        assert needed in copied
    (install,) = [rest for keyword, rest in stage if keyword == "RUN" and "pip install" in rest]
    assert "-c /tmp/constraints.txt" in install and "PIP_CONSTRAINT=/tmp/constraints.txt" in install
    assert "'.[s3]'" in install  # the project, with the S3 checkpoint store


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_each_image_runs_as_a_non_root_user_that_owns_the_checkpoint_folder(target: str) -> None:
    stage = dockerfile_stages()[target]
    assert user_of(stage) == f"{IMAGE_UID}:{IMAGE_UID}"
    runs = " ".join(rest for keyword, rest in stage if keyword == "RUN")
    assert f"useradd --uid {IMAGE_UID} --gid {IMAGE_UID}" in runs and f"groupadd --gid {IMAGE_UID}" in runs
    assert owns(stage, "/checkpoints")
    assert [rest for keyword, rest in stage if keyword == "WORKDIR"][-1] == "/app"


DES_KERNEL = "simfleet.worker.des.compiled"
LIFECYCLE_KERNELS = "simfleet.worker.lifecycle.backends.numba_backend"


@pytest.mark.parametrize("target, kernels", [("cpu", (DES_KERNEL, LIFECYCLE_KERNELS)), ("gpu", (LIFECYCLE_KERNELS,))])
def test_each_image_compiles_its_numba_kernels_into_a_cache_its_user_owns(target: str, kernels: tuple[str]) -> None:
    stage = dockerfile_stages()[target]
    cache = dict(rest.split("=", 1) for keyword, rest in stage if keyword == "ENV" and rest.startswith("NUMBA"))
    assert cache == {"NUMBA_CACHE_DIR": "/opt/simfleet/numba-cache"}
    (warm,) = [rest for keyword, rest in stage if keyword == "RUN" and "--warm" in rest]
    assert warm.endswith(f"chown -R {IMAGE_UID}:{IMAGE_UID} /opt/simfleet/numba-cache")
    for module in kernels:  # each a real module that takes --warm
        assert f"python -m {module} --warm" in warm and importlib.util.find_spec(module) is not None


def test_the_images_print_help_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    for stage in dockerfile_stages().values():
        command = yaml.safe_load(next(rest for keyword, rest in stage if keyword == "CMD"))
        assert command == ["simfleet", "--help"]
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    assert "usage: simfleet" in capsys.readouterr().out


def test_dockerignore_keeps_the_virtualenv_and_secrets_out_of_the_build_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", ".git", ".env", "ops/k8s/secrets.env"} <= set(ignored)
