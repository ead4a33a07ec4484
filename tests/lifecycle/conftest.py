"""Every lifecycle backend created in these tests checks every invariant after each simulated day."""

from typing import Any

import numpy as np
import pytest

from simfleet.worker.lifecycle.backends.numpy_backend import NumpyBackend


@pytest.fixture(autouse=True)
def _invariants_always_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    original = NumpyBackend.__init__

    def checked(self: NumpyBackend, xp: Any = np, *, debug: bool = False) -> None:
        original(self, xp, debug=True)

    monkeypatch.setattr(NumpyBackend, "__init__", checked)
