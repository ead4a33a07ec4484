import time

import pytest

from simfleet.shared.clickhouse.client import parse_dsn, with_retries
from simfleet.shared.errors import ClickHouseError, ConfigError
from tests.conftest import free_port


def test_server_dsn_carries_user_password_host_port_and_database():
    dsn = parse_dsn("http://bi_user:s%40cret@ch.example:8124/fleet")
    assert (dsn.kind, dsn.user, dsn.password, dsn.host, dsn.port, dsn.database) == (
        "http",
        "bi_user",
        "s@cret",
        "ch.example",
        8124,
        "fleet",
    )
    assert "s@cret" not in dsn.redacted
    assert parse_dsn("https://ch.example").port == 8443
    assert parse_dsn("http://ch.example").database == "simfleet"


def test_chdb_dsn_accepts_absolute_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_dsn("chdb:///var/lib/sim").path == "/var/lib/sim"
    assert parse_dsn("chdb://runs/clickhouse").path == str(tmp_path / "runs" / "clickhouse")


@pytest.mark.parametrize("dsn", ["clickhouse://x:9000", "http://", "chdb://", "redis://localhost:6379"])
def test_bad_dsn_is_a_config_error_naming_the_key(dsn):
    with pytest.raises(ConfigError, match="clickhouse_dsn"):
        parse_dsn(dsn)


def test_unreachable_server_fails_after_capped_retries_with_a_clear_error():
    from simfleet.shared.clickhouse.client import ClickHouse

    port = free_port()
    started = time.monotonic()
    with pytest.raises(ClickHouseError, match=r"unreachable after 3 attempts"):
        ClickHouse(f"http://default:pw@127.0.0.1:{port}/simfleet", attempts=3)
    assert time.monotonic() - started < 10


def test_retries_back_off_then_succeed_on_a_connection_error():
    calls = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError("connection reset")
        return "ok"

    assert with_retries(flaky, "flaky", attempts=5, base_delay_s=0.01) == "ok"
    assert len(calls) == 3


def test_a_query_error_is_not_retried():
    calls = []

    def wrong():
        calls.append(1)
        raise ValueError("syntax error")

    with pytest.raises(ClickHouseError, match="wrong failed: syntax error"):
        with_retries(wrong, "wrong", attempts=5)
    assert len(calls) == 1
