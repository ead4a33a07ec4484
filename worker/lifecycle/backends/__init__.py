"""Lifecycle backends: one interface, the vectorised numpy backend (and CuPy on the same code), others optional.

``get_backend(name)`` returns a fresh backend. Each backend lives in its own module, imported only when asked for,
so an optional dependency (CuPy, pyflamegpu) is never imported by a process that does not use it:

- ``numpy``: the default, on the CPU (:mod:`.numpy_backend`);
- ``cupy``: the numpy backend's code with CuPy as its array module (needs CuPy and a GPU);
- further backends register in :data:`REGISTRY` as ``name -> "module:factory"``; a factory takes ``debug`` and
  raises :class:`~simfleet.shared.errors.SimulationError` saying what is missing when it cannot run here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from simfleet.shared.errors import SimulationError
from simfleet.worker.lifecycle.backends.base import LifecycleBackend
from simfleet.worker.lifecycle.backends.numpy_backend import NumpyBackend


def _numpy(*, debug: bool = False) -> LifecycleBackend:
    return NumpyBackend(debug=debug)


def _cupy(*, debug: bool = False) -> LifecycleBackend:
    try:
        import cupy
    except ImportError as exc:
        raise SimulationError("backend 'cupy' needs CuPy and a CUDA GPU; neither is installed here") from exc
    xp: Any = cupy
    return NumpyBackend(xp=xp, debug=debug)


REGISTRY: dict[str, str | Callable[..., LifecycleBackend]] = {
    "numpy": _numpy,
    "cupy": _cupy,
    "flamegpu": ".flamegpu_backend:create",
    "numba": ".numba_backend:create",
}
"""Backend name -> factory, or ``"module:factory"`` (relative to this package) imported on first use; the names are
the contract's :data:`~simfleet.shared.lifecycle_contract.BACKENDS` (checked by the tests)."""


def backend_names() -> tuple[str, ...]:
    """Every registered backend name (whether or not it can run here)."""
    return tuple(REGISTRY)


def get_backend(name: str = "numpy", *, debug: bool = False) -> LifecycleBackend:
    """A new backend called ``name``.

    Raises:
        SimulationError: the name is unknown, or the backend cannot run here (the message says why).
    """
    factory = REGISTRY.get(name)
    if factory is None:
        raise SimulationError(f"unknown backend {name!r} (known: {', '.join(REGISTRY)})")
    if isinstance(factory, str):
        module_name, _, attribute = factory.partition(":")
        module = importlib.import_module(module_name, __name__)
        factory = getattr(module, attribute)
    return factory(debug=debug)


__all__ = ["REGISTRY", "LifecycleBackend", "NumpyBackend", "backend_names", "get_backend"]
