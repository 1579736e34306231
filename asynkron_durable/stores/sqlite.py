"""The SQLite state store: one database file shared by any number of runtimes and processes.

Every write is a `BEGIN IMMEDIATE` transaction, so writers queue on SQLite's file lock instead of
failing half-way; leases and the version compare-and-swap make claims and commits safe between
processes. The schema lives in `sql/sqlite_schema.sql` and every statement in
`sql/sqlite_queries.sql`. Driver errors never leave: `driver_errors` turns them into `StoreError`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from asynkron_durable.errors import StoreError
from asynkron_durable.history import (
    HistoryEvent,
    InstanceRecord,
)
from asynkron_durable.stores import _sqlite_calls as calls
from asynkron_durable.stores import _sqlite_writes as writes
from asynkron_durable.stores._leasing import Leasing
from asynkron_durable.stores._paging import decode_token
from asynkron_durable.stores._rows import (
    activity_item,
    decode_event,
    decode_history_rows,
    page_of,
    readable_records,
    record_from_row,
)
from asynkron_durable.stores._sqlite_codec import (
    QUERIES,
    SCHEMA,
    driver_errors,
    epoch,
    filter_params,
    from_epoch,
    is_busy,
    json_list,
    open_probe,
    try_open,
)
from asynkron_durable.stores._sqlite_workers import SqliteWorkers
from asynkron_durable.stores._subscribers import Subscribers
from asynkron_durable.stores.base import (
    ActivityClaim,
    ActivityResult,
    ActivityStep,
    ActivityWorkItem,
    Committed,
    Completion,
    DeadLetter,
    EpisodeCommit,
    InboxMessage,
    InstanceFilter,
    InstancePage,
    LeaseRenewal,
    Message,
    NewInstance,
    OrchestrationWorkItem,
    Work,
    distinct,
)

SCHEMA_VERSION = 3
"""The schema version this code reads and writes; `open()` refuses files with a newer one.
Version 2 writes a commit's history events as one row (version 1 rows stay readable); version 3
adds the workers table. Older files are upgraded in place, and older code refuses them after."""

OPEN_PATIENCE = 30.0
"""Seconds `open` keeps trying while the file is locked by others."""

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class SqliteStateStore:
    """A `StateStore` on one SQLite file (WAL mode), safe to share between processes."""

    poll_interval_hint = 0.05
    """Other processes' writes are only seen by polling: keep pick-up within 50 ms."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        self._path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None
        self._probe_conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._subscribers = Subscribers()
        self.workers = SqliteWorkers(self._write_in_thread, self._read, self._subscribers.notify)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    async def open(self) -> None:
        """Connect, switch to WAL and create the schema if the file has none. Idempotent. While
        other processes hold the file's locks (a worker starting, say), it keeps trying for
        `OPEN_PATIENCE` seconds before it fails."""
        async with self._lock:
            if self._conn is not None:
                return
            deadline = asyncio.get_running_loop().time() + OPEN_PATIENCE
            with driver_errors(self._path):
                # Fail here, not in aiosqlite.connect: when that fails it leaves its worker thread
                # reporting to the event loop after we return (omnilib/aiosqlite#241).
                await asyncio.to_thread(try_open, self._path)
                delay = 0.01
                while True:
                    try:
                        conn = await self._connect()
                        break
                    except sqlite3.OperationalError as exc:
                        if not is_busy(exc) or asyncio.get_running_loop().time() + delay > deadline:
                            raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.5)
            self._conn = conn
            self._probe_conn = open_probe(self._path)

    async def _connect(self) -> aiosqlite.Connection:
        """A connection in WAL mode on a file with the current schema."""
        connecting = aiosqlite.connect(self._path, isolation_level=None)
        # Its thread must not keep the process alive: a program that forgets to close the store
        # would otherwise hang after `asyncio.run` returns. What it committed is already durable.
        thread = cast(threading.Thread, getattr(connecting, "_thread", connecting))  # <0.22: itself
        thread.daemon = True
        conn = await connecting
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            [(mode,)] = await conn.execute_fetchall("PRAGMA journal_mode")
            if str(mode).lower() != "wal":  # switching needs the file to itself: only when needed
                await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
            await self._ensure_schema(conn)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _ensure_schema(self, conn: aiosqlite.Connection) -> None:
        async with calls.transaction(conn):
            version: int | None = None
            if await calls.fetch(conn, "has_schema_version_table", {}):
                version = (await calls.fetch(conn, "get_schema_version", {}))[0]["version"]
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(
                    f"SQLite store {str(self._path)!r} has schema version {version}, but this "
                    f"version of asynkron-durable only knows up to {SCHEMA_VERSION}: upgrade it"
                )
            if version is None or version < SCHEMA_VERSION:
                for statement in SCHEMA:  # each idempotent: what an older file lacks is added
                    await conn.execute(statement)
            if version is not None and version < SCHEMA_VERSION:
                await conn.execute(QUERIES["record_schema_version"], {"version": SCHEMA_VERSION})

    async def close(self) -> None:
        """Close the connection. Idempotent."""
        async with self._lock:
            conn, self._conn = self._conn, None
            probe, self._probe_conn = self._probe_conn, None
            if probe is not None:
                probe.close()
            if conn is not None:
                with driver_errors(self._path):
                    await conn.close()

    def subscribe(self, callback: Callable[[Work], None]) -> None:
        """Call `callback` after every transaction of this store object that enqueued work."""
        self._subscribers.add(callback)

    def on_ended(self, callback: Callable[[Collection[str]], None]) -> None:
        """Call `callback` with the instances this store object ended or purged."""
        self._subscribers.add_ended(callback)

    async def unheard_mark(self) -> int:
        """SQLite's `data_version`: it changes exactly when another connection (another process)
        commits, never for this connection's own commits, which are announced."""
        async with self._read() as conn:
            rows = await conn.execute_fetchall("PRAGMA data_version")
        return int(next(iter(rows))[0])

    async def get_instances(self, instance_ids: Sequence[str]) -> dict[str, InstanceRecord]:
        """The readable records of those of `instance_ids` that exist, in one read."""
        async with self._read() as conn:
            rows = await calls.fetch(conn, "select_instances", {"ids": json_list(instance_ids)})
        return readable_records(rows, from_epoch)

    def _nothing_to_claim(self, query: str, params: Mapping[str, Any]) -> bool:
        """True when an indexed read finds nothing claimable. Idle workers poll often: this read
        runs synchronously (tens of microseconds; WAL readers never wait on writers), sparing each
        poll a thread hop and a write transaction. Any doubt (a busy file) means "go and look"."""
        if self._probe_conn is None:
            return False
        try:
            return self._probe_conn.execute(QUERIES[query], params).fetchone() is None
        except sqlite3.Error:
            return False

    def _connection(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StoreError(f"SQLite store {str(self._path)!r} is not open: call open() first")
        return self._conn

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            with driver_errors(self._path):
                yield self._connection()

    async def _write_in_thread(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `body` as one write transaction in one hop to the driver's thread."""
        async with self._lock:
            with driver_errors(self._path):
                return await calls.run_in_thread(self._connection(), body)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            with driver_errors(self._path):
                async with calls.transaction(self._connection()) as conn:
                    yield conn

    async def create_instance(self, new: NewInstance, *, replace: bool) -> None:
        """Create (or replace) an instance and enqueue its start message."""
        await self._write_in_thread(partial(writes.create_instance, new=new, replace=replace))
        self._subscribers.notify(Work.MESSAGES)

    async def create_instances(self, news: Sequence[NewInstance]) -> set[str]:
        """Create those of `news` whose ids are free, in one transaction; returns the ids in use."""
        if not news:
            return set()
        taken = await self._write_in_thread(partial(writes.create_free, news=distinct(news)))
        if len(taken) < len(news):
            self._subscribers.notify(Work.MESSAGES)
        return taken

    async def send_messages(self, messages: Sequence[Message]) -> None:
        """Enqueue messages; those for unknown instances are dropped by the insert itself."""
        if not messages:
            return
        if await self._write_in_thread(partial(writes.insert_messages, messages=messages)):
            self._subscribers.notify(Work.MESSAGES)

    async def claim_orchestrations(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        names: frozenset[str] | None = None,
    ) -> list[OrchestrationWorkItem]:
        """Lease instances with visible messages (of `names` only, if given), oldest message first."""
        if limit <= 0:
            return []
        at = epoch(now)
        named = None if names is None else json_list(sorted(names))
        if self._nothing_to_claim("claim_candidates", {"now": at, "limit": 1, "names": named}):
            return []
        async with self._write() as conn:
            rows = await calls.fetch(conn, "claim_candidates", {"now": at, "limit": limit, "names": named})
            order = [row["instance_id"] for row in rows]
            if not order:
                return []
            ids = json_list(order)
            lease = {"owner": owner, "lease_until": epoch(lease_until), "ids": ids}
            await calls.execute(conn, "lease_instances", lease)
            records: dict[str, InstanceRecord] = {}
            for row in await calls.fetch(conn, "select_instances", {"ids": ids}):
                try:
                    records[row["instance_id"]] = record_from_row(row, from_epoch)
                except StoreError as exc:
                    await calls.quarantine(conn, row["instance_id"], exc)
            order = [instance_id for instance_id in order if instance_id in records]
            ids = json_list(order)
            inbox: dict[str, list[InboxMessage]] = {instance_id: [] for instance_id in order}
            for row in await calls.fetch(conn, "select_visible_messages", {"ids": ids, "now": at}):
                where = f"inbox message {row['message_id']}"
                try:
                    event = decode_event(row["event"], row["instance_id"], where)
                except StoreError as exc:
                    await calls.dead_letter(conn, row["message_id"], exc, at)
                    continue
                inbox[row["instance_id"]].append(InboxMessage(row["message_id"], event, row["execution_id"]))
        return [OrchestrationWorkItem(records[i], inbox[i]) for i in order]

    async def next_due(self, now: datetime) -> datetime | None:
        """The earliest future `visible_at` in any inbox (an indexed read, see `_nothing_to_claim`)."""
        params = {"now": epoch(now)}
        if self._probe_conn is not None:
            with suppress(sqlite3.Error):
                row = self._probe_conn.execute(QUERIES["next_due"], params).fetchone()
                return None if row is None or row[0] is None else from_epoch(row[0])
        async with self._read() as conn:
            rows = await calls.fetch(conn, "next_due", params)
        return None if not rows or rows[0][0] is None else from_epoch(rows[0][0])

    async def load_histories(self, instance_ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        """Each instance's current history, in order; raises `StoreError` on a corrupt row."""
        histories: dict[str, list[HistoryEvent]] = {i: [] for i in instance_ids}
        if not histories:
            return histories
        async with self._read() as conn:
            rows = await calls.fetch(conn, "select_histories", {"ids": json_list(histories)})
        decode_history_rows(rows, histories)
        return histories

    async def commit_episodes(
        self,
        owner: str,
        now: datetime,
        commits: Sequence[EpisodeCommit],
        claim: ActivityClaim | None = None,
    ) -> Committed:
        """Apply all commits in one transaction; each is checked (version + lease) on its own."""
        if not commits:
            return Committed(set(), [])
        committed, enqueued = await self._write_in_thread(
            partial(writes.apply_commits, owner=owner, commits=commits, leasing=Leasing(owner, claim))
        )
        self._subscribers.notify(enqueued)
        self._subscribers.commits_ended(commits, committed.rejected)
        return committed

    async def claim_activities(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        names: frozenset[str] | None = None,
    ) -> list[ActivityWorkItem]:
        """Lease the oldest unleased (or expired) activities."""
        if limit <= 0:
            return []
        named = None if names is None else json_list(sorted(names))
        params = {"owner": owner, "now": epoch(now), "lease_until": epoch(lease_until), "names": named}
        if self._nothing_to_claim("any_claimable_activity", {"now": params["now"], "names": named}):
            return []
        async with self._write() as conn:
            rows = await calls.fetch(conn, "claim_activities", {**params, "limit": limit})
        rows.sort(key=lambda row: int(row["activity_id"]))
        return [activity_item(row) for row in rows]

    async def complete_activities(
        self,
        owner: str,
        now: datetime,
        results: Sequence[ActivityResult],
        steps: Sequence[ActivityStep] = (),
        claim: ActivityClaim | None = None,
    ) -> Completion:
        """Record results and apply steps (see `ActivityStep`) in one transaction."""
        if not results and not steps:
            return Completion(set(), set(), [])
        leasing = Leasing(owner, claim)
        body = partial(
            writes.complete_activities,
            owner=owner,
            now=epoch(now),
            results=results,
            steps=steps,
            leasing=leasing,
        )
        completion, enqueued = await self._write_in_thread(body)
        self._subscribers.notify(enqueued)
        self._subscribers.steps_ended(steps, completion.applied)
        return completion

    async def renew_leases(
        self,
        owner: str,
        lease_until: datetime,
        instance_ids: Sequence[str],
        activity_ids: Sequence[int],
    ) -> LeaseRenewal:
        """Extend the leases `owner` still holds; report the rest as lost."""
        kept_instances: set[str] = set()
        kept_activities: set[int] = set()
        until = epoch(lease_until)
        if instance_ids or activity_ids:
            async with self._write() as conn:
                if instance_ids:
                    params = {"owner": owner, "lease_until": until, "ids": json_list(instance_ids)}
                    rows = await calls.fetch(conn, "renew_instance_leases", params)
                    kept_instances = {row["instance_id"] for row in rows}
                if activity_ids:
                    params = {"owner": owner, "lease_until": until, "ids": json_list(activity_ids)}
                    rows = await calls.fetch(conn, "renew_activity_leases", params)
                    kept_activities = {row["activity_id"] for row in rows}
        return LeaseRenewal(
            lost_instance_ids=set(instance_ids) - kept_instances,
            lost_activity_ids=set(activity_ids) - kept_activities,
        )

    async def release_leases(
        self, owner: str, instance_ids: Sequence[str], activity_ids: Sequence[int]
    ) -> None:
        """Drop `owner`'s leases so the work can be claimed again at once (and say so, like new work)."""
        if not instance_ids and not activity_ids:
            return
        released = Work.NONE
        releases = (
            ("release_instance_leases", instance_ids, Work.MESSAGES),
            ("release_activity_leases", activity_ids, Work.ACTIVITIES),
        )
        async with self._write() as conn:
            for query, ids, work in releases:
                if ids and await calls.execute(conn, query, {"owner": owner, "ids": json_list(ids)}):
                    released |= work
        self._subscribers.notify(released)

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None."""
        async with self._read() as conn:
            return await calls.get_record(conn, instance_id)

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current execution's history; raises `StoreError` on a corrupt row."""
        async with self._read() as conn:
            rows = await calls.fetch(conn, "select_history", {"instance_id": instance_id})
        history: dict[str, list[HistoryEvent]] = {instance_id: []}
        decode_history_rows(rows, history, instance_id)
        return history[instance_id]

    async def query_instances(
        self, filter: InstanceFilter, page_size: int, continuation_token: str | None
    ) -> InstancePage:
        """One page of matching instances by (created_at, instance_id), keyset-paged."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        after = None if continuation_token is None else decode_token(continuation_token)
        async with self._read() as conn:
            rows = await calls.fetch(conn, "filter_instances", filter_params(filter, after, page_size + 1))
        return page_of(rows, page_size, from_epoch)

    async def purge_instance(self, instance_id: str, *, expected_version: int | None = None) -> bool:
        """Delete one instance and everything it owns (only if idle at `expected_version`, if given:
        the check and the delete share one write transaction, so no message slips in between)."""

        def body(raw: sqlite3.Connection) -> bool:
            if expected_version is not None:
                idle = {"instance_id": instance_id, "version": expected_version}
                if raw.execute(QUERIES["select_idle_instance"], idle).fetchone() is None:
                    return False
            return writes.delete_instances(raw, [instance_id]) > 0

        deleted = await self._write_in_thread(body)
        self._subscribers.ended([instance_id] if deleted else [])
        return deleted

    async def purge_instances(self, filter: InstanceFilter) -> int:
        """Delete every matching instance in one transaction."""

        def body(raw: sqlite3.Connection) -> list[str]:
            rows = raw.execute(QUERIES["filter_instances"], filter_params(filter, None, -1)).fetchall()
            ids = [row["instance_id"] for row in rows]
            if ids:
                writes.delete_instances(raw, ids)
            return ids

        deleted = await self._write_in_thread(body)
        self._subscribers.ended(deleted)
        return len(deleted)

    async def dead_letters(self, instance_id: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Messages moved aside as undecodable, newest first (of `instance_id`, or all)."""
        async with self._read() as conn:
            params = {"instance_id": instance_id, "limit": limit}
            rows = await calls.fetch(conn, "select_dead_letters", params)
        return [
            DeadLetter(r["message_id"], r["instance_id"], r["event"], r["error"], from_epoch(r["dead_at"]))
            for r in rows
        ]


ConcurrentSqliteStateStore = SqliteStateStore
"""Asynkron.DurableFunctions' name for the multi-host-safe SQLite store. Every store here is."""
