"""External events, continue-as-new, custom status and suspend/resume, on every store backend."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from support.orchestrations import completed, wait_for_history, wait_for_status

from asynkron_durable import (
    DurableFunctionRuntime,
    EventTimeoutError,
    OrchestrationContext,
    RuntimeStatus,
)

STYLES = ["generator", "async"]

# ----- wait_for_external_event ------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
async def test_event_raised_before_the_wait_is_buffered_and_delivered(
    runtime: DurableFunctionRuntime, style: str
) -> None:
    gate = asyncio.Event()

    @runtime.activity()
    async def held() -> str:
        await gate.wait()
        return "opened"

    if style == "generator":

        def late_waiter(ctx: OrchestrationContext) -> Any:
            first = yield ctx.call_activity(held)
            event = yield ctx.wait_for_external_event("hello")
            return [first, event]

    else:

        async def late_waiter(ctx: OrchestrationContext) -> Any:
            first = await ctx.call_activity(held)
            event = await ctx.wait_for_external_event("hello")
            return [first, event]

    runtime.register_orchestrator(late_waiter, "late_waiter")
    async with runtime:
        try:
            instance_id = await runtime.client.start_new("late_waiter")
            await runtime.client.raise_event(instance_id, "hello", {"greeting": "hi"})
            # The event is recorded while the orchestrator still waits on the activity.
            await wait_for_history(runtime.client, instance_id, "EventRaised")
            history = (await runtime.client.get_status(instance_id, show_history=True)).history
            assert history is not None and not any(e.kind == "TaskCompleted" for e in history)
        finally:
            gate.set()
        status = await runtime.client.wait_for_completion(instance_id, timeout=10)
    assert completed(status) == ["opened", {"greeting": "hi"}]


async def test_events_of_one_name_are_delivered_fifo_each_exactly_once(
    runtime: DurableFunctionRuntime,
) -> None:
    def collector(ctx: OrchestrationContext) -> Any:
        items = []
        for _ in range(3):
            items.append((yield ctx.wait_for_external_event("item")))
        items.append((yield ctx.wait_for_external_event("other")))
        try:
            extra = yield ctx.wait_for_external_event("item", timeout=timedelta(seconds=0.2))
            items.append(["extra", extra])
        except EventTimeoutError:
            items.append("none left")
        return items

    runtime.register_orchestrator(collector)
    async with runtime:
        instance_id = await runtime.client.start_new("collector")
        await runtime.client.raise_event(instance_id, "item", 1)
        await runtime.client.raise_event(instance_id, "other", "x")
        await runtime.client.raise_event(instance_id, "item", 2)
        await runtime.client.raise_event(instance_id, "item", 3)
        status = await runtime.client.wait_for_completion(instance_id, timeout=10)
    assert completed(status) == [1, 2, 3, "x", "none left"]


@pytest.mark.parametrize("style", STYLES)
async def test_wait_with_timeout_raises_a_catchable_event_timeout_error(
    runtime: DurableFunctionRuntime, style: str
) -> None:
    timeout = timedelta(seconds=0.2)

    def describe(ctx: OrchestrationContext, start: datetime, exc: TimeoutError) -> Any:
        return {
            "type": type(exc).__name__,
            "is_event_timeout": isinstance(exc, EventTimeoutError),
            "event": getattr(exc, "event_name", None),
            "elapsed": (ctx.current_utc_datetime - start).total_seconds(),
        }

    if style == "generator":

        def impatient(ctx: OrchestrationContext) -> Any:
            start = ctx.current_utc_datetime
            try:
                yield ctx.wait_for_external_event("approval", timeout=timeout)
            except TimeoutError as exc:  # EventTimeoutError is a TimeoutError
                return describe(ctx, start, exc)
            return "approved"

    else:

        async def impatient(ctx: OrchestrationContext) -> Any:
            start = ctx.current_utc_datetime
            try:
                await ctx.wait_for_external_event("approval", timeout=timeout)
            except TimeoutError as exc:
                return describe(ctx, start, exc)
            return "approved"

    runtime.register_orchestrator(impatient, "impatient")
    async with runtime:
        instance_id = await runtime.client.start_new("impatient")
        output = completed(await runtime.client.wait_for_completion(instance_id, timeout=10))
    assert output["type"] == "EventTimeoutError"
    assert output["is_event_timeout"] is True
    assert output["event"] == "approval"
    assert output["elapsed"] >= 0.2


async def test_uncaught_event_timeout_fails_the_instance(runtime: DurableFunctionRuntime) -> None:
    def strict(ctx: OrchestrationContext) -> Any:
        yield ctx.wait_for_external_event("approval", timeout=timedelta(seconds=0.1))
        return "approved"

    runtime.register_orchestrator(strict)
    async with runtime:
        instance_id = await runtime.client.start_new("strict")
        status = await runtime.client.wait_for_completion(instance_id, timeout=10)
    assert status.runtime_status is RuntimeStatus.FAILED
    assert status.failure is not None
    assert status.failure.error_type == "EventTimeoutError"
    assert "approval" in status.failure.message


@pytest.mark.parametrize("style", STYLES)
async def test_wait_with_timeout_gets_an_event_that_arrives_in_time(
    runtime: DurableFunctionRuntime, style: str
) -> None:
    if style == "generator":

        def patient(ctx: OrchestrationContext) -> Any:
            value = yield ctx.wait_for_external_event("approval", timeout=timedelta(seconds=30))
            return ["approved", value]

    else:

        async def patient(ctx: OrchestrationContext) -> Any:
            value = await ctx.wait_for_external_event("approval", timeout=timedelta(seconds=30))
            return ["approved", value]

    runtime.register_orchestrator(patient, "patient")
    async with runtime:
        instance_id = await runtime.client.start_new("patient")
        await wait_for_history(runtime.client, instance_id, "TimerCreated")  # waiting, not buffered
        await runtime.client.raise_event(instance_id, "approval", {"by": "ann"})
        status = await runtime.client.wait_for_completion(instance_id, timeout=10)
    assert completed(status) == ["approved", {"by": "ann"}]
    assert status.last_updated_at - status.created_at < timedelta(seconds=20)


# ----- continue_as_new --------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
async def test_continue_as_new_loops_with_fresh_history(runtime: DurableFunctionRuntime, style: str) -> None:
    executions: list[int] = []

    @runtime.activity()
    def add_one(x: int) -> int:
        return x + 1

    if style == "generator":

        def counter(ctx: OrchestrationContext) -> Any:
            n = ctx.get_input()
            if not ctx.is_replaying:
                executions.append(n)
            total = yield ctx.call_activity(add_one, n)
            if total < 5:
                ctx.continue_as_new(total)
                return None
            return total

    else:

        async def counter(ctx: OrchestrationContext) -> Any:
            n = ctx.get_input()
            if not ctx.is_replaying:
                executions.append(n)
            total = await ctx.call_activity(add_one, n)
            if total < 5:
                ctx.continue_as_new(total)
                return None
            return total

    runtime.register_orchestrator(counter, "counter")
    async with runtime:
        instance_id = await runtime.client.start_new("counter", 0)
        await runtime.client.wait_for_completion(instance_id, timeout=10)
        status = await runtime.client.get_status(instance_id, show_history=True)
    assert status is not None and status.history is not None
    assert completed(status) == 5
    assert executions == [0, 1, 2, 3, 4]
    assert status.input == 4  # the last execution's input
    kinds = [e.kind for e in status.history]
    assert kinds.count("TaskScheduled") == 1  # only the last execution's work
    assert kinds.count("ExecutionStarted") == 1
    assert len(kinds) < 12


@pytest.mark.parametrize("preserve", [True, False], ids=["preserve", "drop"])
async def test_continue_as_new_carries_unprocessed_events_only_when_asked(
    runtime: DurableFunctionRuntime, preserve: bool
) -> None:
    def relay(ctx: OrchestrationContext) -> Any:
        generation = ctx.get_input()
        if generation == 0:
            yield ctx.wait_for_external_event("go")
            ctx.continue_as_new(1, preserve_unprocessed_events=preserve)
            return None
        try:
            data = yield ctx.wait_for_external_event("data", timeout=timedelta(seconds=0.3))
        except EventTimeoutError:
            return ["generation", generation, "no data"]
        return ["generation", generation, data]

    runtime.register_orchestrator(relay)
    async with runtime:
        instance_id = await runtime.client.start_new("relay", 0)
        await wait_for_status(runtime.client, instance_id, RuntimeStatus.RUNNING)
        # "data" reaches generation 0, which does not wait for it: it is buffered there.
        await runtime.client.raise_event(instance_id, "data", "payload")
        await wait_for_history(runtime.client, instance_id, "EventRaised")
        await runtime.client.raise_event(instance_id, "go")
        status = await runtime.client.wait_for_completion(instance_id, timeout=10)
    expected = "payload" if preserve else "no data"
    assert completed(status) == ["generation", 1, expected]


async def test_continue_as_new_preserves_events_that_arrive_in_the_same_batch(
    runtime: DurableFunctionRuntime,
) -> None:
    """Events delivered in the same episode as the one that triggers continue-as-new, but after
    it, were not consumed either: with preserve_unprocessed_events they must be carried over."""

    def relay(ctx: OrchestrationContext) -> Any:
        generation = ctx.get_input()
        if generation == 0:
            yield ctx.wait_for_external_event("go")
            ctx.continue_as_new(1, preserve_unprocessed_events=True)
            return None
        try:
            data = yield ctx.wait_for_external_event("data", timeout=timedelta(seconds=0.3))
        except EventTimeoutError:
            return "no data"
        return data

    runtime.register_orchestrator(relay)
    # Queue start, "go" and "data" before any worker runs, so one episode sees all three.
    instance_id = await runtime.client.start_new("relay", 0)
    await runtime.client.raise_event(instance_id, "go")
    await runtime.client.raise_event(instance_id, "data", "payload")
    async with runtime:
        status = await runtime.client.wait_for_completion(instance_id, timeout=10)
    assert completed(status) == "payload"


# ----- custom status ----------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
async def test_custom_status_is_visible_while_running(runtime: DurableFunctionRuntime, style: str) -> None:
    if style == "generator":

        def reporter(ctx: OrchestrationContext) -> Any:
            ctx.set_custom_status({"stage": "waiting", "for": "go"})
            value = yield ctx.wait_for_external_event("go")
            ctx.set_custom_status("done")
            return value

    else:

        async def reporter(ctx: OrchestrationContext) -> Any:
            ctx.set_custom_status({"stage": "waiting", "for": "go"})
            value = await ctx.wait_for_external_event("go")
            ctx.set_custom_status("done")
            return value

    runtime.register_orchestrator(reporter, "reporter")
    async with runtime:
        instance_id = await runtime.client.start_new("reporter")
        running = await wait_for_status(runtime.client, instance_id, RuntimeStatus.RUNNING)
        assert running.custom_status == {"stage": "waiting", "for": "go"}
        await runtime.client.raise_event(instance_id, "go", 42)
        status = await runtime.client.wait_for_completion(instance_id, timeout=10)
    assert completed(status) == 42
    assert status.custom_status == "done"


# ----- suspend / resume -------------------------------------------------------------------------


async def test_events_raised_while_suspended_are_processed_only_after_resume(
    runtime: DurableFunctionRuntime,
) -> None:
    def waiter(ctx: OrchestrationContext) -> Any:
        value = yield ctx.wait_for_external_event("go")
        return ["got", value]

    runtime.register_orchestrator(waiter)
    async with runtime:
        client = runtime.client
        instance_id = await client.start_new("waiter")
        await wait_for_status(client, instance_id, RuntimeStatus.RUNNING)
        await client.suspend(instance_id, "maintenance")
        await wait_for_status(client, instance_id, RuntimeStatus.SUSPENDED)
        await client.raise_event(instance_id, "go", "later")
        # The event has been taken in (recorded) but the orchestrator has not acted on it.
        recorded = await wait_for_history(client, instance_id, "EventRaised")
        assert recorded.runtime_status is RuntimeStatus.SUSPENDED
        assert recorded.output is None
        await client.resume(instance_id, "done")
        status = await client.wait_for_completion(instance_id, timeout=10)
    assert completed(status) == ["got", "later"]


async def test_activity_results_arriving_while_suspended_wait_for_resume(
    runtime: DurableFunctionRuntime,
) -> None:
    gate = asyncio.Event()

    @runtime.activity()
    async def gated() -> str:
        await gate.wait()
        return "result"

    def suspended_worker(ctx: OrchestrationContext) -> Any:
        value = yield ctx.call_activity(gated)
        return value

    runtime.register_orchestrator(suspended_worker)
    async with runtime:
        client = runtime.client
        try:
            instance_id = await client.start_new("suspended_worker")
            await wait_for_history(client, instance_id, "TaskScheduled")
            await client.suspend(instance_id)
            await wait_for_status(client, instance_id, RuntimeStatus.SUSPENDED)
        finally:
            gate.set()
        recorded = await wait_for_history(client, instance_id, "TaskCompleted")
        assert recorded.runtime_status is RuntimeStatus.SUSPENDED
        await client.resume(instance_id)
        status = await client.wait_for_completion(instance_id, timeout=10)
    assert completed(status) == "result"
