"""The one way the fleet opens Redis: timeouts, retries with backoff, and driver errors as one clear error.

Every Redis client of the project (job records, checkpoint references, heartbeats, the watchdog, the producer's
client, the command line) comes from :func:`connect`: connect and read timeouts so that nothing hangs on a dead
server, and commands retried with capped exponential backoff and jitter for about ``retry_s`` seconds, so a Redis
restart of a few seconds (a failover, a restart from its append-only file) passes unnoticed. Past that, a
:class:`~simfleet.shared.errors.FleetUnavailable` names the URL (password replaced by ``***``) and the reason in one
line: :func:`translate` turns the driver's errors into it at the boundary.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import kombu.exceptions
import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from simfleet.shared.errors import FleetUnavailable

RETRY_S = 30.0
"""How long a command keeps retrying a lost connection by default before the outage is reported."""
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0


def redact(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def _retries_for(retry_s: float) -> int:
    """How many backoff steps (base doubling up to the cap) add up to about ``retry_s``."""
    total, step, count = 0.0, BACKOFF_BASE_S, 0
    while total < retry_s:
        total += min(step, BACKOFF_CAP_S)
        step *= 2
        count += 1
    return max(count, 1)


def connect(
    url: str,
    *,
    retry_s: float = RETRY_S,
    connect_timeout_s: float = 3.0,
    socket_timeout_s: float = 30.0,
) -> redis.Redis:
    """A client for ``url`` with timeouts and retries (nothing is sent until the first command).

    Args:
        url: ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).
        retry_s: how long a command retries connection errors and timeouts, with backoff, before raising;
            ``0`` for one attempt.
        connect_timeout_s: the time a connection attempt may take.
        socket_timeout_s: the time a reply may take (longer than any command the fleet sends).
    """
    retries = _retries_for(retry_s) if retry_s > 0 else 0
    backoff = ExponentialWithJitterBackoff(base=BACKOFF_BASE_S, cap=BACKOFF_CAP_S)
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=socket_timeout_s,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(backoff, retries),
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, TimeoutError],
    )


def reason_of(exc: BaseException) -> str:
    """A driver error in one line, saying what an operator would check."""
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return f"it refused the password ({exc}); check the password in the URL"
    if isinstance(exc, redis.exceptions.ResponseError) and "NOAUTH" in str(exc):
        return "it asks for a password and the URL has none"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    TimeoutError,
    ConnectionError,
    kombu.exceptions.OperationalError,
)
"""Errors that mean Redis cannot be reached: redis-py's (authentication failures are ConnectionErrors there), and
kombu's when a publication gives up on the broker."""


@contextlib.contextmanager
def translate(url: str) -> Iterator[None]:
    """Turn Redis connection, timeout and authentication errors inside the block into :class:`FleetUnavailable`."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise FleetUnavailable(redact(url), reason_of(exc)) from exc
    except redis.exceptions.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise FleetUnavailable(redact(url), reason_of(exc)) from exc
        raise


def check_reachable(url: str, *, timeout_s: float = 3.0) -> None:
    """Ping ``url`` once, quickly: the check a worker or a command makes before it relies on Redis.

    Raises:
        FleetUnavailable: unreachable, or the password is refused (the message says which).
    """
    client = connect(url, retry_s=0, connect_timeout_s=timeout_s, socket_timeout_s=timeout_s)
    try:
        with translate(url):
            client.ping()
    finally:
        client.close()


def wait_reachable(url: str, *, timeout_s: float, poll_s: float = 0.5) -> bool:
    """Whether ``url`` answers a ping within ``timeout_s`` (polling; a refused password fails at once)."""
    deadline = time.monotonic() + timeout_s if timeout_s != math.inf else math.inf
    while True:
        try:
            check_reachable(url, timeout_s=min(3.0, max(0.2, poll_s)))
            return True
        except FleetUnavailable as exc:
            if "password" in exc.reason:
                raise
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
