"""The local fleet's passwords: generated on the first ``fleet up``, private, reused, never in argv or readable files.

Every check is what an operator would make: file modes, ``ps``, ``/proc/PID/cmdline``, a grep of the run folder,
a Redis client without the password, Flower's endpoints with and without credentials, and client commands run
without the user giving a password.
"""

import base64
import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
import redis

from simfleet.shared.errors import ConfigError
from simfleet.shared.local_secrets import ensure_local_secrets, read_secrets, secrets_path
from simfleet.shared.settings import CONFIG_ENV, load_settings

from .conftest import free_port, local_fleet_config

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def simfleet(*args: str, config: Path, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simfleet.producer.cli", *args],
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("SIMFLEET_", "FLOWER_"))},
             CONFIG_ENV: str(config), **env},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def http_status(url: str, user: str | None = None, password: str | None = None) -> int:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with NO_PROXY.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def write_config(tmp_path: Path, extra: str = "", broker_password: str = "") -> Path:
    """A settings file for a local fleet on free ports that gives no password (unless asked to)."""
    return local_fleet_config(tmp_path, broker_password=broker_password, flower=f"user: watcher{extra}")


@pytest.fixture
def config(tmp_path):
    path = write_config(tmp_path)
    yield path
    simfleet("fleet", "down", config=path)


def fleet_processes(run_dir: Path) -> list[psutil.Process]:
    """Every live process the fleet started, with their children (pool processes)."""
    state = json.loads((run_dir / "fleet.json").read_text())
    found = []
    for record in state["processes"]:
        process = psutil.Process(record["pid"])
        found += [process, *process.children(recursive=True)]
    return found


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.timeout(600)
def test_fleet_up_generates_private_passwords_that_no_process_argument_or_readable_file_shows(config, tmp_path):
    up = simfleet("fleet", "up", "--cpu-workers", "1", "--gpu-workers", "1", "--concurrency", "1", config=config)
    assert up.returncode == 0, up.stderr
    settings = load_settings(config, env={})
    run_dir = Path(settings.local_fleet.run_dir)
    secrets_file = run_dir / "secrets" / "passwords.yaml"
    assert str(secrets_file) in up.stdout
    assert mode(secrets_file) == 0o600 and mode(secrets_file.parent) == 0o700
    assert mode(secrets_file.parent / "redis.conf") == 0o600
    found = read_secrets(secrets_file)
    redis_password, flower_password = found["redis_password"], found["flower_password"]
    assert len(redis_password) >= 32 and len(flower_password) >= 32 and redis_password != flower_password
    assert "simfleet" not in (redis_password, flower_password)

    # Clients on this machine find the passwords without the user giving them.
    port = int(settings.broker_url.rsplit(":", 1)[1].split("/")[0])
    status = simfleet("fleet", "status", config=config)
    assert status.returncode == 0, status.stderr
    assert "workers: 2" in status.stdout and str(secrets_file) in status.stdout
    assert redis_password not in status.stdout + status.stderr and flower_password not in status.stdout
    des = simfleet("des", "run", str(SCENARIOS / "web_search_load_test.yaml"), "--fleet", "--replications", "2",
                   "--json", config=config)  # fmt: skip
    assert des.returncode == 0, des.stderr
    assert json.loads(des.stdout)["replications"] == 2

    # Redis refuses a client without the password, and takes the generated one.
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port, socket_timeout=5).ping()
    assert redis.Redis(host="127.0.0.1", port=port, password=redis_password, socket_timeout=5).ping()

    # Flower: 401 everywhere without the credentials (metrics and healthcheck included), 200 with them.
    flower = f"http://127.0.0.1:{settings.flower.port}"
    for path in ("/", "/api/workers", "/metrics", "/healthcheck", "/tasks", "/static/css/flower.css"):
        assert http_status(flower + path) == 401, path
        assert http_status(flower + path, "watcher", "wrong") == 401, path
        assert http_status(flower + path, "watcher", flower_password) == 200, path

    # No password in any process's arguments: /proc/PID/cmdline of everything the fleet started, and ps.
    processes = fleet_processes(run_dir)
    assert len(processes) >= 5  # redis, two workers with their pool processes, flower
    for process in processes:
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert cmdline, process
        assert redis_password.encode() not in cmdline and flower_password.encode() not in cmdline, process
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert "redis-server" in listing and "simfleet.producer.cli flower" in listing
    assert redis_password not in listing and flower_password not in listing

    # No file under the run folder holds a password, but the two private ones.
    holders = {
        path.relative_to(run_dir).as_posix()
        for path in run_dir.rglob("*")
        if path.is_file() and (redis_password.encode() in (content := path.read_bytes())
                               or flower_password.encode() in content)
    }  # fmt: skip
    assert holders == {"secrets/passwords.yaml", "secrets/redis.conf"}
    assert (run_dir / "logs" / "cpu-worker-1.log").read_text().count("redis://:**@") >= 2  # Celery's banner masks

    # A restart reuses the passwords (the Redis data and every client keep working).
    assert simfleet("fleet", "down", config=config).returncode == 0
    again = simfleet("fleet", "up", "--cpu-workers", "0", "--gpu-workers", "0", "--no-flower", config=config)
    assert again.returncode == 0, again.stderr
    assert read_secrets(secrets_file) == found
    assert redis.Redis(host="127.0.0.1", port=port, password=redis_password, socket_timeout=5).ping()


def test_two_fresh_fleets_draw_different_passwords_and_one_keeps_its_own(tmp_path):
    first = load_settings(write_config(tmp_path / "a"), env={})
    second = load_settings(write_config(tmp_path / "b"), env={})
    drawn = [ensure_local_secrets(settings) for settings in (first, second)]
    assert drawn[0].broker_url != drawn[1].broker_url and drawn[0].flower.password != drawn[1].flower.password
    assert ensure_local_secrets(first) == drawn[0]  # reused, not drawn again
    assert load_settings(first.source, env={}) == drawn[0]  # and found by a plain load


def test_a_password_the_settings_give_is_used_instead_of_a_generated_one(tmp_path):
    config = write_config(tmp_path, extra=", password: flower-given", broker_password="redis-given")
    try:
        up = simfleet("fleet", "up", "--cpu-workers", "0", "--gpu-workers", "0", config=config)
        assert up.returncode == 0, up.stderr
        settings = load_settings(config, env={})
        assert read_secrets(secrets_path(settings)) == {}  # nothing generated: no secrets file
        port = settings.local_fleet.redis_port
        assert redis.Redis(host="127.0.0.1", port=port, password="redis-given", socket_timeout=5).ping()
        flower = f"http://127.0.0.1:{settings.flower.port}/healthcheck"
        assert http_status(flower, "watcher", "flower-given") == 200 and http_status(flower) == 401
    finally:
        simfleet("fleet", "down", config=config)


def test_flower_basic_auth_from_the_environment_and_the_health_port(tmp_path, redis_server, fleet_settings):
    port, health_port = fleet_settings.flower.port, free_port()
    config = Path(fleet_settings.source)
    config.write_text(config.read_text().replace("flower: {", f"flower: {{health_port: {health_port}, "))
    log = tmp_path / "flower.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMFLEET_", "FLOWER_"))}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "simfleet.producer.cli", "flower", "--config", str(config)],
            env={**env, "FLOWER_BASIC_AUTH": "ops:from-env"},
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        from simfleet.worker.supervisor import wait_for

        wait_for(lambda: http_status(f"http://127.0.0.1:{health_port}/healthcheck") == 200, "the health port", 60)
        assert http_status(f"http://127.0.0.1:{port}/healthcheck") == 401
        assert http_status(f"http://127.0.0.1:{port}/metrics", "tester", "flower-secret") == 401  # the env wins
        assert http_status(f"http://127.0.0.1:{port}/metrics", "ops", "from-env") == 200
        assert http_status(f"http://127.0.0.1:{health_port}/metrics") == 404  # the health port says nothing else
        assert b"from-env" not in Path(f"/proc/{process.pid}/cmdline").read_bytes()
    finally:
        process.terminate()
        process.wait(20)
    assert "from-env" not in log.read_text()


def test_flower_without_a_password_refuses_to_start_in_one_line(tmp_path):
    config = write_config(tmp_path)
    done = simfleet("flower", config=config, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "flower.password: no Flower password" in done.stderr and "FLOWER_BASIC_AUTH" in done.stderr


@pytest.mark.parametrize("value", ["nopassword", ":pw", "user:"])
def test_a_malformed_flower_basic_auth_is_one_error_naming_the_variable(value):
    with pytest.raises(ConfigError, match="FLOWER_BASIC_AUTH: expected user:password"):
        load_settings(env={"FLOWER_BASIC_AUTH": value})


def test_a_secrets_file_others_can_read_is_refused_and_a_password_less_url_is_filled(tmp_path):
    config = write_config(tmp_path)
    settings = ensure_local_secrets(load_settings(config, env={}))
    assert settings.broker_url.count("@") == 1 and settings.result_backend.count("@") == 1
    path = secrets_path(settings)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"others may read this secrets file \(mode 0644\); run: chmod 600"):
        load_settings(config, env={})
    given = load_settings(config, env={"SIMFLEET_BROKER_URL": f"redis://:mine@127.0.0.1:{free_port()}/0",
                                       "SIMFLEET_RESULT_BACKEND": "redis://:mine@10.0.0.5:6379/1",
                                       "SIMFLEET_FLOWER__PASSWORD": "x"})  # fmt: skip
    assert given.broker_url.startswith("redis://:mine@")  # nothing to fill: the file is not even read
