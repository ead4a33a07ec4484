"""Fixtures every test package may use: a moto S3 server standing in for MinIO or a cloud bucket, and ``store``,
every kind of checkpoint blob store in turn, so the same tests run against all of them.

moto's standalone server is a real S3-compatible HTTP service, started as a subprocess on a free 127.0.0.1 port for
the session (no S3 server can run on the build machine). boto3 talks to it over HTTP with dummy credentials set
through the environment, exactly as it would talk to MinIO. Without moto (and flask, which its server needs) or
boto3 the tests that need it are skipped, saying why.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simfleet.shared.stores import BlobStore, open_store
from simfleet.shared.stores.memory import MemoryStore

HAVE_BOTO3 = importlib.util.find_spec("boto3") is not None
HAVE_MOTO = HAVE_BOTO3 and all(importlib.util.find_spec(name) is not None for name in ("moto", "flask"))
needs_boto3 = pytest.mark.skipif(not HAVE_BOTO3, reason="boto3 is not installed (pip install 'simfleet[s3]')")
needs_moto = pytest.mark.skipif(
    not HAVE_MOTO,
    reason="the S3 store is tested against moto's standalone server: pip install 'moto[server]' boto3",
)
REGION = "us-east-1"
SERVER_START_S = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(process: subprocess.Popen[bytes], port: int, deadline_s: float, log: Path) -> None:
    """Return once ``port`` accepts connections; fail if ``process`` exits or the deadline passes first."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"moto server not listening on {port} after {deadline_s:.0f} s:\n{log.read_text()[-2000:]}")
        try:
            # Wait on the process (it must not exit), a short while, before trying the port again.
            process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"moto server exited with {process.returncode}:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a moto S3 server running for the whole session."""
    if not HAVE_MOTO:
        pytest.skip("the S3 store is tested against moto's standalone server: pip install 'moto[server]' boto3")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_port(process, port, SERVER_START_S, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials for boto3, and nothing of the developer's own AWS setup (profiles, instance metadata)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def make_bucket(endpoint: str) -> str:
    """A new, empty bucket on the moto server; its name."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:16]}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
    client.create_bucket(Bucket=name)
    client.close()
    return name


@pytest.fixture
def s3_bucket(s3_endpoint: str, aws_env: None) -> str:
    """A fresh bucket on the session's moto server (credentials set)."""
    return make_bucket(s3_endpoint)


def s3_url(endpoint: str, bucket: str, prefix: str = "", **query: Any) -> str:
    options = "".join(f"&{name}={value}" for name, value in query.items())
    return f"s3://{bucket}{'/' + prefix if prefix else ''}?endpoint_url={endpoint}&region={REGION}{options}"


@pytest.fixture(params=["directory", "memory", pytest.param("s3", marks=needs_moto), "clickhouse"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """Each kind of store, empty.

    A directory in tmp_path, a fresh memory store, a fresh bucket on moto's server, a table in a chDB (embedded
    ClickHouse) in tmp_path.
    """
    kind = request.param
    if kind == "directory":
        opened = open_store((tmp_path / "blobs").as_uri())
    elif kind == "memory":
        opened = open_store(f"memory://test-{uuid.uuid4().hex}")
    elif kind == "clickhouse":
        opened = open_store(f"clickhouse+chdb://{tmp_path / 'clickhouse'}?table=blobs")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        opened = open_store(s3_url(endpoint, bucket, "fleet/checkpoints"))
    yield opened
    opened.close()
    if isinstance(opened, MemoryStore):
        MemoryStore.discard(opened.name)
