"""Orchestrator and entity code runs off the event loop under a deadline: a stuck episode fails its
own instance, names the line it was stuck on, and holds up nothing else."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import pytest
from support.orchestrations import register_chains

from asynkron_durable import (
    DurableFunctionRuntime,
    EntityContext,
    OrchestrationContext,
    RuntimeStatus,
)
from asynkron_durable.errors import WorkerStuck
from asynkron_durable.stores import StateStore


async def test_a_spinning_orchestrator_fails_alone_naming_its_line(store: StateStore) -> None:
    runtime = DurableFunctionRuntime(store, orchestrator_deadline=0.5, max_poll_interval=0.05)
    register_chains(runtime)

    @runtime.orchestrator()
    def spin(ctx: OrchestrationContext) -> None:
        while True:  # the line the failure must name
            pass

    async with runtime:
        await runtime.client.start_new("spin", instance_id="spin")
        ids = [await runtime.client.start_new("chain", n) for n in range(20)]
        done = [await runtime.client.wait_for_completion(i, timeout=30) for i in ids]
        spun = await runtime.client.wait_for_completion("spin", timeout=30)

    assert [s.output for s in done] == [n * 8 for n in range(20)]
    assert spun.runtime_status is RuntimeStatus.FAILED
    assert spun.failure is not None and spun.failure.error_type == "OrchestratorDeadlock"
    assert "orchestrator 'spin'" in spun.failure.message
    assert "deadline is 0.5 s" in spun.failure.message
    assert (
        "test_orchestrator_deadlines.py:" in spun.failure.message
        and "in spin: while True:" in spun.failure.message
    )


async def test_the_event_loop_keeps_running_while_an_episode_spins(store: StateStore) -> None:
    runtime = DurableFunctionRuntime(store, orchestrator_deadline=2.0, max_poll_interval=0.05)
    started = threading.Event()

    @runtime.orchestrator()
    def spin(ctx: OrchestrationContext) -> None:
        started.set()
        while True:
            pass

    async with runtime:
        await runtime.client.start_new("spin", instance_id="spin")
        await asyncio.to_thread(started.wait, 20)
        ticks = 0
        began = time.monotonic()
        while time.monotonic() - began < 0.5:  # the spin has at least 1.5 s left
            await asyncio.sleep(0.01)
            ticks += 1
        failed = await runtime.client.wait_for_completion("spin", timeout=30)
    assert ticks >= 10, f"the event loop ran {ticks} times in 0.5 s while an orchestrator spun"
    assert failed.runtime_status is RuntimeStatus.FAILED


async def test_an_orchestrator_may_have_a_deadline_of_its_own(store: StateStore) -> None:
    runtime = DurableFunctionRuntime(store, orchestrator_deadline=60, max_poll_interval=0.05)

    @runtime.orchestrator(deadline=timedelta(milliseconds=300))
    def impatient(ctx: OrchestrationContext) -> None:
        while True:
            pass

    async with runtime:
        await runtime.client.start_new("impatient", instance_id="x")
        failed = await runtime.client.wait_for_completion("x", timeout=30)
    assert failed.failure is not None and "deadline is 0.3 s" in failed.failure.message


async def test_code_that_swallows_the_interruption_is_interrupted_again(store: StateStore) -> None:
    runtime = DurableFunctionRuntime(store, orchestrator_deadline=0.3, max_poll_interval=0.05)
    swallowed = 0

    @runtime.orchestrator()
    def stubborn(ctx: OrchestrationContext) -> None:
        nonlocal swallowed
        while swallowed < 2:
            try:
                while True:
                    pass
            except Exception:
                swallowed += 1
        while True:
            pass

    async with runtime:
        await runtime.client.start_new("stubborn", instance_id="s")
        failed = await runtime.client.wait_for_completion("s", timeout=30)
    assert swallowed == 2
    assert failed.failure is not None and failed.failure.error_type == "OrchestratorDeadlock"


async def test_a_spinning_entity_operation_fails_that_operation(store: StateStore) -> None:
    runtime = DurableFunctionRuntime(store, orchestrator_deadline=0.5, max_poll_interval=0.05)

    @runtime.entity()
    def counter(ctx: EntityContext) -> Any:
        if ctx.operation_name == "spin":
            while True:
                pass
        ctx.set_state(ctx.get_state(lambda: 0) + 1)
        return ctx.get_state()

    @runtime.orchestrator()
    def caller(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        try:
            yield ctx.call_entity("@counter@c", "spin")
        except Exception as exc:
            spun = str(exc)
        count = yield ctx.call_entity("@counter@c", "add")
        return [spun, count]

    async with runtime:
        await runtime.client.start_new("caller", instance_id="c")
        status = await runtime.client.wait_for_completion("c", timeout=30)
    assert status.runtime_status is RuntimeStatus.COMPLETED, status.failure
    spun, count = status.output
    assert "OrchestratorDeadlock" in spun and "entity '@counter@c'" in spun
    assert count == 1


async def test_code_blocked_outside_python_stops_the_worker_after_failing_its_instance(
    store: StateStore,
) -> None:
    runtime = DurableFunctionRuntime(store, orchestrator_deadline=0.3, max_poll_interval=0.05)
    release = threading.Event()

    @runtime.orchestrator()
    def blocked(ctx: OrchestrationContext) -> None:
        release.wait()  # a C call: nothing can be raised inside it

    try:
        with pytest.raises(WorkerStuck, match="could not be interrupted"):
            async with runtime:
                await runtime.client.start_new("blocked", instance_id="b")
                await asyncio.wait_for(runtime._background, timeout=30)  # type: ignore[arg-type]
        await runtime.store.open()
        status = await runtime.client.get_status("b")
        assert status is not None and status.runtime_status is RuntimeStatus.FAILED
        assert status.failure is not None and "in blocked: release.wait()" in status.failure.message
    finally:
        release.set()
        await runtime.store.close()


async def test_a_stop_is_not_held_up_by_a_spinning_episode(store: StateStore) -> None:
    runtime = DurableFunctionRuntime(store, orchestrator_deadline=600, max_poll_interval=0.05)
    started = threading.Event()

    @runtime.orchestrator()
    def spin(ctx: OrchestrationContext) -> None:
        started.set()
        while True:
            pass

    await runtime.__aenter__()
    try:
        await runtime.client.start_new("spin", instance_id="spin")
        await asyncio.to_thread(started.wait, 20)
    finally:
        began = time.monotonic()
        await asyncio.wait_for(runtime.__aexit__(None, None, None), timeout=20)
    assert time.monotonic() - began < 10
    await runtime.store.open()
    try:
        status = await runtime.client.get_status("spin")
        assert status is not None and not status.runtime_status.is_terminal  # it runs again elsewhere
    finally:
        await runtime.store.close()


async def test_the_callers_of_an_entity_stuck_outside_python_get_an_error(store: StateStore) -> None:
    release = threading.Event()
    stuck = DurableFunctionRuntime(store, orchestrator_deadline=0.3, max_poll_interval=0.05)
    healthy = DurableFunctionRuntime(store, orchestrator_deadline=0.3, max_poll_interval=0.05)
    for runtime, blocks in ((stuck, True), (healthy, False)):

        @runtime.entity(name="gate")
        def gate(ctx: EntityContext, blocks: bool = blocks) -> Any:
            if blocks:
                release.wait()
            return "opened"

        @runtime.orchestrator(name="caller")
        def caller(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
            try:
                return (yield ctx.call_entity("@gate@g", "open"))
            except Exception as exc:
                return str(exc)

    try:
        with pytest.raises(WorkerStuck):
            async with stuck:
                await stuck.client.start_new("caller", instance_id="c")
                await asyncio.wait_for(stuck.workers, timeout=30)  # type: ignore[arg-type]
        await store.open()
        async with healthy:  # another worker picks the caller up: it must not wait forever
            status = await healthy.client.wait_for_completion("c", timeout=30)
    finally:
        release.set()
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert "OrchestratorDeadlock" in status.output and "could not be interrupted" in status.output


async def test_a_long_batch_of_quick_entity_operations_is_not_stuck(store: StateStore) -> None:
    runtime = DurableFunctionRuntime(store, orchestrator_deadline=0.2, max_poll_interval=0.05)

    @runtime.entity()
    def slowish(ctx: EntityContext) -> Any:
        time.sleep(0.03)  # each within the deadline, the batch far beyond it
        ctx.set_state(ctx.get_state(lambda: 0) + 1)
        return ctx.get_state()

    @runtime.orchestrator()
    def many(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        for _ in range(20):
            ctx.signal_entity("@slowish@s", "add")
        return (yield ctx.call_entity("@slowish@s", "add"))

    async with runtime:
        await runtime.client.start_new("many", instance_id="m")
        status = await runtime.client.wait_for_completion("m", timeout=30)
    assert status.output == 21


async def test_code_that_always_catches_the_interruption_stops_the_worker() -> None:
    runtime = DurableFunctionRuntime("memory://", orchestrator_deadline=0.2, max_poll_interval=0.05)
    done = threading.Event()  # set at the end, so the thread left behind ends with the test

    @runtime.orchestrator()
    def stubborn(ctx: OrchestrationContext) -> None:
        while not done.is_set():
            try:
                while not done.is_set():
                    pass
            except Exception:
                continue

    try:
        with pytest.raises(WorkerStuck, match="kept running after 20 interruptions"):
            async with runtime:
                await runtime.client.start_new("stubborn", instance_id="s")
                await asyncio.wait_for(runtime.workers, timeout=30)  # type: ignore[arg-type]
    finally:
        done.set()
