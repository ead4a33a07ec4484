"""The producer's result backend: Celery's Redis backend, minus the pub/sub subscription.

Celery's Redis backend subscribes a pub/sub channel for every task a client publishes (and for every member of a group)
and keeps a handle per task until a result message is drained. A producer that polls, as
:class:`~simfleet.producer.fleet.client.Fleet` does, never drains them: handles pile up in a long-lived client, and each
one collected after the connection closed tries to unsubscribe over it. This subclass reads results exactly like its
parent but never subscribes. It is selected with Celery's ``module:Class+redis://…`` backend URL form.
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend


class PollingRedisBackend(RedisBackend):  # type: ignore[misc]
    """Redis result backend for clients that poll ``get_task_meta`` instead of waiting on pub/sub."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Publish without subscribing to the task's result channel."""

    def add_pending_result(self, result: Any, weak: bool = False, start_drainer: bool = True) -> Any:
        """Keep no handle: results are polled."""
        return result

    def remove_pending_result(self, result: Any) -> Any:
        """Nothing was kept, nothing to unsubscribe."""
        return result


def polling_backend_url(result_backend: str) -> str:
    """The backend URL that selects :class:`PollingRedisBackend` for ``result_backend``."""
    return f"{__name__}:PollingRedisBackend+{result_backend}"
