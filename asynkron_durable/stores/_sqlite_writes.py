"""The SQLite store's write transactions, each run in one hop on the driver's thread.

A write transaction holds SQLite's file lock from BEGIN to COMMIT, and other processes' writers
wait on it (sleeping in the busy handler). These functions take the driver's own
`sqlite3.Connection` and run on aiosqlite's thread as one call (`in_transaction`): a commit of
many episodes costs one thread hop, not one per statement, and holds the lock that much less.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any, TypeVar

from asynkron_durable.errors import InstanceAlreadyExists
from asynkron_durable.history import InstanceRecord, events_to_json
from asynkron_durable.stores._leasing import Leasing
from asynkron_durable.stores._rows import record_from_row
from asynkron_durable.stores._sqlite_codec import (
    QUERIES,
    epoch,
    from_epoch,
    json_list,
    message_params,
    record_params,
)
from asynkron_durable.stores.base import (
    ActivityResult,
    ActivityStep,
    Committed,
    Completion,
    EpisodeCommit,
    Message,
    NewInstance,
    Work,
)

_T = TypeVar("_T")


def run(raw: sqlite3.Connection, query: str, params: Mapping[str, Any]) -> int:
    return raw.execute(QUERIES[query], params).rowcount


def run_many(raw: sqlite3.Connection, query: str, params: Sequence[Mapping[str, Any]]) -> int:
    return raw.executemany(QUERIES[query], params).rowcount if params else 0


def record_of(raw: sqlite3.Connection, instance_id: str) -> InstanceRecord | None:
    row = raw.execute(QUERIES["select_instance"], {"instance_id": instance_id}).fetchone()
    return None if row is None else record_from_row(row, from_epoch)


def delete_instances(raw: sqlite3.Connection, instance_ids: Sequence[str]) -> int:
    ids = {"ids": json_list(instance_ids)}
    for query in ("delete_histories", "delete_inboxes", "delete_instance_activities"):
        run(raw, query, ids)
    return run(raw, "delete_instances", ids)


def insert_messages(raw: sqlite3.Connection, messages: Sequence[Message]) -> int:
    """Enqueue `messages` in order; returns how many were. One to an instance that does not exist
    is dropped by the insert itself, unless it `creates` it: then the instance is inserted first
    (if still missing), after the messages before it went in, so those still find it missing."""
    enqueued = 0
    batch: list[dict[str, Any]] = []
    for message in messages:
        if message.creates is not None:
            enqueued += run_many(raw, "insert_message", batch)
            batch = []
            params = record_params(message.creates, message.creates.version, instance_id=message.instance_id)
            run(raw, "insert_instance_if_missing", params)
        batch.append(message_params(message))
    return enqueued + run_many(raw, "insert_message", batch)


def put_instance(raw: sqlite3.Connection, new: NewInstance, old: InstanceRecord | None) -> None:
    """Insert `new`, replacing `old`. The version keeps growing across replacements so a stale
    commit for the old instance can never match the new one."""
    record = new.record
    version = record.version
    if old is not None:
        delete_instances(raw, [record.instance_id])
        version = max(version, old.version + 1)
    run(raw, "insert_instance", record_params(record, version))
    start = Message(record.instance_id, new.start_event, execution_id=record.execution_id)
    insert_messages(raw, [start])


def create_instance(raw: sqlite3.Connection, new: NewInstance, replace: bool) -> None:
    old = record_of(raw, new.record.instance_id)
    if old is not None and not replace and not old.runtime_status.is_terminal:
        raise InstanceAlreadyExists(old.instance_id, old.runtime_status.value)
    put_instance(raw, new, old)


def create_free(raw: sqlite3.Connection, news: Sequence[NewInstance]) -> set[str]:
    """Create those of `news` whose ids no instance holds; returns the ids in use."""
    taken: set[str] = set()
    for new in news:
        instance_id = new.record.instance_id
        if raw.execute(QUERIES["instance_exists"], {"instance_id": instance_id}).fetchone() is None:
            put_instance(raw, new, None)
        else:
            taken.add(instance_id)
    return taken


def create_in_commit(raw: sqlite3.Connection, new: NewInstance) -> int:
    old = record_of(raw, new.record.instance_id)
    if old is not None and not old.runtime_status.is_terminal:
        conflict = [] if new.conflict_message is None else [new.conflict_message]
        return insert_messages(raw, conflict)
    put_instance(raw, new, old)
    return 1


def apply_commit(raw: sqlite3.Connection, owner: str, commit: EpisodeCommit, leasing: Leasing) -> Work | None:
    """Apply one commit; None when its CAS failed (nothing written), else what it enqueued."""
    cas = record_params(commit.record, commit.expected_version + 1)
    cas.update(expected_version=commit.expected_version, owner=owner, step=0, now=None)
    if run(raw, "commit_instance", cas) == 0:
        return None
    return write_commit(raw, commit, leasing)


def write_commit(raw: sqlite3.Connection, commit: EpisodeCommit, leasing: Leasing) -> Work:
    """Write the rest of a commit whose record was just updated; returns what it enqueued for
    others. Its activities are leased to the caller while `leasing` has room."""
    instance_id = commit.record.instance_id
    if commit.reset_history:
        run(raw, "delete_histories", {"ids": json_list([instance_id])})
    if commit.new_history:
        row = {"instance_id": instance_id, "events": events_to_json(commit.new_history)}
        run(raw, "insert_history", row)
    acks = [{"instance_id": instance_id, "message_id": m} for m in commit.acknowledged_message_ids]
    run_many(raw, "ack_message", acks)
    messages = sum(create_in_commit(raw, new) for new in commit.new_instances)
    messages += insert_messages(raw, commit.messages)
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
        lease_until = leasing.next_lease(task.name)
        if lease_until is None:
            unleased.append(params)
            continue
        params.update(owner=leasing.owner, lease_until=epoch(lease_until))
        leasing.leased(raw.execute(QUERIES["insert_activity"], params).fetchone()[0], task)
    if unleased:  # executemany reports no row count for a statement with RETURNING
        raw.executemany(QUERIES["insert_activity"], unleased)
    return (Work.MESSAGES if messages else Work.NONE) | (Work.ACTIVITIES if unleased else Work.NONE)


def apply_commits(
    raw: sqlite3.Connection, owner: str, commits: Sequence[EpisodeCommit], leasing: Leasing
) -> tuple[Committed, Work]:
    rejected: set[str] = set()
    enqueued = Work.NONE
    for commit in commits:
        outcome = apply_commit(raw, owner, commit, leasing)
        if outcome is None:
            rejected.add(commit.record.instance_id)
        else:
            enqueued |= outcome
    return Committed(rejected, leasing.items), enqueued


def take_activity(raw: sqlite3.Connection, owner: str, activity_id: int) -> bool:
    """Delete an activity if `owner` still leases it."""
    return run(raw, "complete_activity", {"activity_id": activity_id, "owner": owner}) > 0


def complete_activities(
    raw: sqlite3.Connection,
    owner: str,
    now: float,
    results: Sequence[ActivityResult],
    steps: Sequence[ActivityStep],
    leasing: Leasing,
) -> tuple[Completion, Work]:
    rejected: set[int] = set()
    applied: set[str] = set()
    enqueued = Work.NONE
    for result in results:
        if take_activity(raw, owner, result.activity_id):
            if insert_messages(raw, [result.message]):
                enqueued |= Work.MESSAGES
        else:
            rejected.add(result.activity_id)
    for step in steps:
        taken = [r for r in step.results if take_activity(raw, owner, r.activity_id)]
        rejected.update(r.activity_id for r in step.results if r not in taken)
        commit = step.commit
        cas = record_params(commit.record, commit.expected_version + 1)
        cas.update(expected_version=commit.expected_version, owner=None, step=1, now=now)
        if len(taken) == len(step.results) and run(raw, "commit_instance", cas) > 0:
            enqueued |= write_commit(raw, commit, leasing)
            applied.add(commit.record.instance_id)
        elif insert_messages(raw, [r.message for r in taken]):
            enqueued |= Work.MESSAGES
    return Completion(rejected, applied, leasing.items), enqueued


def in_transaction(raw: sqlite3.Connection, body: Callable[[sqlite3.Connection], _T]) -> _T:
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
