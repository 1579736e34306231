"""Log lines for loops that retry: a store down for a minute must not write a traceback per retry.

The first failure of a kind (same place, same exception type) is logged with its traceback;
repeats are counted and summed up in one line at most once per `interval` seconds, with the latest
message ("orchestration round failed (42 more times in 10 s, retrying): StoreError: ..."), the
traceback left out. Once the loop works again, one line says so with the repeats not yet told.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass


@dataclass(slots=True)
class _Cause:
    first: float
    last_logged: float
    repeats: int = 0
    """Failures since the last line."""


class RetryLog:
    """Rate-limited failure lines for one logger."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0, *, tracebacks: bool = True) -> None:
        self._log = logger
        self._interval = interval
        self._tracebacks = tracebacks
        """False where the failure is expected and its message says it all (a database not up yet)."""
        self._causes: dict[tuple[str, str], _Cause] = {}

    def failed(self, what: str, error: BaseException) -> None:
        """`what` failed with `error` and will be retried."""
        key = (what, type(error).__name__)
        now = time.monotonic()
        cause = self._causes.get(key)
        if cause is None:
            self._causes[key] = _Cause(now, now)
            if self._tracebacks:
                self._log.error("%s; retrying", what, exc_info=error)
            else:
                self._log.error("%s; retrying: %s: %s", what, type(error).__name__, error)
            return
        cause.repeats += 1
        if now - cause.last_logged >= self._interval:
            self._log.error(
                "%s (%d more times in %.0f s, retrying): %s: %s",
                what,
                cause.repeats,
                now - cause.first,
                type(error).__name__,
                error,
            )
            cause.last_logged, cause.repeats = now, 0

    def recovered(self, what: str) -> None:
        """`what` worked again: its next failure is news, logged in full."""
        for key in [key for key in self._causes if key[0] == what]:
            cause = self._causes.pop(key)
            if cause.repeats:
                self._log.warning("%s %d more times (%s) before it worked again", what, cause.repeats, key[1])
