"""`latency`: one idle worker, then start_new of a one-activity orchestration, R times; p50/p99 of
start -> completed (and, in-process, start -> orchestrator running and start -> activity running).
Also timer lateness and the idle worker's CPU (what `bench/core.py` used to print).

The client uses its own store object, as another process would, so pick-up includes the worker's
polling or notification, not an in-process wake-up.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from pathlib import Path
from typing import Any

from asynkron_durable import OrchestrationClient
from bench.app import MARKS
from bench.results import percentile, show
from bench.stores import fresh_store
from bench.workers import Workers, workers

TIMERS = 20


async def run(
    store_url: str,
    runs: int = 200,
    processes: bool = False,
    idle_gap: float = 0.2,
    idle_cpu_seconds: float = 5.0,
) -> dict[str, Any]:
    async with fresh_store(store_url) as store:
        client_store = store.make()
        await client_store.open()
        try:
            client = OrchestrationClient(client_store)
            async with workers(store, 1, processes) as running:
                await asyncio.sleep(0.5)  # let the loops reach their idle back-off
                figures = await _pickups(client, runs, idle_gap, processes)
                figures.update(await _timers(client))
                figures.update(await _idle_cpu(running, idle_cpu_seconds))
        finally:
            await store.close(client_store)
    figures.update(runs=runs, processes=processes, idle_gap_s=idle_gap)
    print(
        f"latency on {store.kind}: {runs} one-activity orchestrations, worker idle {idle_gap:g} s before each"
    )
    if not processes:
        show("start -> orchestrator running p50", figures["pickup_p50_ms"], "ms")
        show("start -> orchestrator running p99", figures["pickup_p99_ms"], "ms")
        show("start -> activity running p50", figures["activity_p50_ms"], "ms")
        show("start -> activity running p99", figures["activity_p99_ms"], "ms")
    show("start -> completed p50", figures["latency_p50_ms"], "ms")
    show("start -> completed p99", figures["latency_p99_ms"], "ms")
    show(f"timer lateness p50 ({TIMERS} timers of 200 ms)", figures["timer_late_p50_ms"], "ms")
    show("timer lateness max", figures["timer_late_max_ms"], "ms")
    show(f"idle worker CPU over {idle_cpu_seconds:g} s", figures["idle_cpu_percent"], "% of one core")
    return figures


async def _marked(key: str, timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while key not in MARKS:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{key} never ran")
        await asyncio.sleep(0.0002)


async def _pickups(
    client: OrchestrationClient, runs: int, idle_gap: float, processes: bool
) -> dict[str, Any]:
    pickups: list[float] = []
    activities: list[float] = []
    totals: list[float] = []
    for n in range(runs):
        started = time.perf_counter()
        instance_id = await client.start_new("one_activity", instance_id=f"latency-{n}-{os.getpid()}")
        if not processes:  # watch the in-process mark, not the store, until the activity ran:
            await _marked(instance_id)  # status queries would compete with the worker they measure
        await client.wait_for_completion(instance_id, timeout=60, poll_interval=0.001)
        totals.append((time.perf_counter() - started) * 1000)
        if not processes:
            pickups.append((MARKS.pop(f"orchestration:{instance_id}") - started) * 1000)
            activities.append((MARKS.pop(instance_id) - started) * 1000)
        await asyncio.sleep(idle_gap)
    figures: dict[str, Any] = {
        "latency_p50_ms": percentile(totals, 0.5),
        "latency_p99_ms": percentile(totals, 0.99),
    }
    if not processes:
        figures.update(
            pickup_p50_ms=percentile(pickups, 0.5),
            pickup_p99_ms=percentile(pickups, 0.99),
            activity_p50_ms=percentile(activities, 0.5),
            activity_p99_ms=percentile(activities, 0.99),
        )
    return figures


async def _timers(client: OrchestrationClient) -> dict[str, Any]:
    ids = [await client.start_new("timer") for _ in range(TIMERS)]
    lateness = [(await client.wait_for_completion(i, timeout=60)).output * 1000 for i in ids]
    return {"timer_late_p50_ms": percentile(lateness, 0.5), "timer_late_max_ms": max(lateness)}


def _cpu_seconds(running: Workers) -> float:
    if not running.processes:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    total = 0.0
    for process in running.processes:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


async def _idle_cpu(running: Workers, seconds: float) -> dict[str, Any]:
    await asyncio.sleep(min(1.0, seconds))  # the timers' wake-ups are over
    before = _cpu_seconds(running)
    await asyncio.sleep(seconds)
    used = _cpu_seconds(running) - before
    return {"idle_cpu_percent": used / seconds * 100}
