"""Deciding a batch of episode commits (or one creation) against the instance rows it locked, and
writing the outcome.

The PostgreSQL store locks every instance a batch touches, then decides here, commit by commit and
in order, exactly what applying them one at a time would do: the compare-and-swap, conflicts with
running instances, replacing finished ones, dropping messages to instances that do not exist. The
outcome is written with one statement per kind of change, however many commits the batch holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asynkron_durable.errors import StoreError
from asynkron_durable.history import HistoryEvent, InstanceRecord, events_to_json
from asynkron_durable.stores._postgres_codec import (
    TERMINAL,
    activity_columns,
    message_columns,
    record_columns,
    transpose,
)
from asynkron_durable.stores._postgres_listener import ended_prefix
from asynkron_durable.stores.base import (
    ActivityTask,
    ActivityWorkItem,
    EpisodeCommit,
    Message,
    NewInstance,
    Work,
)


@dataclass(frozen=True, slots=True)
class LockedRow:
    """What the decisions need to know about one instance (as locked, or as decided so far)."""

    runtime_status: str
    version: int
    lease_owner: str | None

    @classmethod
    def from_row(cls, row: Any) -> LockedRow:
        """From a `lock_instances` row."""
        return cls(row["runtime_status"], row["version"], row["lease_owner"])

    @property
    def terminal(self) -> bool:
        """Whether a new instance with this id may replace it."""
        return self.runtime_status in TERMINAL


def touched_ids(commits: Iterable[EpisodeCommit]) -> set[str]:
    """Every instance a batch may read or write: its own, message targets, new instances."""
    ids: set[str] = set()
    for commit in commits:
        ids.add(commit.record.instance_id)
        ids.update(message.instance_id for message in commit.messages)
        for new in commit.new_instances:
            ids.add(new.record.instance_id)
            if new.conflict_message is not None:
                ids.add(new.conflict_message.instance_id)
    return ids


class CommitPlan:
    """The writes of a batch, decided in order against `rows` (every touched instance that exists,
    locked by the caller until its transaction ends)."""

    def __init__(self, owner: str, rows: dict[str, LockedRow]) -> None:
        self.owner = owner
        self._existing = set(rows)
        self._state = dict(rows)
        self.rejected: set[str] = set()
        self.committed: list[tuple[InstanceRecord, int, int, bool]] = []
        self.reset: list[str] = []
        self.replaced: set[str] = set()
        self.created: dict[str, tuple[InstanceRecord, int]] = {}
        self.history: dict[str, list[HistoryEvent]] = {}
        """Each instance's new events, appended as one history row."""
        self.acks: list[tuple[str, int]] = []
        self.messages: list[Message] = []
        self.activities: list[ActivityTask] = []
        self.leased: list[ActivityTask] = []
        """Activities of steps to insert leased to the owner (see `step`)."""
        self.claimed: list[ActivityWorkItem] = []
        """`leased` as inserted, with their ids (filled in by `Writer.apply`)."""

    def commit(
        self, commit: EpisodeCommit, claim_limit: int = 0, claim_names: frozenset[str] | None = None
    ) -> None:
        """Apply `commit` if the instance still has its version and the owner's lease, else reject
        it; its activities (of `claim_names`, if given) are leased to the owner while fewer than
        `claim_limit` are."""
        instance_id = commit.record.instance_id
        row = self._state.get(instance_id)
        if row is None or row.version != commit.expected_version or row.lease_owner != self.owner:
            self.rejected.add(instance_id)
            return
        self._apply(commit, step=False)
        self._schedule(commit, claim_limit, claim_names)

    def step(
        self, commit: EpisodeCommit, claim_limit: int, claim_names: frozenset[str] | None = None
    ) -> None:
        """Apply an activity step's commit, whose checks the caller made under the row lock (see
        `ActivityStep`); its activities are leased as `commit`'s are."""
        self._apply(commit, step=True)
        self._schedule(commit, claim_limit, claim_names)

    def _schedule(self, commit: EpisodeCommit, claim_limit: int, claim_names: frozenset[str] | None) -> None:
        for task in commit.activities:
            takes = claim_names is None or task.name in claim_names
            if takes and len(self.leased) < claim_limit:
                self.leased.append(task)
            else:
                self.activities.append(task)

    def has_messages_for(self, instance_id: str) -> bool:
        """Whether the batch so far enqueues a message for `instance_id` (a step must then wait)."""
        return any(message.instance_id == instance_id for message in self.messages)

    def _apply(self, commit: EpisodeCommit, *, step: bool) -> None:
        instance_id = commit.record.instance_id
        version = commit.expected_version + 1
        self._state[instance_id] = LockedRow(commit.record.runtime_status.value, version, None)
        self.committed.append((commit.record, version, commit.expected_version, step))
        if commit.reset_history:
            self.reset.append(instance_id)
        # One commit per instance and batch (a second finds the lease gone; steps apply once per
        # instance); were there two, commit_instances would update one row for both and `apply` raise.
        if commit.new_history:
            self.history[instance_id] = list(commit.new_history)
        self.acks += [(instance_id, message_id) for message_id in commit.acknowledged_message_ids]
        for new in commit.new_instances:
            old = self._state.get(new.record.instance_id)
            if old is None or old.terminal:
                self.create(new)
            elif new.conflict_message is not None:
                self.enqueue(new.conflict_message)
        for message in commit.messages:
            self.enqueue(message)

    def create(self, new: NewInstance) -> None:
        """Create `new`, replacing any instance with its id. The version keeps growing across
        replacements so a stale commit for the old instance can never match the new one."""
        record = new.record
        instance_id = record.instance_id
        version = record.version
        old = self._state.get(instance_id)
        if old is not None:
            version = max(version, old.version + 1)
            self._wipe(instance_id)
        self._state[instance_id] = LockedRow(record.runtime_status.value, version, None)
        self.created[instance_id] = (record, version)
        self.enqueue(Message(instance_id, new.start_event, execution_id=record.execution_id))

    def enqueue(self, message: Message) -> None:
        """Queue `message`, unless its instance does not exist at this point of the batch and the
        message does not create it (`Writer.insert_messages` then inserts the record)."""
        if message.instance_id not in self._state:
            if message.creates is None:
                return
            record = message.creates
            self._state[message.instance_id] = LockedRow(record.runtime_status.value, record.version, None)
        self.messages.append(message)

    def _wipe(self, instance_id: str) -> None:
        """Forget what the batch wrote so far for an instance it now replaces, as replacing deletes it."""
        if instance_id in self._existing:
            self.replaced.add(instance_id)
        self.history.pop(instance_id, None)
        self.acks = [a for a in self.acks if a[0] != instance_id]
        self.messages = [m for m in self.messages if m.instance_id != instance_id]
        self.activities = [a for a in self.activities if a.instance_id != instance_id]
        self.leased = [a for a in self.leased if a.instance_id != instance_id]

    # ----- the column arrays of each statement --------------------------------------------------

    def commit_columns(self) -> list[list[Any]]:
        """`commit_instances`: the 12 record arrays, the expected versions, which are steps."""
        records = [(record, version) for record, version, _, _ in self.committed]
        return [
            *record_columns(records),
            [expected for _, _, expected, _ in self.committed],
            [step for _, _, _, step in self.committed],
        ]

    def created_columns(self, *, existing: bool) -> list[list[Any]]:
        """`replace_instances` (existing ids) or `insert_instances` (new ids): the record arrays."""
        rows = [row for key, row in self.created.items() if (key in self._existing) == existing]
        return record_columns(rows) if rows else []

    def history_columns(self) -> list[list[Any]]:
        """`append_history`: instance ids, each one's new events as one JSON array."""
        return [list(self.history), [events_to_json(events) for events in self.history.values()]]

    def ack_columns(self) -> list[list[Any]]:
        """`ack_messages`: instance ids, message ids."""
        return transpose(self.acks)

    def activity_columns(self) -> list[list[Any]]:
        """`insert_activities`: the task arrays."""
        return activity_columns(self.activities)


def _creations(messages: Sequence[Message]) -> list[tuple[InstanceRecord, int]]:
    """The records messages create their targets with (the first per target), in id order so
    `ensure_instances` locks rows in the order every writer does."""
    records: dict[str, InstanceRecord] = {}
    for message in messages:
        if message.creates is not None and message.instance_id not in records:
            record = message.creates
            if record.instance_id != message.instance_id:
                record = record.model_copy(update={"instance_id": message.instance_id})
            records[message.instance_id] = record
    return [(records[instance_id], records[instance_id].version) for instance_id in sorted(records)]


def _after_creation(messages: Sequence[Message], created: set[str]) -> list[Message]:
    """`messages` less those to an instance just `created` that come before the first message
    creating it: applied in order, they would have found it missing and been dropped."""
    kept: list[Message] = []
    for message in messages:
        if message.instance_id in created and message.creates is None:
            continue
        created.discard(message.instance_id)
        kept.append(message)
    return kept


@dataclass(frozen=True, slots=True)
class Writer:
    """Locks instances and writes plans and messages with one store's statements."""

    queries: dict[str, str]
    wake_messages: tuple[str, str]
    """The NOTIFY channel and payload a statement enqueueing messages sends when it added rows."""
    wake_activities: tuple[str, str]
    """The same for activities."""
    ended: tuple[str, str]
    """The NOTIFY channel and store token with which instances that end are announced."""
    where: str

    async def lock(self, conn: Any, instance_ids: set[str]) -> dict[str, LockedRow]:
        """Lock the existing ones of `instance_ids` (in id order) and read what decisions need."""
        rows = await conn.fetch(self.queries["lock_instances"], sorted(instance_ids))
        return {row["instance_id"]: LockedRow.from_row(row) for row in rows}

    async def lock_for_steps(
        self, conn: Any, instance_ids: set[str], now: datetime
    ) -> tuple[dict[str, LockedRow], set[str]]:
        """As `lock`, plus the ids free for an activity step (unleased, no visible message)."""
        rows = await conn.fetch(self.queries["lock_step_instances"], sorted(instance_ids), now)
        return {row["instance_id"]: LockedRow.from_row(row) for row in rows}, {
            row["instance_id"] for row in rows if row["free"]
        }

    async def apply(self, conn: Any, plan: CommitPlan, lease_until: datetime | None = None) -> Work:
        """Write a decided plan, one statement per kind of change; returns what it enqueued for
        others. Its `leased` activities are leased to its owner until `lease_until`."""
        q = self.queries
        if plan.committed:
            channel, token = self.ended
            tell = (channel, ended_prefix(token), list(TERMINAL))
            row = await conn.fetchrow(q["commit_instances"], plan.owner, *plan.commit_columns(), *tell)
            if row["updated"] != len(plan.committed):
                raise StoreError(
                    f"{self.where}: locked instances changed during a commit "
                    f"({row['updated']} of {len(plan.committed)} updated)"
                )
        if plan.replaced or plan.reset:
            await conn.execute(q["wipe_instances"], sorted(plan.replaced), plan.reset)
        for query, existing in (("insert_instances", False), ("replace_instances", True)):
            columns = plan.created_columns(existing=existing)
            if columns:
                await conn.execute(q[query], *columns)
        if plan.history:
            await conn.execute(q["append_history"], *plan.history_columns())
        if plan.acks:
            await conn.execute(q["ack_messages"], *plan.ack_columns())
        enqueued = Work.MESSAGES if await self.insert_messages(conn, plan.messages) else Work.NONE
        if plan.leased:  # first: the leased are the first scheduled, and ids follow schedule order
            await self._insert_leased(conn, plan, lease_until)
        if plan.activities:
            columns = plan.activity_columns()
            if await self._enqueue(conn, "insert_activities", self.wake_activities, columns):
                enqueued |= Work.ACTIVITIES
        return enqueued

    async def delete(self, conn: Any, instance_ids: Sequence[str]) -> list[str]:
        """Delete instances (locked by the caller) and all they own; returns the ids deleted, which
        other processes' waiters hear of when the transaction commits."""
        channel, token = self.ended
        rows = await conn.fetch(
            self.queries["delete_instances"], list(instance_ids), channel, ended_prefix(token)
        )
        return [row["instance_id"] for row in rows]

    async def _insert_leased(self, conn: Any, plan: CommitPlan, lease_until: datetime | None) -> None:
        if lease_until is None:
            raise StoreError(f"{self.where}: leased activities need a lease_until")
        columns = activity_columns(plan.leased)
        rows = await conn.fetch(self.queries["insert_leased_activities"], plan.owner, lease_until, *columns)
        ids = {(row["instance_id"], row["task_id"]): row["activity_id"] for row in rows}
        plan.claimed = [ActivityWorkItem(ids[(t.instance_id, t.task_id)], t, 1) for t in plan.leased]

    async def insert_messages(self, conn: Any, messages: Sequence[Message]) -> int:
        """Enqueue `messages` (dropping those to unknown instances, after creating the missing
        targets of those that create theirs); returns how many were."""
        creations = _creations(messages)
        if creations:
            rows = await conn.fetch(self.queries["ensure_instances"], *record_columns(creations))
            messages = _after_creation(messages, {row["instance_id"] for row in rows})
        if not messages:
            return 0
        return await self._enqueue(conn, "insert_messages", self.wake_messages, message_columns(messages))

    async def _enqueue(self, conn: Any, query: str, wake: tuple[str, str], columns: list[list[Any]]) -> int:
        row = await conn.fetchrow(self.queries[query], *wake, *columns)
        return int(row["enqueued"])
