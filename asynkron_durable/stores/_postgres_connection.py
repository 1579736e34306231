"""The connection side of the PostgreSQL store: its pool, its LISTEN connection, its schema
migrations on open, and the error boundary every operation runs through (`_run`).

Kept apart from the operations in `postgres.py`, which read as statements and their rules.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]

from asynkron_durable.errors import StoreError
from asynkron_durable.stores._postgres_codec import (
    DRIVER_ERRORS,
    RETRYABLE,
    channel_for,
    check_schema_name,
    queries_for,
    redact,
    store_error,
)
from asynkron_durable.stores._postgres_listener import Listener, payload
from asynkron_durable.stores._postgres_plan import Writer
from asynkron_durable.stores._postgres_schema import migrate
from asynkron_durable.stores._postgres_workers import PostgresWorkers
from asynkron_durable.stores._subscribers import Subscribers
from asynkron_durable.stores.base import Work

DEFAULT_SCHEMA = "asynkron_durable"
"""The schema of a store whose URL names none (its `default` task hub)."""

_ATTEMPTS = 5
"""How often an operation that lost a race (deadlock, serialization failure, duplicate key) runs."""

STATEMENT_LIFETIME = 5.0
"""Seconds a connection keeps a prepared statement before preparing it again (asyncpg's default is
300). After a few runs PostgreSQL keeps one generic plan per prepared statement, and replans only
when an ANALYZE or a schema change invalidates it. Planned while a table was nearly empty, a lookup
scans the whole table, and keeps doing so as the table grows, until autovacuum's first ANALYZE, a
minute or more later. Preparing again every few seconds costs a few plans per statement and
connection."""

_log = logging.getLogger("asynkron_durable.stores.postgres")

T = TypeVar("T")
Connection = Any
"""An asyncpg connection (asyncpg ships no type information)."""


async def _keep_session(conn: Connection) -> None:
    """The pool's reset when a connection comes back: nothing to do. This store leaves no session
    state behind (no SET, cursor or session advisory lock; the listener UNLISTENs before it gives
    its connection back), and asyncpg still rolls back an open transaction first, so its default
    reset query would only cost a round trip on every release."""


class PostgresConnection:
    """A PostgreSQL store's connections: `_run` and `_fetch` are all its operations need."""

    def __init__(
        self,
        dsn_or_pool: str | asyncpg.Pool,
        *,
        schema: str = DEFAULT_SCHEMA,
        min_pool_size: int = 1,
        max_pool_size: int = 10,
        connect_timeout: float = 10.0,
        command_timeout: float | None = 60.0,
    ) -> None:
        self._schema = check_schema_name(schema)
        if command_timeout is not None and not command_timeout > 0:
            raise ValueError(f"command_timeout must be positive seconds or None, got {command_timeout!r}")
        self._command_timeout = command_timeout
        if not 0 <= min_pool_size <= max_pool_size or max_pool_size < 1:
            raise ValueError(
                f"pool sizes must satisfy 0 <= min_pool_size <= max_pool_size and max_pool_size >= 1, "
                f"got min_pool_size={min_pool_size}, max_pool_size={max_pool_size}"
            )
        if isinstance(dsn_or_pool, str):
            self._dsn: str | None = dsn_or_pool
            self._given_pool: asyncpg.Pool | None = None
            self._where = f"PostgreSQL store (schema {schema!r} at {redact(dsn_or_pool)})"
        else:
            self._dsn, self._given_pool = None, dsn_or_pool
            self._where = f"PostgreSQL store (schema {schema!r} on a caller's pool)"
        self._min_pool_size = min_pool_size
        self._max_pool_size = max_pool_size
        self._connect_timeout = connect_timeout
        self._q = queries_for(schema)
        self._token = uuid.uuid4().hex  # in NOTIFY payloads: how we recognise our own wake-ups
        self._channel = channel_for(schema)
        self._wake_messages = (self._channel, payload(self._token, Work.MESSAGES))
        self._wake_activities = (self._channel, payload(self._token, Work.ACTIVITIES))
        ended = (self._channel, self._token)
        self._writer = Writer(self._q, self._wake_messages, self._wake_activities, ended, self._where)
        self._pool: asyncpg.Pool | None = None
        self._listener: Listener | None = None
        self._closed_marks = 0
        self._lock = asyncio.Lock()
        self._subscribers = Subscribers()
        wake = (self._channel, self._wake_messages[1], self._wake_activities[1])
        self.workers = PostgresWorkers(self._fetch, wake, self._subscribers.notify)

    @property
    def schema(self) -> str:
        """The schema holding this store's tables."""
        return self._schema

    # ----- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create or migrate the schema, start listening. Idempotent."""
        async with self._lock:
            if self._pool is not None:
                return
            pool = self._given_pool
            if pool is not None and pool.get_max_size() < 2:
                raise ValueError(f"{self._where}: the pool needs 2 connections or more (one LISTENs)")
            try:
                if pool is None:
                    pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=self._min_pool_size,
                        max_size=self._max_pool_size + 1,
                        timeout=self._connect_timeout,
                        reset=_keep_session,
                        max_cached_statement_lifetime=STATEMENT_LIFETIME,
                        command_timeout=self._command_timeout,
                    )
                async with pool.acquire() as conn:
                    await migrate(conn, self._schema, self._q, self._where)
                tell = (self._subscribers.notify, self._subscribers.ended)
                listener = Listener(pool, self._channel, self._token, tell, self._where)
                await listener.start()
            except BaseException as exc:
                if pool is not None and self._given_pool is None:
                    pool.terminate()
                if isinstance(exc, DRIVER_ERRORS):
                    raise store_error(self._where, "open", exc) from exc
                raise
            self._pool = pool
            self._listener = listener

    async def close(self) -> None:
        """Stop listening and close the pool (unless the caller passed it in). Idempotent."""
        async with self._lock:
            pool, self._pool = self._pool, None
            listener, self._listener = self._listener, None
            if listener is not None:
                await listener.stop()
            if pool is not None and self._given_pool is None:
                try:
                    await pool.close()
                except DRIVER_ERRORS as exc:
                    raise store_error(self._where, "close", exc) from exc

    # ----- wake-ups -----------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Work], None]) -> None:
        """Call `callback` after this store enqueued work, and when another process did (NOTIFY)."""
        self._subscribers.add(callback)

    def on_ended(self, callback: Callable[[Collection[str]], None]) -> None:
        """Call `callback` with the instances this store object ended or purged, and (by NOTIFY)
        those another process did."""
        self._subscribers.add_ended(callback)

    async def unheard_mark(self) -> int:
        """Changes whenever the LISTEN connection may have missed endings (it dropped, came back,
        or a payload could not be read), and at every call while it is down: other processes'
        endings otherwise arrive by NOTIFY."""
        if self._listener is None:
            self._closed_marks += 1
            return -self._closed_marks
        return self._listener.missed_mark()

    # ----- the error boundary -------------------------------------------------------------------

    async def _run(
        self, operation: str, body: Callable[[Connection], Awaitable[T]], *, transaction: bool = True
    ) -> T:
        """Run `body` on a pooled connection (in a transaction unless told otherwise), rerun it when
        it lost a race, and turn every driver error into a `StoreError` naming the operation."""
        pool = self._pool
        if pool is None:
            raise StoreError(f"{self._where} is not open: call open() first")
        attempt = 0
        while True:
            attempt += 1
            try:
                async with pool.acquire() as conn:
                    if not transaction:
                        return await body(conn)
                    async with conn.transaction():
                        return await body(conn)
            except DRIVER_ERRORS as exc:
                if isinstance(exc, RETRYABLE) and attempt < _ATTEMPTS:
                    _log.debug("%s: %s lost a race (%s); running it again", self._where, operation, exc)
                    continue
                raise store_error(self._where, operation, exc) from exc

    async def _fetch(self, operation: str, query: str, *args: Any) -> list[Any]:
        """Run one statement on its own (atomic without a transaction); returns its rows."""

        async def body(conn: Connection) -> list[Any]:
            return list(await conn.fetch(self._q[query], *args))

        return await self._run(operation, body, transaction=False)
