"""``simfleet exporter``: the fleet's Prometheus endpoint, one process for the whole fleet.

It serves ``/metrics`` (the Prometheus text format, read from Redis at each scrape by
:class:`~simfleet.worker.metrics.FleetCollector`) and ``/healthz`` (200 while the fleet's Redis answers, 503 when it
does not: for liveness and readiness probes). It holds no state, so it can run anywhere that reaches Redis, be
restarted at will, or run twice. With ``metrics.user`` and ``metrics.password`` set, ``/metrics`` asks for basic auth
(``/healthz`` never does: it tells nothing but up or down); without them, bind it to an internal address only.
"""

from __future__ import annotations

import base64
import errno
import hmac
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from simfleet.shared.errors import ConfigError
from simfleet.shared.redis_client import UNAVAILABLE, reason_of
from simfleet.shared.settings import MetricsSettings, Settings
from simfleet.worker.metrics import FleetCollector

log = logging.getLogger(__name__)
REALM = "simfleet metrics"


class Exporter(ThreadingHTTPServer):
    """The HTTP server: one collector, one registry holding only the fleet's series.

    Args:
        settings: the fleet's settings (``metrics`` gives the credentials; Redis URLs the data).
        host: the address to listen on.
        port: the port (0: any free one; see :attr:`port`).
        origin: where ``host`` and ``port`` came from (a setting or a flag), for errors.

    Raises:
        ConfigError: the address cannot be listened on (in use, not this machine's), naming where it came from.
    """

    daemon_threads = True

    def __init__(
        self, settings: Settings, host: str, port: int, origin: tuple[str, str] = ("metrics.host", "metrics.port")
    ) -> None:
        self.settings = settings
        self.credentials = _expected(settings.metrics)
        self.collector = FleetCollector(settings)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            self.collector.close()
            key = origin[1] if exc.errno in (errno.EADDRINUSE, errno.EACCES) else origin[0]
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", key=key) from exc

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.server_address[1])

    def healthy(self) -> str:
        """Empty when the fleet's Redis answers, else why not."""
        try:
            self.collector.broker.ping()
            self.collector.results.ping()
        except UNAVAILABLE as exc:
            return reason_of(exc)
        return ""

    def server_close(self) -> None:
        """Stop listening and release the Redis connections."""
        super().server_close()
        self.collector.close()


def _expected(metrics: MetricsSettings) -> bytes | None:
    """The ``Authorization`` header value basic auth expects, or ``None`` without credentials."""
    if metrics.user is None or metrics.password is None:
        return None
    return b"Basic " + base64.b64encode(f"{metrics.user}:{metrics.password}".encode())


class _Handler(BaseHTTPRequestHandler):
    server: Exporter
    server_version = "simfleet-exporter"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            reason = self.server.healthy()
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE if reason else HTTPStatus.OK,
                        f"redis unreachable: {reason}\n" if reason else "ok\n")  # fmt: skip
        elif path == "/metrics":
            if not self._authorized():
                self.send_response(HTTPStatus.UNAUTHORIZED)
                self.send_header("WWW-Authenticate", f'Basic realm="{REALM}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = generate_latest(self.server.registry)
            self._reply(HTTPStatus.OK, body, CONTENT_TYPE_LATEST)
        elif path == "/":
            self._reply(HTTPStatus.OK, "simfleet exporter: /metrics (Prometheus), /healthz\n")
        else:
            self._reply(HTTPStatus.NOT_FOUND, "not found: /metrics and /healthz are served\n")

    def _authorized(self) -> bool:
        expected = self.server.credentials
        if expected is None:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode("latin-1", "replace"), expected)

    def _reply(self, status: HTTPStatus, body: str | bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def serve(settings: Settings, host: str, port: int, origin: tuple[str, str] = ("metrics.host", "metrics.port"),
          ready: threading.Event | None = None) -> None:  # fmt: skip
    """Serve until interrupted (Ctrl-C, SIGTERM); ``ready`` is set once it listens (see :class:`Exporter`)."""
    server = Exporter(settings, host, port, origin)
    auth = "basic auth on /metrics" if server.credentials else "no auth: keep this address internal"
    print(f"serving the fleet's metrics on http://{host}:{server.port}/metrics ({auth}); /healthz for probes",
          flush=True)  # fmt: skip
    try:
        if ready is not None:
            ready.set()
        server.serve_forever()
    finally:
        server.server_close()


__all__ = ["Exporter", "serve"]
