"""Waiting for many instances at once: one watcher per client, whatever the number of waiters.

Every `wait_for_completion` of a client registers with its `CompletionWatcher`, and one task does
the reading for all of them. It wakes when the store announces instances that ended in this
process (`StateStore.on_ended`) and reads just those; and every `interval` (the shortest any
waiter asked for) it reads every waited instance in one query, which is how endings committed by
other processes are seen. So a thousand waiters cost what one does: no query per waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection

from asynkron_durable.history import InstanceRecord
from asynkron_durable.stores.base import StateStore

_READ_AT_ONCE = 1000
"""Instance ids per read: a statement's parameters stay a reasonable size."""

Ended = InstanceRecord | None
"""What a waiter learns: the terminal record, or None when the instance is gone (purged)."""


class CompletionWatcher:
    """The one reader of a client's waits (see the module docstring)."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._waiters: dict[str, list[tuple[asyncio.Future[Ended], float]]] = {}
        self._to_read: set[str] = set()
        """Ids to read at the next pass: new waiters, and instances announced as ended."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        store.on_ended(self._announced)

    async def wait(self, instance_id: str, interval: float) -> Ended:
        """The instance's record once it is terminal (None if it disappears). Another process's
        completion is seen within `interval` seconds; this process's at once."""
        future: asyncio.Future[Ended] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(instance_id, []).append((future, interval))
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
        left = [entry for entry in self._waiters.get(instance_id, []) if entry[0] is not future]
        if left:
            self._waiters[instance_id] = left
        else:
            self._waiters.pop(instance_id, None)

    async def _watch(self) -> None:
        """Read what is due until nobody waits; a failed read is tried again at the next pass."""
        while self._waiters:
            interval = min(entry[1] for entries in self._waiters.values() for entry in entries)
            timed_out = False
            if not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), interval)
                timed_out = not self._wake.is_set()
            self._wake.clear()
            due = set(self._waiters) if timed_out else self._to_read & set(self._waiters)
            self._to_read.clear()
            try:
                await self._read(sorted(due))
            except Exception as exc:  # the store is down: every waiter learns why
                for entries in list(self._waiters.values()):
                    for future, _ in entries:
                        if not future.done():
                            future.set_exception(exc)

    async def _read(self, instance_ids: list[str]) -> None:
        for start in range(0, len(instance_ids), _READ_AT_ONCE):
            chunk = instance_ids[start : start + _READ_AT_ONCE]
            records = await self._store.get_instances(chunk)
            for instance_id in chunk:
                record = records.get(instance_id)
                if record is None or record.runtime_status.is_terminal:
                    for future, _ in self._waiters.get(instance_id, []):
                        if not future.done():
                            future.set_result(record)
