"""The PostgreSQL store's LISTEN connection: how a process hears that another enqueued work or
ended instances.

Every transaction that enqueues work NOTIFYs the schema's channel with its store's token and the kind
of work (`payload`); one that leaves instances terminal or purges them sends their ids
(`ended_prefix` and a JSON list; the statement splits long lists over several payloads). Each store
holds one pool connection LISTENing there and tells its subscribers of every notification that is
not its own (those were announced locally already). If the connection drops, it reconnects with
back-off, wakes the subscribers once for any kind of work and counts that endings may have gone
unheard (`missed_mark`): notifications sent while nobody listened are lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Collection
from contextlib import suppress
from typing import Any

from asynkron_durable.stores._postgres_codec import DRIVER_ERRORS
from asynkron_durable.stores.base import Work

_FIRST_RETRY_DELAY = 0.05
_MAX_RETRY_DELAY = 5.0

_CODES = {Work.MESSAGES: "m", Work.ACTIVITIES: "a"}
_KINDS = {code: work for work, code in _CODES.items()}
_ENDED = "e"


_log = logging.getLogger(__name__)


def payload(token: str, work: Work) -> str:
    """The NOTIFY payload by which the store holding `token` announces `work` (MESSAGES or ACTIVITIES)."""
    return f"{token}:{_CODES[work]}"


def ended_prefix(token: str) -> str:
    """What every ending payload of the store holding `token` starts with (the ids follow)."""
    return f"{token}:{_ENDED}:"


def parse_payload(text: str) -> tuple[str, Work]:
    """The sender's token and the work it announces; ANY for a payload naming no kind we know
    (an older or newer sender), so nobody sleeps through work; NONE for an ending."""
    token, _, code = text.partition(":")
    if code.startswith(f"{_ENDED}:"):
        return token, Work.NONE
    return token, _KINDS.get(code, Work.ANY)


def parse_ended(text: str) -> list[str] | None:
    """The ids an ending payload names; None if `text` is not a readable ending payload."""
    _, _, rest = text.partition(":")
    code, _, ids = rest.partition(":")
    if code != _ENDED:
        return None
    try:
        parsed = json.loads(ids)
    except ValueError:
        return None
    if not isinstance(parsed, list) or not all(isinstance(i, str) for i in parsed):
        return None
    return parsed


class Listener:
    """One LISTEN connection taken from `pool`, kept up from `start()` until `stop()`."""

    def __init__(
        self,
        pool: Any,
        channel: str,
        token: str,
        tell: tuple[Callable[[Work], None], Callable[[Collection[str]], None]],
        where: str,
    ) -> None:
        """`tell`: the callbacks for work announced and for instances ended."""
        self._pool = pool
        self._channel = channel
        self._token = token
        self._wake, self._ended = tell
        self._missed = 0
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

    def missed_mark(self) -> int:
        """A count that grows whenever endings may have gone unheard: the connection dropped or
        came back, or a payload could not be read; and at every call while it is down."""
        if self._conn is None:
            self._missed += 1
        return self._missed

    def _on_notification(self, conn: Any, pid: int, channel: str, text: str) -> None:
        token, work = parse_payload(text)
        if token == self._token:
            return
        if work:
            self._wake(work)
            return
        ended = parse_ended(text)
        if ended is None:
            self._missed += 1
        else:
            self._ended(ended)

    def _on_drop(self, conn: Any) -> None:
        self._dropped.set()  # asyncpg's pool takes the dead connection back by itself
        self._missed += 1

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
            self._missed += 1  # endings between a waiter's last read and the LISTEN went unheard
            self._wake(Work.ANY)
