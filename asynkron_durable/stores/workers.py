"""Which workers are alive: every runtime registers in its store and beats a heartbeat there, so
the others can tell a dead worker from a slow one and take over its leased work within seconds
rather than waiting out its leases.

A store only keeps the records and, where it can, says whether a worker's process or database
session is still there (`WorkerRecord.session_alive`); the runtime decides who is dead
(`asynkron_durable/worker/presence.py`) and asks the store to remove them (`remove_dead`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """One registered worker, as written by `register` and read by `registered`."""

    worker_id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    session_alive: bool | None = None
    """As `registered` reads it: False when the store sees the worker's process (same host, SQLite) or
    database session (PostgreSQL) gone, True when it sees it there, None when it cannot tell."""
    instance_names: frozenset[str] = frozenset()
    """The orchestrators and entities it runs (the instances it claims)."""
    activity_names: frozenset[str] = frozenset()
    """The activities it runs."""
    version: str = ""
    """The version of asynkron-durable it runs."""


@dataclass(frozen=True, slots=True)
class Unserved:
    """Names of work ready to run that no worker asked about serves (see `WorkerRegistry.unserved`)."""

    instance_names: frozenset[str]
    activity_names: frozenset[str]


class WorkerRegistry(Protocol):
    """The workers table of a store (`StateStore.workers`)."""

    async def register(self, worker: WorkerRecord) -> None:
        """Add `worker`, or replace the record of the same id."""

    async def heartbeat(self, worker_id: str, now: datetime) -> bool:
        """Record that the worker is alive at `now`; False when it is not registered (it was taken
        for dead and removed: its leases were released, and it must register again)."""

    async def unregister(self, worker_id: str) -> None:
        """Remove the worker's record (at shutdown, after it gave its leases back)."""

    async def registered(self) -> list[WorkerRecord]:
        """Every registered worker, oldest first."""

    async def remove_dead(self, workers: Sequence[WorkerRecord], now: datetime) -> list[str]:
        """Remove each of `workers` that has not beaten since it was read (its `heartbeat_at` is
        unchanged) and end every lease it holds at `now`, announcing the work as new; returns the
        ids removed. Its activities count the lost start as an attempt, as after a lease expiry."""

    async def unserved(
        self, now: datetime, instance_names: frozenset[str], activity_names: frozenset[str]
    ) -> Unserved:
        """The names of instances with messages visible at `now` and of activities, unleased both,
        that are not among the names given (those the live workers serve)."""


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this host is running (a zombie, dead but not yet reaped by its
    parent, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux), or the process ended just now: the heartbeat decides
    return state not in ("Z", "X")
