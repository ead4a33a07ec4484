"""An embedded ClickHouse (chDB) per test, in its own directory; chDB allows one open path per process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simfleet.shared.clickhouse.client import ClickHouse
from simfleet.shared.clickhouse.migrations import init_db


@pytest.fixture
def ch(tmp_path: Path) -> Iterator[ClickHouse]:
    client = ClickHouse(f"chdb://{tmp_path / 'clickhouse'}")
    init_db(client)
    yield client
    client.close()
