"""Being seen alive, and seeing who is not. Every runtime registers in its store and beats a
heartbeat there each `interval`; every beat also looks at the others and takes for dead a worker
that has been silent for `timeout`, or silent for a few beats while the store sees its process or
database session gone (a killed worker on SQLite or PostgreSQL: taken over within seconds). The
store then ends the dead worker's leases, so its instances and activities are claimed at once
instead of when their leases run out.

A worker taken for dead while still alive (stalled longer than `timeout`) only loses its leases:
its later commits are refused like those of any worker that lost a lease, and it registers again.

Each worker claims only the work its app registers, and records those names with its heartbeat.
Work whose name no live worker has registered for `unserved_timeout` is then claimed as well, by
every worker, to fail as unknown (an orchestration fails, an activity call fails, an entity
operation fails its caller), so a typo or a removed function ends instead of waiting for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from datetime import datetime, timedelta
from importlib import metadata

from asynkron_durable.history import utc_now
from asynkron_durable.registry import Duration, Registry, seconds
from asynkron_durable.stores.base import StateStore
from asynkron_durable.stores.workers import WorkerRecord
from asynkron_durable.worker.retry_log import RetryLog

log = logging.getLogger("asynkron_durable.runtime")

_BEATS_BEFORE_GONE = 3
"""Beats a worker whose process or session is seen gone may miss before it is taken for dead: its
session may be a pooled connection the pool just closed, and the next beat records another."""


def beat_interval(timeout: float) -> float:
    """Seconds between heartbeats for a `timeout`: once a second, more often for short timeouts."""
    return min(1.0, timeout / 5)


def dead_workers(
    workers: Sequence[WorkerRecord], now: datetime, timeout: float, me: str
) -> list[WorkerRecord]:
    """The workers other than `me` to take for dead at `now` (see the module docstring)."""
    gone_after = timedelta(seconds=min(timeout, _BEATS_BEFORE_GONE * beat_interval(timeout)))
    silent_after = timedelta(seconds=timeout)
    return [
        worker
        for worker in workers
        if worker.worker_id != me
        and (
            now - worker.heartbeat_at > silent_after
            or (worker.session_alive is False and now - worker.heartbeat_at > gone_after)
        )
    ]


def package_version() -> str:
    """The installed version of asynkron-durable ("" when it runs from a source tree)."""
    try:
        return metadata.version("asynkron-durable")
    except metadata.PackageNotFoundError:
        return ""


class Presence:
    """One runtime's registration: `run` until cancelled, then `leave`. `instance_names` and
    `activity_names` are what the runtime claims: its registry's, and the unserved ones it fails."""

    def __init__(
        self,
        store: StateStore,
        worker_id: str,
        timeout: Duration,
        retries: RetryLog,
        registry: Registry,
        unserved_timeout: Duration | None,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self._timeout = seconds(timeout, "worker_timeout")
        self.retries = retries
        self._registry = registry
        self._unserved_timeout = (
            None if unserved_timeout is None else seconds(unserved_timeout, "unserved_timeout")
        )
        self._unserved_since: dict[tuple[str, str], datetime] = {}
        """(kind, name) of work nobody serves, with when this worker first saw it unserved."""
        self._failing: dict[str, frozenset[str]] = {"instance": frozenset(), "activity": frozenset()}
        self._next_unserved_check: datetime | None = None
        """Ready work is searched for unserved names every tenth of `unserved_timeout`, not every
        beat: the search reads the whole backlog."""
        self._started_at = utc_now()

    def instance_names(self) -> frozenset[str]:
        """The orchestrators and entities to claim instances of."""
        return self._registry.instance_names() | self._failing["instance"]

    def activity_names(self) -> frozenset[str]:
        """The activities to claim."""
        return self._registry.activity_names() | self._failing["activity"]

    async def run(self) -> None:
        """Register, then beat and look for dead workers every `beat_interval` until cancelled."""
        self._started_at = utc_now()
        registered = False
        while True:
            try:
                now = utc_now()
                if not registered or not await self.store.workers.heartbeat(self.worker_id, now):
                    if registered:
                        log.warning(
                            "worker %s was taken for dead (no heartbeat for %.0f s) and its leases "
                            "were ended; registering again",
                            self.worker_id,
                            self._timeout,
                        )
                    await self.store.workers.register(self._record(now))
                    registered = True
                await self._sweep(now)
                self.retries.recovered("heartbeat failed")
            except Exception as exc:
                self.retries.failed("heartbeat failed", exc)
            await asyncio.sleep(beat_interval(self._timeout))

    async def leave(self) -> None:
        """Unregister (once this worker's leases are given back); if that fails, the others remove
        the record when its heartbeat ages."""
        with contextlib.suppress(Exception):
            await self.store.workers.unregister(self.worker_id)

    def _record(self, now: datetime) -> WorkerRecord:
        return WorkerRecord(
            self.worker_id,
            socket.gethostname(),
            os.getpid(),
            self._started_at,
            now,
            instance_names=self._registry.instance_names(),
            activity_names=self._registry.activity_names(),
            version=package_version(),
        )

    async def _sweep(self, now: datetime) -> None:
        workers = await self.store.workers.registered()
        dead = dead_workers(workers, now, self._timeout, self.worker_id)
        due = self._next_unserved_check is None or now >= self._next_unserved_check
        if self._unserved_timeout is not None and due:
            self._next_unserved_check = now + timedelta(seconds=self._unserved_timeout / 10)
            gone = {worker.worker_id for worker in dead}
            await self._find_unserved([w for w in workers if w.worker_id not in gone], now)
        if not dead:
            return
        removed = set(await self.store.workers.remove_dead(dead, now))
        for worker in dead:
            if worker.worker_id in removed:
                why = "its process or session is gone" if worker.session_alive is False else "silent"
                log.warning(
                    "worker %s (pid %d on %s) taken for dead after %.1f s (%s): its work is taken over",
                    worker.worker_id,
                    worker.pid,
                    worker.host,
                    (now - worker.heartbeat_at).total_seconds(),
                    why,
                )

    async def _find_unserved(self, live: Sequence[WorkerRecord], now: datetime) -> None:
        """Note the names of ready work no live worker serves; fail those unserved for long."""
        assert self._unserved_timeout is not None
        served_instances = self._registry.instance_names().union(*(w.instance_names for w in live))
        served_activities = self._registry.activity_names().union(*(w.activity_names for w in live))
        unserved = await self.store.workers.unserved(now, served_instances, served_activities)
        seen = {("instance", name) for name in unserved.instance_names}
        seen |= {("activity", name) for name in unserved.activity_names}
        for key in list(self._unserved_since):
            if key not in seen:
                del self._unserved_since[key]
        late = timedelta(seconds=self._unserved_timeout)
        failing: dict[str, set[str]] = {"instance": set(), "activity": set()}
        for kind, name in seen:
            since = self._unserved_since.setdefault((kind, name), now)
            if now - since >= late:
                failing[kind].add(name)
        for kind, names in failing.items():
            for name in sorted(names - self._failing[kind]):
                log.warning(
                    "no live worker has registered %s %r for %.0f s: its work fails as unknown",
                    "orchestrator or entity" if kind == "instance" else "activity",
                    name,
                    self._unserved_timeout,
                )
            self._failing[kind] = frozenset(names)
