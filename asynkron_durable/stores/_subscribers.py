"""The `subscribe` half of the store protocol, shared by every backend."""

from __future__ import annotations

import logging
from collections.abc import Callable

from asynkron_durable.stores.base import Work

_log = logging.getLogger("asynkron_durable.stores")


class Subscribers:
    """Callbacks to run when work was enqueued; one failing callback never stops the others."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Work], None]] = []

    def add(self, callback: Callable[[Work], None]) -> None:
        """Register `callback`."""
        self._callbacks.append(callback)

    def notify(self, work: Work) -> None:
        """Run every callback with `work` (from the event loop); nothing when `work` is NONE."""
        if not work:
            return
        for callback in list(self._callbacks):
            try:
                callback(work)
            except Exception:
                _log.exception("store subscriber %r failed", callback)
