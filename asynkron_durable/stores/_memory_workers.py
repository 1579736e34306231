"""The in-memory store's workers table: every worker shares this process, so a registered one whose
heartbeat stopped is stuck or was stopped without leaving, never a dead process."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime

from asynkron_durable.stores._memory_rows import Activity, Instance, lease_free
from asynkron_durable.stores.base import Work
from asynkron_durable.stores.workers import Unserved, WorkerRecord


class MemoryWorkers:
    """A `WorkerRegistry` in a dict, over the store's own `instances` and `activities`."""

    def __init__(
        self,
        instances: dict[str, Instance],
        activities: dict[int, Activity],
        notify: Callable[[Work], None],
    ) -> None:
        self._workers: dict[str, WorkerRecord] = {}
        self._instances = instances
        self._activities = activities
        self._notify = notify

    async def register(self, worker: WorkerRecord) -> None:
        """Add `worker`, or replace the record of the same id."""
        self._workers[worker.worker_id] = dataclasses.replace(worker, session_alive=None)

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
        if not removed:
            return []
        leased: list[tuple[Instance | Activity, Work]] = []
        leased += [(instance, Work.MESSAGES) for instance in self._instances.values()]
        leased += [(activity, Work.ACTIVITIES) for activity in self._activities.values()]
        expired = Work.NONE
        for item, work in leased:
            if item.lease_owner in removed and not lease_free(item.lease_owner, item.lease_expires_at, now):
                item.lease_expires_at = now
                expired |= work
        self._notify(expired)
        return sorted(removed)

    async def unserved(
        self, now: datetime, instance_names: frozenset[str], activity_names: frozenset[str]
    ) -> Unserved:
        """Names of ready, unleased instances and activities that are not among those given."""
        instances = {
            instance.record.name
            for instance in self._instances.values()
            if instance.record.name not in instance_names
            and lease_free(instance.lease_owner, instance.lease_expires_at, now)
            and any(message.visible(now) for message in instance.inbox.values())
        }
        activities = {
            activity.task.name
            for activity in self._activities.values()
            if activity.task.name not in activity_names
            and lease_free(activity.lease_owner, activity.lease_expires_at, now)
        }
        return Unserved(frozenset(instances), frozenset(activities))
