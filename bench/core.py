"""Core figures on one machine: pickup latency, timer lateness, idle CPU, fan-out and chain throughput.

    python bench/core.py [--store sqlite|memory|postgres] [--runs 50]

`postgres` uses ASYNKRON_DURABLE_PG_DSN and a fresh schema `bench_<hex>`, dropped at the end.

Prints one line per figure. The client uses its own store object (as another process would), so
pickup latency includes the runtime's polling, not an in-process wake-up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

from asynkron_durable import (
    DurableFunctionRuntime,
    InMemoryStateStore,
    OrchestrationClient,
    OrchestrationContext,
    SqliteStateStore,
    StateStore,
    store_from_url,
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def build(store: StateStore, picked: dict[str, float]) -> DurableFunctionRuntime:
    runtime = DurableFunctionRuntime(store)

    @runtime.activity()
    def mark(instance_id: str) -> None:
        picked.setdefault(instance_id, time.perf_counter())

    @runtime.activity()
    def step(value: int) -> int:
        return value + 1

    @runtime.orchestrator()
    def one_activity(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        if not ctx.is_replaying:  # a measurement side effect: fine in a benchmark, not in an app
            picked.setdefault(f"orchestration:{ctx.instance_id}", time.perf_counter())
        yield ctx.call_activity(mark, ctx.instance_id)

    @runtime.orchestrator()
    def timer(ctx: OrchestrationContext) -> Generator[Any, Any, float]:
        fire_at = ctx.current_utc_datetime + timedelta(seconds=0.2)
        yield ctx.create_timer(fire_at)
        return (ctx.current_utc_datetime - fire_at).total_seconds()

    @runtime.orchestrator()
    def chain(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        value = 0
        for _ in range(5):
            value = yield ctx.call_activity(step, value)
        return value

    @runtime.orchestrator()
    def fan_out(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        results = yield ctx.task_all([ctx.call_activity(step, n) for n in range(1000)])
        return sum(results)

    return runtime


async def main(kind: str, runs: int) -> None:
    folder = Path(tempfile.mkdtemp())

    schema = f"bench_{uuid.uuid4().hex[:12]}"

    def make() -> StateStore:
        if kind == "postgres":
            return store_from_url(f"{os.environ['ASYNKRON_DURABLE_PG_DSN']}?schema={schema}")
        return SqliteStateStore(folder / "bench.db") if kind == "sqlite" else shared

    shared = InMemoryStateStore()
    picked: dict[str, float] = {}
    runtime = build(make(), picked)
    client_store = make()
    await client_store.open()
    client = OrchestrationClient(client_store)
    async with runtime:
        await asyncio.sleep(0.5)  # let the loops reach their idle back-off, as a real idle worker
        claims, latencies, totals = [], [], []
        for n in range(runs):
            started = time.perf_counter()
            instance_id = await client.start_new("one_activity", instance_id=f"latency-{n}")
            await client.wait_for_completion(instance_id, timeout=30, poll_interval=0.001)
            totals.append((time.perf_counter() - started) * 1000)
            latencies.append((picked[instance_id] - started) * 1000)
            claims.append((picked[f"orchestration:{instance_id}"] - started) * 1000)
            await asyncio.sleep(0.2)  # idle again before the next start
        print(
            f"{kind}: start -> orchestrator running (pick-up): p50 {percentile(claims, 0.5):.1f} ms, "
            f"p99 {percentile(claims, 0.99):.1f} ms"
        )
        print(
            f"{kind}: start -> activity running: p50 {percentile(latencies, 0.5):.1f} ms, "
            f"p99 {percentile(latencies, 0.99):.1f} ms ({runs} runs, worker idle before each)"
        )
        print(
            f"{kind}: start -> completed (one-activity orchestration): "
            f"p50 {percentile(totals, 0.5):.1f} ms, p99 {percentile(totals, 0.99):.1f} ms"
        )

        lateness = []
        ids = [await client.start_new("timer") for _ in range(20)]
        for instance_id in ids:
            status = await client.wait_for_completion(instance_id, timeout=30)
            lateness.append(status.output * 1000)
        print(
            f"{kind}: timer fired late by: p50 {percentile(lateness, 0.5):.1f} ms, "
            f"max {max(lateness):.1f} ms (20 timers of 200 ms)"
        )

        await asyncio.sleep(1.0)
        before = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(5.0)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print(f"{kind}: idle runtime CPU: {cpu / 5 * 100:.2f}% of one core over 5 s")

        started = time.perf_counter()
        instance_id = await client.start_new("fan_out")
        await client.wait_for_completion(instance_id, timeout=120)
        print(f"{kind}: 1,000-way fan-out/fan-in: {time.perf_counter() - started:.2f} s")

        started = time.perf_counter()
        ids = [await client.start_new("chain") for _ in range(500)]
        for instance_id in ids:
            await client.wait_for_completion(instance_id, timeout=300)
        elapsed = time.perf_counter() - started
        print(
            f"{kind}: 500 five-step chains: {elapsed:.2f} s, {500 / elapsed:.0f} orchestrations/s, "
            f"{2500 / elapsed:.0f} steps/s"
        )
    if kind != "memory":
        await client_store.close()
    if kind == "postgres":
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(os.environ["ASYNKRON_DURABLE_PG_DSN"])
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "memory", "postgres"], default="sqlite")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.store, args.runs))
