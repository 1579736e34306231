"""The `subscribe` half of the store protocol, shared by every backend."""

from __future__ import annotations

import logging
from collections.abc import Callable

_log = logging.getLogger("asynkron_durable.stores")


class Subscribers:
    """Callbacks to run when work was enqueued; one failing callback never stops the others."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []

    def add(self, callback: Callable[[], None]) -> None:
        """Register `callback`."""
        self._callbacks.append(callback)

    def notify(self) -> None:
        """Run every callback (from the event loop)."""
        for callback in list(self._callbacks):
            try:
                callback()
            except Exception:
                _log.exception("store subscriber %r failed", callback)
