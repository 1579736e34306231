"""The client API (start, query, page, terminate, suspend, rewind, restart, purge, wait) and bad
input handling, end to end through a runtime, on every store backend."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from support.chaos import poll_until
from support.orchestrations import completed, wait_for_status

from asynkron_durable import (
    DurableFunctionRuntime,
    InstanceAlreadyExists,
    InstanceFilter,
    InstanceNotFound,
    InvalidOperation,
    OrchestrationClient,
    OrchestrationContext,
    OrchestrationTimeout,
    RuntimeStatus,
    SerializationError,
    TaskFailedError,
    UnknownFunction,
)
from asynkron_durable.history import utc_now
from asynkron_durable.stores import StateStore

# ----- local helpers --------------------------------------------------------------------------


async def later_than(moment: datetime) -> datetime:
    """Wait until the clock has moved clearly past `moment`; return the new time."""
    target = moment + timedelta(milliseconds=2)
    await asyncio.sleep(max(0.0, (target - utc_now()).total_seconds()) + 0.001)
    now = utc_now()
    assert now > target
    return now


def register_basics(runtime: DurableFunctionRuntime) -> None:
    """`echo` (activity + orchestrator) and `waiter` (waits for event "go", returns its data)."""

    @runtime.activity("echo")
    def echo_activity(value: Any) -> Any:
        return value

    def echo(ctx: OrchestrationContext) -> Any:
        value = yield ctx.call_activity("echo", ctx.get_input())
        return value

    def waiter(ctx: OrchestrationContext) -> Any:
        value = yield ctx.wait_for_external_event("go")
        return [ctx.get_input(), value]

    runtime.register_orchestrator(echo)
    runtime.register_orchestrator(waiter)


# ----- start_new and instance ids ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("instance_id", "problem"),
    [
        ("orders/42", "an instance id may not contain '/'"),
        ("tab\there", "an instance id may not contain '\\t'"),
        ("x" * 257, "an instance id has at most 256 characters, got 257"),
        (".", "an instance id may not be '.': a URL cannot carry it"),
        ("..", "an instance id may not be '..': a URL cannot carry it"),
        ("a\udc00b", "an instance id may not contain '\\udc00'"),
    ],
)
async def test_an_instance_id_breaking_azures_rule_is_refused_and_nothing_starts(
    store: StateStore, instance_id: str, problem: str
) -> None:
    """The HTTP API could never reach such an instance: its URLs carry the id as one path segment."""
    client = OrchestrationClient(store)
    with pytest.raises(ValueError) as info:
        await client.start_new("echo", None, instance_id)
    assert str(info.value) == problem
    assert (await client.list_instances()).instances == []


@pytest.mark.parametrize("value", ["\ud800", {"nested": ["fine", "lone \udfff"]}])
async def test_an_input_with_text_that_is_not_unicode_is_refused_and_nothing_starts(
    store: StateStore, value: Any
) -> None:
    client = OrchestrationClient(store)
    with pytest.raises(SerializationError, match="input of orchestrator 'echo' holds text that is not valid"):
        await client.start_new("echo", value)
    assert (await client.list_instances()).instances == []


async def test_start_new_with_a_running_id_raises_unless_replacing(
    runtime: DurableFunctionRuntime,
) -> None:
    register_basics(runtime)
    async with runtime:
        client = runtime.client
        await client.start_new("waiter", "first", "dup")
        await wait_for_status(client, "dup", RuntimeStatus.RUNNING)
        with pytest.raises(InstanceAlreadyExists) as info:
            await client.start_new("waiter", "second", "dup")
        assert info.value.instance_id == "dup"
        assert (await client.get_status("dup")).input == "first"

        assert await client.start_new("waiter", "replacement", "dup", replace=True) == "dup"
        await wait_for_status(client, "dup", RuntimeStatus.RUNNING)
        await client.raise_event("dup", "go", 1)
        status = await client.wait_for_completion("dup", timeout=10)
    assert completed(status) == ["replacement", 1]


async def test_a_completed_id_can_be_reused(runtime: DurableFunctionRuntime) -> None:
    register_basics(runtime)
    async with runtime:
        client = runtime.client
        await client.start_new("echo", "one", "reused")
        assert completed(await client.wait_for_completion("reused", timeout=10)) == "one"
        await client.start_new("echo", "two", "reused")
        # Starting replaced the finished instance at once: no stale Completed status is seen.
        status = await client.wait_for_completion("reused", timeout=10)
    assert completed(status) == "two"
    assert status.input == "two"


async def test_get_status_of_an_unknown_id_is_none_and_raise_event_raises(
    runtime: DurableFunctionRuntime,
) -> None:
    async with runtime:
        assert await runtime.client.get_status("nobody") is None
        with pytest.raises(InstanceNotFound) as info:
            await runtime.client.raise_event("nobody", "go")
        assert info.value.instance_id == "nobody"


# ----- list_instances ---------------------------------------------------------------------------


async def test_list_instances_filters_by_status_created_range_and_prefix(
    runtime: DurableFunctionRuntime,
) -> None:
    register_basics(runtime)
    async with runtime:
        client = runtime.client
        before = utc_now()
        await later_than(before)
        await client.start_new("echo", 1, "list-a")
        await client.start_new("waiter", 2, "list-b")
        middle = await later_than(utc_now())
        await later_than(middle)
        await client.start_new("echo", 3, "list-c")
        await client.start_new("echo", 4, "other-d")
        for done in ("list-a", "list-c", "other-d"):
            await client.wait_for_completion(done, timeout=10)
        await wait_for_status(client, "list-b", RuntimeStatus.RUNNING)

        def ids(page: Any) -> list[str]:
            return [s.instance_id for s in page.instances]

        everything = await client.list_instances()
        assert sorted(ids(everything)) == ["list-a", "list-b", "list-c", "other-d"]
        assert everything.continuation_token is None

        finished = await client.list_instances(
            InstanceFilter(runtime_status=frozenset({RuntimeStatus.COMPLETED}))
        )
        assert sorted(ids(finished)) == ["list-a", "list-c", "other-d"]
        running = await client.list_instances(
            InstanceFilter(runtime_status=frozenset({RuntimeStatus.RUNNING}))
        )
        assert ids(running) == ["list-b"]

        early = await client.list_instances(InstanceFilter(created_from=before, created_to=middle))
        assert ids(early) == ["list-a", "list-b"]
        late = await client.list_instances(InstanceFilter(created_from=middle))
        assert ids(late) == ["list-c", "other-d"]

        prefixed = await client.list_instances(InstanceFilter(instance_id_prefix="list-"))
        assert ids(prefixed) == ["list-a", "list-b", "list-c"]
        combined = await client.list_instances(
            InstanceFilter(
                instance_id_prefix="list-",
                runtime_status=frozenset({RuntimeStatus.COMPLETED}),
                created_from=middle,
            )
        )
        assert ids(combined) == ["list-c"]
        statuses = {s.instance_id: s for s in everything.instances}
        assert statuses["list-a"].output == 1 and statuses["list-a"].name == "echo"


async def test_list_instances_pages_with_continuation_tokens(
    runtime: DurableFunctionRuntime,
) -> None:
    register_basics(runtime)
    async with runtime:
        client = runtime.client
        started = [await client.start_new("echo", i, f"page-{i}") for i in range(5)]
        await client.start_new("echo", "x", "elsewhere")
        only_pages = InstanceFilter(instance_id_prefix="page-")
        pages: list[list[str]] = []
        token: str | None = None
        while True:
            page = await client.list_instances(only_pages, page_size=2, continuation_token=token)
            pages.append([s.instance_id for s in page.instances])
            token = page.continuation_token
            if token is None:
                break
            assert len(pages) < 10, "paging does not end"
    assert [len(p) for p in pages] == [2, 2, 1]
    seen = [instance_id for page in pages for instance_id in page]
    assert sorted(seen) == sorted(started)
    assert len(set(seen)) == 5


# ----- terminate --------------------------------------------------------------------------------


async def test_terminate_stops_an_instance_with_the_reason_as_output(
    runtime: DurableFunctionRuntime,
) -> None:
    register_basics(runtime)
    async with runtime:
        client = runtime.client
        instance_id = await client.start_new("waiter", "x")
        await wait_for_status(client, instance_id, RuntimeStatus.RUNNING)
        await client.terminate(instance_id, "no longer needed")
        status = await client.wait_for_completion(instance_id, timeout=10)
        assert status.runtime_status is RuntimeStatus.TERMINATED
        assert status.output == "no longer needed"
        with pytest.raises(InvalidOperation):
            await client.raise_event(instance_id, "go")


async def test_a_parent_waiting_on_a_terminated_child_gets_a_failure(
    runtime: DurableFunctionRuntime,
) -> None:
    register_basics(runtime)

    def parent(ctx: OrchestrationContext) -> Any:
        try:
            yield ctx.call_sub_orchestrator("waiter", "kid", instance_id="doomed-child")
        except TaskFailedError as exc:
            return ["child failed", exc.error_type, exc.error_message]
        return ["child completed"]

    runtime.register_orchestrator(parent)
    async with runtime:
        client = runtime.client
        parent_id = await client.start_new("parent")
        await wait_for_status(client, "doomed-child", RuntimeStatus.RUNNING)
        await client.terminate("doomed-child", "stop it")
        status = await client.wait_for_completion(parent_id, timeout=10)
        child = await client.get_status("doomed-child")
    assert child is not None and child.runtime_status is RuntimeStatus.TERMINATED
    assert child.output == "stop it"
    verdict, _error_type, message = completed(status)
    assert verdict == "child failed"
    assert "terminated" in message.lower()
    assert "stop it" in message


# ----- suspend / resume -------------------------------------------------------------------------


@pytest.mark.parametrize("kept", [True, False], ids=["kept-in-memory", "replayed"])
async def test_suspend_and_resume(runtime: DurableFunctionRuntime, kept: bool) -> None:
    register_basics(runtime)
    if not kept:  # the suspension then lands without the code, and the resume replays it
        runtime.episode_cache_size = 0
    async with runtime:
        client = runtime.client
        instance_id = await client.start_new("waiter", "s")
        await wait_for_status(client, instance_id, RuntimeStatus.RUNNING)
        await client.suspend(instance_id, "hold on")
        await wait_for_status(client, instance_id, RuntimeStatus.SUSPENDED)
        await client.raise_event(instance_id, "go", "while suspended")
        await client.resume(instance_id, "carry on")
        status = await client.wait_for_completion(instance_id, timeout=10)
    assert completed(status) == ["s", "while suspended"]


async def test_suspend_and_terminate_land_without_running_code_that_cannot_run(
    runtime: DurableFunctionRuntime,
) -> None:
    runs: list[bool] = []

    def brittle(ctx: OrchestrationContext) -> Any:
        runs.append(ctx.is_replaying)
        if ctx.is_replaying:  # its code must not run again to suspend or terminate it
            raise RuntimeError("replayed")
        yield ctx.wait_for_external_event("go")

    runtime.register_orchestrator(brittle)
    runtime.episode_cache_size = 0  # every episode would replay it
    async with runtime:
        client = runtime.client
        instance_id = await client.start_new("brittle")
        await wait_for_status(client, instance_id, RuntimeStatus.RUNNING)
        await client.suspend(instance_id, "looks stuck")
        await wait_for_status(client, instance_id, RuntimeStatus.SUSPENDED)
        await client.raise_event(instance_id, "go")  # held, with the code not run
        await client.terminate(instance_id, "stuck for good")
        status = await client.wait_for_completion(instance_id, timeout=10)
        history = await client.get_status(instance_id, show_history=True)

    assert status.runtime_status is RuntimeStatus.TERMINATED
    assert status.output == "stuck for good"
    assert runs == [False]  # run once, at the start; never replayed
    assert history is not None and history.history is not None
    kinds = [event.kind for event in history.history]
    assert kinds.count("ExecutionSuspended") == 1 and kinds.count("EventRaised") == 1
    assert kinds[-2:] == ["ExecutionTerminated", "OrchestratorCompleted"]


# ----- rewind / restart -------------------------------------------------------------------------


async def test_rewind_retries_the_failed_work_and_keeps_what_succeeded(
    runtime: DurableFunctionRuntime,
) -> None:
    calls = {"prepare": 0, "flaky": 0}
    fixed = {"yes": False}

    @runtime.activity()
    def prepare(x: int) -> int:
        calls["prepare"] += 1
        return x + 1

    @runtime.activity()
    def flaky_step(x: int) -> int:
        calls["flaky"] += 1
        if not fixed["yes"]:
            raise RuntimeError("not fixed yet")
        return x * 10

    def rewindable(ctx: OrchestrationContext) -> Any:
        a = yield ctx.call_activity(prepare, ctx.get_input())
        b = yield ctx.call_activity(flaky_step, a)
        return [a, b]

    runtime.register_orchestrator(rewindable)
    async with runtime:
        client = runtime.client
        instance_id = await client.start_new("rewindable", 1)
        failed = await client.wait_for_completion(instance_id, timeout=10)
        assert failed.runtime_status is RuntimeStatus.FAILED
        assert failed.failure is not None and "not fixed yet" in failed.failure.message
        assert calls == {"prepare": 1, "flaky": 1}

        fixed["yes"] = True
        await client.rewind(instance_id, "fixed")
        status = await wait_for_status(client, instance_id, RuntimeStatus.COMPLETED)
    assert status.output == [2, 20]
    assert status.failure is None
    assert calls == {"prepare": 1, "flaky": 2}


async def test_rewind_of_an_instance_that_did_not_fail_is_rejected(
    runtime: DurableFunctionRuntime,
) -> None:
    register_basics(runtime)
    async with runtime:
        instance_id = await runtime.client.start_new("echo", 1)
        await runtime.client.wait_for_completion(instance_id, timeout=10)
        with pytest.raises(InvalidOperation):
            await runtime.client.rewind(instance_id)


async def test_restart_runs_the_same_input_under_a_new_id(runtime: DurableFunctionRuntime) -> None:
    register_basics(runtime)
    async with runtime:
        client = runtime.client
        first = await client.start_new("echo", {"v": 1})
        await client.wait_for_completion(first, timeout=10)
        second = await client.restart(first)
        status = await client.wait_for_completion(second, timeout=10)
        original = await client.get_status(first)
    assert second != first
    assert status.name == "echo"
    assert status.input == {"v": 1}
    assert completed(status) == {"v": 1}
    assert original is not None and original.runtime_status is RuntimeStatus.COMPLETED


# ----- purge ------------------------------------------------------------------------------------


async def test_purge_by_id_and_by_filter(runtime: DurableFunctionRuntime) -> None:
    register_basics(runtime)
    async with runtime:
        client = runtime.client
        for i in range(3):
            await client.start_new("echo", i, f"purge-{i}")
        await client.start_new("echo", "keep", "keep-me")
        await client.start_new("waiter", "w", "purge-running")
        for done in ("purge-0", "purge-1", "purge-2", "keep-me"):
            await client.wait_for_completion(done, timeout=10)
        await wait_for_status(client, "purge-running", RuntimeStatus.RUNNING)

        assert await client.purge("purge-0") == 1
        assert await client.get_status("purge-0") is None
        assert await client.purge("purge-0") == 0

        purged = await client.purge(
            InstanceFilter(instance_id_prefix="purge-", runtime_status=frozenset({RuntimeStatus.COMPLETED}))
        )
        assert purged == 2
        remaining = await client.list_instances()
    assert sorted(s.instance_id for s in remaining.instances) == ["keep-me", "purge-running"]


# ----- wait_for_completion ----------------------------------------------------------------------


async def test_wait_for_completion_times_out_for_a_never_finishing_instance(
    runtime: DurableFunctionRuntime,
) -> None:
    register_basics(runtime)
    async with runtime:
        instance_id = await runtime.client.start_new("waiter")
        started = time.monotonic()
        with pytest.raises(OrchestrationTimeout) as info:
            await runtime.client.wait_for_completion(instance_id, timeout=0.2)
        assert time.monotonic() - started >= 0.2
        assert isinstance(info.value, TimeoutError)
        assert instance_id in str(info.value)


# ----- bad input --------------------------------------------------------------------------------


class Point(BaseModel):
    x: int
    y: int


async def test_start_new_of_an_unknown_orchestrator_raises_naming_it(
    runtime: DurableFunctionRuntime,
) -> None:
    register_basics(runtime)
    async with runtime:
        with pytest.raises(UnknownFunction) as info:
            await runtime.client.start_new("no_such_orchestrator", 1, "ghost")
        assert "no_such_orchestrator" in str(info.value)
        assert await runtime.client.get_status("ghost") is None
        bystander = await runtime.client.start_new("echo", "fine")
        assert completed(await runtime.client.wait_for_completion(bystander, timeout=10)) == "fine"


async def test_a_runtime_that_registers_nothing_serves_as_a_client_of_any_orchestrator(
    store: StateStore,
) -> None:
    worker = DurableFunctionRuntime(store, max_poll_interval=0.02)
    register_basics(worker)
    bare = DurableFunctionRuntime(store)  # nothing registered: only its client is used
    async with worker:
        instance_id = await bare.client.start_new("echo", "from a bare runtime")
        await bare.client.signal_entity("@anything@k", "poke")  # no entities registered either
        assert (
            completed(await bare.client.wait_for_completion(instance_id, timeout=10)) == "from a bare runtime"
        )


async def test_an_unknown_orchestrator_waits_saying_why_while_no_live_worker_registers_it(
    runtime: DurableFunctionRuntime,
) -> None:
    register_basics(runtime)
    bare = OrchestrationClient(runtime.store)
    async with runtime:
        instance_id = await bare.start_new("no_such_orchestrator", 1)
        assert await bare.wait_for_completion(await bare.start_new("echo", "fine"), timeout=10)

        async def says_why() -> bool:
            status = await bare.get_status(instance_id)
            return status is not None and status.waiting is not None and "register:" in status.waiting

        await poll_until(says_why, 10, "the status to say why it waits")
        status = await bare.get_status(instance_id)
    assert status is not None and status.runtime_status is RuntimeStatus.PENDING
    assert status.waiting == (
        "no live worker registers orchestrator 'no_such_orchestrator'; live workers register: echo, waiter"
    )
    await runtime.store.open()  # the worker stopped and left: nobody runs anything now
    try:
        idle = await bare.get_status(instance_id)
    finally:
        await runtime.store.close()
    assert idle is not None and idle.waiting is not None and idle.waiting.startswith("no worker is running")


async def test_an_unknown_orchestrator_fails_once_no_live_worker_registered_it_for_a_while(
    impatient_runtime: DurableFunctionRuntime,
) -> None:
    runtime = impatient_runtime
    register_basics(runtime)
    bare = OrchestrationClient(runtime.store)
    async with runtime:
        instance_id = await bare.start_new("no_such_orchestrator", 1)
        bystander = await bare.start_new("echo", "fine")
        status = await bare.wait_for_completion(instance_id, timeout=10)
        other = await bare.wait_for_completion(bystander, timeout=10)
    assert status.runtime_status is RuntimeStatus.FAILED
    assert status.failure is not None
    assert status.failure.error_type == "UnknownFunction"
    assert "no_such_orchestrator" in status.failure.message
    assert completed(other) == "fine"


async def test_an_unknown_activity_fails_the_call_with_task_failed_error(
    impatient_runtime: DurableFunctionRuntime,
) -> None:
    runtime = impatient_runtime
    register_basics(runtime)

    def catches(ctx: OrchestrationContext) -> Any:
        try:
            yield ctx.call_activity("no_such_activity", 1)
        except TaskFailedError as exc:
            return [exc.error_type, exc.error_message]
        return None

    def does_not_catch(ctx: OrchestrationContext) -> Any:
        yield ctx.call_activity("no_such_activity", 1)

    runtime.register_orchestrator(catches)
    runtime.register_orchestrator(does_not_catch)
    async with runtime:
        client = runtime.client
        caught_id = await client.start_new("catches")
        failing_id = await client.start_new("does_not_catch")
        bystander = await client.start_new("echo", "fine")
        caught = await client.wait_for_completion(caught_id, timeout=10)
        failing = await client.wait_for_completion(failing_id, timeout=10)
        other = await client.wait_for_completion(bystander, timeout=10)
    error_type, message = completed(caught)
    assert error_type == "UnknownFunction"
    assert "no_such_activity" in message
    assert failing.runtime_status is RuntimeStatus.FAILED
    assert failing.failure is not None and "no_such_activity" in failing.failure.message
    assert completed(other) == "fine"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (object(), "not JSON-serialisable"),
        (float("nan"), "NaN and infinity have no JSON form"),  # once stored as NaN, not JSON
        ({"limit": [1.0, float("-inf")]}, "NaN and infinity have no JSON form"),
    ],
)
async def test_non_serialisable_input_to_start_new_raises_and_creates_nothing(
    runtime: DurableFunctionRuntime, value: object, reason: str
) -> None:
    register_basics(runtime)
    async with runtime:
        client = runtime.client
        with pytest.raises(SerializationError) as info:
            await client.start_new("echo", value, "unserialisable")
        assert "echo" in str(info.value) and reason in str(info.value)
        assert await client.get_status("unserialisable") is None
        assert (await client.list_instances()).instances == []
        bystander = await client.start_new("echo", "fine")
        assert completed(await client.wait_for_completion(bystander, timeout=10)) == "fine"


async def test_a_worker_without_the_orchestrator_of_a_running_instance_fails_it_as_unknown(
    store: StateStore,
) -> None:
    """Two apps on one store: a worker whose app lacks the orchestrator of an instance that already
    has history fails it naming the orchestrator, not as a replay that does not match its code."""
    own_app = DurableFunctionRuntime(store, max_poll_interval=0.02, shutdown_timeout=5.0)
    register_basics(own_app)

    def two_steps(ctx: OrchestrationContext) -> Any:
        first = yield ctx.call_activity("echo", ctx.get_input())
        second = yield ctx.wait_for_external_event("go")
        return [first, second]

    own_app.register_orchestrator(two_steps)
    other_app = DurableFunctionRuntime(
        store, max_poll_interval=0.02, shutdown_timeout=5.0, unserved_timeout=0.2
    )
    other_app.register_orchestrator(lambda ctx: None, "unrelated")
    client = OrchestrationClient(store)

    stop = asyncio.Event()
    running = asyncio.create_task(own_app.run_and_poll(stop))
    await client.start_new("two_steps", 1, "shared")
    await wait_for_status(client, "shared", RuntimeStatus.RUNNING)
    deadline = time.monotonic() + 10
    while not any(e.kind == "TaskCompleted" for e in await store.get_history("shared")):
        assert time.monotonic() < deadline, "the first app never recorded the activity's result"
        await asyncio.sleep(0.01)
    stop.set()
    await running

    stop = asyncio.Event()
    running = asyncio.create_task(other_app.run_and_poll(stop))
    try:
        await client.raise_event("shared", "go", 2)
        status = await client.wait_for_completion("shared", timeout=10)
    finally:
        stop.set()
        await running
    assert status.runtime_status is RuntimeStatus.FAILED and status.failure is not None
    assert status.failure.error_type == "UnknownFunction"
    assert "unknown orchestrator 'two_steps'; registered orchestrators: unrelated" in status.failure.message


async def test_non_serialisable_activity_input_fails_the_instance_clearly(
    runtime: DurableFunctionRuntime,
) -> None:
    register_basics(runtime)

    def sends_junk(ctx: OrchestrationContext) -> Any:
        yield ctx.call_activity("echo", {"handle": object()})

    runtime.register_orchestrator(sends_junk)
    async with runtime:
        instance_id = await runtime.client.start_new("sends_junk")
        bystander = await runtime.client.start_new("echo", "fine")
        status = await runtime.client.wait_for_completion(instance_id, timeout=10)
        other = await runtime.client.wait_for_completion(bystander, timeout=10)
    assert status.runtime_status is RuntimeStatus.FAILED
    assert status.failure is not None
    assert status.failure.error_type == "SerializationError"
    assert "activity 'echo'" in status.failure.message
    assert "not JSON-serialisable" in status.failure.message
    assert completed(other) == "fine"


async def test_activity_input_failing_validation_names_the_activity_and_type(
    runtime: DurableFunctionRuntime,
) -> None:
    register_basics(runtime)

    @runtime.activity()
    def plot(p: Point) -> int:
        return p.x + p.y

    def plots(ctx: OrchestrationContext) -> Any:
        good = yield ctx.call_activity(plot, {"x": 1, "y": 2})
        yield ctx.call_activity(plot, {"x": "not a number"})
        return good

    runtime.register_orchestrator(plots)
    async with runtime:
        instance_id = await runtime.client.start_new("plots")
        bystander = await runtime.client.start_new("echo", "fine")
        status = await runtime.client.wait_for_completion(instance_id, timeout=10)
        other = await runtime.client.wait_for_completion(bystander, timeout=10)
    assert status.runtime_status is RuntimeStatus.FAILED
    assert status.failure is not None
    assert "SerializationError" in status.failure.message
    assert "plot" in status.failure.message
    assert "Point" in status.failure.message
    assert completed(other) == "fine"
