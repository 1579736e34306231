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

import logging
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any

from asynkron_durable.errors import InstanceAlreadyExists, StoreError
from asynkron_durable.history import HistoryEvent, InstanceRecord, event_to_json
from asynkron_durable.stores._paging import decode_token
from asynkron_durable.stores._postgres_codec import (
    BAD_VALUES,
    DRIVER_ERRORS,
    aware,
    decode_claimed,
    filter_args,
    page_args,
    record_columns,
    transpose,
)
from asynkron_durable.stores._postgres_connection import DEFAULT_SCHEMA as DEFAULT_SCHEMA
from asynkron_durable.stores._postgres_connection import STATEMENT_LIFETIME as STATEMENT_LIFETIME
from asynkron_durable.stores._postgres_connection import Connection, PostgresConnection
from asynkron_durable.stores._postgres_plan import CommitPlan, touched_ids
from asynkron_durable.stores._rows import (
    QUARANTINED,
    activity_item,
    decode_history_rows,
    page_of,
    readable_records,
    record_from_row,
)
from asynkron_durable.stores.base import (
    ActivityClaim,
    ActivityResult,
    ActivityStep,
    ActivityWorkItem,
    Committed,
    Completion,
    DeadLetter,
    EpisodeCommit,
    InstanceFilter,
    InstancePage,
    LeaseRenewal,
    Message,
    NewInstance,
    OrchestrationWorkItem,
    Work,
    distinct,
)

_log = logging.getLogger(__name__)


class PostgresStateStore(PostgresConnection):
    """A `StateStore` on PostgreSQL: every table lives in `schema`, so task hubs share a database.

    `dsn_or_pool` is a DSN (the store makes and closes its own pool, one connection larger than
    `max_pool_size` for LISTEN) or an asyncpg pool, which the store uses but never closes (make it
    with `max_cached_statement_lifetime=STATEMENT_LIFETIME` to keep plans current the same way).
    `command_timeout`: seconds a statement of its own pool may take (a hung connection, a lock held
    elsewhere) before the operation fails with `StoreError` and is retried by the worker's loops.
    """

    poll_interval_hint = 1.0
    """Other processes' work arrives by NOTIFY; polling is only the fallback."""

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

    async def create_instances(self, news: Sequence[NewInstance]) -> set[str]:
        """Create those of `news` whose ids are free, in one statement; returns the ids in use."""
        unique = sorted(distinct(news), key=lambda new: new.record.instance_id)  # lock order
        if not unique:
            return set()
        columns = record_columns([(new.record, new.record.version) for new in unique])
        events = [event_to_json(new.start_event) for new in unique]
        rows = await self._fetch(
            "create_instances", "create_many_if_free", *self._wake_messages, *columns, events
        )
        created = {row["instance_id"] for row in rows}
        if created:
            self._subscribers.notify(Work.MESSAGES)
        return {new.record.instance_id for new in news} - created

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
        args = (owner, aware(now), aware(lease_until), limit, None if names is None else list(names))

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
        decode_history_rows(
            await self._fetch("load_histories", "select_histories", list(histories)), histories
        )
        return histories

    async def commit_episodes(
        self,
        owner: str,
        now: datetime,
        commits: Sequence[EpisodeCommit],
        claim: ActivityClaim | None = None,
    ) -> Committed:
        """Apply the commits in one transaction, each checked (version + lease) on its own.

        If PostgreSQL refuses a value of one commit (a NUL character in an instance id, say), the
        batch is redone with a savepoint per commit: the others land, and the refused one is logged
        and reported as rejected, so it cannot hold up the rest of its batch."""
        if not commits:
            return Committed(set(), [])
        lease_until = None if claim is None else aware(claim.lease_until)
        limit = 0 if claim is None else claim.limit
        names = None if claim is None else claim.names
        leased: list[ActivityWorkItem] = []

        async def batch(conn: Connection) -> tuple[set[str], Work]:
            leased.clear()  # a retried transaction starts over
            return await self._commit(conn, owner, commits, (lease_until, limit, names), leased)

        async def one_by_one(conn: Connection) -> tuple[set[str], Work]:
            leased.clear()
            rejected: set[str] = set()
            enqueued = Work.NONE
            for commit in commits:
                kept = len(leased)
                try:
                    async with conn.transaction():  # a savepoint
                        lost, added = await self._commit(
                            conn, owner, [commit], (lease_until, limit - kept, names), leased
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
        self._subscribers.notify(enqueued)
        self._subscribers.commits_ended(commits, rejected)
        return Committed(rejected, leased)

    async def _commit(
        self,
        conn: Connection,
        owner: str,
        commits: Sequence[EpisodeCommit],
        claim: tuple[datetime | None, int, frozenset[str] | None],
        leased: list[ActivityWorkItem],
    ) -> tuple[set[str], Work]:
        """`claim`: the lease, limit and names of activities to lease on insert (see `ActivityClaim`)."""
        lease_until, limit, names = claim
        plan = CommitPlan(owner, await self._writer.lock(conn, touched_ids(commits)))
        for commit in commits:
            plan.commit(commit, limit, names)
        enqueued = await self._writer.apply(conn, plan, lease_until)
        leased += plan.claimed
        return plan.rejected, enqueued

    # ----- activities ---------------------------------------------------------------------------

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
        args = (owner, aware(now), aware(lease_until), limit, None if names is None else list(names))
        rows = await self._fetch("claim_activities", "claim_activities", *args)
        return sorted(
            (activity_item(row) for row in rows),
            key=lambda item: item.activity_id,
        )

    async def complete_activities(
        self,
        owner: str,
        now: datetime,
        results: Sequence[ActivityResult],
        steps: Sequence[ActivityStep] = (),
        claim: ActivityClaim | None = None,
    ) -> Completion:
        """Record results and apply steps (see `ActivityStep`) in one transaction: every touched
        instance is locked first, then the activities, as every writer does."""
        if not results and not steps:
            return Completion(set(), set(), [])
        at = aware(now)
        lease_until = None if claim is None else aware(claim.lease_until)
        claim_limit = 0 if claim is None else claim.limit
        claim_names = None if claim is None else claim.names
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
                    plan.step(commit, claim_limit, claim_names)
                    applied.add(instance_id)
                else:
                    for result in taken:
                        plan.enqueue(result.message)
            enqueued = await self._writer.apply(conn, plan, lease_until)
            rejected = {r.activity_id for r in all_results if r.activity_id not in done}
            return Completion(rejected, applied, plan.claimed), enqueued

        completion, enqueued = await self._run("complete_activities", body)
        self._subscribers.notify(enqueued)
        self._subscribers.steps_ended(steps, completion.applied)
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

    async def get_instances(self, instance_ids: Sequence[str]) -> dict[str, InstanceRecord]:
        """The readable records of those of `instance_ids` that exist, in one statement."""
        return readable_records(
            await self._fetch("get_instances", "select_instances_by_id", list(instance_ids))
        )

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None; raises `StoreError` naming it if its row is corrupt."""
        rows = await self._fetch("get_instance", "select_instance", instance_id)
        return record_from_row(rows[0]) if rows else None

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current execution's history; raises `StoreError` on a corrupt row."""
        rows = await self._fetch("get_history", "select_history", instance_id)
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
        args = [*page_args(after), *filter_args(filter), page_size + 1]
        rows = await self._fetch("query_instances", "filter_instances", *args)
        return page_of(rows, page_size)

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
            return bool(await self._writer.delete(conn, [instance_id]))

        deleted = await self._run("purge_instance", body)
        self._subscribers.ended([instance_id] if deleted else [])
        return deleted

    async def purge_instances(self, filter: InstanceFilter) -> int:
        """Delete every matching instance and everything they own; returns how many."""

        async def body(conn: Connection) -> list[str]:
            rows = await conn.fetch(self._q["lock_matching_instances"], *filter_args(filter))
            ids = [row["instance_id"] for row in rows]
            return await self._writer.delete(conn, ids) if ids else []

        deleted = await self._run("purge_instances", body)
        self._subscribers.ended(deleted)
        return len(deleted)

    async def dead_letters(self, instance_id: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Messages moved aside as undecodable, newest first (of `instance_id`, or all)."""
        rows = await self._fetch("dead_letters", "select_dead_letters", instance_id, limit)
        return [
            DeadLetter(r["message_id"], r["instance_id"], r["event"], r["error"], r["dead_at"]) for r in rows
        ]


ConcurrentPostgreSqlStateStore = PostgresStateStore
"""Asynkron.DurableFunctions' name for the multi-host-safe PostgreSQL store. Every store here is."""
