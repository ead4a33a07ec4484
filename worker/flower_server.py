"""``simfleet flower``: Flower for the configured broker, with basic auth on every page and endpoint.

Flower 2 checks its ``--basic-auth`` on its pages and API only: ``/metrics``, ``/healthcheck`` and the static files
answer anyone. Here the check is made once for every request, before Flower's routing, so nothing answers without
the credentials (a refusal is a 401 asking for basic auth). The credentials come from the settings
(``flower.user``/``flower.password``, ``SIMFLEET_FLOWER__…``, Flower's own ``FLOWER_BASIC_AUTH=user:password``, or the
local fleet's secrets file), never from the command line, where any user of the machine could read them.

Flower inspects each worker the first time it hears it (:mod:`simfleet.worker.flower_hooks`), so its worker list
and broker page (with every worker's own queue) hold workers started after it.

A probe that cannot send credentials gets ``flower.health_port``: a second port that answers ``/healthcheck`` with
``OK`` and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

import tornado.web
from tornado.httputil import HTTPServerRequest

from simfleet.shared.errors import ConfigError, FleetError
from simfleet.shared.settings import Settings
from simfleet.worker.flower_hooks import inspect_new_workers

logger = logging.getLogger(__name__)
REALM = "simfleet flower"
OFFLINE_WORKERS_KEPT_S = 3600
"""How long Flower keeps listing a worker that went offline (and its series on Flower's /metrics)."""


def authorised(request: HTTPServerRequest, credentials: bytes) -> bool:
    """Whether ``request`` carries basic-auth ``credentials`` (``user:password``), compared in constant time."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, credentials)


class Unauthorised(tornado.web.RequestHandler):
    """The answer to any request without the credentials: 401 and a basic-auth challenge."""

    def prepare(self) -> None:
        """Refuse, whatever the method and path."""
        self.set_status(401)
        self.set_header("WWW-Authenticate", f'Basic realm="{REALM}"')
        self.set_header("Content-Type", "text/plain")
        self.finish("authentication required\n")


class Healthcheck(tornado.web.RequestHandler):
    """``/healthcheck`` on the health port: ``OK`` while the process serves requests."""

    def get(self) -> None:
        """Say the server is alive."""
        self.set_header("Content-Type", "text/plain")
        self.write("OK")


def credentials(settings: Settings) -> tuple[str, str]:
    """Flower's user and password from the settings.

    Raises:
        ConfigError: when no password is configured (Flower never runs without auth).
    """
    flower = settings.flower
    if not flower.password:
        raise ConfigError(
            "no Flower password: set FLOWER_BASIC_AUTH=user:password or SIMFLEET_FLOWER__PASSWORD, or start the local "
            "fleet with 'simfleet fleet up', which generates one",
            source=settings.source,
            key="flower.password",
        )
    return flower.user, flower.password


def build(settings: Settings, celery_app: Any) -> Any:
    """A Flower application for ``celery_app`` that answers nothing without the settings' credentials."""
    import flower.options  # noqa: F401  (defines Flower's options on tornado's global options)
    from flower.app import Flower
    from flower.urls import settings as tornado_settings
    from tornado.options import options

    user, password = credentials(settings)
    expected = f"{user}:{password}".encode()

    class GuardedFlower(Flower):  # type: ignore[misc]
        """Flower behind basic auth on every route, its unauthenticated ``/metrics`` and ``/healthcheck`` included."""

        def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> Any:
            if not authorised(request, expected):
                return self.get_handler_delegate(request, Unauthorised)
            return super().find_handler(request, **kwargs)

    options.address = settings.flower.address
    options.port = settings.flower.port
    options.basic_auth = [f"{user}:{password}"]  # Flower's own pages then behave as with auth on
    # Node names carry a random suffix per start, so each restart of a worker is a new label value on Flower's own
    # /metrics: workers offline for an hour are dropped from its list and its series, which keeps them bounded.
    options.purge_offline_workers = OFFLINE_WORKERS_KEPT_S
    guarded = GuardedFlower(capp=celery_app, options=options, **tornado_settings)
    inspect_new_workers(guarded)  # its worker list and broker page then hold workers started after it
    return guarded


def _listen(what: str, start: Callable[[], Any]) -> Any:
    """``start()``, with a port already taken (or not ours to take) said in one line."""
    try:
        return start()
    except OSError as exc:
        raise FleetError(f"{what} cannot listen: {exc.strerror or exc}") from exc


def serve(settings: Settings) -> int:
    """Run Flower until SIGTERM or Ctrl-C; return the exit code."""
    from simfleet.shared.logs import configure_logging

    configure_logging("INFO")
    from simfleet.worker.celery_main import app as celery_app

    flower_app = build(settings, celery_app)

    def stop(signum: int, _frame: Any) -> None:
        logger.info("signal %d: Flower stops", signum)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    address, health_port = settings.flower.address, settings.flower.health_port
    port = _listen(f"Flower on {address}:{settings.flower.port}", flower_app.start_http_server)
    if health_port is not None:
        health = tornado.web.Application([(r"/healthcheck", Healthcheck)])
        _listen(f"the health check on {address}:{health_port}", lambda: health.listen(health_port, address=address))
    logger.info("Flower at http://%s:%s (basic auth on every endpoint, user %s)", address, port, settings.flower.user)
    if health_port is not None:
        logger.info("health check without auth at http://%s:%s/healthcheck", address, health_port)
    try:
        flower_app.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        flower_app.stop()
    return 0
