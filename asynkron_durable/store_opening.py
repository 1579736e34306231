"""Opening the store of a long-running process (`worker`, `serve`): a database that cannot be reached
yet is waited for, not a reason to exit.

A process may start before its database, or together with it under one supervisor; exiting would
only make the supervisor restart it in a loop. Errors other than "cannot be reached" (a bad
password, a schema newer than this code) are raised at once: waiting would not fix them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from asynkron_durable.errors import StoreError
from asynkron_durable.stores import StateStore
from asynkron_durable.worker.pacing import Backoff
from asynkron_durable.worker.retry_log import RetryLog

__all__ = ["UNREACHABLE", "open_when_reachable"]

UNREACHABLE = "the store cannot be reached"
"""What the log lines of the wait say (with the store's error, its DSN's password masked)."""


async def open_when_reachable(store: StateStore, stop: asyncio.Event, log: logging.Logger) -> bool:
    """Open `store`, retrying with back-off (0.2 s doubling to 5 s) while it cannot be reached: a
    `StoreError` caused by the network (`OSError`, `TimeoutError`). One line a second at most goes
    to `log`, without tracebacks; any other error is raised. True once open; False if `stop` was
    set first (then the store is not open)."""
    retries = RetryLog(log, tracebacks=False)
    pause = Backoff(0.2, 5.0)
    while not stop.is_set():
        try:
            await store.open()
            retries.recovered(UNREACHABLE)
            return True
        except StoreError as exc:
            if not isinstance(exc.__cause__, OSError | TimeoutError):
                raise
            retries.failed(UNREACHABLE, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause.next())
    return False
