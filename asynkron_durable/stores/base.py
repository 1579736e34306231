"""The state-store protocol every backend implements, and the records that cross it.

A store never runs user code and never decides anything about orchestration semantics: it keeps
instances, their history, their inboxes and the activity queue, and it hands work out under leases.
Everything is batched (many items per round trip) and every episode commit is a compare-and-swap on
the instance's `version` plus the caller's lease, so many runtimes in many processes can share one.

All times are timezone-aware UTC datetimes passed in by the caller: stores have no clock of their own.

Claims never load history. A runtime keeps running orchestrations in memory between episodes and
replays history (`load_histories`) only for an instance it has no current executor for. It trusts
a kept executor only while the claimed record has exactly the `execution_id` and `version` that its
own commit wrote, so every store must move `version` on every write to an instance's record or
history (commits write `expected_version + 1`; replacing an instance counts up from the old
version), and give every new execution a fresh `execution_id`. A record still at version 0 was
never committed, so its history is empty and the runtime does not ask for it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from asynkron_durable.history import ENTITY_ID_PREFIX as ENTITY_ID_PREFIX
from asynkron_durable.history import (
    ExecutionStarted,
    HistoryEvent,
    InstanceRecord,
    RuntimeStatus,
)
from asynkron_durable.stores.workers import WorkerRegistry


class Work(enum.Flag):
    """What a wake-up announces was enqueued, so a runtime wakes only the loops that can take it
    (an activity loop woken by every new message would run empty claims)."""

    NONE = 0
    MESSAGES = enum.auto()
    """Inbox messages: instances to claim and run episodes for."""
    ACTIVITIES = enum.auto()
    """Activities to claim."""
    ANY = MESSAGES | ACTIVITIES
    """Either, or not known (a reconnected listener may have missed notifications of both)."""


@dataclass(frozen=True, slots=True)
class Message:
    """An event to put in an instance's inbox.

    `visible_at` delays delivery (durable timers, scheduled events); `None` means at once.
    `execution_id` pins the message to one execution: the runtime drops it if the instance has
    since continued-as-new or been restarted. Messages to instances that do not exist are dropped,
    unless `creates` is set: then the store first inserts that record (no start message, nothing
    replaced when the instance exists), which is how entities come into being with their first
    message.
    """

    instance_id: str
    event: HistoryEvent
    visible_at: datetime | None = None
    execution_id: str | None = None
    creates: InstanceRecord | None = None


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """A message as claimed from an inbox; `message_id` orders delivery and is acknowledged on commit."""

    message_id: int
    event: HistoryEvent
    execution_id: str | None


@dataclass(frozen=True, slots=True)
class NewInstance:
    """An instance to create: its Pending record plus the ExecutionStarted message that starts it.

    `conflict_message`: when the id belongs to a non-terminal instance, a store creating this inside
    an episode commit (sub-orchestrations) enqueues this message instead (the parent's failure event).
    """

    record: InstanceRecord
    start_event: ExecutionStarted
    conflict_message: Message | None = None


@dataclass(frozen=True, slots=True)
class ActivityTask:
    """An activity call to run: the function name, its JSON input and where to send the result."""

    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


@dataclass(frozen=True, slots=True)
class OrchestrationWorkItem:
    """A claimed instance: its current record and the inbox messages ready for it, oldest first."""

    record: InstanceRecord
    messages: list[InboxMessage]


@dataclass(frozen=True, slots=True)
class ActivityWorkItem:
    """A claimed activity; `attempt` counts the claims that were not given back (`release_leases`),
    by other owners than the one before: more than 1 after a worker died or lost the lease while it
    held it."""

    activity_id: int
    task: ActivityTask
    attempt: int


@dataclass(frozen=True, slots=True)
class ActivityResult:
    """The outcome of one activity: the completion message for its orchestration."""

    activity_id: int
    message: Message


@dataclass(frozen=True, slots=True)
class EpisodeCommit:
    """Everything one orchestration episode produced, applied atomically.

    The store checks that the instance's version is still `expected_version` and that `owner`
    still holds its lease; then it appends `new_history` (or replaces the history with it when
    `reset_history` is set, for continue-as-new and rewind), deletes the acknowledged inbox
    messages, writes `record` (with version `expected_version + 1`), creates `new_instances`,
    enqueues `messages` and `activities`, and releases the lease.
    """

    record: InstanceRecord
    expected_version: int
    new_history: list[HistoryEvent]
    acknowledged_message_ids: list[int]
    reset_history: bool = False
    messages: list[Message] = field(default_factory=list)
    activities: list[ActivityTask] = field(default_factory=list)
    new_instances: list[NewInstance] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ActivityStep:
    """Finished activities of one instance applied straight to its next episode by the worker that
    ran them and still holds the instance's executor in memory: no inbox message, no claim.

    `commit` is that episode; it acknowledges no message and leaves the instance unleased. The store
    applies it in place of the results' messages only while nothing else happened to the instance:
    every result's activity is still leased to the caller, the record still has
    `commit.expected_version`, nobody (the caller included) holds a live lease on it and no inbox
    message is visible for it. Otherwise the results are recorded as plain ones (their messages enqueued)."""

    results: tuple[ActivityResult, ...]
    commit: EpisodeCommit


@dataclass(frozen=True, slots=True)
class ActivityClaim:
    """Leasing on insert: the first `limit` activities a call's commits schedule are inserted
    leased to the caller until `lease_until` (attempt 1) and handed back as its `claimed` work, in
    schedule order, so the caller runs them without claiming (and a worker that keeps the
    orchestration in memory gets their results back as steps). With `names`, only activities of
    those names are leased (the others are left for a worker that runs them)."""

    lease_until: datetime
    limit: int
    names: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Committed:
    """What `commit_episodes` did."""

    rejected: set[str]
    """Instance ids whose commit was rejected (the version moved or the lease is not the caller's):
    nothing of those was applied."""
    claimed: list[ActivityWorkItem]
    """Activities the applied commits scheduled that were leased to the caller on insert (see
    `ActivityClaim`), in schedule order."""


@dataclass(frozen=True, slots=True)
class Completion:
    """What `complete_activities` did."""

    rejected: set[int]
    """Activity ids whose lease the caller had lost: nothing of those was applied."""
    applied: set[str]
    """Instance ids whose `ActivityStep` commit was applied."""
    claimed: list[ActivityWorkItem]
    """Activities the applied steps scheduled that were leased to the caller on insert (see
    `ActivityClaim`), in schedule order."""


@dataclass(frozen=True, slots=True)
class LeaseRenewal:
    """Which of the leases asked about are no longer held by the caller."""

    lost_instance_ids: set[str]
    lost_activity_ids: set[int]


@dataclass(frozen=True, slots=True)
class InstanceFilter:
    """Which instances a query or a bulk purge applies to; unset fields match everything.

    `created_from` and `created_to` are inclusive; an empty `runtime_status` set matches nothing.
    `entities`: True matches only entity instances (ids starting with `ENTITY_ID_PREFIX`), False
    only orchestrations, None both.
    """

    runtime_status: frozenset[RuntimeStatus] | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    instance_id_prefix: str | None = None
    name: str | None = None
    entities: bool | None = None


@dataclass(frozen=True, slots=True)
class UnreadableInstance:
    """A stored instance whose row cannot be decoded: its id and why (naming the column)."""

    instance_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class InstancePage:
    """One page of a query; pass `continuation_token` back to get the next (None: no more).
    Rows that cannot be decoded are in `unreadable` instead of failing the page."""

    instances: list[InstanceRecord]
    continuation_token: str | None
    unreadable: list[UnreadableInstance] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An inbox message that could not be decoded, moved aside so it neither blocked its
    instance's claims nor vanished: `event` is the stored text as it was, `error` why it failed."""

    message_id: int
    instance_id: str
    event: str
    error: str
    dead_at: datetime


@runtime_checkable
class StateStore(Protocol):
    """What the runtime and the client need from storage. See the module docstring for the rules."""

    poll_interval_hint: float
    """Seconds between an idle worker's polls that suit this store: short where other processes'
    writes are seen only by polling (SQLite), long where they are notified (PostgreSQL) or cannot
    happen (memory). Delayed messages are not polled for: see `next_due`."""

    @property
    def workers(self) -> WorkerRegistry:
        """The workers registered here and their heartbeats (see `stores/workers.py`)."""

    async def open(self) -> None:
        """Connect and create or migrate the schema. Idempotent."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    def subscribe(self, callback: Callable[[Work], None]) -> None:
        """Call `callback` (from the event loop) with the kinds of work whenever this store
        enqueues new work or gives leased work back, so idle workers in this process wake at once
        instead of waiting for their next poll, and only the loops that can take it."""

    def on_ended(self, callback: Callable[[Collection[str]], None]) -> None:
        """Call `callback` (from the event loop) with the ids of the instances this store object
        just committed into a terminal status or purged, so waiters in this process learn at once.
        Stores that hear other processes (PostgreSQL, by NOTIFY) announce their endings too."""

    async def unheard_mark(self) -> int:
        """A number that changes whenever instances may have ended without `on_ended` saying so
        (another process wrote and this store cannot hear it). A waiter that finds it different
        from the value it saw last must read to find out; reading it changes nothing, so any
        number of waiters may share one store."""

    async def get_instances(self, instance_ids: Sequence[str]) -> dict[str, InstanceRecord]:
        """The records of those of `instance_ids` that exist and can be read, in one read."""

    async def create_instance(self, new: NewInstance, *, replace: bool) -> None:
        """Create an instance and enqueue its start message.

        An existing instance with a terminal status is replaced (its history, inbox and queued
        activities are deleted). A non-terminal one raises `InstanceAlreadyExists` unless
        `replace` is set, in which case it is replaced the same way.
        """

    async def create_instances(self, news: Sequence[NewInstance]) -> set[str]:
        """Create, together, those of `news` whose ids no instance holds (not even a finished one),
        each with its start message; returns the ids that are in use, for the caller to start one
        by one with `create_instance`. The ids must be distinct (`distinct` checks)."""

    async def send_messages(self, messages: Sequence[Message]) -> None:
        """Enqueue messages for instances; messages to instances that do not exist are dropped."""

    async def claim_orchestrations(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        names: frozenset[str] | None = None,
    ) -> list[OrchestrationWorkItem]:
        """Lease up to `limit` instances that have inbox messages visible at `now` and no live
        lease (none, or expired before `now`), oldest message first; with `names`, only instances
        of those orchestrators and entities (`InstanceRecord.name`). Each item carries every
        visible message for its instance, in delivery order.

        Only records and messages: the caller loads history (`load_histories`) for the instances
        whose executor it does not hold in memory (see the module docstring).

        One corrupt row never blocks the rest: a stored backend moves an undecodable message aside
        (logged, kept for inspection) and stops handing out an instance whose record it cannot
        read (logged; `get_instance` raises `StoreError` naming it)."""

    async def next_due(self, now: datetime) -> datetime | None:
        """The earliest time after `now` at which a delayed message (a durable timer, a scheduled
        event) becomes visible, or None; idle workers sleep until then rather than poll for it."""

    async def load_histories(self, instance_ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        """The current execution's history of each instance (missing ids map to empty lists).
        Raises `StoreError` naming the instance if a stored event cannot be decoded.

        The runtime calls this after a claim, for the claimed orchestrations it must replay (no
        executor kept in memory, or one whose record version moved); never for entities."""

    async def commit_episodes(
        self,
        owner: str,
        now: datetime,
        commits: Sequence[EpisodeCommit],
        claim: ActivityClaim | None = None,
    ) -> Committed:
        """Apply the commits (see `EpisodeCommit`) in as few transactions as is safe; with a
        `claim`, activities of applied commits are leased to `owner` as they are inserted.

        A commit is rejected when the version moved or the lease is no longer `owner`'s; nothing of
        a rejected commit is applied, the others are."""

    async def claim_activities(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        names: frozenset[str] | None = None,
    ) -> list[ActivityWorkItem]:
        """Lease up to `limit` queued activities with no live lease, oldest first; with `names`,
        only activities of those names."""

    async def complete_activities(
        self,
        owner: str,
        now: datetime,
        results: Sequence[ActivityResult],
        steps: Sequence[ActivityStep] = (),
        claim: ActivityClaim | None = None,
    ) -> Completion:
        """For each result still leased by `owner`: delete the activity and enqueue its message;
        apply each step (see `ActivityStep`) or record its results as plain ones; all in one
        transaction. With a `claim`, activities the applied steps schedule are leased to `owner`
        as they are inserted."""

    async def renew_leases(
        self,
        owner: str,
        lease_until: datetime,
        instance_ids: Sequence[str],
        activity_ids: Sequence[int],
    ) -> LeaseRenewal:
        """Extend the caller's leases; reports the ones it no longer holds."""

    async def release_leases(
        self, owner: str, instance_ids: Sequence[str], activity_ids: Sequence[int]
    ) -> None:
        """Give leases back without committing, so another worker can claim the work at once. An
        activity given back keeps its `attempt` (the start does not count: it was not lost)."""

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None."""

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current execution's history (empty when the instance does not exist)."""

    async def query_instances(
        self, filter: InstanceFilter, page_size: int, continuation_token: str | None
    ) -> InstancePage:
        """Instances matching `filter`, ordered by creation time then id, one page at a time.
        Raises `ValueError` for a continuation token this store did not issue."""

    async def purge_instance(self, instance_id: str, *, expected_version: int | None = None) -> bool:
        """Delete an instance with its history, inbox and queued activities; False if absent.

        With `expected_version`, delete only if the record still has that version and its inbox
        is empty (no message, delayed or not), atomically: an idle entity is purged, one that
        just received a signal is kept."""

    async def purge_instances(self, filter: InstanceFilter) -> int:
        """Purge every instance matching `filter`; returns how many were deleted."""

    async def dead_letters(self, instance_id: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Messages moved aside as undecodable (see `claim_orchestrations`), newest first: those of
        `instance_id`, or of every instance. A store that never moves any returns []."""


def distinct(news: Sequence[NewInstance]) -> Sequence[NewInstance]:
    """`news`, checked to hold each instance id once (`create_instances` needs that)."""
    ids = {new.record.instance_id for new in news}
    if len(ids) != len(news):
        raise ValueError("create_instances needs distinct instance ids")
    return news
