"""Per-process state of a worker: its settings, loaded once when the process first needs them."""

from __future__ import annotations

from functools import lru_cache

from simfleet.shared.settings import Settings, load_settings


@lru_cache(maxsize=1)
def worker_settings() -> Settings:
    """The settings this worker process runs with (``$SIMFLEET_CONFIG`` and ``SIMFLEET_…`` overrides)."""
    return load_settings()
