"""Keeping the leases of work in flight: every third of the lease duration, the worker renews the
leases of the instances it holds and the activities it runs, and says which it lost; meanwhile its
heartbeat tells the others it is alive (`presence.py`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import timedelta

from asynkron_durable.history import utc_now
from asynkron_durable.stores.base import StateStore
from asynkron_durable.worker.presence import Presence
from asynkron_durable.worker.retry_log import RetryLog

log = logging.getLogger("asynkron_durable.runtime")


Held = Callable[[], tuple[Collection[str], Collection[int]]]
"""What a worker holds leases on: instance ids and activity ids to renew."""
Executing = Callable[[int], bool]
"""Whether an activity is still running (not finished and perhaps recorded, its row gone, by the
time a renewal ran): only those are worth a warning when their lease is lost."""


async def keep_alive(presence: Presence, lease_duration: timedelta, held: Held, executing: Executing) -> None:
    """Beat the worker's heartbeat and renew what `held()` names until cancelled; then unregister
    (cancel it once the worker has given back what it will not finish)."""
    try:
        await asyncio.gather(
            presence.run(),
            renew_leases_forever(
                presence.store, presence.worker_id, lease_duration, (held, executing), presence.retries
            ),
        )
    finally:
        await presence.leave()


async def renew_leases_forever(
    store: StateStore,
    worker_id: str,
    lease_duration: timedelta,
    holding: tuple[Held, Executing],
    retries: RetryLog,
) -> None:
    """Renew what `held()` names (instance ids, activity ids) until cancelled."""
    held, executing = holding
    interval = lease_duration.total_seconds() / 3
    while True:
        await asyncio.sleep(interval)
        instance_ids, activity_ids = held()
        if not activity_ids and not instance_ids:
            continue
        try:
            renewal = await store.renew_leases(
                worker_id, utc_now() + lease_duration, list(instance_ids), list(activity_ids)
            )
        except Exception as exc:
            retries.failed("renewing leases failed", exc)
            continue
        retries.recovered("renewing leases failed")
        for activity_id in renewal.lost_activity_ids:
            if executing(activity_id):
                log.warning("lease on activity %s was lost while it ran", activity_id)


class PendingReleases:
    """Instance leases to give back that the store refused to take (its connection dropped, say):
    tried again before the next round, so the instances do not wait out a whole lease."""

    def __init__(self) -> None:
        self._ids: set[str] = set()

    async def give_back(self, store: StateStore, worker_id: str, instance_ids: Collection[str]) -> None:
        """Release `instance_ids` (and any still owed); what fails is kept for `retry`."""
        self._ids.update(instance_ids)
        await self.retry(store, worker_id)

    async def retry(self, store: StateStore, worker_id: str) -> None:
        """Release the leases still owed, if any; keep them if the store fails again."""
        if not self._ids:
            return
        owed = list(self._ids)
        try:
            await store.release_leases(worker_id, owed, [])
        except Exception:
            return
        self._ids.difference_update(owed)


async def give_back_activities(store: StateStore, worker_id: str, activity_ids: Sequence[int]) -> None:
    """Release activity leases this worker will not run; if that fails they lapse and run elsewhere."""
    if not activity_ids:
        return
    try:
        await store.release_leases(worker_id, [], activity_ids)
    except Exception:
        log.exception("giving back %d activity leases failed; they expire instead", len(activity_ids))


async def drain(running: Mapping[int, asyncio.Task[None]], timeout: float) -> list[int]:
    """Give the running activities `timeout` seconds to finish at shutdown; cancel the rest and
    return their ids (their leases are to be given back, for another worker to run them)."""
    unfinished = [task for task in running.values() if not task.done()]
    if not unfinished:
        return []
    _, pending = await asyncio.wait(unfinished, timeout=timeout)
    abandoned = [activity_id for activity_id, task in running.items() if task in pending]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if abandoned:
        log.warning("releasing %d unfinished activities at shutdown", len(abandoned))
    return abandoned
