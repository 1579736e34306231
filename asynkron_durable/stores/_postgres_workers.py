"""The PostgreSQL store's workers table. Each heartbeat records the database session that wrote it;
a worker whose process died loses its sessions at once, which every other worker can see in
`pg_stat_activity` without waiting for the heartbeat to age."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from asynkron_durable.stores.base import Work
from asynkron_durable.stores.workers import Unserved, WorkerRecord

Fetch = Callable[..., Awaitable[list[Any]]]
"""`PostgresConnection._fetch`: (operation, query name, *arguments) -> rows."""


class PostgresWorkers:
    """A `WorkerRegistry` in the `workers` table. `wake` is (channel, messages payload, activities
    payload) for NOTIFY; `notify` wakes this process's workers."""

    def __init__(self, fetch: Fetch, wake: tuple[str, str, str], notify: Callable[[Work], None]) -> None:
        self._fetch = fetch
        self._wake = wake
        self._notify = notify

    async def register(self, worker: WorkerRecord) -> None:
        """Add `worker`, or replace the record of the same id."""
        await self._fetch(
            "register_worker",
            "register_worker",
            worker.worker_id,
            worker.host,
            worker.pid,
            worker.started_at,
            worker.heartbeat_at,
            sorted(worker.instance_names),
            sorted(worker.activity_names),
            worker.version,
        )

    async def heartbeat(self, worker_id: str, now: datetime) -> bool:
        """Record that the worker is alive at `now`; False when it is not registered."""
        return bool(await self._fetch("heartbeat_worker", "heartbeat_worker", worker_id, now))

    async def unregister(self, worker_id: str) -> None:
        """Remove the worker's record."""
        await self._fetch("unregister_worker", "unregister_worker", worker_id)

    async def registered(self) -> list[WorkerRecord]:
        """Every registered worker, oldest first, with whether its last session is still open."""
        rows = await self._fetch("list_workers", "list_workers")
        return [
            WorkerRecord(
                row["worker_id"],
                row["host"],
                row["pid"],
                row["started_at"],
                row["heartbeat_at"],
                row["session_alive"],
                frozenset(row["instance_names"]),
                frozenset(row["activity_names"]),
                row["package_version"],
            )
            for row in rows
        ]

    async def remove_dead(self, workers: Sequence[WorkerRecord], now: datetime) -> list[str]:
        """Remove the listed workers that have not beaten since, and end their leases at `now`."""
        if not workers:
            return []
        rows = await self._fetch(
            "remove_dead_workers",
            "remove_dead_workers",
            [worker.worker_id for worker in workers],
            [worker.heartbeat_at for worker in workers],
            now,
            *self._wake,
        )
        expired = Work.NONE
        for row in rows:
            expired |= (Work.MESSAGES if row["instances"] else Work.NONE) | (
                Work.ACTIVITIES if row["activities"] else Work.NONE
            )
        self._notify(expired)
        return sorted(row["worker_id"] for row in rows)

    async def unserved(
        self, now: datetime, instance_names: frozenset[str], activity_names: frozenset[str]
    ) -> Unserved:
        """Names of ready, unleased instances and activities that are not among those given."""
        instances = await self._fetch("unserved", "unserved_instance_names", now, list(instance_names))
        activities = await self._fetch("unserved", "unserved_activity_names", now, list(activity_names))
        return Unserved(frozenset(r["name"] for r in instances), frozenset(r["name"] for r in activities))
