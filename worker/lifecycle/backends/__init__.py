"""Lifecycle backends: one interface, the vectorised numpy backend (and CuPy on the same code), FLAME GPU optional.

``get_backend(name)`` returns a fresh backend: ``numpy`` (default, CPU), ``cupy`` (the numpy backend's code with
CuPy as its array module; needs CuPy and a GPU), ``flamegpu`` (pyflamegpu, not on PyPI: not available here).
"""

from __future__ import annotations

from typing import Any

from shared.errors import SimulationError

from .base import LifecycleBackend
from .numpy_backend import NumpyBackend

BACKENDS = ("numpy", "cupy", "flamegpu")


def get_backend(name: str = "numpy", *, debug: bool = False) -> LifecycleBackend:
    """A new backend called ``name``."""
    if name == "numpy":
        return NumpyBackend(debug=debug)
    if name == "cupy":
        try:
            import cupy
        except ImportError as exc:
            raise SimulationError("backend 'cupy' needs CuPy and a CUDA GPU; neither is installed here") from exc
        xp: Any = cupy
        return NumpyBackend(xp=xp, debug=debug)
    if name == "flamegpu":
        raise SimulationError(
            "backend 'flamegpu' needs pyflamegpu (not on PyPI; install it separately); it is not written yet"
        )
    raise SimulationError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")


__all__ = ["BACKENDS", "LifecycleBackend", "NumpyBackend", "get_backend"]
