"""`chain`: N instances of a five-activity chain, closed loop (at most `inflight` running at once),
on W workers; orchestrations/s, activities/s and end-to-end latency from the store's own clock
(created -> completed).

The loop learns which chains finished from `bench.app.FINISHED` with in-process workers, and with
worker processes by reading the oldest running chain's record (chains finish roughly in start
order), so pacing costs the measured store little; every figure is read from the store at the end."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from typing import Any

from asynkron_durable import OrchestrationClient, RuntimeStatus
from asynkron_durable.stores import InstanceFilter, StateStore
from bench import cpu
from bench.app import CHAIN_LENGTH, FINISHED
from bench.results import percentile, show
from bench.stores import BenchStore, fresh_store
from bench.workers import workers

POLL = 0.005
"""Seconds between checks for finished chains while none has finished."""


async def run(
    store_url: str,
    instances: int = 2000,
    workers_count: int = 1,
    processes: bool = False,
    inflight: int = 256,
) -> dict[str, Any]:
    async with fresh_store(store_url) as store:
        return await run_on(store, instances, workers_count, processes, inflight)


async def run_on(
    store: BenchStore, instances: int, workers_count: int, processes: bool, inflight: int
) -> dict[str, Any]:
    client_store = store.make()
    await client_store.open()
    try:
        client = OrchestrationClient(client_store)
        prefix = f"chain-{uuid.uuid4().hex[:8]}-"
        async with workers(store, workers_count, processes) as running:
            pids = [process.pid for process in running.processes]
            before = cpu.sample(pids)
            started = time.perf_counter()
            await _closed_loop(client, client_store, prefix, instances, inflight, not processes)
            elapsed = time.perf_counter() - started
            spent = cpu.per_step(before, cpu.sample(pids), instances * CHAIN_LENGTH)
        latencies, failed = await _latencies(client_store, prefix)
    finally:
        await store.close(client_store)
    if failed or len(latencies) != instances:
        raise RuntimeError(f"{failed} of {instances} chains did not complete ({len(latencies)} did)")
    figures = {
        "instances": instances,
        "workers": workers_count,
        "processes": processes,
        "inflight": inflight,
        "seconds": elapsed,
        "orchestrations_per_s": instances / elapsed,
        "activities_per_s": instances * CHAIN_LENGTH / elapsed,
        "steps_per_s": instances * CHAIN_LENGTH / elapsed,
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p99_ms": percentile(latencies, 0.99),
        **spent,
    }
    kind = "processes" if processes else "in-process"
    print(
        f"chain on {store.kind}: {instances} x {CHAIN_LENGTH}-activity chains, "
        f"{workers_count} {kind} worker(s)"
    )
    show("orchestrations/s", figures["orchestrations_per_s"], "/s")
    show("activities/s", figures["activities_per_s"], "/s")
    show("end-to-end latency p50", figures["latency_p50_ms"], "ms")
    show("end-to-end latency p99", figures["latency_p99_ms"], "ms")
    cpu.show_split(figures)
    return figures


async def _closed_loop(
    client: OrchestrationClient,
    store: StateStore,
    prefix: str,
    instances: int,
    inflight: int,
    in_process: bool,
) -> None:
    """Keep `inflight` chains running: start one for each that finished, until N have finished."""
    pending: deque[str] = deque()
    next_n = 0
    while next_n < instances or pending:
        wanted = range(next_n, min(instances, next_n + inflight - len(pending)))
        if wanted:  # started side by side, as a busy client would, each on its own connection
            pending.extend(
                await asyncio.gather(*(client.start_new("chain", instance_id=f"{prefix}{n}") for n in wanted))
            )
            next_n = wanted.stop
        finished = _finished_here(pending) if in_process else await _finished_oldest(store, pending)
        if not finished:
            await asyncio.sleep(POLL)


def _finished_here(pending: deque[str]) -> int:
    done = [instance_id for instance_id in pending if instance_id in FINISHED]
    for instance_id in done:
        pending.remove(instance_id)
        FINISHED.discard(instance_id)
    return len(done)


async def _finished_oldest(store: StateStore, pending: deque[str]) -> int:
    finished = 0
    while pending:
        record = await store.get_instance(pending[0])
        if record is None or not record.runtime_status.is_terminal:
            break
        pending.popleft()
        finished += 1
    return finished


async def _latencies(store: StateStore, prefix: str) -> tuple[list[float], int]:
    """created -> last update (the completion) of every instance, in ms; and how many did not complete."""
    latencies: list[float] = []
    failed = 0
    token: str | None = None
    query = InstanceFilter(instance_id_prefix=prefix)
    while True:
        page = await store.query_instances(query, 500, token)
        for record in page.instances:
            if record.runtime_status is RuntimeStatus.COMPLETED:
                latencies.append((record.last_updated_at - record.created_at).total_seconds() * 1000)
            else:
                failed += 1
        token = page.continuation_token
        if token is None:
            return latencies, failed
