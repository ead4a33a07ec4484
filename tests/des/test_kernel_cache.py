"""numba's cache of the kernel follows the kernel's sources: a change to any kernel module flushes every function."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simfleet.worker.des import kernel_cache
from simfleet.worker.des.compiled import CompiledSimulation  # noqa: F401  (imported: the stamp is checked and written)


@pytest.fixture
def flushed(monkeypatch: Any) -> list[str]:
    """The kernel functions whose cache is flushed (recorded instead: the suite's warm cache stays as it is)."""
    calls: list[str] = []
    for function in kernel_cache.dispatchers():
        monkeypatch.setattr(function._cache, "flush", lambda name=function.py_func.__name__: calls.append(name))
    return calls


def stamps() -> dict[Path, Path]:
    folders = {Path(f._cache._cache_path) for f in kernel_cache.dispatchers()}
    return {folder: folder / kernel_cache.STAMP for folder in folders}


def test_a_cache_stamped_with_the_current_sources_is_kept(flushed: list[str]) -> None:
    assert all(stamp.read_text().strip() == kernel_cache.sources_digest() for stamp in stamps().values())
    assert kernel_cache.invalidate_stale() is False
    assert flushed == []


def test_a_cache_from_other_sources_is_flushed_for_every_kernel_function(flushed: list[str]) -> None:
    files = stamps()
    saved = {path: path.read_text() for path in files.values()}
    try:
        for path in files.values():
            path.write_text("0" * 64 + "\n")  # compiled from sources that differ from today's
        assert kernel_cache.invalidate_stale() is True
        assert {"run_events", "run_events_fallible", "rate_join", "heap_push"} <= set(flushed)
        assert len(flushed) == len(kernel_cache.dispatchers())
        assert all(path.read_text().strip() == kernel_cache.sources_digest() for path in files.values())
    finally:
        for path, text in saved.items():
            path.write_text(text)


def test_the_digest_changes_with_any_kernel_module(tmp_path: Path, monkeypatch: Any) -> None:
    before = kernel_cache.sources_digest()
    source = Path(kernel_cache.importlib.import_module("simfleet.worker.des.kernel_layout").__file__ or "")
    copy = tmp_path / "kernel_layout.py"
    copy.write_bytes(source.read_bytes() + b"\n# an edit\n")
    module = kernel_cache.importlib.import_module("simfleet.worker.des.kernel_layout")
    monkeypatch.setattr(module, "__file__", str(copy))
    assert kernel_cache.sources_digest() != before
