"""The PostgreSQL state store: runtimes on many hosts share one database, one schema per task hub.

Every operation is one short transaction on a pooled connection. Claims lease rows with
`FOR UPDATE SKIP LOCKED`, so concurrent workers take different work without waiting for each other.
Writers lock instance rows first and in id order (then activity rows, in id order), so they queue
instead of deadlocking; a transaction that still loses a race (deadlock, serialization failure, two
creators of one id) is rerun. Each transaction that enqueues work also NOTIFYs the schema's channel:
a LISTEN connection held by every store wakes its subscribers when another process enqueues.

Fresh schemas get `sql/postgres_schema.sql`; older ones are upgraded by `sql/postgres_migrations/`;
every statement lives in `sql/postgres_queries.sql`. Driver errors never leave: `_run` turns them
into `StoreError`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]

from asynkron_durable.errors import InstanceAlreadyExists, StoreError
from asynkron_durable.history import HistoryEvent, InstanceRecord, event_to_json
from asynkron_durable.stores._paging import PageKey, decode_token, encode_token
from asynkron_durable.stores._postgres_codec import (
    BAD_VALUES,
    DRIVER_ERRORS,
    LATEST_VERSION,
    MIGRATIONS,
    RETRYABLE,
    SCHEMA_SQL,
    activity_task,
    advisory_key,
    aware,
    channel_for,
    check_schema_name,
    decode_claimed,
    filter_args,
    page_args,
    queries_for,
    record_columns,
    redact,
    store_error,
    transpose,
)
from asynkron_durable.stores._postgres_listener import Listener, payload
from asynkron_durable.stores._postgres_plan import CommitPlan, Writer, touched_ids
from asynkron_durable.stores._rows import decode_history_row, record_from_row
from asynkron_durable.stores._subscribers import Subscribers
from asynkron_durable.stores.base import (
    ActivityClaim,
    ActivityResult,
    ActivityStep,
    ActivityWorkItem,
    Completion,
    EpisodeCommit,
    InstanceFilter,
    InstancePage,
    LeaseRenewal,
    Message,
    NewInstance,
    OrchestrationWorkItem,
    Work,
)

QUARANTINED = "!unreadable"
"""The lease owner of instances whose row cannot be decoded; nobody claims them."""

_ATTEMPTS = 5
"""How often an operation that lost a race (deadlock, serialization failure, duplicate key) runs."""

STATEMENT_LIFETIME = 5.0
"""Seconds a connection keeps a prepared statement before preparing it again (asyncpg's default is
300). After a few runs PostgreSQL keeps one generic plan per prepared statement, and replans only
when an ANALYZE or a schema change invalidates it. Planned while a table was nearly empty, a lookup
scans the whole table, and keeps doing so as the table grows, until autovacuum's first ANALYZE, a
minute or more later. Preparing again every few seconds costs a few plans per statement and
connection."""

_log = logging.getLogger(__name__)

T = TypeVar("T")
Connection = Any
"""An asyncpg connection (asyncpg ships no type information)."""


async def _keep_session(conn: Connection) -> None:
    """The pool's reset when a connection comes back: nothing to do. This store leaves no session
    state behind (no SET, cursor or session advisory lock; the listener UNLISTENs before it gives
    its connection back), and asyncpg still rolls back an open transaction first, so its default
    reset query would only cost a round trip on every release."""


class PostgresStateStore:
    """A `StateStore` on PostgreSQL: every table lives in `schema`, so task hubs share a database.

    `dsn_or_pool` is a DSN (the store makes and closes its own pool, one connection larger than
    `max_pool_size` for LISTEN) or an asyncpg pool, which the store uses but never closes (make it
    with `max_cached_statement_lifetime=STATEMENT_LIFETIME` to keep plans current the same way).
    """

    poll_interval_hint = 1.0
    """Other processes' work arrives by NOTIFY; polling is only the fallback."""

    def __init__(
        self,
        dsn_or_pool: str | asyncpg.Pool,
        *,
        schema: str = "asynkron_durable",
        min_pool_size: int = 1,
        max_pool_size: int = 10,
        connect_timeout: float = 10.0,
    ) -> None:
        self._schema = check_schema_name(schema)
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
        self._writer = Writer(self._q, self._wake_messages, self._wake_activities, self._where)
        self._pool: asyncpg.Pool | None = None
        self._listener: Listener | None = None
        self._lock = asyncio.Lock()
        self._subscribers = Subscribers()

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
                    )
                async with pool.acquire() as conn:
                    await self._migrate(conn)
                listener = Listener(pool, self._channel, self._token, self._subscribers.notify, self._where)
                await listener.start()
            except BaseException as exc:
                if pool is not None and self._given_pool is None:
                    pool.terminate()
                if isinstance(exc, DRIVER_ERRORS):
                    raise store_error(self._where, "open", exc) from exc
                raise
            self._pool = pool
            self._listener = listener

    async def _migrate(self, conn: Connection) -> None:
        """Bring the schema to LATEST_VERSION; the advisory lock makes concurrent openers take turns."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key(self._schema))
            # Only DDL when needed: a role without CREATE rights can use a schema set up for it.
            if await conn.fetchval("SELECT to_regclass($1) IS NULL", f'"{self._schema}".schema_version'):
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
                await conn.execute(self._q["create_schema_version"])
            applied = [row["version"] for row in await conn.fetch(self._q["get_schema_versions"])]
            if applied and applied[-1] > LATEST_VERSION:
                raise StoreError(
                    f"{self._where} has schema version {applied[-1]}, but this version of "
                    f"asynkron-durable only knows up to {LATEST_VERSION}: upgrade it"
                )
            missing = [version for version in MIGRATIONS if version not in applied]
            if not missing:
                return
            await conn.execute(f'SET LOCAL search_path TO "{self._schema}"')
            for script in [SCHEMA_SQL] if not applied else [MIGRATIONS[v] for v in missing]:
                await conn.execute(script)
            await conn.execute(self._q["record_schema_versions"], missing)

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

    # ----- instances and messages ---------------------------------------------------------------

    async def create_instance(self, new: NewInstance, *, replace: bool) -> None:
        """Create (or replace) an instance and enqueue its start message: one statement when the
        id is free, else under the row lock (replace, or refuse a running one)."""
        instance_id = new.record.instance_id
        if await self._create_if_free(new):
            self._subscribers.notify(Work.MESSAGES)
            return

        async def body(conn: Connection) -> None:
            rows = await self._writer.lock(conn, {instance_id})
            old = rows.get(instance_id)
            if old is not None and not replace and not old.terminal:
                raise InstanceAlreadyExists(instance_id, old.runtime_status)
            plan = CommitPlan("", rows)
            plan.create(new)
            await self._writer.apply(conn, plan)

        await self._run("create_instance", body)
        self._subscribers.notify(Work.MESSAGES)

    async def _create_if_free(self, new: NewInstance) -> bool:
        record = new.record
        columns = [column[0] for column in record_columns([(record, record.version)])]
        args = (*self._wake_messages, *columns, event_to_json(new.start_event))
        rows = await self._fetch("create_instance", "create_if_free", *args)
        return bool(rows[0]["created"])

    async def send_messages(self, messages: Sequence[Message]) -> None:
        """Enqueue messages; those for unknown instances are dropped by the insert itself."""

        async def body(conn: Connection) -> int:
            return await self._writer.insert_messages(conn, messages)

        if messages and await self._run("send_messages", body) > 0:
            self._subscribers.notify(Work.MESSAGES)

    async def claim_orchestrations(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[OrchestrationWorkItem]:
        """Lease instances with visible messages, oldest message first."""
        if limit <= 0:
            return []
        args = (owner, aware(now), aware(lease_until), limit)

        async def body(conn: Connection) -> list[OrchestrationWorkItem]:
            # No transaction (two round trips fewer): the claim commits the leases on its own, then
            # select_claimed reads what they cover (a statement of its own anyway: see the query).
            leased = await conn.fetch(self._q["claim_orchestrations"], *args)
            if not leased:
                return []
            order = {row["instance_id"]: row["first_id"] for row in leased}
            try:
                rows = await conn.fetch(self._q["select_claimed"], list(order), now)
                items = await self._decode_claimed(conn, owner, rows, now)
            except BaseException:
                with suppress(*DRIVER_ERRORS):  # give them back now, not when the leases expire
                    release = self._q["release_instance_leases"]
                    await conn.execute(release, owner, list(order), *self._wake_messages)
                raise
            return sorted(items, key=lambda item: order[item.record.instance_id])

        return await self._run("claim_orchestrations", body, transaction=False)

    async def _decode_claimed(
        self, conn: Connection, owner: str, rows: Sequence[Any], now: datetime
    ) -> list[OrchestrationWorkItem]:
        """Work items from claimed rows. One corrupt row blocks nothing: an unreadable instance is
        quarantined, an undecodable message moved to dead_letters; both logged and kept.

        The previous owner can acknowledge a message the claim saw just before the row lock was
        granted: an instance left with nothing to deliver is given straight back."""
        idle = [row["instance_id"] for row in rows if row["message_ids"] is None]
        if idle:
            await conn.execute(self._q["release_instance_leases"], owner, idle, *self._wake_messages)
        claimed = decode_claimed(row for row in rows if row["message_ids"] is not None)
        for instance_id, error in claimed.unreadable:
            _log.error("instance %r is unreadable and no longer claimed: %s", instance_id, error)
        for message_id, error in claimed.dead:
            _log.error("moved inbox message %s to dead_letters: %s", message_id, error)
        if claimed.unreadable:
            ids = [instance_id for instance_id, _ in claimed.unreadable]
            await conn.execute(self._q["quarantine_instances"], QUARANTINED, ids)
        if claimed.dead:
            await conn.execute(self._q["dead_letter_messages"], *transpose(claimed.dead), now)
        return claimed.items

    async def next_due(self, now: datetime) -> datetime | None:
        """The earliest future `visible_at` in any inbox (an index-only read)."""
        due: datetime | None = (await self._fetch("next_due", "next_due", aware(now)))[0]["due"]
        return due

    async def load_histories(self, instance_ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        """Each instance's current history, in order; raises `StoreError` on a corrupt row."""
        histories: dict[str, list[HistoryEvent]] = {i: [] for i in instance_ids}
        if not histories:
            return histories
        for row in await self._fetch("load_histories", "select_histories", list(histories)):
            histories[row["instance_id"]] += decode_history_row(row["event"], row["instance_id"], row["seq"])
        return histories

    async def commit_episodes(
        self,
        owner: str,
        now: datetime,
        commits: Sequence[EpisodeCommit],
        claim: ActivityClaim | None = None,
    ) -> set[str]:
        """Apply the commits in one transaction, each checked (version + lease) on its own.

        If PostgreSQL refuses a value of one commit (a NUL character in an instance id, say), the
        batch is redone with a savepoint per commit: the others land, and the refused one is logged
        and reported as rejected, so it cannot hold up the rest of its batch."""
        if not commits:
            return set()
        lease_until = None if claim is None else aware(claim.lease_until)
        limit = 0 if claim is None else claim.limit
        leased: list[ActivityWorkItem] = []

        async def batch(conn: Connection) -> tuple[set[str], Work]:
            leased.clear()  # a retried transaction starts over
            return await self._commit(conn, owner, commits, lease_until, limit, leased)

        async def one_by_one(conn: Connection) -> tuple[set[str], Work]:
            leased.clear()
            rejected: set[str] = set()
            enqueued = Work.NONE
            for commit in commits:
                kept = len(leased)
                try:
                    async with conn.transaction():  # a savepoint
                        lost, added = await self._commit(
                            conn, owner, [commit], lease_until, limit - kept, leased
                        )
                except BAD_VALUES as exc:
                    _log.error("commit of instance %r cannot be stored: %s", commit.record.instance_id, exc)
                    lost, added = {commit.record.instance_id}, Work.NONE
                    del leased[kept:]
                rejected |= lost
                enqueued |= added
            return rejected, enqueued

        try:
            rejected, enqueued = await self._run("commit_episodes", batch)
        except StoreError as exc:
            if len(commits) == 1 or not isinstance(exc.__cause__, BAD_VALUES):
                raise
            rejected, enqueued = await self._run("commit_episodes", one_by_one)
        if claim is not None:
            claim.items += leased
        self._subscribers.notify(enqueued)
        return rejected

    async def _commit(
        self,
        conn: Connection,
        owner: str,
        commits: Sequence[EpisodeCommit],
        lease_until: datetime | None,
        limit: int,
        leased: list[ActivityWorkItem],
    ) -> tuple[set[str], Work]:
        plan = CommitPlan(owner, await self._writer.lock(conn, touched_ids(commits)))
        for commit in commits:
            plan.commit(commit, limit)
        enqueued = await self._writer.apply(conn, plan, lease_until)
        leased += plan.claimed
        return plan.rejected, enqueued

    # ----- activities ---------------------------------------------------------------------------

    async def claim_activities(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[ActivityWorkItem]:
        """Lease the oldest unleased (or expired) activities."""
        if limit <= 0:
            return []
        args = (owner, aware(now), aware(lease_until), limit)
        rows = await self._fetch("claim_activities", "claim_activities", *args)
        return sorted(
            (ActivityWorkItem(row["activity_id"], activity_task(row), row["attempt"]) for row in rows),
            key=lambda item: item.activity_id,
        )

    async def complete_activities(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        results: Sequence[ActivityResult],
        steps: Sequence[ActivityStep] = (),
        claim_limit: int = 0,
    ) -> Completion:
        """Record results and apply steps (see `ActivityStep`) in one transaction: every touched
        instance is locked first, then the activities, as every writer does."""
        if not results and not steps:
            return Completion(set(), set(), [])
        at = aware(now)
        all_results = [*results, *(r for step in steps for r in step.results)]

        async def body(conn: Connection) -> tuple[Completion, Work]:
            touched = touched_ids(step.commit for step in steps) | {r.message.instance_id for r in results}
            rows, free = await self._writer.lock_for_steps(conn, touched, at)
            ids = [r.activity_id for r in all_results]
            deleted = await conn.fetch(self._q["complete_activities"], owner, ids)
            done = {row["activity_id"] for row in deleted}
            plan = CommitPlan(owner, rows)
            for result in results:
                if result.activity_id in done:
                    plan.enqueue(result.message)
            applied: set[str] = set()
            for step in steps:
                commit = step.commit
                instance_id = commit.record.instance_id
                taken = [r for r in step.results if r.activity_id in done]
                row = rows.get(instance_id)
                if (
                    len(taken) == len(step.results)
                    and row is not None
                    and instance_id in free
                    and row.version == commit.expected_version
                    and instance_id not in applied
                    and not plan.has_messages_for(instance_id)
                ):
                    plan.step(commit, claim_limit)
                    applied.add(instance_id)
                else:
                    for result in taken:
                        plan.enqueue(result.message)
            enqueued = await self._writer.apply(conn, plan, aware(lease_until))
            rejected = {r.activity_id for r in all_results if r.activity_id not in done}
            return Completion(rejected, applied, plan.claimed), enqueued

        completion, enqueued = await self._run("complete_activities", body)
        self._subscribers.notify(enqueued)
        return completion

    # ----- leases -------------------------------------------------------------------------------

    async def renew_leases(
        self,
        owner: str,
        lease_until: datetime,
        instance_ids: Sequence[str],
        activity_ids: Sequence[int],
    ) -> LeaseRenewal:
        """Extend the leases `owner` still holds; report the rest as lost (one statement per kind,
        instances first, like every writer)."""
        renewal = (owner, aware(lease_until))
        kept_instances: set[str] = set()
        kept_activities: set[int] = set()
        if instance_ids:
            rows = await self._fetch("renew_leases", "renew_instance_leases", *renewal, list(instance_ids))
            kept_instances = {row["instance_id"] for row in rows}
        if activity_ids:
            rows = await self._fetch("renew_leases", "renew_activity_leases", *renewal, list(activity_ids))
            kept_activities = {row["activity_id"] for row in rows}
        return LeaseRenewal(
            lost_instance_ids=set(instance_ids) - kept_instances,
            lost_activity_ids=set(activity_ids) - kept_activities,
        )

    async def release_leases(
        self, owner: str, instance_ids: Sequence[str], activity_ids: Sequence[int]
    ) -> None:
        """Drop `owner`'s leases so the work can be claimed again at once, and say so like new work
        (other processes hear of it by NOTIFY)."""
        released = Work.NONE
        releases = (
            ("release_instance_leases", instance_ids, self._wake_messages, Work.MESSAGES),
            ("release_activity_leases", activity_ids, self._wake_activities, Work.ACTIVITIES),
        )
        for query, ids, wake, work in releases:
            if ids and await self._fetch("release_leases", query, owner, list(ids), *wake):
                released |= work
        self._subscribers.notify(released)

    # ----- queries and purges -------------------------------------------------------------------

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None; raises `StoreError` naming it if its row is corrupt."""
        rows = await self._fetch("get_instance", "select_instance", instance_id)
        return record_from_row(rows[0]) if rows else None

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current execution's history; raises `StoreError` on a corrupt row."""
        rows = await self._fetch("get_history", "select_history", instance_id)
        return [event for row in rows for event in decode_history_row(row["event"], instance_id, row["seq"])]

    async def query_instances(
        self, filter: InstanceFilter, page_size: int, continuation_token: str | None
    ) -> InstancePage:
        """One page of matching instances by (created_at, instance_id), keyset-paged."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        after = None if continuation_token is None else decode_token(continuation_token)
        args = [*page_args(after), *filter_args(filter), page_size + 1]
        rows = await self._fetch("query_instances", "filter_instances", *args)
        records = [record_from_row(row) for row in rows[:page_size]]
        token = None
        if len(rows) > page_size:
            token = encode_token(PageKey(records[-1].created_at, records[-1].instance_id))
        return InstancePage(records, token)

    async def purge_instance(self, instance_id: str, *, expected_version: int | None = None) -> bool:
        """Delete one instance and everything it owns (only if idle at `expected_version`, if given).

        The conditional purge is race-free because every message insert (`insert_messages`, and
        `ensure_instances` for messages creating their target) takes the instance's row lock
        first: once `lock` holds it, the inbox checked by the next statement cannot grow until
        this transaction ends, and a message racing in is either seen (purge refused) or waits
        and then finds the instance gone (dropped, or the instance created anew)."""

        async def body(conn: Connection) -> bool:
            row = (await self._writer.lock(conn, {instance_id})).get(instance_id)
            if expected_version is not None and (
                row is None
                or row.version != expected_version
                or not await conn.fetchval(self._q["inbox_is_empty"], instance_id)
            ):
                return False
            return bool(await conn.fetch(self._q["delete_instances"], [instance_id]))

        return await self._run("purge_instance", body)

    async def purge_instances(self, filter: InstanceFilter) -> int:
        """Delete every matching instance and everything they own; returns how many."""

        async def body(conn: Connection) -> int:
            rows = await conn.fetch(self._q["lock_matching_instances"], *filter_args(filter))
            ids = [row["instance_id"] for row in rows]
            return len(await conn.fetch(self._q["delete_instances"], ids)) if ids else 0

        return await self._run("purge_instances", body)


ConcurrentPostgreSqlStateStore = PostgresStateStore
"""The seed's name for the multi-host-safe PostgreSQL store. Every store here is multi-host safe."""
