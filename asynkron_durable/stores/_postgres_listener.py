"""The PostgreSQL store's LISTEN connection: how a runtime hears that another process enqueued work.

Every transaction that enqueues work NOTIFYs the schema's channel with its store's token and the kind
of work (`payload`). Each store holds one pool connection LISTENing there and wakes its subscribers
for every notification that is not its own (those were announced locally already). If the
connection drops, it reconnects with back-off and wakes the subscribers once for any kind of work,
as notifications sent while nobody listened are lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from asynkron_durable.stores._postgres_codec import DRIVER_ERRORS
from asynkron_durable.stores.base import Work

_FIRST_RETRY_DELAY = 0.05
_MAX_RETRY_DELAY = 5.0

_CODES = {Work.MESSAGES: "m", Work.ACTIVITIES: "a"}
_KINDS = {code: work for work, code in _CODES.items()}

_log = logging.getLogger(__name__)


def payload(token: str, work: Work) -> str:
    """The NOTIFY payload by which the store holding `token` announces `work` (MESSAGES or ACTIVITIES)."""
    return f"{token}:{_CODES[work]}"


def parse_payload(text: str) -> tuple[str, Work]:
    """The sender's token and the work it announces; ANY for a payload naming no kind we know
    (an older or newer sender), so nobody sleeps through work."""
    token, _, code = text.partition(":")
    return token, _KINDS.get(code, Work.ANY)


class Listener:
    """One LISTEN connection taken from `pool`, kept up from `start()` until `stop()`."""

    def __init__(self, pool: Any, channel: str, token: str, wake: Callable[[Work], None], where: str) -> None:
        self._pool = pool
        self._channel = channel
        self._token = token
        self._wake = wake
        self._where = where
        self._conn: Any = None
        self._dropped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """LISTEN now (so notifications from here on are heard); raises the driver's error if it can't."""
        await self._listen()
        self._task = asyncio.create_task(self._keep_listening(), name=f"LISTEN {self._channel}")

    async def stop(self) -> None:
        """Stop listening and give the connection back to the pool."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None and not self._dropped.is_set():
            with suppress(*DRIVER_ERRORS):
                conn.remove_termination_listener(self._on_drop)
                try:  # asyncpg warns about releasing a connection with live listeners
                    await conn.remove_listener(self._channel, self._on_notification)
                finally:
                    await self._pool.release(conn)

    def _on_notification(self, conn: Any, pid: int, channel: str, text: str) -> None:
        token, work = parse_payload(text)
        if token != self._token:
            self._wake(work)

    def _on_drop(self, conn: Any) -> None:
        self._dropped.set()  # asyncpg's pool takes the dead connection back by itself

    async def _listen(self) -> None:
        conn = await self._pool.acquire()
        self._dropped = asyncio.Event()
        conn.add_termination_listener(self._on_drop)
        try:
            await conn.add_listener(self._channel, self._on_notification)
        except BaseException:
            if not self._dropped.is_set():
                conn.remove_termination_listener(self._on_drop)
                await self._pool.release(conn)
            raise
        self._conn = conn

    async def _keep_listening(self) -> None:
        while True:
            await self._dropped.wait()
            self._conn = None
            _log.warning("%s lost its LISTEN connection; reconnecting", self._where)
            delay = _FIRST_RETRY_DELAY
            while self._conn is None:
                await asyncio.sleep(delay)
                try:
                    await self._listen()
                except DRIVER_ERRORS as exc:
                    delay = min(delay * 2, _MAX_RETRY_DELAY)
                    _log.warning("%s cannot LISTEN yet (%s); retrying in %.2fs", self._where, exc, delay)
            self._wake(Work.ANY)
