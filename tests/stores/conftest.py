"""One fixture, ``store``, yielding every kind of blob store in turn, so the same tests run against all of them.

The ClickHouse store runs on chDB, the ClickHouse embedded in the process (no ClickHouse server can run here
either); its HTTP form is only parsed and checked to fail cleanly against an endpoint nobody listens on. The S3
store runs against the session's moto server (tests/conftest.py); each test gets a fresh bucket.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from simfleet.shared.stores import BlobStore, open_store
from simfleet.shared.stores.memory import MemoryStore
from tests.conftest import needs_moto, s3_url


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
