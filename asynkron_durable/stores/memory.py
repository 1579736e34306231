"""The in-memory state store: the same semantics as the SQLite store, kept in dicts.

For tests, demos and single-process runs that need no durability. It is a real backend, not a fake:
leases, the version compare-and-swap, delayed visibility and message order all behave exactly as in
the SQL stores, so code tested against it behaves the same on disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from datetime import datetime

from asynkron_durable.errors import InstanceAlreadyExists, StoreError
from asynkron_durable.history import HistoryEvent, InstanceRecord
from asynkron_durable.stores._leasing import Leasing
from asynkron_durable.stores._memory_rows import Activity, Instance, Queued, lease_free
from asynkron_durable.stores._memory_workers import MemoryWorkers
from asynkron_durable.stores._paging import PageKey, decode_token, encode_token
from asynkron_durable.stores._subscribers import Subscribers
from asynkron_durable.stores.base import (
    ENTITY_ID_PREFIX,
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


def _sort_key(record: InstanceRecord) -> tuple[datetime, str]:
    return record.created_at, record.instance_id


def _matches(record: InstanceRecord, query: InstanceFilter) -> bool:
    return (
        (query.runtime_status is None or record.runtime_status in query.runtime_status)
        and (query.created_from is None or record.created_at >= query.created_from)
        and (query.created_to is None or record.created_at <= query.created_to)
        and (query.instance_id_prefix is None or record.instance_id.startswith(query.instance_id_prefix))
        and (query.name is None or record.name == query.name)
        and (query.entities is None or record.instance_id.startswith(ENTITY_ID_PREFIX) == query.entities)
    )


class InMemoryStateStore:
    """A `StateStore` in this process's memory; data lives as long as the object."""

    poll_interval_hint = 1.0
    """Only this process writes here, and every write wakes its workers: polls are a backstop."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._open = False
        self._instances: dict[str, Instance] = {}
        self._with_messages: set[str] = set()
        """Ids whose inbox may hold messages, so claims need not look at every instance; a
        superset, pruned by the claims that find an inbox empty or the instance gone."""
        self._activities: dict[int, Activity] = {}
        self._last_message_id = 0
        self._last_activity_id = 0
        self._subscribers = Subscribers()
        self.workers = MemoryWorkers(self._instances, self._activities, self._subscribers.notify)

    async def open(self) -> None:
        """Mark the store usable. Idempotent."""
        self._open = True

    async def close(self) -> None:
        """Mark the store closed; the data stays for a later `open()`. Idempotent."""
        self._open = False

    def subscribe(self, callback: Callable[[Work], None]) -> None:
        """Call `callback` after every operation that enqueued work."""
        self._subscribers.add(callback)

    def on_ended(self, callback: Callable[[Collection[str]], None]) -> None:
        """Call `callback` with the instances that ended or were purged here."""
        self._subscribers.add_ended(callback)

    async def unheard_mark(self) -> int:
        """Constant: only this store object writes its instances, and it announces every ending."""
        return 0

    async def get_instances(self, instance_ids: Sequence[str]) -> dict[str, InstanceRecord]:
        """The records of those of `instance_ids` that exist."""
        found = {i: self._instances.get(i) for i in instance_ids}
        return {i: instance.record for i, instance in found.items() if instance is not None}

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError("in-memory store is not open: call open() first")

    def _enqueue(self, message: Message) -> bool:
        instance = self._instances.get(message.instance_id)
        if instance is None:
            if message.creates is None:
                return False
            instance = self._instances[message.instance_id] = Instance(message.creates)
        self._last_message_id += 1
        instance.inbox[self._last_message_id] = Queued(
            self._last_message_id, message.event, message.execution_id, message.visible_at
        )
        self._with_messages.add(message.instance_id)
        return True

    def _delete(self, instance_id: str) -> bool:
        if self._instances.pop(instance_id, None) is None:
            return False
        doomed = [i for i, a in self._activities.items() if a.task.instance_id == instance_id]
        for activity_id in doomed:
            del self._activities[activity_id]
        return True

    def _put(self, new: NewInstance) -> None:
        """Insert `new`, replacing any instance with its id; versions keep growing across
        replacements so a stale commit for the old instance can never match the new one."""
        record = new.record
        old = self._instances.get(record.instance_id)
        if old is not None:
            self._delete(record.instance_id)
            if old.record.version >= record.version:
                record = record.model_copy(update={"version": old.record.version + 1})
        self._instances[record.instance_id] = Instance(record)
        self._enqueue(Message(record.instance_id, new.start_event, execution_id=record.execution_id))

    def _create_in_commit(self, new: NewInstance) -> bool:
        old = self._instances.get(new.record.instance_id)
        if old is not None and not old.record.runtime_status.is_terminal:
            return new.conflict_message is not None and self._enqueue(new.conflict_message)
        self._put(new)
        return True

    async def create_instance(self, new: NewInstance, *, replace: bool) -> None:
        """Create (or replace) an instance and enqueue its start message."""
        async with self._lock:
            self._check_open()
            old = self._instances.get(new.record.instance_id)
            if old is not None and not replace and not old.record.runtime_status.is_terminal:
                raise InstanceAlreadyExists(old.record.instance_id, old.record.runtime_status.value)
            self._put(new)
        self._subscribers.notify(Work.MESSAGES)

    async def create_instances(self, news: Sequence[NewInstance]) -> set[str]:
        """Create those of `news` whose ids are free; returns the ids in use."""
        taken: set[str] = set()
        async with self._lock:
            self._check_open()
            for new in distinct(news):
                if new.record.instance_id in self._instances:
                    taken.add(new.record.instance_id)
                else:
                    self._put(new)
        if len(taken) < len(news):
            self._subscribers.notify(Work.MESSAGES)
        return taken

    async def send_messages(self, messages: Sequence[Message]) -> None:
        """Enqueue messages; those for unknown instances are dropped."""
        async with self._lock:
            self._check_open()
            enqueued = [self._enqueue(message) for message in messages]
        if any(enqueued):
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
        async with self._lock:
            self._check_open()
            if limit <= 0:
                return []
            candidates: list[tuple[int, Instance]] = []
            for instance_id in list(self._with_messages):
                instance = self._instances.get(instance_id)
                if instance is None or not instance.inbox:
                    self._with_messages.discard(instance_id)
                    continue
                if not lease_free(instance.lease_owner, instance.lease_expires_at, now):
                    continue
                if names is not None and instance.record.name not in names:
                    continue
                first = next((q.message_id for q in instance.inbox.values() if q.visible(now)), None)
                if first is not None:
                    candidates.append((first, instance))
            candidates.sort(key=lambda candidate: candidate[0])
            items: list[OrchestrationWorkItem] = []
            for _, instance in candidates[:limit]:
                instance.lease_owner, instance.lease_expires_at = owner, lease_until
                messages = [
                    InboxMessage(q.message_id, q.event, q.execution_id)
                    for q in instance.inbox.values()
                    if q.visible(now)
                ]
                items.append(OrchestrationWorkItem(instance.record, messages))
            return items

    async def next_due(self, now: datetime) -> datetime | None:
        """The earliest future `visible_at` in any inbox (only those that may hold messages)."""
        async with self._lock:
            self._check_open()
            due = [
                q.visible_at
                for instance_id in self._with_messages
                if (instance := self._instances.get(instance_id)) is not None
                for q in instance.inbox.values()
                if q.visible_at is not None and q.visible_at > now
            ]
            return min(due, default=None)

    async def load_histories(self, instance_ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        """Each instance's current history, in order."""
        async with self._lock:
            self._check_open()
            histories: dict[str, list[HistoryEvent]] = {}
            for instance_id in instance_ids:
                instance = self._instances.get(instance_id)
                histories[instance_id] = [] if instance is None else list(instance.history)
            return histories

    def _apply_commit(self, owner: str, commit: EpisodeCommit, leasing: Leasing) -> Work | None:
        """Apply one commit: None if its CAS failed (nothing changed), else what it enqueued."""
        instance = self._instances.get(commit.record.instance_id)
        if (
            instance is None
            or instance.record.version != commit.expected_version
            or instance.lease_owner != owner
        ):
            return None
        return self._write_commit(instance, commit, leasing)

    def _write_commit(self, instance: Instance, commit: EpisodeCommit, leasing: Leasing) -> Work:
        """Write a commit whose checks passed; returns what it enqueued for others. Its activities
        are leased to the caller while `leasing` has room."""
        instance.record = commit.record.model_copy(update={"version": commit.expected_version + 1})
        instance.lease_owner = instance.lease_expires_at = None
        if commit.reset_history:
            instance.history = []
        instance.history.extend(commit.new_history)
        for message_id in commit.acknowledged_message_ids:
            instance.inbox.pop(message_id, None)
        messages = [self._create_in_commit(new) for new in commit.new_instances]
        messages += [self._enqueue(message) for message in commit.messages]
        work = Work.MESSAGES if any(messages) else Work.NONE
        for task in commit.activities:
            self._last_activity_id += 1
            activity = self._activities[self._last_activity_id] = Activity(task)
            lease_until = leasing.next_lease(task.name)
            if lease_until is None:
                work |= Work.ACTIVITIES
                continue
            activity.lease_owner, activity.lease_expires_at, activity.attempt = leasing.owner, lease_until, 1
            leasing.leased(self._last_activity_id, task)
        return work

    async def commit_episodes(
        self,
        owner: str,
        now: datetime,
        commits: Sequence[EpisodeCommit],
        claim: ActivityClaim | None = None,
    ) -> Committed:
        """Apply the commits; each is checked (version + lease) on its own."""
        rejected: set[str] = set()
        enqueued = Work.NONE
        leasing = Leasing(owner, claim)
        async with self._lock:
            self._check_open()
            for commit in commits:
                outcome = self._apply_commit(owner, commit, leasing)
                if outcome is None:
                    rejected.add(commit.record.instance_id)
                else:
                    enqueued |= outcome
        self._subscribers.notify(enqueued)
        self._subscribers.commits_ended(commits, rejected)
        return Committed(rejected, leasing.items)

    async def claim_activities(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        names: frozenset[str] | None = None,
    ) -> list[ActivityWorkItem]:
        """Lease the oldest unleased (or expired) activities."""
        async with self._lock:
            self._check_open()
            items: list[ActivityWorkItem] = []
            for activity_id, activity in self._activities.items():
                if len(items) >= limit:
                    break
                if names is not None and activity.task.name not in names:
                    continue
                if lease_free(activity.lease_owner, activity.lease_expires_at, now):
                    if activity.lease_owner != owner:  # its own lapsed lease back: no new attempt
                        activity.attempt += 1
                    activity.lease_owner, activity.lease_expires_at = owner, lease_until
                    items.append(ActivityWorkItem(activity_id, activity.task, activity.attempt))
            return items

    async def complete_activities(
        self,
        owner: str,
        now: datetime,
        results: Sequence[ActivityResult],
        steps: Sequence[ActivityStep] = (),
        claim: ActivityClaim | None = None,
    ) -> Completion:
        """Record plain results, apply the steps that still fit their instance (see
        `ActivityStep`), record the others' results as plain ones."""
        rejected: set[int] = set()
        applied: set[str] = set()
        leasing = Leasing(owner, claim)
        enqueued = Work.NONE
        async with self._lock:
            self._check_open()
            for result in results:
                if self._complete(owner, result, rejected):
                    enqueued |= Work.MESSAGES
            for step in steps:
                taken = [r for r in step.results if self._take_activity(owner, r.activity_id)]
                rejected.update(r.activity_id for r in step.results if r not in taken)
                instance = self._instances.get(step.commit.record.instance_id)
                if len(taken) == len(step.results) and self._fits_step(instance, step.commit, now):
                    assert instance is not None
                    enqueued |= self._write_commit(instance, step.commit, leasing)
                    applied.add(step.commit.record.instance_id)
                elif any([self._enqueue(r.message) for r in taken]):
                    enqueued |= Work.MESSAGES
        self._subscribers.notify(enqueued)
        self._subscribers.steps_ended(steps, applied)
        return Completion(rejected, applied, leasing.items)

    def _take_activity(self, owner: str, activity_id: int) -> bool:
        """Delete an activity if `owner` still leases it."""
        activity = self._activities.get(activity_id)
        if activity is None or activity.lease_owner != owner:
            return False
        del self._activities[activity_id]
        return True

    def _complete(self, owner: str, result: ActivityResult, rejected: set[int]) -> bool:
        if not self._take_activity(owner, result.activity_id):
            rejected.add(result.activity_id)
            return False
        return self._enqueue(result.message)

    @staticmethod
    def _fits_step(instance: Instance | None, commit: EpisodeCommit, now: datetime) -> bool:
        """Whether nothing happened to the instance since the step's executor last committed."""
        return (
            instance is not None
            and instance.record.version == commit.expected_version
            and lease_free(instance.lease_owner, instance.lease_expires_at, now)
            and not any(q.visible(now) for q in instance.inbox.values())
        )

    async def renew_leases(
        self,
        owner: str,
        lease_until: datetime,
        instance_ids: Sequence[str],
        activity_ids: Sequence[int],
    ) -> LeaseRenewal:
        """Extend the leases `owner` still holds; report the rest as lost."""
        lost_instances: set[str] = set()
        lost_activities: set[int] = set()
        async with self._lock:
            self._check_open()
            for instance_id in instance_ids:
                instance = self._instances.get(instance_id)
                if instance is None or instance.lease_owner != owner:
                    lost_instances.add(instance_id)
                else:
                    instance.lease_expires_at = lease_until
            for activity_id in activity_ids:
                activity = self._activities.get(activity_id)
                if activity is None or activity.lease_owner != owner:
                    lost_activities.add(activity_id)
                else:
                    activity.lease_expires_at = lease_until
        return LeaseRenewal(lost_instances, lost_activities)

    async def release_leases(
        self, owner: str, instance_ids: Sequence[str], activity_ids: Sequence[int]
    ) -> None:
        """Drop `owner`'s leases so the work can be claimed again at once (and say so, like new work)."""
        released = Work.NONE
        async with self._lock:
            self._check_open()
            leased: list[tuple[Instance | Activity, Work]] = []
            leased += [(i, Work.MESSAGES) for i in map(self._instances.get, instance_ids) if i is not None]
            leased += [(a, Work.ACTIVITIES) for a in map(self._activities.get, activity_ids) if a is not None]
            for item, work in leased:
                if item.lease_owner == owner:
                    item.lease_owner = item.lease_expires_at = None
                    if isinstance(item, Activity):  # given back, not lost: this start does not count
                        item.attempt = max(0, item.attempt - 1)
                    released |= work
        self._subscribers.notify(released)

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None."""
        async with self._lock:
            self._check_open()
            instance = self._instances.get(instance_id)
            return None if instance is None else instance.record

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current execution's history (empty when the instance does not exist)."""
        return (await self.load_histories([instance_id]))[instance_id]

    def _matching(self, query: InstanceFilter, after: PageKey | None) -> list[InstanceRecord]:
        start = None if after is None else (after.created_at, after.instance_id)
        records = [
            instance.record
            for instance in self._instances.values()
            if _matches(instance.record, query) and (start is None or _sort_key(instance.record) > start)
        ]
        return sorted(records, key=_sort_key)

    async def query_instances(
        self, filter: InstanceFilter, page_size: int, continuation_token: str | None
    ) -> InstancePage:
        """One page of matching instances by (created_at, instance_id), keyset-paged."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        after = None if continuation_token is None else decode_token(continuation_token)
        async with self._lock:
            self._check_open()
            records = self._matching(filter, after)
        page = records[:page_size]
        token = None
        if len(records) > page_size:
            token = encode_token(PageKey(page[-1].created_at, page[-1].instance_id))
        return InstancePage(page, token)

    async def purge_instance(self, instance_id: str, *, expected_version: int | None = None) -> bool:
        """Delete one instance and everything it owns (only if idle at `expected_version`, if given)."""
        async with self._lock:
            self._check_open()
            instance = self._instances.get(instance_id)
            if expected_version is not None and (
                instance is None or instance.record.version != expected_version or instance.inbox
            ):
                return False
            deleted = self._delete(instance_id)
        self._subscribers.ended([instance_id] if deleted else [])
        return deleted

    async def purge_instances(self, filter: InstanceFilter) -> int:
        """Delete every matching instance."""
        async with self._lock:
            self._check_open()
            doomed = self._matching(filter, None)
            for record in doomed:
                self._delete(record.instance_id)
        self._subscribers.ended([record.instance_id for record in doomed])
        return len(doomed)

    async def dead_letters(self, instance_id: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """None: messages kept here as objects are never undecodable."""
        return []
