"""How idle and failing loops wait: back-off that doubles, and waits a wake-up cuts short."""

from __future__ import annotations

import asyncio

from asynkron_durable.history import utc_now
from asynkron_durable.stores.base import StateStore
from asynkron_durable.worker.retry_log import RetryLog


class Backoff:
    """Idle waits that double from `low` up to `high`, reset as soon as work shows up."""

    def __init__(self, low: float, high: float) -> None:
        self._low, self._high = low, high
        self._current = low

    def reset(self) -> None:
        self._current = self._low

    def next(self) -> float:
        delay = self._current
        self._current = min(self._high, self._current * 2)
        return delay


async def wait_or_timeout(event: asyncio.Event, timeout: float) -> None:
    """Wait for `event` or `timeout` seconds, whichever first (a timer handle: cheaper than a task)."""
    if not event.is_set():
        timer = asyncio.get_running_loop().call_later(timeout, event.set)
        try:
            await event.wait()
        finally:
            timer.cancel()
    event.clear()


async def until_next_timer(store: StateStore, backoff: float, retries: RetryLog) -> float:
    """How long an idle orchestration loop may sleep: `backoff`, but no longer than until the next
    durable timer is due, so timers fire on time without fast polling."""
    try:
        due = await store.next_due(utc_now())
        retries.recovered("asking the store for the next timer failed")
    except Exception as exc:
        retries.failed("asking the store for the next timer failed", exc)
        return backoff
    if due is None:
        return backoff
    return max(0.0, min(backoff, (due - utc_now()).total_seconds()))
