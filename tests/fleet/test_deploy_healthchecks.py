"""The deployment files' probes, run for real: the workers' and Flower's healthchecks of docker-compose.yml and ops/k8s.

A container's probe runs inside it, where ``$HOSTNAME`` is the container's (or pod's) host name and the worker's
node name ends in ``@<that host name>``. Here the probe's shell command runs on this machine against a real worker
process and Redis, with ``HOSTNAME`` set as Docker and the kubelet set it: it passes while this host's worker
answers, and fails for another host's name: the probe checks the worker of its own container, not any worker.
Flower's probe reads the login from the environment and passes against a real Flower, and fails when Flower is down
(or, with `simfleet flower`, which asks for the login on /healthcheck too, when the login is wrong).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.conftest import StartWorker
from tests.ops.test_compose import SERVICES
from tests.ops.test_manifests import WORKER_PING


def run_probe(hostname: str) -> subprocess.CompletedProcess[str]:
    """The probe as the container runs it: ``sh -c`` with the container's environment (settings, PATH, HOSTNAME)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["sh", "-c", WORKER_PING], env={**os.environ, "PATH": path, "HOSTNAME": hostname},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.timeout(180)
def test_worker_probe_passes_for_this_hosts_worker_and_fails_for_another_hosts(
    start_worker: StartWorker,
) -> None:
    assert SERVICES["cpu-worker"]["healthcheck"]["test"] == ["CMD-SHELL", WORKER_PING]
    worker = start_worker(concurrency=1)
    assert worker.name.endswith("@" + socket.gethostname())
    answered = run_probe(socket.gethostname())
    assert answered.returncode == 0, answered.stderr[-2000:]
    assert run_probe("some-other-pod").returncode != 0


FLOWER_LOGIN = "tester:flower-secret"


def flower_probe(port: int, login: str) -> subprocess.CompletedProcess[str]:
    """Compose's Flower healthcheck (the same snippet as the Kubernetes probes), on this test's port."""
    kind, python, option, snippet = SERVICES["flower"]["healthcheck"]["test"]
    assert (kind, python, option) == ("CMD", "python", "-c")
    snippet = snippet.replace("127.0.0.1:5555/", f"127.0.0.1:{port}/")
    return subprocess.run(
        [sys.executable, "-c", snippet], env={**os.environ, "FLOWER_BASIC_AUTH": login},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def flower_port(fleet_settings: object, tmp_path: Path) -> Iterator[int]:
    """Flower for the test's Redis, started as compose starts it: `simfleet flower`, the login in the environment."""
    from simfleet.worker.supervisor import wait_for
    from tests.conftest import free_port

    port = free_port()
    env = {**os.environ, "FLOWER_BASIC_AUTH": FLOWER_LOGIN, "SIMFLEET_FLOWER__ADDRESS": "127.0.0.1",
           "SIMFLEET_FLOWER__PORT": str(port)}  # fmt: skip
    argv = [sys.executable, "-m", "simfleet.producer.cli", "flower"]
    log = (tmp_path / "flower.log").open("w")
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: flower_probe(port, FLOWER_LOGIN).returncode == 0, "Flower's healthcheck", 60)
        yield port
    finally:
        process.terminate()
        process.wait(20)
        log.close()


@pytest.mark.timeout(180)
def test_flower_probe_passes_with_the_login_from_the_environment_and_fails_when_flower_is_down(
    flower_port: int,
) -> None:
    assert flower_probe(flower_port, FLOWER_LOGIN).returncode == 0
    from tests.conftest import free_port

    refused = flower_probe(free_port(), FLOWER_LOGIN)
    assert refused.returncode != 0 and "Connection refused" in refused.stderr


@pytest.mark.timeout(180)
def test_flower_probe_fails_with_a_wrong_login(flower_port: int) -> None:
    wrong = flower_probe(flower_port, "tester:not-the-password")
    assert wrong.returncode != 0 and "401" in wrong.stderr
