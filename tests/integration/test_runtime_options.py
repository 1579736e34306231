"""Runtime options and registration styles: limits, the seed's JSON functions, apps, shutdown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator, Sequence
from datetime import datetime, timedelta
from typing import Any

from asynkron_durable import (
    ActivityContext,
    DurableApp,
    DurableFunctionRuntime,
    InMemoryStateStore,
    OrchestrationContext,
    RuntimeStatus,
)
from asynkron_durable.stores import (
    ActivityClaim,
    ActivityResult,
    ActivityStep,
    ActivityWorkItem,
    Completion,
    StateStore,
)


async def test_max_concurrent_activities_is_respected(store: StateStore) -> None:
    runtime = DurableFunctionRuntime(store, max_concurrent_activities=3, max_poll_interval=0.01)
    running = 0
    peak = 0
    lock = threading.Lock()
    gate = threading.Event()

    @runtime.activity()
    def busy(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 3:
                gate.set()
        gate.wait(timeout=10)  # hold the first three together so the limit is actually tested
        with lock:
            running -= 1
        return n

    @runtime.orchestrator()
    def wide(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        return sum((yield ctx.task_all([ctx.call_activity(busy, n) for n in range(12)])))

    async with runtime:
        instance_id = await runtime.client.start_new("wide")
        status = await runtime.client.wait_for_completion(instance_id, timeout=30)
    assert status.output == sum(range(12))
    assert peak == 3


async def test_seed_style_json_functions_get_an_activity_context(store: StateStore) -> None:
    runtime = DurableFunctionRuntime(store, max_poll_interval=0.01)
    seen: list[ActivityContext] = []

    def say_hello(context: ActivityContext, name: Any) -> str:
        seen.append(context)
        return f"Greeted {name}"

    runtime.register_json_function("SayHello", say_hello)

    @runtime.orchestrator()
    def greeter(ctx: OrchestrationContext) -> Generator[Any, Any, str]:
        return (yield ctx.call_activity("SayHello", ctx.get_input()))

    async with runtime:
        instance_id = await runtime.client.start_new("greeter", "Ada")
        status = await runtime.client.wait_for_completion(instance_id, timeout=20)
    assert status.output == "Greeted Ada"
    assert [(c.instance_id, c.name, c.task_id, c.attempt) for c in seen] == [(instance_id, "SayHello", 0, 1)]


async def test_a_durable_app_registers_on_a_runtime(store: StateStore) -> None:
    app = DurableApp()

    @app.activity(name="twice")
    async def double(n: int) -> int:
        return n * 2

    @app.orchestrator()
    async def doubler(ctx: OrchestrationContext) -> int:
        return int(await ctx.call_activity(double, ctx.get_input()))

    runtime = DurableFunctionRuntime(store, max_poll_interval=0.01)
    runtime.register_app(app)
    async with runtime:
        instance_id = await runtime.client.start_new("doubler", 21)
        status = await runtime.client.wait_for_completion(instance_id, timeout=20)
    assert status.output == 42


async def test_shutdown_releases_unfinished_activities_for_another_worker(store: StateStore) -> None:
    started = asyncio.Event()

    def build(blocking: bool) -> DurableFunctionRuntime:
        runtime = DurableFunctionRuntime(
            store, shutdown_timeout=0.2, lease_duration=timedelta(minutes=10), max_poll_interval=0.01
        )

        @runtime.activity()
        async def slow(n: int) -> int:
            if blocking:
                started.set()
                await asyncio.Event().wait()  # never finishes on the first worker
            return n + 1

        @runtime.orchestrator()
        def one(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
            return (yield ctx.call_activity(slow, 1))

        return runtime

    first = build(blocking=True)
    stop = asyncio.Event()
    worker = asyncio.create_task(first.run_and_poll(stop))
    instance_id = await first.client.start_new("one")
    await asyncio.wait_for(started.wait(), timeout=20)
    stop.set()
    await worker  # returns after shutdown_timeout, having released the activity's lease

    second = build(blocking=False)
    stop_second = asyncio.Event()
    worker = asyncio.create_task(second.run_and_poll(stop_second))
    try:
        status = await second.client.wait_for_completion(instance_id, timeout=20)
    finally:
        stop_second.set()
        await worker
    # a 10-minute lease would have kept it from the second worker had it not been released
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert status.output == 2


class _SlowCompletions(InMemoryStateStore):
    """Records how many activities are claimed but not yet recorded, with slow result writes."""

    def __init__(self) -> None:
        super().__init__()
        self.outstanding = 0
        self.peak = 0

    async def claim_activities(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        names: frozenset[str] | None = None,
    ) -> list[ActivityWorkItem]:
        items = await super().claim_activities(owner, now, lease_until, limit, names)
        self.outstanding += len(items)
        self.peak = max(self.peak, self.outstanding)
        return items

    async def complete_activities(
        self,
        owner: str,
        now: datetime,
        results: Sequence[ActivityResult],
        steps: Sequence[ActivityStep] = (),
        claim: ActivityClaim | None = None,
    ) -> Completion:
        await asyncio.sleep(0.05)  # a slow or contended database
        done = await super().complete_activities(owner, now, results, steps, claim)
        self.outstanding -= len(results) + sum(len(step.results) for step in steps)
        self.outstanding += len(done.claimed)
        self.peak = max(self.peak, self.outstanding)
        return done


async def test_unrecorded_results_count_against_the_activity_limit() -> None:
    store = _SlowCompletions()
    runtime = DurableFunctionRuntime(store, max_concurrent_activities=2, max_poll_interval=0.01)

    @runtime.activity()
    def step(value: int) -> int:
        return value + 1

    @runtime.orchestrator()
    def one(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        return (yield ctx.call_activity(step, ctx.get_input()))

    async with runtime:
        ids = [await runtime.client.start_new("one", n) for n in range(30)]
        outputs = [(await runtime.client.wait_for_completion(i, timeout=30)).output for i in ids]
    assert outputs == [n + 1 for n in range(30)]
    # a crash loses at most the limit's worth of finished work, however slow the store is
    assert store.peak <= 2
