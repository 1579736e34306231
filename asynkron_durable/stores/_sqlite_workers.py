"""The SQLite store's workers table. A SQLite file is shared by processes of one host, so a worker
whose process is gone is seen at once (`process_alive`), without waiting for its heartbeat to age."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol, TypeVar

import aiosqlite

from asynkron_durable.stores._sqlite_codec import QUERIES, epoch, from_epoch, json_list
from asynkron_durable.stores.base import Work
from asynkron_durable.stores.workers import Unserved, WorkerRecord, process_alive

_T = TypeVar("_T")


class _Write(Protocol):
    def __call__(self, body: Callable[[sqlite3.Connection], _T], /) -> Awaitable[_T]: ...


class SqliteWorkers:
    """A `WorkerRegistry` in the `workers` table. `write` runs a function as one write transaction
    on the store's connection, `read` lends that connection for reads, `notify` wakes this
    process's workers when leases were ended."""

    def __init__(
        self,
        write: _Write,
        read: Callable[[], AbstractAsyncContextManager[aiosqlite.Connection]],
        notify: Callable[[Work], None],
    ) -> None:
        self._write = write
        self._read = read
        self._notify = notify

    async def register(self, worker: WorkerRecord) -> None:
        """Add `worker`, or replace the record of the same id."""
        params = {
            "worker_id": worker.worker_id,
            "host": worker.host,
            "pid": worker.pid,
            "started_at": epoch(worker.started_at),
            "heartbeat_at": epoch(worker.heartbeat_at),
            "instance_names": json_list(sorted(worker.instance_names)),
            "activity_names": json_list(sorted(worker.activity_names)),
            "version": worker.version,
        }
        await self._write(lambda conn: conn.execute(QUERIES["register_worker"], params))

    async def heartbeat(self, worker_id: str, now: datetime) -> bool:
        """Record that the worker is alive at `now`; False when it is not registered."""
        params = {"worker_id": worker_id, "now": epoch(now)}
        updated = await self._write(lambda conn: conn.execute(QUERIES["heartbeat_worker"], params).rowcount)
        return updated == 1

    async def unregister(self, worker_id: str) -> None:
        """Remove the worker's record."""
        params = {"worker_id": worker_id}
        await self._write(lambda conn: conn.execute(QUERIES["unregister_worker"], params))

    async def registered(self) -> list[WorkerRecord]:
        """Every registered worker, oldest first; one of this host is alive while its process is."""
        async with self._read() as conn:
            rows = await conn.execute_fetchall(QUERIES["list_workers"], {})
        here = socket.gethostname()
        return [
            WorkerRecord(
                row["worker_id"],
                row["host"],
                row["pid"],
                from_epoch(row["started_at"]),
                from_epoch(row["heartbeat_at"]),
                process_alive(row["pid"]) if row["host"] == here else None,
                frozenset(json.loads(row["instance_names"])),
                frozenset(json.loads(row["activity_names"])),
                row["package_version"],
            )
            for row in rows
        ]

    async def remove_dead(self, workers: Sequence[WorkerRecord], now: datetime) -> list[str]:
        """Remove the listed workers that have not beaten since, and end their leases at `now`."""

        def body(conn: sqlite3.Connection) -> tuple[list[str], Work]:
            removed: list[str] = []
            expired = Work.NONE
            for worker in workers:
                seen = {"worker_id": worker.worker_id, "heartbeat_at": epoch(worker.heartbeat_at)}
                if conn.execute(QUERIES["remove_dead_worker"], seen).rowcount != 1:
                    continue
                removed.append(worker.worker_id)
                leases = {"owner": worker.worker_id, "now": epoch(now)}
                if conn.execute(QUERIES["expire_instance_leases_of"], leases).rowcount:
                    expired |= Work.MESSAGES
                if conn.execute(QUERIES["expire_activity_leases_of"], leases).rowcount:
                    expired |= Work.ACTIVITIES
            return removed, expired

        removed, expired = await self._write(body)
        self._notify(expired)
        return removed

    async def unserved(
        self, now: datetime, instance_names: frozenset[str], activity_names: frozenset[str]
    ) -> Unserved:
        """Names of ready, unleased instances and activities that are not among those given."""
        at = epoch(now)
        async with self._read() as conn:
            instances = await conn.execute_fetchall(
                QUERIES["unserved_instance_names"], {"now": at, "names": json_list(sorted(instance_names))}
            )
            activities = await conn.execute_fetchall(
                QUERIES["unserved_activity_names"], {"now": at, "names": json_list(sorted(activity_names))}
            )
        return Unserved(frozenset(row[0] for row in instances), frozenset(row[0] for row in activities))
