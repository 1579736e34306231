"""The in-memory store's workers table: every worker shares this process, so a registered one whose
heartbeat stopped is stuck or was stopped without leaving, never a dead process."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime

from asynkron_durable.stores.workers import WorkerRecord


class MemoryWorkers:
    """A `WorkerRegistry` in a dict; `expire(owners, now)` ends those owners' leases in the store."""

    def __init__(self, expire: Callable[[set[str], datetime], None]) -> None:
        self._workers: dict[str, WorkerRecord] = {}
        self._expire = expire

    async def register(self, worker: WorkerRecord) -> None:
        """Add `worker`, or replace the record of the same id."""
        self._workers[worker.worker_id] = worker

    async def heartbeat(self, worker_id: str, now: datetime) -> bool:
        """Record that the worker is alive at `now`; False when it is not registered."""
        worker = self._workers.get(worker_id)
        if worker is None:
            return False
        self._workers[worker_id] = dataclasses.replace(worker, heartbeat_at=now)
        return True

    async def unregister(self, worker_id: str) -> None:
        """Remove the worker's record."""
        self._workers.pop(worker_id, None)

    async def registered(self) -> list[WorkerRecord]:
        """Every registered worker, oldest first; all share this process, which is alive."""
        ordered = sorted(self._workers.values(), key=lambda w: (w.started_at, w.worker_id))
        return [dataclasses.replace(worker, session_alive=True) for worker in ordered]

    async def remove_dead(self, workers: Sequence[WorkerRecord], now: datetime) -> list[str]:
        """Remove the listed workers that have not beaten since, and end their leases at `now`."""
        removed = {
            worker.worker_id
            for worker in workers
            if (current := self._workers.get(worker.worker_id)) is not None
            and current.heartbeat_at == worker.heartbeat_at
        }
        for worker_id in removed:
            del self._workers[worker_id]
        if removed:
            self._expire(removed, now)
        return sorted(removed)
