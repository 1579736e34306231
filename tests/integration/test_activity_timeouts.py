"""Activity timeouts: a call past its timeout fails its task with `ActivityTimeout` (retryable), a
sync call's thread is left behind and its slot given back, so hung activities cannot hold a worker."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from support.orchestrations import register_chains

from asynkron_durable import DurableFunctionRuntime, OrchestrationContext, RetryOptions, RuntimeStatus
from asynkron_durable.stores import StateStore


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Hung sync activities wait on this; set at the end so their left-behind threads end."""
    event = threading.Event()
    yield event
    event.set()


def _catching(runtime: DurableFunctionRuntime, activity: str) -> None:
    @runtime.orchestrator(name=f"call_{activity}")
    def call(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        try:
            return (yield ctx.call_activity(activity, 1))
        except Exception as exc:
            return [exc.error_type, exc.error_message]  # type: ignore[attr-defined]


async def test_a_hung_sync_activity_times_out_and_gives_its_slot_back(
    store: StateStore, release: threading.Event
) -> None:
    runtime = DurableFunctionRuntime(store, max_concurrent_activities=2, max_poll_interval=0.05)

    @runtime.activity(timeout=0.3)
    def hang(_: int) -> None:
        release.wait()

    register_chains(runtime)
    _catching(runtime, "hang")
    async with runtime:
        hung = [await runtime.client.start_new("call_hang") for _ in range(4)]  # twice the slots
        chains = [await runtime.client.start_new("chain", n) for n in range(10)]
        done = [await runtime.client.wait_for_completion(i, timeout=30) for i in chains]
        timed_out = [await runtime.client.wait_for_completion(i, timeout=30) for i in hung]
    assert [s.output for s in done] == [n * 8 for n in range(10)]
    assert all(
        s.output == ["ActivityTimeout", "activity 'hang' ran longer than its timeout of 0.3 s"]
        for s in timed_out
    )


async def test_an_async_activity_times_out(store: StateStore) -> None:
    runtime = DurableFunctionRuntime(store, max_poll_interval=0.05)

    @runtime.activity(timeout=timedelta(milliseconds=200))
    async def sleepy(_: int) -> None:
        await asyncio.sleep(60)

    _catching(runtime, "sleepy")
    async with runtime:
        instance_id = await runtime.client.start_new("call_sleepy")
        status = await runtime.client.wait_for_completion(instance_id, timeout=30)
    assert status.output == ["ActivityTimeout", "activity 'sleepy' ran longer than its timeout of 0.2 s"]


async def test_an_activity_s_own_timeout_error_is_its_own(store: StateStore) -> None:
    runtime = DurableFunctionRuntime(store, max_poll_interval=0.05, activity_timeout=30)

    @runtime.activity()
    async def flaky(_: int) -> None:
        raise TimeoutError("the upstream service did not answer")

    _catching(runtime, "flaky")
    async with runtime:
        instance_id = await runtime.client.start_new("call_flaky")
        status = await runtime.client.wait_for_completion(instance_id, timeout=30)
    assert status.output == ["TimeoutError", "the upstream service did not answer"]


async def test_the_runtime_s_default_timeout_applies_and_a_retry_runs_again(
    store: StateStore, release: threading.Event
) -> None:
    runtime = DurableFunctionRuntime(store, max_poll_interval=0.05, activity_timeout=0.3)
    calls = 0

    @runtime.activity()
    def slow_once(value: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            release.wait()
        return value + 1

    @runtime.orchestrator()
    def retrying(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        retry = RetryOptions(first_retry_interval=timedelta(milliseconds=50), max_number_of_attempts=3)
        return (yield ctx.call_activity_with_retry(slow_once, retry, 1))

    async with runtime:
        instance_id = await runtime.client.start_new("retrying")
        status = await runtime.client.wait_for_completion(instance_id, timeout=30)
    assert status.runtime_status is RuntimeStatus.COMPLETED and status.output == 2
    assert calls == 2


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "5"])
def test_a_timeout_that_is_not_a_positive_duration_is_refused(timeout: Any) -> None:
    runtime = DurableFunctionRuntime("memory://")
    with pytest.raises(ValueError, match="timeout of activity 'f'"):
        runtime.activity(name="f", timeout=timeout)(lambda x: x)
    with pytest.raises(ValueError, match="activity_timeout"):
        DurableFunctionRuntime("memory://", activity_timeout=timeout)
    with pytest.raises(ValueError, match="deadline of orchestrator 'o'"):
        runtime.orchestrator(name="o", deadline=timeout)(lambda ctx: None)
