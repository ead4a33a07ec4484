"""Worker liveness: every worker (both roles) keeps a heartbeat key with a TTL in Redis while it lives.

``simfleet:worker:<node>:heartbeat`` holds a little JSON about the worker (role, queue, pid, host) and expires
``ttl_s`` after the last refresh; a thread in the worker's main process refreshes it. A node whose key expired is
taken for dead: the watchdog then hands its lifecycle jobs and its running replications to the rest of the fleet.
A clean shutdown removes the key at once.
"""

from __future__ import annotations

import json
from typing import Any

import redis

HEARTBEAT_PREFIX = "simfleet:worker:"
HEARTBEAT_KEY = HEARTBEAT_PREFIX + "{}:heartbeat"
"""A node's heartbeat key; server-side scripts build it as ``HEARTBEAT_PREFIX .. node .. ':heartbeat'``."""
HEARTBEAT_PATTERN = HEARTBEAT_PREFIX + "*:heartbeat"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Heartbeats:
    """Heartbeat keys in one Redis (the result backend's)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def beat(self, node: str, ttl_s: float, info: dict[str, Any] | None = None) -> None:
        """Refresh ``node``'s heartbeat for ``ttl_s`` seconds."""
        self.redis.set(HEARTBEAT_KEY.format(node), json.dumps(info or {}), px=int(ttl_s * 1000))

    def stop(self, node: str) -> None:
        """Remove ``node``'s heartbeat (a clean shutdown: its work may be handed on at once)."""
        self.redis.delete(HEARTBEAT_KEY.format(node))

    def alive(self, node: str) -> bool:
        """Whether ``node``'s heartbeat has not expired."""
        return bool(node) and bool(self.redis.exists(HEARTBEAT_KEY.format(node)))

    def nodes(self) -> dict[str, dict[str, Any]]:
        """Every live node and what its heartbeat says about it."""
        found: dict[str, dict[str, Any]] = {}
        for key in self.redis.scan_iter(match=HEARTBEAT_PATTERN, count=500):
            name = _text(key)[len(HEARTBEAT_PREFIX) : -len(":heartbeat")]
            raw = self.redis.get(key)
            if raw is not None:
                found[name] = json.loads(raw)
        return found
