"""Helpers shared by the runtime feature tests: wait for a state with a deadline, run to the end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

from asynkron_durable import (
    DurableFunctionRuntime,
    OrchestrationClient,
    OrchestrationContext,
    OrchestrationStatus,
    RuntimeStatus,
)


async def wait_for_status(
    client: OrchestrationClient,
    instance_id: str,
    *statuses: RuntimeStatus,
    timeout: float = 10.0,
    show_history: bool = False,
) -> OrchestrationStatus:
    """Poll until the instance is in one of `statuses`; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        status = await client.get_status(instance_id, show_history=show_history)
        if status is not None and status.runtime_status in statuses:
            return status
        if time.monotonic() > deadline:
            seen = None if status is None else (status.runtime_status, status.failure)
            raise AssertionError(f"{instance_id} never reached {statuses}; last seen {seen}")
        await asyncio.sleep(0.01)


async def wait_for_history(
    client: OrchestrationClient, instance_id: str, kind: str, count: int = 1, timeout: float = 10.0
) -> OrchestrationStatus:
    """Poll until the instance's history holds at least `count` events of `kind`."""
    deadline = time.monotonic() + timeout
    while True:
        status = await client.get_status(instance_id, show_history=True)
        history = [] if status is None else status.history or []
        if status is not None and sum(e.kind == kind for e in history) >= count:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{instance_id} never recorded {count} x {kind}")
        await asyncio.sleep(0.01)


T = TypeVar("T")


async def eventually(
    read: Callable[[], Awaitable[T]], holds: Callable[[T], bool], what: str, timeout: float = 15.0
) -> T:
    """Poll `read()` until `holds(value)`; fail naming `what` and the last value at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if holds(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last seen {value!r}")
        await asyncio.sleep(0.01)


async def run(
    runtime: DurableFunctionRuntime, name: str, input: Any = None, timeout: float = 10.0
) -> OrchestrationStatus:
    """Start `name` on the (running) runtime and wait for it to finish."""
    instance_id = await runtime.client.start_new(name, input)
    return await runtime.client.wait_for_completion(instance_id, timeout=timeout)


def completed(status: OrchestrationStatus) -> Any:
    """The output of a Completed instance (with the failure in the message otherwise)."""
    assert status.runtime_status is RuntimeStatus.COMPLETED, status.failure
    return status.output


def register_chains(runtime: DurableFunctionRuntime) -> None:
    """`chain`: three `double` activities in a row; its output is its input times 8."""

    @runtime.activity()
    def double(value: int) -> int:
        return value * 2

    @runtime.orchestrator()
    def chain(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        value: int = ctx.get_input()
        for _ in range(3):
            value = yield ctx.call_activity(double, value)
        return value
