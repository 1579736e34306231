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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from asynkron_durable.errors import InstanceAlreadyExists, StoreError
from asynkron_durable.history import (
    HistoryEvent,
    InstanceRecord,
    events_to_json,
)
from asynkron_durable.stores._paging import PageKey, decode_token, encode_token
from asynkron_durable.stores._rows import decode_event, decode_history_row, record_from_row
from asynkron_durable.stores._sqlite_codec import (
    QUERIES,
    SCHEMA,
    driver_errors,
    epoch,
    filter_params,
    from_epoch,
    json_list,
    message_params,
    record_params,
)
from asynkron_durable.stores._subscribers import Subscribers
from asynkron_durable.stores.base import (
    ActivityClaim,
    ActivityResult,
    ActivityStep,
    ActivityTask,
    ActivityWorkItem,
    Completion,
    EpisodeCommit,
    InboxMessage,
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

SCHEMA_VERSION = 2
"""The schema version this code reads and writes; `open()` refuses files with a newer one.
Version 2 writes a commit's history events as one row; version 1 files are upgraded in place
(their one-event rows stay readable), and version 1 code refuses the upgraded file."""

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


@asynccontextmanager
async def _transaction(conn: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
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


async def _execute(conn: aiosqlite.Connection, query: str, params: Mapping[str, Any]) -> int:
    async with conn.execute(QUERIES[query], params) as cursor:
        return cursor.rowcount


async def _fetch(conn: aiosqlite.Connection, query: str, params: Mapping[str, Any]) -> list[sqlite3.Row]:
    return list(await conn.execute_fetchall(QUERIES[query], params))


async def _get_record(conn: aiosqlite.Connection, instance_id: str) -> InstanceRecord | None:
    rows = await _fetch(conn, "select_instance", {"instance_id": instance_id})
    return record_from_row(rows[0], from_epoch) if rows else None


# ----- write transactions in one hop ----------------------------------------------------------
# A write transaction holds SQLite's file lock from BEGIN to COMMIT, and other processes' writers
# wait on it (sleeping in the busy handler). The functions below take the driver's own
# `sqlite3.Connection` and run on aiosqlite's thread as one call (see `_run_in_thread`): a commit
# of many episodes costs one thread hop, not one per statement, and holds the lock that much less.


def _run(raw: sqlite3.Connection, query: str, params: Mapping[str, Any]) -> int:
    return raw.execute(QUERIES[query], params).rowcount


def _run_many(raw: sqlite3.Connection, query: str, params: Sequence[Mapping[str, Any]]) -> int:
    return raw.executemany(QUERIES[query], params).rowcount if params else 0


def _record_of(raw: sqlite3.Connection, instance_id: str) -> InstanceRecord | None:
    row = raw.execute(QUERIES["select_instance"], {"instance_id": instance_id}).fetchone()
    return None if row is None else record_from_row(row, from_epoch)


def _delete_instances(raw: sqlite3.Connection, instance_ids: Sequence[str]) -> int:
    ids = {"ids": json_list(instance_ids)}
    for query in ("delete_histories", "delete_inboxes", "delete_instance_activities"):
        _run(raw, query, ids)
    return _run(raw, "delete_instances", ids)


def _insert_messages(raw: sqlite3.Connection, messages: Sequence[Message]) -> int:
    """Enqueue `messages` in order; returns how many were. One to an instance that does not exist
    is dropped by the insert itself, unless it `creates` it: then the instance is inserted first
    (if still missing), after the messages before it went in, so those still find it missing."""
    enqueued = 0
    batch: list[dict[str, Any]] = []
    for message in messages:
        if message.creates is not None:
            enqueued += _run_many(raw, "insert_message", batch)
            batch = []
            params = record_params(message.creates, message.creates.version, instance_id=message.instance_id)
            _run(raw, "insert_instance_if_missing", params)
        batch.append(message_params(message))
    return enqueued + _run_many(raw, "insert_message", batch)


def _put_instance(raw: sqlite3.Connection, new: NewInstance, old: InstanceRecord | None) -> None:
    """Insert `new`, replacing `old`. The version keeps growing across replacements so a stale
    commit for the old instance can never match the new one."""
    record = new.record
    version = record.version
    if old is not None:
        _delete_instances(raw, [record.instance_id])
        version = max(version, old.version + 1)
    _run(raw, "insert_instance", record_params(record, version))
    start = Message(record.instance_id, new.start_event, execution_id=record.execution_id)
    _insert_messages(raw, [start])


def _create_instance(raw: sqlite3.Connection, new: NewInstance, replace: bool) -> None:
    old = _record_of(raw, new.record.instance_id)
    if old is not None and not replace and not old.runtime_status.is_terminal:
        raise InstanceAlreadyExists(old.instance_id, old.runtime_status.value)
    _put_instance(raw, new, old)


def _create_in_commit(raw: sqlite3.Connection, new: NewInstance) -> int:
    old = _record_of(raw, new.record.instance_id)
    if old is not None and not old.runtime_status.is_terminal:
        conflict = [] if new.conflict_message is None else [new.conflict_message]
        return _insert_messages(raw, conflict)
    _put_instance(raw, new, old)
    return 1


@dataclass(slots=True)
class _Claim:
    """Activities leased to a step's caller as they are inserted, up to `limit`."""

    owner: str
    lease_until: float
    limit: int
    items: list[ActivityWorkItem] = field(default_factory=list)


def _apply_commit(
    raw: sqlite3.Connection, owner: str, commit: EpisodeCommit, claim: _Claim | None
) -> Work | None:
    """Apply one commit; None when its CAS failed (nothing written), else what it enqueued."""
    cas = record_params(commit.record, commit.expected_version + 1)
    cas.update(expected_version=commit.expected_version, owner=owner, step=0, now=None)
    if _run(raw, "commit_instance", cas) == 0:
        return None
    return _write_commit(raw, commit, claim)


def _write_commit(raw: sqlite3.Connection, commit: EpisodeCommit, claim: _Claim | None) -> Work:
    """Write the rest of a commit whose record was just updated; returns what it enqueued for
    others. With a `claim`, its activities are leased to the claimer while the budget lasts."""
    instance_id = commit.record.instance_id
    if commit.reset_history:
        _run(raw, "delete_histories", {"ids": json_list([instance_id])})
    if commit.new_history:
        row = {"instance_id": instance_id, "events": events_to_json(commit.new_history)}
        _run(raw, "insert_history", row)
    acks = [{"instance_id": instance_id, "message_id": m} for m in commit.acknowledged_message_ids]
    _run_many(raw, "ack_message", acks)
    messages = sum(_create_in_commit(raw, new) for new in commit.new_instances)
    messages += _insert_messages(raw, commit.messages)
    unleased: list[dict[str, Any]] = []
    for task in commit.activities:
        params = {
            "instance_id": task.instance_id,
            "execution_id": task.execution_id,
            "task_id": task.task_id,
            "name": task.name,
            "input": task.input,
            "owner": None,
            "lease_until": None,
        }
        if claim is None or len(claim.items) >= claim.limit:
            unleased.append(params)
            continue
        params.update(owner=claim.owner, lease_until=claim.lease_until)
        activity_id = raw.execute(QUERIES["insert_activity"], params).fetchone()[0]
        claim.items.append(ActivityWorkItem(activity_id, task, 1))
    if unleased:  # executemany reports no row count for a statement with RETURNING
        raw.executemany(QUERIES["insert_activity"], unleased)
    return (Work.MESSAGES if messages else Work.NONE) | (Work.ACTIVITIES if unleased else Work.NONE)


def _apply_commits(
    raw: sqlite3.Connection, owner: str, commits: Sequence[EpisodeCommit], claim: _Claim | None
) -> tuple[set[str], Work]:
    rejected: set[str] = set()
    enqueued = Work.NONE
    for commit in commits:
        outcome = _apply_commit(raw, owner, commit, claim)
        if outcome is None:
            rejected.add(commit.record.instance_id)
        else:
            enqueued |= outcome
    return rejected, enqueued


def _take_activity(raw: sqlite3.Connection, owner: str, activity_id: int) -> bool:
    """Delete an activity if `owner` still leases it."""
    return _run(raw, "complete_activity", {"activity_id": activity_id, "owner": owner}) > 0


def _complete_activities(
    raw: sqlite3.Connection,
    owner: str,
    now: float,
    results: Sequence[ActivityResult],
    steps: Sequence[ActivityStep],
    claim: _Claim,
) -> tuple[Completion, Work]:
    rejected: set[int] = set()
    applied: set[str] = set()
    enqueued = Work.NONE
    for result in results:
        if _take_activity(raw, owner, result.activity_id):
            if _insert_messages(raw, [result.message]):
                enqueued |= Work.MESSAGES
        else:
            rejected.add(result.activity_id)
    for step in steps:
        taken = [r for r in step.results if _take_activity(raw, owner, r.activity_id)]
        rejected.update(r.activity_id for r in step.results if r not in taken)
        commit = step.commit
        cas = record_params(commit.record, commit.expected_version + 1)
        cas.update(expected_version=commit.expected_version, owner=None, step=1, now=now)
        if len(taken) == len(step.results) and _run(raw, "commit_instance", cas) > 0:
            enqueued |= _write_commit(raw, commit, claim)
            applied.add(commit.record.instance_id)
        elif _insert_messages(raw, [r.message for r in taken]):
            enqueued |= Work.MESSAGES
    return Completion(rejected, applied, claim.items), enqueued


def _in_transaction(raw: sqlite3.Connection, body: Callable[[sqlite3.Connection], _T]) -> _T:
    """BEGIN IMMEDIATE, `body`, COMMIT, all on the driver's thread; rolled back on any error."""
    raw.execute("BEGIN IMMEDIATE")
    try:
        result = body(raw)
        raw.execute("COMMIT")
    except BaseException:
        with suppress(sqlite3.Error):
            raw.rollback()
        raise
    return result


async def _run_in_thread(conn: aiosqlite.Connection, body: Callable[[sqlite3.Connection], _T]) -> _T:
    """One write transaction as one call on aiosqlite's thread. aiosqlite has no public way to run a
    function there; its own methods queue theirs through `_execute`, as this does."""
    queue = cast(Callable[..., Awaitable[_T]], conn._execute)
    raw = conn._conn
    return await queue(_in_transaction, raw, body)


async def _dead_letter(conn: aiosqlite.Connection, message_id: int, error: StoreError, now: float) -> None:
    """Move an undecodable inbox row aside: it must not block every later claim, nor vanish."""
    _log.error("moved inbox message %s to dead_letters: %s", message_id, error)
    params = {"message_id": message_id, "error": str(error), "now": now}
    await _execute(conn, "dead_letter_message", params)
    await _execute(conn, "delete_message", {"message_id": message_id})


async def _quarantine(conn: aiosqlite.Connection, instance_id: str, error: StoreError) -> None:
    """Lease an unreadable instance row to nobody, for good: claims skip it, its data stays put."""
    _log.error("instance %r is unreadable and no longer claimed: %s", instance_id, error)
    params = {"owner": QUARANTINED, "lease_until": 1e18, "ids": json_list([instance_id])}
    await _execute(conn, "lease_instances", params)


def _open_probe(path: Path) -> sqlite3.Connection:
    """A read-only connection used on the event loop itself for idle checks (see `_nothing_to_claim`)."""
    probe = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    probe.execute("PRAGMA busy_timeout = 0")
    probe.execute("PRAGMA query_only = ON")
    return probe


def _probe(path: Path) -> None:
    sqlite3.connect(path).close()


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

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    async def open(self) -> None:
        """Connect, switch to WAL and create the schema if the file has none. Idempotent."""
        async with self._lock:
            if self._conn is not None:
                return
            with driver_errors(self._path):
                # Fail here, not in aiosqlite.connect: when that fails it leaves its worker thread
                # reporting to the event loop after we return (omnilib/aiosqlite#241).
                await asyncio.to_thread(_probe, self._path)
                conn = await aiosqlite.connect(self._path, isolation_level=None)
                try:
                    conn.row_factory = sqlite3.Row
                    await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
                    await conn.execute("PRAGMA journal_mode = WAL")
                    await conn.execute("PRAGMA synchronous = NORMAL")
                    await self._ensure_schema(conn)
                except BaseException:
                    await conn.close()
                    raise
            self._conn = conn
            self._probe_conn = _open_probe(self._path)

    async def _ensure_schema(self, conn: aiosqlite.Connection) -> None:
        async with _transaction(conn):
            version: int | None = None
            if await _fetch(conn, "has_schema_version_table", {}):
                version = (await _fetch(conn, "get_schema_version", {}))[0]["version"]
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(
                    f"SQLite store {str(self._path)!r} has schema version {version}, but this "
                    f"version of asynkron-durable only knows up to {SCHEMA_VERSION}: upgrade it"
                )
            if version is None:
                for statement in SCHEMA:
                    await conn.execute(statement)
            elif version < SCHEMA_VERSION:
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
                return await _run_in_thread(self._connection(), body)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            with driver_errors(self._path):
                async with _transaction(self._connection()) as conn:
                    yield conn

    async def create_instance(self, new: NewInstance, *, replace: bool) -> None:
        """Create (or replace) an instance and enqueue its start message."""
        await self._write_in_thread(partial(_create_instance, new=new, replace=replace))
        self._subscribers.notify(Work.MESSAGES)

    async def send_messages(self, messages: Sequence[Message]) -> None:
        """Enqueue messages; those for unknown instances are dropped by the insert itself."""
        if not messages:
            return
        if await self._write_in_thread(partial(_insert_messages, messages=messages)):
            self._subscribers.notify(Work.MESSAGES)

    async def claim_orchestrations(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[OrchestrationWorkItem]:
        """Lease instances with visible messages, oldest message first."""
        if limit <= 0:
            return []
        at = epoch(now)
        if self._nothing_to_claim("claim_candidates", {"now": at, "limit": 1}):
            return []
        async with self._write() as conn:
            rows = await _fetch(conn, "claim_candidates", {"now": at, "limit": limit})
            order = [row["instance_id"] for row in rows]
            if not order:
                return []
            ids = json_list(order)
            lease = {"owner": owner, "lease_until": epoch(lease_until), "ids": ids}
            await _execute(conn, "lease_instances", lease)
            records: dict[str, InstanceRecord] = {}
            for row in await _fetch(conn, "select_instances", {"ids": ids}):
                try:
                    records[row["instance_id"]] = record_from_row(row, from_epoch)
                except StoreError as exc:
                    await _quarantine(conn, row["instance_id"], exc)
            order = [instance_id for instance_id in order if instance_id in records]
            ids = json_list(order)
            inbox: dict[str, list[InboxMessage]] = {instance_id: [] for instance_id in order}
            for row in await _fetch(conn, "select_visible_messages", {"ids": ids, "now": at}):
                where = f"inbox message {row['message_id']}"
                try:
                    event = decode_event(row["event"], row["instance_id"], where)
                except StoreError as exc:
                    await _dead_letter(conn, row["message_id"], exc, at)
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
            rows = await _fetch(conn, "next_due", params)
        return None if not rows or rows[0][0] is None else from_epoch(rows[0][0])

    async def load_histories(self, instance_ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        """Each instance's current history, in order; raises `StoreError` on a corrupt row."""
        histories: dict[str, list[HistoryEvent]] = {i: [] for i in instance_ids}
        if not histories:
            return histories
        async with self._read() as conn:
            rows = await _fetch(conn, "select_histories", {"ids": json_list(histories)})
        for row in rows:
            histories[row["instance_id"]] += decode_history_row(row["event"], row["instance_id"], row["seq"])
        return histories

    async def commit_episodes(
        self,
        owner: str,
        now: datetime,
        commits: Sequence[EpisodeCommit],
        claim: ActivityClaim | None = None,
    ) -> set[str]:
        """Apply all commits in one transaction; each is checked (version + lease) on its own."""
        if not commits:
            return set()
        leasing = None if claim is None else _Claim(owner, epoch(claim.lease_until), claim.limit)
        rejected, enqueued = await self._write_in_thread(
            partial(_apply_commits, owner=owner, commits=commits, claim=leasing)
        )
        if claim is not None and leasing is not None:
            claim.items += leasing.items
        self._subscribers.notify(enqueued)
        return rejected

    async def claim_activities(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[ActivityWorkItem]:
        """Lease the oldest unleased (or expired) activities."""
        if limit <= 0:
            return []
        params = {"owner": owner, "now": epoch(now), "lease_until": epoch(lease_until)}
        if self._nothing_to_claim("any_claimable_activity", {"now": params["now"]}):
            return []
        async with self._write() as conn:
            rows = await _fetch(conn, "claim_activities", {**params, "limit": limit})
        rows.sort(key=lambda row: int(row["activity_id"]))
        return [
            ActivityWorkItem(
                activity_id=row["activity_id"],
                task=ActivityTask(
                    instance_id=row["instance_id"],
                    execution_id=row["execution_id"],
                    task_id=row["task_id"],
                    name=row["name"],
                    input=row["input"],
                ),
                attempt=row["attempt"],
            )
            for row in rows
        ]

    async def complete_activities(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        results: Sequence[ActivityResult],
        steps: Sequence[ActivityStep] = (),
        claim_limit: int = 0,
    ) -> Completion:
        """Record results and apply steps (see `ActivityStep`) in one transaction."""
        if not results and not steps:
            return Completion(set(), set(), [])
        claim = _Claim(owner, epoch(lease_until), claim_limit)
        body = partial(
            _complete_activities, owner=owner, now=epoch(now), results=results, steps=steps, claim=claim
        )
        completion, enqueued = await self._write_in_thread(body)
        self._subscribers.notify(enqueued)
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
                    rows = await _fetch(conn, "renew_instance_leases", params)
                    kept_instances = {row["instance_id"] for row in rows}
                if activity_ids:
                    params = {"owner": owner, "lease_until": until, "ids": json_list(activity_ids)}
                    rows = await _fetch(conn, "renew_activity_leases", params)
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
                if ids and await _execute(conn, query, {"owner": owner, "ids": json_list(ids)}):
                    released |= work
        self._subscribers.notify(released)

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None."""
        async with self._read() as conn:
            return await _get_record(conn, instance_id)

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current execution's history; raises `StoreError` on a corrupt row."""
        async with self._read() as conn:
            rows = await _fetch(conn, "select_history", {"instance_id": instance_id})
        return [event for row in rows for event in decode_history_row(row["event"], instance_id, row["seq"])]

    async def query_instances(
        self, filter: InstanceFilter, page_size: int, continuation_token: str | None
    ) -> InstancePage:
        """One page of matching instances by (created_at, instance_id), keyset-paged."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        after = None if continuation_token is None else decode_token(continuation_token)
        async with self._read() as conn:
            rows = await _fetch(conn, "filter_instances", filter_params(filter, after, page_size + 1))
        records = [record_from_row(row, from_epoch) for row in rows[:page_size]]
        token = None
        if len(rows) > page_size:
            token = encode_token(PageKey(records[-1].created_at, records[-1].instance_id))
        return InstancePage(records, token)

    async def purge_instance(self, instance_id: str, *, expected_version: int | None = None) -> bool:
        """Delete one instance and everything it owns (only if idle at `expected_version`, if given:
        the check and the delete share one write transaction, so no message slips in between)."""

        def body(raw: sqlite3.Connection) -> bool:
            if expected_version is not None:
                idle = {"instance_id": instance_id, "version": expected_version}
                if raw.execute(QUERIES["select_idle_instance"], idle).fetchone() is None:
                    return False
            return _delete_instances(raw, [instance_id]) > 0

        return await self._write_in_thread(body)

    async def purge_instances(self, filter: InstanceFilter) -> int:
        """Delete every matching instance in one transaction."""

        def body(raw: sqlite3.Connection) -> int:
            rows = raw.execute(QUERIES["filter_instances"], filter_params(filter, None, -1)).fetchall()
            ids = [row["instance_id"] for row in rows]
            return _delete_instances(raw, ids) if ids else 0

        return await self._write_in_thread(body)


ConcurrentSqliteStateStore = SqliteStateStore
"""The seed's name for the multi-host-safe SQLite store. Every store here is multi-host safe."""
