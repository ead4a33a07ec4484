"""The fleet tests' fixtures (a real Redis, real worker processes, the producer's client), for the ops tests too."""

from tests.fleet.conftest import fleet, fleet_settings, redis_server, start_worker  # noqa: F401 (fixtures)
