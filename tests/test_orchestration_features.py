"""Orchestration context features, end to end through a runtime, on every store backend.

Activities (sync and async, typed inputs), task_all / task_any, sub-orchestrations, durable timers,
the deterministic context (time, uuids, is_replaying). Retries, activity failures and the
replay-safe logger live in test_orchestration_failures.py; external events, continue-as-new and
custom status in test_orchestration_events.py; the client API and bad input in
test_orchestration_lifecycle.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from support.orchestrations import completed, run, wait_for_history

from asynkron_durable import (
    DurableFunctionRuntime,
    OrchestrationContext,
    RetryOptions,
    RuntimeStatus,
    TaskFailedError,
    replay_history,
)
from asynkron_durable.engine import ScheduleActivity

STYLES = ["generator", "async"]

# ----- local helpers --------------------------------------------------------------------------


class Point(BaseModel):
    x: int
    y: int


@dataclass
class Size:
    w: int
    h: int


class Area(BaseModel):
    area: int
    kind: str


# ----- activities -----------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
async def test_activity_chaining_feeds_each_result_to_the_next(
    runtime: DurableFunctionRuntime, style: str
) -> None:
    @runtime.activity()
    def add_one(x: int) -> int:
        return x + 1

    @runtime.activity("doubled")
    async def double(x: int) -> int:
        return x * 2

    if style == "generator":

        def chain(ctx: OrchestrationContext) -> Any:
            a = yield ctx.call_activity("add_one", ctx.get_input())
            b = yield ctx.call_activity(double, a)  # the function object, registered as "doubled"
            c = yield ctx.call_activity(add_one, b)
            return [a, b, c]

    else:

        async def chain(ctx: OrchestrationContext) -> Any:
            a = await ctx.call_activity("add_one", ctx.get_input())
            b = await ctx.call_activity(double, a)
            c = await ctx.call_activity(add_one, b)
            return [a, b, c]

    runtime.register_orchestrator(chain, "chain")
    async with runtime:
        status = await run(runtime, "chain", 5)
    assert completed(status) == [6, 12, 13]


async def test_sync_activities_run_in_the_thread_pool_and_async_ones_on_the_loop(
    runtime: DurableFunctionRuntime,
) -> None:
    loop_thread = threading.current_thread().name

    @runtime.activity()
    def where_sync() -> str:
        return threading.current_thread().name

    @runtime.activity()
    async def where_async() -> str:
        asyncio.get_running_loop()  # raises if not on an event loop
        return threading.current_thread().name

    def where(ctx: OrchestrationContext) -> Any:
        sync_thread = yield ctx.call_activity(where_sync)
        async_thread = yield ctx.call_activity(where_async)
        return [sync_thread, async_thread]

    runtime.register_orchestrator(where)
    async with runtime:
        sync_thread, async_thread = completed(await run(runtime, "where"))
    assert sync_thread != loop_thread
    assert sync_thread.startswith("durable-activity")
    assert async_thread == loop_thread


async def test_activity_inputs_are_typed_by_annotation_and_models_round_trip(
    runtime: DurableFunctionRuntime,
) -> None:
    @runtime.activity()
    def scale(p: Point) -> Point:
        if not isinstance(p, Point):
            raise TypeError(f"expected a Point, got {type(p).__name__}")
        return Point(x=p.x * 2, y=p.y * 2)

    @runtime.activity()
    async def measure(s: Size) -> Area:
        if not isinstance(s, Size):
            raise TypeError(f"expected a Size, got {type(s).__name__}")
        return Area(area=s.w * s.h, kind=type(s).__name__)

    def shapes(ctx: OrchestrationContext) -> Any:
        from_model = yield ctx.call_activity(scale, Point(x=1, y=2))
        from_dict = yield ctx.call_activity(scale, {"x": 5, "y": 6})
        area = yield ctx.call_activity(measure, Size(w=3, h=4))
        again = yield ctx.call_activity(scale, Point.model_validate(from_model))
        return {"model": from_model, "dict": from_dict, "area": area, "again": again}

    runtime.register_orchestrator(shapes)
    async with runtime:
        output = completed(await run(runtime, "shapes"))
    assert output == {
        "model": {"x": 2, "y": 4},
        "dict": {"x": 10, "y": 12},
        "area": {"area": 12, "kind": "Size"},
        "again": {"x": 4, "y": 8},
    }
    assert Area.model_validate(output["area"]) == Area(area=12, kind="Size")


# ----- task_all / task_any ----------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
async def test_task_all_fans_out_and_returns_results_in_call_order(
    runtime: DurableFunctionRuntime, style: str
) -> None:
    n = 5
    finished: list[int] = []
    done = [asyncio.Event() for _ in range(n)]

    @runtime.activity()
    async def square_in_reverse(i: int) -> int:
        # Activity i finishes only after activity i+1 has: completion order is the reverse of
        # call order, so in-order results prove task_all orders by call, not by completion.
        if i + 1 < n:
            await done[i + 1].wait()
        finished.append(i)
        done[i].set()
        return i * i

    if style == "generator":

        def fan_out(ctx: OrchestrationContext) -> Any:
            tasks = [ctx.call_activity(square_in_reverse, i) for i in range(ctx.get_input())]
            results = yield ctx.task_all(tasks)
            return results

    else:

        async def fan_out(ctx: OrchestrationContext) -> Any:
            tasks = [ctx.call_activity(square_in_reverse, i) for i in range(ctx.get_input())]
            return await ctx.task_all(tasks)

    runtime.register_orchestrator(fan_out, "fan_out")
    async with runtime:
        output = completed(await run(runtime, "fan_out", n))
    assert finished == [4, 3, 2, 1, 0]
    assert output == [0, 1, 4, 9, 16]


async def test_task_all_fails_with_the_first_failure(runtime: DurableFunctionRuntime) -> None:
    @runtime.activity()
    def maybe_fail(i: int) -> int:
        if i == 2:
            raise KeyError(f"item {i}")
        return i

    def fan_out_failing(ctx: OrchestrationContext) -> Any:
        try:
            yield ctx.task_all([ctx.call_activity(maybe_fail, i) for i in range(4)])
        except TaskFailedError as exc:
            return ["caught", exc.error_type]
        return ["no failure"]

    runtime.register_orchestrator(fan_out_failing)
    async with runtime:
        assert completed(await run(runtime, "fan_out_failing")) == ["caught", "KeyError"]


@pytest.mark.parametrize("style", STYLES)
async def test_task_any_returns_the_winning_task(runtime: DurableFunctionRuntime, style: str) -> None:
    gate = asyncio.Event()

    @runtime.activity()
    async def slow() -> str:
        await gate.wait()
        return "slow"

    @runtime.activity()
    def fast() -> str:
        return "fast"

    if style == "generator":

        def race(ctx: OrchestrationContext) -> Any:
            slow_task = ctx.call_activity(slow)
            fast_task = ctx.call_activity(fast)
            winner = yield ctx.task_any([slow_task, fast_task])
            return [winner is fast_task, winner is slow_task, winner.result]

    else:

        async def race(ctx: OrchestrationContext) -> Any:
            slow_task = ctx.call_activity(slow)
            fast_task = ctx.call_activity(fast)
            winner = await ctx.task_any([slow_task, fast_task])
            return [winner is fast_task, winner is slow_task, winner.result]

    runtime.register_orchestrator(race, "race")
    async with runtime:
        try:
            output = completed(await run(runtime, "race"))
        finally:
            gate.set()  # let the losing activity end so the runtime shuts down promptly
    assert output == [True, False, "fast"]


async def test_task_any_timer_beats_an_event_that_never_comes(
    runtime: DurableFunctionRuntime,
) -> None:
    def timer_race(ctx: OrchestrationContext) -> Any:
        timer = ctx.create_timer(timedelta(seconds=0.1))
        event = ctx.wait_for_external_event("never")
        winner = yield ctx.task_any([event, timer])
        return [winner is timer, winner is event]

    runtime.register_orchestrator(timer_race)
    async with runtime:
        assert completed(await run(runtime, "timer_race")) == [True, False]


async def test_task_any_event_beats_a_timer_which_is_cancelled_and_does_not_hold_completion(
    runtime: DurableFunctionRuntime,
) -> None:
    def event_race(ctx: OrchestrationContext) -> Any:
        timer = ctx.create_timer(timedelta(seconds=60))
        event = ctx.wait_for_external_event("go")
        winner = yield ctx.task_any([timer, event])
        if winner is event:
            timer.cancel()
        return [winner is event, event.result, timer.is_cancelled]

    runtime.register_orchestrator(event_race)
    async with runtime:
        instance_id = await runtime.client.start_new("event_race")
        await wait_for_history(runtime.client, instance_id, "TimerCreated")
        await runtime.client.raise_event(instance_id, "go", {"n": 1})
        status = await runtime.client.wait_for_completion(instance_id, timeout=5)
    assert completed(status) == [True, {"n": 1}, True]
    assert status.last_updated_at - status.created_at < timedelta(seconds=30)


# ----- sub-orchestrations -----------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
async def test_sub_orchestrators_with_default_and_explicit_ids(
    runtime: DurableFunctionRuntime, style: str
) -> None:
    @runtime.activity()
    def triple(x: int) -> int:
        return x * 3

    if style == "generator":

        def child(ctx: OrchestrationContext) -> Any:
            r = yield ctx.call_activity(triple, ctx.get_input())
            return {"id": ctx.instance_id, "parent": ctx.parent_instance_id, "r": r}

        def parent(ctx: OrchestrationContext) -> Any:
            a = yield ctx.call_sub_orchestrator("child", 2)
            b = yield ctx.call_sub_orchestrator(child, 3, instance_id=f"{ctx.instance_id}-kid")
            return {"a": a, "b": b, "me": ctx.instance_id, "my_parent": ctx.parent_instance_id}

    else:

        async def child(ctx: OrchestrationContext) -> Any:
            r = await ctx.call_activity(triple, ctx.get_input())
            return {"id": ctx.instance_id, "parent": ctx.parent_instance_id, "r": r}

        async def parent(ctx: OrchestrationContext) -> Any:
            a = await ctx.call_sub_orchestrator("child", 2)
            b = await ctx.call_sub_orchestrator(child, 3, instance_id=f"{ctx.instance_id}-kid")
            return {"a": a, "b": b, "me": ctx.instance_id, "my_parent": ctx.parent_instance_id}

    runtime.register_orchestrator(child, "child")
    runtime.register_orchestrator(parent, "parent")
    async with runtime:
        parent_id = await runtime.client.start_new("parent", instance_id="the-parent")
        output = completed(await runtime.client.wait_for_completion(parent_id, timeout=10))
        a, b = output["a"], output["b"]
        default_child = await runtime.client.get_status(a["id"])
        explicit_child = await runtime.client.get_status("the-parent-kid")
    assert output["me"] == "the-parent"
    assert output["my_parent"] is None
    assert a["r"] == 6 and b["r"] == 9
    assert a["parent"] == b["parent"] == "the-parent"
    assert a["id"] not in ("the-parent", "the-parent-kid")
    assert b["id"] == "the-parent-kid"
    for status in (default_child, explicit_child):
        assert status is not None
        assert status.name == "child"
        assert status.runtime_status is RuntimeStatus.COMPLETED
    assert explicit_child is not None and explicit_child.output == b


@pytest.mark.parametrize("style", STYLES)
async def test_sub_orchestrator_failure_is_a_catchable_task_failed_error(
    runtime: DurableFunctionRuntime, style: str
) -> None:
    @runtime.activity()
    def recover(x: str) -> str:
        return f"recovered from {x}"

    def failing_child(ctx: OrchestrationContext) -> Any:
        raise ValueError(f"child broke on {ctx.get_input()}")

    if style == "generator":

        def parent(ctx: OrchestrationContext) -> Any:
            try:
                yield ctx.call_sub_orchestrator(failing_child, "x")
            except TaskFailedError as exc:
                after = yield ctx.call_activity(recover, exc.error_type)
                return [exc.error_type, exc.error_message, after]
            return ["no failure"]

    else:

        async def parent(ctx: OrchestrationContext) -> Any:
            try:
                await ctx.call_sub_orchestrator(failing_child, "x")
            except TaskFailedError as exc:
                after = await ctx.call_activity(recover, exc.error_type)
                return [exc.error_type, exc.error_message, after]
            return ["no failure"]

    runtime.register_orchestrator(failing_child)
    runtime.register_orchestrator(parent, "parent")
    async with runtime:
        output = completed(await run(runtime, "parent"))
    assert output == ["ValueError", "child broke on x", "recovered from ValueError"]


@pytest.mark.parametrize("explicit_id", [False, True], ids=["default-id", "explicit-id"])
async def test_call_sub_orchestrator_with_retry_retries_until_the_child_succeeds(
    runtime: DurableFunctionRuntime, explicit_id: bool
) -> None:
    attempts = {"n": 0}

    def shaky_child(ctx: OrchestrationContext) -> Any:
        if not ctx.is_replaying:
            attempts["n"] += 1
        if attempts["n"] < 3:
            raise RuntimeError(f"attempt {attempts['n']} failed")
        return f"ok after {attempts['n']}"

    def parent(ctx: OrchestrationContext) -> Any:
        options = RetryOptions(timedelta(seconds=0.02), max_number_of_attempts=5)
        child_id = f"{ctx.instance_id}-child" if explicit_id else None
        result = yield ctx.call_sub_orchestrator_with_retry(shaky_child, options, None, instance_id=child_id)
        return result

    runtime.register_orchestrator(shaky_child)
    runtime.register_orchestrator(parent, "parent")
    async with runtime:
        assert completed(await run(runtime, "parent")) == "ok after 3"
    assert attempts["n"] == 3


# ----- timers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("kind", ["timedelta", "datetime"])
async def test_create_timer_does_not_complete_before_its_due_time(
    runtime: DurableFunctionRuntime, style: str, kind: str
) -> None:
    delay = timedelta(seconds=0.3)

    def due(ctx: OrchestrationContext) -> timedelta | datetime:
        return delay if kind == "timedelta" else ctx.current_utc_datetime + delay

    if style == "generator":

        def sleeper(ctx: OrchestrationContext) -> Any:
            start = ctx.current_utc_datetime
            yield ctx.create_timer(due(ctx))
            return [start.isoformat(), ctx.current_utc_datetime.isoformat()]

    else:

        async def sleeper(ctx: OrchestrationContext) -> Any:
            start = ctx.current_utc_datetime
            await ctx.create_timer(due(ctx))
            return [start.isoformat(), ctx.current_utc_datetime.isoformat()]

    runtime.register_orchestrator(sleeper, "sleeper")
    async with runtime:
        status = await run(runtime, "sleeper")
    start, end = (datetime.fromisoformat(t) for t in completed(status))
    assert end - start >= delay
    assert status.last_updated_at - status.created_at >= delay


async def test_a_timer_cancelled_before_it_fires_never_completes(
    runtime: DurableFunctionRuntime,
) -> None:
    def cancel_first(ctx: OrchestrationContext) -> Any:
        start = ctx.current_utc_datetime
        early = ctx.create_timer(timedelta(seconds=0.05))
        early.cancel()
        late = ctx.create_timer(timedelta(seconds=0.3))
        winner = yield ctx.task_any([early, late])
        elapsed = (ctx.current_utc_datetime - start).total_seconds()
        return [winner is late, early.is_cancelled, early.is_completed, elapsed]

    runtime.register_orchestrator(cancel_first)
    async with runtime:
        late_won, cancelled, early_done, elapsed = completed(await run(runtime, "cancel_first"))
    assert late_won is True
    assert cancelled is True
    assert early_done is False
    assert elapsed >= 0.3


# ----- the deterministic context ----------------------------------------------------------------


async def test_get_input_validates_into_a_model_and_instance_ids_are_visible(
    runtime: DurableFunctionRuntime,
) -> None:
    def typed_input(ctx: OrchestrationContext) -> Any:
        point = ctx.get_input(Point)
        raw = ctx.get_input()
        return {
            "type": type(point).__name__,
            "sum": point.x + point.y,
            "raw": raw,
            "id": ctx.instance_id,
            "name": ctx.name,
        }

    runtime.register_orchestrator(typed_input)
    async with runtime:
        instance_id = await runtime.client.start_new("typed_input", Point(x=3, y=4), "typed-1")
        status = await runtime.client.wait_for_completion(instance_id, timeout=10)
    assert completed(status) == {
        "type": "Point",
        "sum": 7,
        "raw": {"x": 3, "y": 4},
        "id": "typed-1",
        "name": "typed_input",
    }
    assert status.input == {"x": 3, "y": 4}


async def test_current_utc_datetime_is_aware_non_decreasing_and_taken_from_history(
    runtime: DurableFunctionRuntime,
) -> None:
    @runtime.activity()
    def noop(i: int) -> int:
        return i

    def clock(ctx: OrchestrationContext) -> Any:
        seen = [ctx.current_utc_datetime.isoformat()]
        for i in range(3):
            yield ctx.call_activity(noop, i)
            seen.append(ctx.current_utc_datetime.isoformat())
        return seen

    runtime.register_orchestrator(clock)
    async with runtime:
        instance_id = await runtime.client.start_new("clock")
        await runtime.client.wait_for_completion(instance_id, timeout=10)
        status = await runtime.client.get_status(instance_id, show_history=True)
    assert status is not None and status.history is not None
    times = [datetime.fromisoformat(t) for t in completed(status)]
    assert len(times) == 4
    for t in times:
        assert t.tzinfo is not None and t.utcoffset() == timedelta(0)
    assert times == sorted(times)
    assert status.created_at <= times[0] and times[-1] <= status.last_updated_at
    # Each value is the start time of the episode that produced it, replayed unchanged later.
    episode_starts = [e.timestamp for e in status.history if e.kind == "OrchestratorStarted"]
    assert times == episode_starts


@pytest.mark.parametrize("style", STYLES)
async def test_is_replaying_is_true_only_for_replayed_code(
    runtime: DurableFunctionRuntime, style: str
) -> None:
    @runtime.activity()
    def step(i: int) -> int:
        return i

    if style == "generator":

        def replays(ctx: OrchestrationContext) -> Any:
            seen = [ctx.is_replaying]
            yield ctx.call_activity(step, 1)
            seen.append(ctx.is_replaying)
            yield ctx.call_activity(step, 2)
            seen.append(ctx.is_replaying)
            return seen

    else:

        async def replays(ctx: OrchestrationContext) -> Any:
            seen = [ctx.is_replaying]
            await ctx.call_activity(step, 1)
            seen.append(ctx.is_replaying)
            await ctx.call_activity(step, 2)
            seen.append(ctx.is_replaying)
            return seen

    runtime.register_orchestrator(replays, "replays")
    runtime.episode_cache_size = 0  # replay every episode (a kept orchestration never replays)
    async with runtime:
        output = completed(await run(runtime, "replays"))
    # The final episode replays the first two steps and runs the last one live.
    assert output == [True, True, False]


async def test_new_uuid_is_stable_across_replays(runtime: DurableFunctionRuntime) -> None:
    @runtime.activity()
    def echo(value: str) -> str:
        return value

    def uuids(ctx: OrchestrationContext) -> Any:
        made = []
        for _ in range(3):
            value = str(ctx.new_uuid())
            made.append(value)
            echoed = yield ctx.call_activity(echo, value)
            if echoed != value:
                raise AssertionError(f"replayed uuid {value} differs from recorded {echoed}")
        made.append(str(ctx.new_uuid()))
        return made

    runtime.register_orchestrator(uuids)
    async with runtime:
        instance_id = await runtime.client.start_new("uuids")
        await runtime.client.wait_for_completion(instance_id, timeout=10)
        status = await runtime.client.get_status(instance_id, show_history=True)
    assert status is not None and status.history is not None
    output = completed(status)
    assert len(set(output)) == 4
    recorded = [json.loads(e.input) for e in status.history if e.kind == "TaskScheduled"]
    assert recorded == output[:3]
    replay = replay_history(uuids, instance_id, status.history)
    assert replay.status is RuntimeStatus.COMPLETED
    replayed = [json.loads(a.input) for a in replay.actions if isinstance(a, ScheduleActivity)]
    assert replayed == output[:3]
