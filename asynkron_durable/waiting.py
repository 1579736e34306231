"""Waiting for many instances at once: one watcher per client, whatever the number of waiters.

Every `wait_for_completion` of a client registers with its `CompletionWatcher`, and one task does
the reading for all of them. It wakes when the store announces instances that ended
(`StateStore.on_ended`: those of this process, and on PostgreSQL those of every process) and reads
just those. Every `interval` (the shortest any waiter asks for) it asks the store whether endings
may have gone unannounced (`unheard_mark` moved: on SQLite, another process wrote) and only then
reads every waited instance, in one query per thousand; and every `FALLBACK` seconds it reads them
all anyway. So a thousand waiters cost what one does: no query per waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Collection

from asynkron_durable.history import InstanceRecord
from asynkron_durable.stores.base import StateStore

_READ_AT_ONCE = 1000
"""Instance ids per read: a statement's parameters stay a reasonable size."""

FALLBACK = 5.0
"""Seconds between reads of every waited instance when no store said any ended: the safety net
for endings nobody announced (such as those written by an older version of this library)."""

Ended = tuple[InstanceRecord | None, bool]
"""What a waiter learns: the terminal record, or None when the instance is gone (purged); and
whether the store holds any dead letters at all (if not, none can be this instance's)."""


class CompletionWatcher:
    """The one reader of a client's waits (see the module docstring)."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._waiters: dict[str, list[tuple[asyncio.Future[Ended], float]]] = {}
        self._intervals: Counter[float] = Counter()
        """How many waits asked for each interval: the shortest is found without a pass over all."""
        self._to_read: set[str] = set()
        """Ids to read at the next pass: new waiters, and instances announced as ended."""
        self._mark: int | None = None
        """The store's `unheard_mark` when this watcher last looked."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        store.on_ended(self._announced)

    async def wait(self, instance_id: str, interval: float) -> Ended:
        """The instance's record once it is terminal (None if it disappears). Another process's
        completion is seen within `interval` seconds; this process's at once."""
        future: asyncio.Future[Ended] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(instance_id, []).append((future, interval))
        self._intervals[interval] += 1
        self._to_read.add(instance_id)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(), name="durable-completion-watcher")
        try:
            return await future
        finally:
            self._forget(instance_id, future)

    def _announced(self, instance_ids: Collection[str]) -> None:
        waited = [instance_id for instance_id in instance_ids if instance_id in self._waiters]
        if waited:
            self._to_read.update(waited)
            self._wake.set()

    def _forget(self, instance_id: str, future: asyncio.Future[Ended]) -> None:
        entries = self._waiters.get(instance_id, [])
        for entry in entries:
            if entry[0] is future:
                self._intervals[entry[1]] -= 1
                if not self._intervals[entry[1]]:
                    del self._intervals[entry[1]]
        left = [entry for entry in entries if entry[0] is not future]
        if left:
            self._waiters[instance_id] = left
        else:
            self._waiters.pop(instance_id, None)

    async def _watch(self) -> None:
        """Read what is due until nobody waits; a failed read is tried again at the next pass.
        The interval is the shortest any waiter now asks for, so a new, more impatient waiter
        brings the next check forward (it wakes this loop)."""
        loop = asyncio.get_running_loop()
        last_check = last_full = -float("inf")
        while self._waiters:
            interval = min(self._intervals)
            if not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.0, last_check + interval - loop.time()))
            self._wake.clear()
            due = {instance_id for instance_id in self._to_read if instance_id in self._waiters}
            self._to_read.clear()
            now = loop.time()
            if now >= last_check + interval:
                last_check = now
                if now - last_full >= max(interval, FALLBACK) or await self._unheard():
                    due, last_full = set(self._waiters), now
            try:
                await self._read(sorted(due))
            except Exception as exc:  # the store is down: every waiter learns why
                for entries in list(self._waiters.values()):
                    for future, _ in entries:
                        if not future.done():
                            future.set_exception(exc)

    async def _unheard(self) -> bool:
        """Whether the store's mark moved since this watcher last looked (or cannot be read: then
        read everything, and let that read say what is wrong)."""
        try:
            mark = await self._store.unheard_mark()
        except Exception:
            return True
        moved, self._mark = mark != self._mark, mark
        return moved

    async def _read(self, instance_ids: list[str]) -> None:
        for start in range(0, len(instance_ids), _READ_AT_ONCE):
            chunk = instance_ids[start : start + _READ_AT_ONCE]
            records = await self._store.get_instances(chunk)
            ended = {
                instance_id: records.get(instance_id)
                for instance_id in chunk
                if instance_id not in records or records[instance_id].runtime_status.is_terminal
            }
            if not ended:
                continue
            any_dead_letters = await self._any_dead_letters()
            for instance_id, record in ended.items():
                for future, _ in self._waiters.get(instance_id, []):
                    if not future.done():
                        future.set_result((record, any_dead_letters))

    async def _any_dead_letters(self) -> bool:
        """One read for a whole batch of endings; if it fails, each waiter reads its own count."""
        try:
            return bool(await self._store.dead_letters(None, 1))
        except Exception:
            return True
