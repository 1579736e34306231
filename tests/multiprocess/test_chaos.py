"""Chaos: worker processes on one store are SIGKILLed again and again while 2,000 chains run.

Real OS processes, real kills. Every instance must complete with the right output and a
well-formed history, and only work in flight at a kill may run twice. The PostgreSQL runs need
ASYNKRON_DURABLE_PG_DSN (each test gets a fresh schema, dropped afterwards); without it they skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.chaos import (
    CONCURRENCY,
    STEPS,
    WorkerPool,
    killer,
    poll_until,
    read_execution_log,
    start_instances,
    verify,
    wait_until_all_terminal,
)
from support.pg_schemas import drop_schema, with_schema

from asynkron_durable import OrchestrationClient
from asynkron_durable.stores import StateStore, store_from_url

PG_DSN_VARIABLE = "ASYNKRON_DURABLE_PG_DSN"

INSTANCES = 2_000
KILL_INTERVAL = 2.0
"""The killer's cadence: one SIGKILL (and one replacement) every this many seconds."""
FINISH_DEADLINE = 300.0
STOP_DEADLINE = 30.0
CLOSE_DEADLINE = 30.0


@contextlib.asynccontextmanager
async def chaos_store(backend: str, tmp_path: Path) -> AsyncIterator[tuple[str, StateStore]]:
    """The store URL the workers get and the test's own opened store on the same data: a file in
    tmp_path, or a fresh schema of the server in ASYNKRON_DURABLE_PG_DSN, dropped afterwards."""
    async with contextlib.AsyncExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'chaos.db'}"
        else:
            dsn = os.environ.get(PG_DSN_VARIABLE)
            if not dsn:
                pytest.skip(f"{PG_DSN_VARIABLE} is not set")
            schema = f"chaos_{uuid.uuid4().hex[:12]}"
            url = with_schema(dsn, schema)
        store = store_from_url(url)
        await store.open()  # an unreachable server fails the test here, loudly
        if backend != "sqlite":
            stack.push_async_callback(drop_schema, dsn, schema)
        stack.push_async_callback(_close, store)
        yield url, store


async def _close(store: StateStore) -> None:
    try:
        await asyncio.wait_for(store.close(), CLOSE_DEADLINE)
    except TimeoutError:
        raise AssertionError(f"store.close() did not return within {CLOSE_DEADLINE:g}s") from None


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("backend", "workers"), [("sqlite", 2), ("postgres", 4)])
async def test_chains_complete_exactly_once_while_workers_are_killed_every_two_seconds(
    backend: str, workers: int, tmp_path: Path
) -> None:
    log_dir = tmp_path / "executions"
    log_dir.mkdir()
    seed = random.randrange(2**32)
    async with chaos_store(backend, tmp_path) as (url, store):
        client = OrchestrationClient(store)
        began = time.monotonic()
        await start_instances(client, INSTANCES)
        started = time.monotonic()

        pool = WorkerPool(url, log_dir)
        done = asyncio.Event()
        try:
            for _ in range(workers):
                pool.spawn()
            chaos = asyncio.create_task(killer(pool, random.Random(seed), done, KILL_INTERVAL))

            def healthy() -> None:
                pool.check_health()
                if chaos.done():
                    chaos.result()  # the killer failed: raise its error here

            try:
                await wait_until_all_terminal(store, FINISH_DEADLINE, healthy)
            finally:
                done.set()
                await asyncio.wait([chaos])
            chaos.result()
            finished = time.monotonic()
            await pool.stop_all(STOP_DEADLINE)
        finally:
            pool.kill_leftovers()

        report = await verify(client, INSTANCES, log_dir, pool.killed_pids)
        verified = time.monotonic()

    run = finished - started
    print(
        f"\n[chaos {backend}] {INSTANCES} chains x {STEPS} steps on {workers} workers "
        f"(kill seed {seed}): started in {started - began:.1f}s, all completed {run:.1f}s after the "
        f"workers were spawned ({INSTANCES / run:.0f} instances/s, {report.activities / run:.0f} "
        f"activities/s); {report.kills} kills; {report.executions} executions of "
        f"{report.activities} activities: {report.extra_executions} re-executed "
        f"(bound {report.kills} x {CONCURRENCY} = {report.kills * CONCURRENCY}), "
        f"{len(report.rerun)} activities ran more than once; verified in {verified - finished:.1f}s"
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_worker_killed_while_holding_many_leases_loses_and_duplicates_nothing(
    backend: str, tmp_path: Path
) -> None:
    """A worker holds CONCURRENCY activity leases (its steps block) when it is SIGKILLed: exactly
    those activities run again, on the replacements, as attempt 2; nothing is lost or doubled."""
    count = 40
    log_dir = tmp_path / "executions"
    log_dir.mkdir()
    async with chaos_store(backend, tmp_path) as (url, store):
        client = OrchestrationClient(store)
        await start_instances(client, count)
        pool = WorkerPool(url, log_dir)
        try:
            stuck = pool.spawn(env={"CHAOS_STEP_SECONDS": "120"})

            def stuck_is_full() -> bool:
                pool.check_health()
                return len(read_execution_log(log_dir)) >= CONCURRENCY

            await poll_until(stuck_is_full, 60, f"the first worker to run {CONCURRENCY} activities")
            in_flight = read_execution_log(log_dir)
            assert len(in_flight) == CONCURRENCY, "a worker must not run more than its concurrency"
            await pool.kill(stuck)
            for _ in range(2):
                pool.spawn()
            await wait_until_all_terminal(store, 120, pool.check_health)
            await pool.stop_all(STOP_DEADLINE)
        finally:
            pool.kill_leftovers()

        report = await verify(client, count, log_dir, pool.killed_pids)

    killed = {(e.instance_id, e.task_id) for e in in_flight}
    assert all(e.attempt == 1 for e in in_flight)
    assert report.rerun == dict.fromkeys(killed, 2), "exactly the killed activities must run again"
    assert report.extra_executions == CONCURRENCY
    reruns = [e for e in read_execution_log(log_dir) if (e.instance_id, e.task_id) in killed]
    assert sorted(e.attempt for e in reruns) == [1] * CONCURRENCY + [2] * CONCURRENCY
