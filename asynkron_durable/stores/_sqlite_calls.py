"""Statements on the SQLite store's aiosqlite connection: a transaction, a statement, a row read,
a whole write transaction in one hop to the driver's thread, and moving unreadable rows aside."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar, cast

import aiosqlite

from asynkron_durable.errors import StoreError
from asynkron_durable.history import InstanceRecord
from asynkron_durable.stores import _sqlite_writes as writes
from asynkron_durable.stores._rows import QUARANTINED, record_from_row
from asynkron_durable.stores._sqlite_codec import QUERIES, from_epoch, json_list

_log = logging.getLogger("asynkron_durable.stores.sqlite")
_T = TypeVar("_T")


@asynccontextmanager
async def transaction(conn: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error or cancellation.

    BEGIN sits inside the try: a task cancelled while BEGIN is queued on aiosqlite's thread must
    still queue the ROLLBACK behind it, or the connection stays inside a transaction.
    """
    try:
        await conn.execute("BEGIN IMMEDIATE")
        yield conn
        await conn.execute("COMMIT")
    except BaseException:
        with suppress(sqlite3.Error):
            await conn.rollback()
        raise


async def execute(conn: aiosqlite.Connection, query: str, params: Mapping[str, Any]) -> int:
    async with conn.execute(QUERIES[query], params) as cursor:
        return cursor.rowcount


async def fetch(conn: aiosqlite.Connection, query: str, params: Mapping[str, Any]) -> list[sqlite3.Row]:
    return list(await conn.execute_fetchall(QUERIES[query], params))


async def get_record(conn: aiosqlite.Connection, instance_id: str) -> InstanceRecord | None:
    rows = await fetch(conn, "select_instance", {"instance_id": instance_id})
    return record_from_row(rows[0], from_epoch) if rows else None


async def run_in_thread(conn: aiosqlite.Connection, body: Callable[[sqlite3.Connection], _T]) -> _T:
    """One write transaction as one call on aiosqlite's thread. aiosqlite has no public way to run a
    function there; its own methods queue theirs through `_execute`, as this does."""
    queue = cast(Callable[..., Awaitable[_T]], conn._execute)
    raw = conn._conn
    return await queue(writes.in_transaction, raw, body)


async def dead_letter(conn: aiosqlite.Connection, message_id: int, error: StoreError, now: float) -> None:
    """Move an undecodable inbox row aside: it must not block every later claim, nor vanish."""
    _log.error("moved inbox message %s to dead_letters: %s", message_id, error)
    params = {"message_id": message_id, "error": str(error), "now": now}
    await execute(conn, "dead_letter_message", params)
    await execute(conn, "delete_message", {"message_id": message_id})


async def quarantine(conn: aiosqlite.Connection, instance_id: str, error: StoreError) -> None:
    """Lease an unreadable instance row to nobody, for good: claims skip it, its data stays put."""
    _log.error("instance %r is unreadable and no longer claimed: %s", instance_id, error)
    params = {"owner": QUARANTINED, "lease_until": 1e18, "ids": json_list([instance_id])}
    await execute(conn, "lease_instances", params)
