"""The pure engine, driven event by event: no store, no runtime, no clock."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import pytest
from support.drive import T0, episode, run_to_end

from asynkron_durable import EventTimeoutError, OrchestrationContext, RuntimeStatus, TaskFailedError
from asynkron_durable.engine import CreateTimer, ScheduleActivity, ScheduleSubOrchestration, SendEvent
from asynkron_durable.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    FailureDetails,
    HistoryEvent,
    SubOrchestrationCreated,
    TaskCompleted,
    TaskFailed,
    TimerFired,
)

ACTIVITIES = {"double": lambda x: x * 2, "inc": lambda x: x + 1}


def chain_gen(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
    x = yield ctx.call_activity("double", ctx.get_input())
    y = yield ctx.call_activity("inc", x)
    both = yield ctx.task_all([ctx.call_activity("double", y), ctx.call_activity("inc", y)])
    return int(sum(both))


async def chain_async(ctx: OrchestrationContext) -> int:
    x = await ctx.call_activity("double", ctx.get_input())
    y = await ctx.call_activity("inc", x)
    both = await ctx.task_all([ctx.call_activity("double", y), ctx.call_activity("inc", y)])
    return int(sum(both))


def start(input: Any = None) -> ExecutionStarted:
    import json

    return ExecutionStarted(name="orchestrator", input=json.dumps(input), execution_id="e1")


@pytest.mark.parametrize("fn", [chain_gen, chain_async], ids=["generator", "async"])
def test_generator_and_async_orchestrators_give_the_same_result(fn: Any) -> None:
    result, history = run_to_end(fn, ACTIVITIES, 5)
    # 5*2=10, 10+1=11, [22, 12] -> 34
    assert result.status is RuntimeStatus.COMPLETED
    assert result.output == "34"
    assert [e.kind for e in history].count("TaskScheduled") == 4


def test_plain_function_orchestrator_completes_in_one_episode() -> None:
    result = episode(lambda ctx: {"got": ctx.get_input()}, [], [start([1, 2])])
    assert result.status is RuntimeStatus.COMPLETED
    assert result.output == '{"got":[1,2]}'


def test_awaiting_asyncio_fails_the_instance_with_a_clear_message() -> None:
    async def bad(ctx: OrchestrationContext) -> None:
        await asyncio.sleep(0)

    result = episode(bad, [], [start()])
    assert result.status is RuntimeStatus.FAILED
    assert result.failure is not None
    assert "may only wait on durable tasks" in result.failure.message


def test_uncaught_exception_fails_with_type_message_and_traceback() -> None:
    def broken(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        yield ctx.call_activity("double", 1)
        raise KeyError("missing thing")

    history: list[HistoryEvent] = []
    episode(broken, history, [start()])
    result = episode(broken, history, [TaskCompleted(task_scheduled_id=0, result="2")])
    assert result.status is RuntimeStatus.FAILED
    assert result.failure is not None
    assert result.failure.error_type == "KeyError"
    assert "missing thing" in result.failure.message
    assert "broken" in result.failure.details
    assert history[-1].kind == "ExecutionFailed"


def test_task_failure_is_catchable_with_remote_details() -> None:
    def catches(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        try:
            yield ctx.call_activity("explode")
        except TaskFailedError as exc:
            return [exc.error_type, exc.error_message, "Traceback" in exc.details]
        return None

    history: list[HistoryEvent] = []
    episode(catches, history, [start()])
    failure = FailureDetails(error_type="ValueError", message="bad", details="Traceback ...")
    result = episode(catches, history, [TaskFailed(task_scheduled_id=0, failure=failure)])
    assert result.output == '["ValueError","bad",true]'


def test_suspension_holds_results_until_resumed() -> None:
    history: list[HistoryEvent] = []
    episode(chain_gen, history, [start(1)])
    held = episode(
        chain_gen,
        history,
        [ExecutionSuspended(reason="pause"), TaskCompleted(task_scheduled_id=0, result="2")],
    )
    assert held.status is RuntimeStatus.SUSPENDED
    assert held.actions == []
    resumed = episode(chain_gen, history, [ExecutionResumed()])
    assert resumed.status is RuntimeStatus.RUNNING
    assert resumed.actions == [ScheduleActivity(1, "inc", "2")]


def test_termination_discards_new_actions() -> None:
    result = episode(chain_gen, [], [start(1), ExecutionTerminated(reason="stop")])
    assert result.status is RuntimeStatus.TERMINATED
    assert result.output == '"stop"'
    assert result.actions == []
    assert not any(e.kind == "TaskScheduled" for e in result.new_history)


def test_external_events_are_buffered_fifo_per_name_and_delivered_once() -> None:
    def waits(ctx: OrchestrationContext) -> Generator[Any, Any, list[Any]]:
        first = yield ctx.wait_for_external_event("go")
        other = yield ctx.wait_for_external_event("other")
        second = yield ctx.wait_for_external_event("go")
        return [first, other, second]

    events: list[HistoryEvent] = [
        EventRaised(name="go", input="1"),
        EventRaised(name="go", input="2"),
        EventRaised(name="other", input='"x"'),
    ]
    history: list[HistoryEvent] = []
    result = episode(waits, history, events)  # events before the start are buffered too
    assert result.status is RuntimeStatus.RUNNING
    result = episode(waits, history, [start()])
    assert result.output == '[1,"x",2]'


def test_event_timeout_raises_a_timeout_error_in_the_orchestrator() -> None:
    def waits(ctx: OrchestrationContext) -> Generator[Any, Any, str]:
        try:
            yield ctx.wait_for_external_event("approval", timeout=timedelta(seconds=5))
        except TimeoutError as exc:
            assert isinstance(exc, EventTimeoutError)
            return f"timed out: {exc}"
        return "approved"

    history: list[HistoryEvent] = []
    first = episode(waits, history, [start()])
    assert first.actions == [CreateTimer(0, T0 + timedelta(seconds=5))]
    result = episode(waits, history, [TimerFired(timer_id=0, fire_at=T0 + timedelta(seconds=5))])
    assert result.output == "\"timed out: external event 'approval' did not arrive within 5 seconds\""
    late = episode(waits, history, [EventRaised(name="approval", input="true")])
    assert late.status is RuntimeStatus.COMPLETED  # already finished; nothing more happens
    assert late.actions == []
    assert [e.kind for e in late.new_history][-1] == "OrchestratorCompleted"


def test_event_in_time_cancels_the_timeout_timer() -> None:
    def waits(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        value = yield ctx.wait_for_external_event("approval", timeout=timedelta(seconds=5))
        return value

    history: list[HistoryEvent] = []
    first = episode(waits, history, [start(), EventRaised(name="approval", input='"yes"')])
    # the timer was created and cancelled in the same episode: recorded, never enqueued
    assert first.actions == [CreateTimer(0, T0 + timedelta(seconds=5), cancelled=True)]
    assert first.output == '"yes"'


def test_continue_as_new_carries_only_requested_events() -> None:
    def loop(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        yield ctx.create_timer(timedelta(seconds=1))
        ctx.continue_as_new(ctx.get_input() + 1, preserve_unprocessed_events=ctx.get_input() == 0)

    for input, carried in [(0, 1), (1, 0)]:
        history: list[HistoryEvent] = []
        episode(loop, history, [start(input)])
        result = episode(
            loop,
            history,
            [EventRaised(name="later", input="7"), TimerFired(timer_id=0, fire_at=T0)],
        )
        assert result.status is RuntimeStatus.CONTINUED_AS_NEW
        assert result.continue_as_new is not None
        assert result.continue_as_new.input == str(input + 1)
        assert len(result.continue_as_new.carried_events) == carried


def test_retry_waits_on_durable_timers_between_attempts() -> None:
    from asynkron_durable import RetryOptions

    options = RetryOptions(timedelta(seconds=2), max_number_of_attempts=3, backoff_coefficient=3)

    def retried(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        return (yield ctx.call_activity_with_retry("flaky", options, "x"))

    failure = FailureDetails(error_type="IOError", message="down")
    history: list[HistoryEvent] = []
    assert episode(retried, history, [start()]).actions == [ScheduleActivity(0, "flaky", '"x"')]
    r = episode(retried, history, [TaskFailed(task_scheduled_id=0, failure=failure)])
    assert r.actions == [CreateTimer(1, T0 + timedelta(seconds=2))]
    r = episode(retried, history, [TimerFired(timer_id=1, fire_at=T0)])
    assert r.actions == [ScheduleActivity(2, "flaky", '"x"')]
    r = episode(retried, history, [TaskFailed(task_scheduled_id=2, failure=failure)])
    assert r.actions == [CreateTimer(3, T0 + timedelta(seconds=6))]
    episode(retried, history, [TimerFired(timer_id=3, fire_at=T0)])
    r = episode(retried, history, [TaskFailed(task_scheduled_id=4, failure=failure)])
    assert r.status is RuntimeStatus.FAILED  # third failure: attempts exhausted
    assert r.failure is not None and "IOError: down" in r.failure.message


def test_new_uuid_is_stable_across_replays_and_distinct_within_one() -> None:
    def ids(ctx: OrchestrationContext) -> Generator[Any, Any, list[str]]:
        a = str(ctx.new_uuid())
        yield ctx.call_activity("double", 1)
        return [a, str(ctx.new_uuid()), str(ctx.new_uuid())]

    outputs = []
    for _ in range(2):
        history: list[HistoryEvent] = []
        episode(ids, history, [start()])
        outputs.append(episode(ids, history, [TaskCompleted(task_scheduled_id=0, result="2")]).output)
    assert outputs[0] == outputs[1]
    assert outputs[0] is not None and len(set(outputs[0].split(","))) == 3


def test_sub_orchestrations_and_sent_events_become_actions() -> None:
    def parent(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        ctx.send_event("other", "ping", {"n": 1})
        yield ctx.task_all(
            [ctx.call_sub_orchestrator("child", 1), ctx.call_sub_orchestrator("child", 2, "fixed")]
        )

    result = episode(parent, [], [start()])
    assert result.actions == [
        SendEvent(0, "other", "ping", '{"n":1}'),
        ScheduleSubOrchestration(1, "child", "instance-1:1", "1"),
        ScheduleSubOrchestration(2, "child", "fixed", "2"),
    ]
    created = [e for e in result.new_history if isinstance(e, SubOrchestrationCreated)]
    assert [e.instance_id for e in created] == ["instance-1:1", "fixed"]


def test_a_cached_executor_applies_only_new_events() -> None:
    from asynkron_durable.engine import OrchestrationExecutor
    from asynkron_durable.history import OrchestratorStarted

    executor = OrchestrationExecutor(chain_gen, "instance-1")
    first = executor.run_episode([OrchestratorStarted(timestamp=T0), start(1)])
    assert first.actions == [ScheduleActivity(0, "double", "1")]
    second = executor.run_episode(
        [OrchestratorStarted(timestamp=T0), TaskCompleted(task_scheduled_id=0, result="2")]
    )
    assert second.actions == [ScheduleActivity(1, "inc", "2")]
