"""Entry module of worker processes and Flower: ``celery -A simfleet.worker.celery_main:app ...``.

This is a process entry point, so it reads the settings when imported (the one place that does). It also pins
each pool process of a CPU worker to its own core on machines with more than 2 cores (core 0 stays for the system),
and starts the liveness threads in a worker's main process once it is ready: the heartbeat and the watchdog (both
roles; the heartbeat says which role, queues and pool processes the worker has). A CPU worker makes the compiled
DES kernel ready (compiled once per machine into numba's cache, else loaded from it) in its main process before its
pool starts, so that no task waits for a compile and every pool process inherits it. Nothing here touches a device:
backends are created in the pool process, on first use.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from billiard.process import current_process
from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown

from simfleet.shared.celery_app import create_app
from simfleet.shared.logs import install_celery_logging
from simfleet.shared.settings import ROLE_ENV
from simfleet.worker.runtime import worker_settings
from simfleet.worker.stages import node_name
from simfleet.worker.watchdog import Liveness

app = create_app(worker_settings())
install_celery_logging()
_liveness: list[Liveness] = []
_kernel_s: list[float] = []
logger = logging.getLogger(__name__)


@worker_init.connect
def _prepare_des_kernel(**_: Any) -> None:
    # Before the pool starts (and before Celery sets up its logging: the time is logged once the worker is ready).
    if os.environ.get(ROLE_ENV) != "cpu":
        return
    from simfleet.worker.des.engines import prepare

    _kernel_s.append(prepare("compiled"))


@worker_ready.connect
def _start_liveness(sender: Any = None, **_: Any) -> None:
    for seconds in _kernel_s:
        logger.info("DES kernel ready in %.1f s, before the pool started (compiled, or loaded from numba's cache)",
                    seconds)  # fmt: skip
    node = node_name()
    consumer = getattr(sender, "task_consumer", None)
    queues = sorted(q.name for q in getattr(consumer, "queues", [])) if consumer is not None else []
    concurrency = getattr(getattr(sender, "controller", None), "concurrency", None)
    info = {"role": os.environ.get(ROLE_ENV, ""), "queues": queues, "pid": os.getpid(), "host": socket.gethostname(),
            "concurrency": concurrency if isinstance(concurrency, int) else None}  # fmt: skip
    liveness = Liveness(worker_settings(), node, info)
    liveness.start()
    _liveness.append(liveness)


@worker_shutdown.connect
def _stop_liveness(**_: Any) -> None:
    while _liveness:
        _liveness.pop().stop()


@worker_process_init.connect
def _pin_to_core(**_: Any) -> None:
    cores = os.cpu_count() or 1
    if cores <= 2 or not worker_settings().cpu_worker.pin_cores or os.environ.get(ROLE_ENV) != "cpu":
        return
    index = getattr(current_process(), "index", 0) or 0
    os.sched_setaffinity(0, {1 + index % (cores - 1)})
