"""The workers table every store keeps (see `stores/workers.py`), run against each backend: records,
heartbeats, and the removal of a dead worker that ends its leases for others to claim at once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

from asynkron_durable.errors import StoreError
from asynkron_durable.stores import (
    Message,
    PostgresStateStore,
    SqliteStateStore,
    StateStore,
    Work,
    WorkerRecord,
)
from asynkron_durable.stores.workers import process_alive
from tests.stores.test_conformance import T0, _with_activities, at, claim, event


def worker(worker_id: str, beat: float = 0, *, host: str = "elsewhere", pid: int = 1) -> WorkerRecord:
    return WorkerRecord(worker_id, host, pid, T0, at(beat))


async def test_registered_workers_beat_and_leave(store: StateStore) -> None:
    await store.workers.register(worker("w2", 1))
    await store.workers.register(worker("w1"))
    assert await store.workers.heartbeat("w1", at(5))
    assert not await store.workers.heartbeat("ghost", at(5))

    listed = await store.workers.registered()
    assert [(w.worker_id, w.heartbeat_at) for w in listed] == [("w1", at(5)), ("w2", at(1))]
    await store.workers.unregister("w1")
    assert [w.worker_id for w in await store.workers.registered()] == ["w2"]


async def test_a_dead_worker_is_removed_and_its_leases_end_at_once(store: StateStore) -> None:
    await _with_activities(store, 2)
    await store.send_messages([Message("a", event("wake"))])
    await store.workers.register(worker("w1"))
    assert sorted(await claim(store, "w1")) == ["a"]  # leased until at(30)
    leased = await store.claim_activities("w1", T0, at(30), 10)
    assert await claim(store, "w2", now=at(2)) == {}
    woken: list[Work] = []
    store.subscribe(woken.append)

    [seen] = await store.workers.registered()
    assert await store.workers.remove_dead([seen], at(1)) == ["w1"]

    assert await store.workers.registered() == []
    assert not await store.workers.heartbeat("w1", at(2))  # it must register again
    announced = Work.NONE
    for work in woken:
        announced |= work
    assert announced == Work.ANY  # this process's idle workers look at once
    assert sorted(await claim(store, "w2", now=at(2))) == ["a"]
    taken = await store.claim_activities("w2", at(2), at(32), 10)
    assert sorted(t.activity_id for t in taken) == sorted(a.activity_id for a in leased)
    assert [t.attempt for t in taken] == [2, 2]  # a start lost with a dead worker counts


async def test_a_worker_that_beat_since_it_was_read_is_not_removed(store: StateStore) -> None:
    await store.workers.register(worker("w1"))
    [seen] = await store.workers.registered()
    assert await store.workers.heartbeat("w1", at(3))

    assert await store.workers.remove_dead([seen], at(4)) == []
    assert [w.heartbeat_at for w in await store.workers.registered()] == [at(3)]


async def test_removing_a_dead_worker_leaves_other_leases_alone(store: StateStore) -> None:
    await _with_activities(store, 1)
    await store.send_messages([Message("a", event("wake"))])
    await store.workers.register(worker("w1"))
    await store.workers.register(worker("w2"))
    assert sorted(await claim(store, "w2")) == ["a"]
    [held] = await store.claim_activities("w2", T0, at(30), 10)

    dead = [w for w in await store.workers.registered() if w.worker_id == "w1"]
    assert await store.workers.remove_dead(dead, at(1)) == ["w1"]

    assert await claim(store, "w3", now=at(2)) == {}
    assert await store.claim_activities("w3", at(2), at(32), 10) == []
    renewal = await store.renew_leases("w2", at(60), ["a"], [held.activity_id])
    assert renewal.lost_instance_ids == set() and renewal.lost_activity_ids == set()


def test_a_process_is_alive_until_it_exits_even_before_it_is_reaped() -> None:
    assert process_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        child_pid = child.pid
        # Not yet waited for: once it exits it is a zombie, which counts as gone.
        os.waitid(os.P_PID, child_pid, os.WEXITED | os.WNOWAIT)
        assert not process_alive(child_pid)
    finally:
        child.wait()
    assert not process_alive(child_pid)


async def test_a_sqlite_store_sees_a_local_worker_process_gone(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "w.db")
    await store.open()
    try:
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        await child.wait()
        here = socket.gethostname()
        await store.workers.register(worker("gone", host=here, pid=child.pid))
        await store.workers.register(worker("me", host=here, pid=os.getpid()))
        await store.workers.register(worker("remote", host="elsewhere", pid=os.getpid()))
        alive = {w.worker_id: w.session_alive for w in await store.workers.registered()}
        assert alive == {"gone": False, "me": True, "remote": None}
    finally:
        await store.close()


async def test_a_postgres_store_sees_a_worker_session_gone(
    pg_dsn: str, pg_schemas: Callable[[], str]
) -> None:
    schema = pg_schemas()
    beating, watching = PostgresStateStore(pg_dsn, schema=schema), PostgresStateStore(pg_dsn, schema=schema)
    await beating.open()
    await watching.open()
    try:
        await beating.workers.register(worker("w1"))
        assert [w.session_alive for w in await watching.workers.registered()] == [True]

        conn = await asyncpg.connect(pg_dsn)
        try:  # as when the worker's process dies: PostgreSQL ends its session at once
            await conn.execute(f'SELECT pg_terminate_backend(backend_pid) FROM "{schema}".workers')
        finally:
            await conn.close()
        assert [w.session_alive for w in await watching.workers.registered()] == [False]

        for _ in range(3):  # the pool finds its connection dead on first use, then opens another
            with contextlib.suppress(StoreError):
                assert await beating.workers.heartbeat("w1", at(1))
                break
        assert [w.session_alive for w in await watching.workers.registered()] == [True]
    finally:
        await beating.close()
        await watching.close()
