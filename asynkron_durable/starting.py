"""Starts that batch themselves: the concurrent `start_new` calls of one client share transactions.

Each start joins a queue, and one task writes it out batch after batch with
`StateStore.create_instances` (one statement on PostgreSQL, one transaction on SQLite). While a
batch is being written the next one gathers, so a lone start waits for nobody and a thousand
concurrent starts cost a couple of transactions (group commit). A start whose id is in use is
answered False: the caller then takes the one-by-one way (`create_instance`), which replaces a
finished instance or raises `InstanceAlreadyExists`.
"""

from __future__ import annotations

import asyncio

from asynkron_durable.stores.base import NewInstance, StateStore

BATCH = 500
"""Starts per transaction at most: a statement's arrays stay a reasonable size."""


class StartBatcher:
    """The one writer of a client's starts (see the module docstring)."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._queue: list[tuple[NewInstance, asyncio.Future[bool]]] = []
        self._task: asyncio.Task[None] | None = None

    async def create(self, new: NewInstance) -> bool:
        """Create `new` with the next batch: True once it is stored, False if its id is in use."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((new, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write(), name="durable-start-batcher")
        return await future

    def _next_batch(self) -> list[tuple[NewInstance, asyncio.Future[bool]]]:
        """Up to BATCH queued starts with distinct ids; a repeated id waits for a later batch."""
        batch: list[tuple[NewInstance, asyncio.Future[bool]]] = []
        later: list[tuple[NewInstance, asyncio.Future[bool]]] = []
        ids: set[str] = set()
        for entry in self._queue:
            instance_id = entry[0].record.instance_id
            if entry[1].done():
                continue  # its caller gave up before it was written
            if len(batch) >= BATCH or instance_id in ids:
                later.append(entry)
                continue
            batch.append(entry)
            ids.add(instance_id)
        self._queue = later
        return batch

    async def _write(self) -> None:
        while self._queue:
            batch = self._next_batch()
            if not batch:
                continue
            try:
                taken = await self._store.create_instances([new for new, _ in batch])
            except asyncio.CancelledError:
                for _, future in [*batch, *self._queue]:
                    future.cancel()
                raise
            except Exception as exc:  # the store failed: every start of this batch learns why
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for new, future in batch:
                if not future.done():
                    future.set_result(new.record.instance_id not in taken)
