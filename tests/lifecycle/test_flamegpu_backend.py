"""The FLAME GPU backend where pyflamegpu is missing: the factory's message, lazy import, and the process guards.

The backend itself needs pyflamegpu and a CUDA GPU; the conformance suite runs it wherever both are present.
"""

import ctypes
import importlib.util
import logging
import os
import signal
import subprocess
import sys

import pytest

from simfleet.shared.errors import SimulationError
from simfleet.worker.lifecycle.backends import get_backend
from simfleet.worker.lifecycle.backends.flamegpu_backend import (
    USAGE_STATISTICS_VARIABLE,
    disable_usage_statistics,
    process_sigint_action,
    sigint_guard,
)
from simfleet.worker.lifecycle.backends.flamegpu_model import Layout, grant_quota, rtc_sources

PYFLAMEGPU_MISSING = importlib.util.find_spec("pyflamegpu") is None


@pytest.mark.skipif(not PYFLAMEGPU_MISSING, reason="pyflamegpu is installed here")
def test_the_factory_says_pyflamegpu_is_missing_and_how_to_install_it(monkeypatch):
    monkeypatch.delenv(USAGE_STATISTICS_VARIABLE, raising=False)
    with pytest.raises(SimulationError) as caught:
        get_backend("flamegpu")
    message = str(caught.value)
    assert "pyflamegpu" in message
    assert "not on PyPI" in message
    assert "release wheel" in message
    assert "CUDA GPU" in message
    assert isinstance(caught.value.__cause__, ImportError)
    # Usage statistics were switched off before the import was tried.
    assert os.environ[USAGE_STATISTICS_VARIABLE] == "OFF"


def test_importing_the_backends_and_the_flamegpu_module_does_not_import_pyflamegpu():
    code = (
        "import sys\n"
        "import simfleet.worker.lifecycle.backends\n"
        "import simfleet.worker.lifecycle.backends.flamegpu_backend\n"
        "assert 'pyflamegpu' not in sys.modules, 'pyflamegpu was imported'\n"
        "assert 'FLAMEGPU_SHARE_USAGE_STATISTICS' not in __import__('os').environ\n"
    )
    env = {key: value for key, value in os.environ.items() if key != USAGE_STATISTICS_VARIABLE}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr


def test_usage_statistics_are_switched_off_unless_the_operator_chose(monkeypatch):
    monkeypatch.delenv(USAGE_STATISTICS_VARIABLE, raising=False)
    disable_usage_statistics()
    assert os.environ[USAGE_STATISTICS_VARIABLE] == "OFF"
    monkeypatch.setenv(USAGE_STATISTICS_VARIABLE, "ON")
    disable_usage_statistics()
    assert os.environ[USAGE_STATISTICS_VARIABLE] == "ON"
    mapping = {}
    disable_usage_statistics(mapping)
    assert mapping == {USAGE_STATISTICS_VARIABLE: "OFF"}


@pytest.fixture
def recording_sigint_handler():
    """A Python SIGINT handler that records calls, replaced by the original one afterwards."""
    received = []
    original = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, original)


def test_the_sigint_guard_is_silent_when_nothing_changes_the_handler(recording_sigint_handler, caplog):
    before = signal.getsignal(signal.SIGINT)
    with caplog.at_level(logging.WARNING), sigint_guard("doing nothing"):
        pass
    assert signal.getsignal(signal.SIGINT) is before
    assert caplog.records == []


def test_the_sigint_guard_restores_a_python_handler_and_warns(recording_sigint_handler, caplog):
    before = signal.getsignal(signal.SIGINT)
    hijacked = []
    with caplog.at_level(logging.WARNING), sigint_guard("a rude import"):
        signal.signal(signal.SIGINT, lambda signum, frame: hijacked.append(signum))
    assert signal.getsignal(signal.SIGINT) is before
    assert "a rude import replaced the SIGINT handler (Python);" in caplog.text
    signal.raise_signal(signal.SIGINT)
    assert (recording_sigint_handler, hijacked) == ([signal.SIGINT], [])


@pytest.mark.skipif(process_sigint_action() is None, reason="no sigaction() through ctypes on this platform")
def test_the_sigint_guard_restores_a_handler_replaced_from_c_as_flame_gpu_does(recording_sigint_handler, caplog):
    libc = ctypes.CDLL(None)
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.signal.restype = ctypes.c_void_p
    ignore = ctypes.c_void_p(1)  # SIG_IGN: a SIGINT that still arrives proves the Python handler is back
    with caplog.at_level(logging.WARNING), sigint_guard("creating a simulation"):
        libc.signal(signal.SIGINT, ignore)
        assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # invisible to Python
    assert "creating a simulation replaced the SIGINT handler (process)" in caplog.text
    signal.raise_signal(signal.SIGINT)
    assert recording_sigint_handler == [signal.SIGINT]


def test_the_quota_goes_to_the_classes_in_priority_order_per_type():
    # [class][type]: type 0 has 2 flyers, 3 serviceable, 1 reserve, 4 inactive; type 1 only 1 reserve.
    eligible = [[2, 0], [3, 0], [1, 1], [4, 0]]
    take, shortfall = grant_quota(eligible, [4, 3])
    assert take == [[2, 0], [2, 0], [0, 1], [0, 0]]
    assert shortfall == [0, 2]


def test_the_rtc_sources_have_every_size_filled_in_and_log_rows_only_when_asked():
    with_rows = rtc_sources(Layout(airframes=300, days=10, types=2, window_days=32, log_rows=True))
    without_rows = rtc_sources(Layout(airframes=300, days=10, types=2, window_days=32, log_rows=False))
    for source in (*with_rows.values(), *without_rows.values()):
        assert "$" not in source
        assert source.count("{") == source.count("}")
    assert 'getMacroProperty<uint16_t, 11, 300>("minutes")' in with_rows["decide_day"]
    assert 'getMacroProperty<unsigned int, 8, 2>("block_requests")' in with_rows["apply_grant"]
    assert "mp2_rows" in with_rows["apply_grant"]
    assert "mp2_rows" not in without_rows["apply_grant"]
