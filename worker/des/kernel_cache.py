"""Keeping numba's on-disk cache of the DES kernel in step with the kernel's sources.

numba keys a cached function by its own source file only, yet the machine code it caches holds the functions it
calls from the kernel's other modules. After a change to one of them alone (a ``git pull`` that touches
``kernel_resources.py`` but not ``kernel.py``, say), numba would load the old code for every caller: a silently stale
kernel. So the driver (:mod:`simfleet.worker.des.compiled`) calls :func:`invalidate_stale` when it is imported: it
compares a digest of every kernel module's source with the one stamped beside the cache, and when they differ (or no
stamp is there) it flushes the cache of every kernel function, so that each compiles again, once, from the current
sources; then it stamps the new digest. Reading the stamp costs a fraction of a millisecond.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

from numba.core.dispatcher import Dispatcher

KERNEL_MODULES = (
    "simfleet.worker.des.kernel_layout",
    "simfleet.worker.des.kernel_resources",
    "simfleet.worker.des.kernel_resources_plain",
    "simfleet.worker.des.kernel_tools",
    "simfleet.worker.des.kernel_plain",
    "simfleet.worker.des.kernel",
)
"""Every module whose compiled functions call one another (a change to any of them can change any caller's code)."""
STAMP = "simfleet-kernel-sources.sha256"
"""The file, in each directory of numba's cache that holds kernel functions, naming the sources they came from."""


def sources_digest(modules: tuple[str, ...] = KERNEL_MODULES) -> str:
    """A SHA-256 of the kernel modules' source files, in order."""
    digest = hashlib.sha256()
    for name in modules:
        path = Path(str(importlib.import_module(name).__file__))
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def dispatchers(modules: tuple[str, ...] = KERNEL_MODULES) -> list[Any]:
    """The kernel's cached numba functions, once each."""
    found: dict[int, Any] = {}
    for name in modules:
        for value in vars(importlib.import_module(name)).values():
            if isinstance(value, Dispatcher) and getattr(value, "_cache", None) is not None:
                found.setdefault(id(value), value)
    return list(found.values())


def invalidate_stale(modules: tuple[str, ...] = KERNEL_MODULES) -> bool:
    """Flush the kernel's cached code when it was compiled from other sources; True when it did.

    A cache that cannot be written (a read-only install) is left as it is: numba then compiles in memory.
    """
    digest = sources_digest(modules)
    functions = dispatchers(modules)
    folders = {Path(function._cache._cache_path) for function in functions}
    if all(_stamp(folder) == digest for folder in folders):
        return False
    try:
        for function in functions:
            function._cache.flush()
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / STAMP).write_text(digest + "\n", encoding="ascii")
    except OSError:
        pass
    return True


def _stamp(folder: Path) -> str | None:
    try:
        return (folder / STAMP).read_text(encoding="ascii").strip()
    except OSError:
        return None


__all__ = ["KERNEL_MODULES", "STAMP", "dispatchers", "invalidate_stale", "sources_digest"]
