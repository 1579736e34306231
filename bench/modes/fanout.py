"""`fanout`: one orchestration fans out to K activities and fans in; the time it takes and the
peak memory of the worker (this process in-process; the largest worker process otherwise)."""

from __future__ import annotations

import time
from typing import Any

from asynkron_durable import OrchestrationClient, RuntimeStatus
from bench.results import show
from bench.stores import fresh_store
from bench.workers import peak_rss_mb, workers


async def run(
    store_url: str, fanout: int = 10_000, workers_count: int = 1, processes: bool = False
) -> dict[str, Any]:
    async with fresh_store(store_url) as store:
        client_store = store.make()
        await client_store.open()
        try:
            client = OrchestrationClient(client_store)
            rss_before = peak_rss_mb()
            async with workers(store, workers_count, processes) as running:
                started = time.perf_counter()
                instance_id = await client.start_new("fan_out", fanout)
                status = await client.wait_for_completion(instance_id, timeout=3600, poll_interval=0.01)
                elapsed = time.perf_counter() - started
                peak = running.peak_rss_mb()
        finally:
            await store.close(client_store)
    if status.runtime_status is not RuntimeStatus.COMPLETED or status.output != fanout * (fanout + 1) // 2:
        raise RuntimeError(f"fan-out ended {status.runtime_status} with {status.output!r}")
    rate = fanout / elapsed
    figures = {
        "fanout": fanout,
        "workers": workers_count,
        "processes": processes,
        "seconds": elapsed,
        "activities_per_s": rate,
        "steps_per_s": rate,
        "worker_peak_rss_mb": peak,
        "process_rss_before_mb": None if processes else rss_before,
    }
    kind = "processes" if processes else "in-process"
    print(f"fanout on {store.kind}: 1 orchestration -> {fanout} activities, {workers_count} {kind} worker(s)")
    show("fan-out/fan-in time", elapsed, "s")
    show("activities/s", rate, "/s")
    show("worker peak RSS", peak, "MB")
    if not processes:
        show("(peak RSS of this process before the run)", rss_before, "MB")
    return figures
