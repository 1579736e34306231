"""`chain`: N instances of a five-activity chain, closed loop (at most `inflight` running at once),
on W workers; orchestrations/s, activities/s and end-to-end latency from the store's own clock
(created -> completed)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from asynkron_durable import OrchestrationClient, RuntimeStatus
from asynkron_durable.stores import InstanceFilter, StateStore
from bench.app import CHAIN_LENGTH
from bench.results import percentile, show
from bench.stores import BenchStore, fresh_store
from bench.workers import workers

POLL = 0.005
"""Seconds between checks for finished chains while none has finished."""
NOT_TERMINAL = frozenset(status for status in RuntimeStatus if not status.is_terminal)


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
        async with workers(store, workers_count, processes):
            started = time.perf_counter()
            await _closed_loop(client, client_store, prefix, instances, inflight)
            elapsed = time.perf_counter() - started
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
    return figures


async def _closed_loop(
    client: OrchestrationClient, store: StateStore, prefix: str, instances: int, inflight: int
) -> None:
    """Keep `inflight` chains running: start one for each that finished, until N have finished."""
    pending: set[str] = set()
    next_n = 0
    query = InstanceFilter(runtime_status=NOT_TERMINAL, instance_id_prefix=prefix)
    while next_n < instances or pending:
        while len(pending) < inflight and next_n < instances:
            pending.add(await client.start_new("chain", instance_id=f"{prefix}{next_n}"))
            next_n += 1
        live = {r.instance_id for r in (await store.query_instances(query, inflight + 1, None)).instances}
        finished = pending - live
        pending &= live
        if not finished:
            await asyncio.sleep(POLL)


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
