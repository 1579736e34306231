"""Entities under real worker processes: one counter, 1,000 signals from 10 orchestrations, every
amount applied exactly once while several processes claim the entity and the orchestrations.

Workers are `support/entity_worker.py` processes, started and stopped like the chaos workers (no
kills here: this is about concurrency, not crashes). The PostgreSQL run needs
ASYNKRON_DURABLE_PG_DSN (a fresh schema, dropped afterwards); without it it skips.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest
from support.chaos import WorkerPool, poll_until
from support.shared_store import shared_store

from asynkron_durable import OrchestrationClient, OrchestrationStatus, RuntimeStatus

WORKER = Path(__file__).parent.parent / "support" / "entity_worker.py"
DEADLINE = 60.0
STOP_DEADLINE = 30.0


async def finish(client: OrchestrationClient, instance_id: str, pool: WorkerPool) -> OrchestrationStatus:
    """Wait for the instance to end, failing at once if a worker died on its own."""
    deadline = time.monotonic() + DEADLINE
    while True:
        pool.check_health()
        status = await client.get_status(instance_id)
        assert status is not None, instance_id
        if status.runtime_status.is_terminal:
            assert status.runtime_status is RuntimeStatus.COMPLETED, status.failure
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{instance_id} still {status.runtime_status} after {DEADLINE:g}s")
        await asyncio.sleep(0.02)


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("backend", "workers"), [("sqlite", 2), ("postgres", 4)])
async def test_a_counter_sums_1000_signals_exactly_with_worker_processes(
    backend: str, workers: int, tmp_path: Path
) -> None:
    rng = random.Random(777)
    jobs = [
        {"key": "shared", "chunk": 25, "amounts": [rng.randint(1, 1000) for _ in range(100)]}
        for _ in range(10)
    ]
    expected = sum(sum(job["amounts"]) for job in jobs)
    ready_dir = tmp_path / "ready"
    ready_dir.mkdir()
    async with shared_store(backend, tmp_path, "entities") as (url, store):
        client = OrchestrationClient(store)
        pool = WorkerPool(url, ready_dir, WORKER)
        try:
            for _ in range(workers):
                pool.spawn()

            def all_ready() -> bool:
                pool.check_health()
                return all(pool.is_ready(proc) for proc in pool.live)

            await poll_until(all_ready, DEADLINE, f"{workers} workers to be ready")
            ids = await asyncio.gather(*(client.start_new("send_adds", job) for job in jobs))
            for instance_id in ids:
                seen = (await finish(client, instance_id, pool)).output
                assert all(count >= 25 * (n + 1) for n, count in enumerate(seen)), seen
            # Started after every signal was enqueued: its answer is the final state.
            final = (await finish(client, await client.start_new("read_counter", "shared"), pool)).output
            stored = await client.read_entity_state("@counter@shared")
            await pool.stop_all(STOP_DEADLINE)
        finally:
            pool.kill_leftovers()

    assert final["total"] == expected and final["count"] == 1000, final
    assert sum(final["by_pid"].values()) == 1000
    assert stored.exists and stored.state == final
    print(f"\n[entities {backend}] {workers} workers; adds applied per worker pid: {final['by_pid']}")
