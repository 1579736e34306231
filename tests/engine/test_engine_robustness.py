"""The engine turns every kind of trouble into an instance outcome, never into a worker crash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Generator
from datetime import timedelta
from typing import Any

from support.drive import T0, episode

from asynkron_durable import OrchestrationContext, RetryOptions, RuntimeStatus
from asynkron_durable.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    HistoryEvent,
    TaskCompleted,
    TimerFired,
)


def start(input: Any = None) -> ExecutionStarted:
    return ExecutionStarted(name="orchestrator", input=json.dumps(input), execution_id="e1")


def test_retry_back_off_is_capped_before_it_can_overflow() -> None:
    options = RetryOptions(
        timedelta(seconds=1), 500, backoff_coefficient=10, max_retry_interval=timedelta(minutes=1)
    )
    assert options.delay_before_retry(2) == timedelta(seconds=10)
    assert options.delay_before_retry(400) == timedelta(minutes=1)
    uncapped = RetryOptions(timedelta(seconds=1), 500, backoff_coefficient=10)
    assert uncapped.delay_before_retry(400) == timedelta(days=3650)


def test_cancelled_error_from_orchestrator_code_fails_the_instance() -> None:
    async def cancels(ctx: OrchestrationContext) -> None:
        raise asyncio.CancelledError("user code")

    result = episode(cancels, [], [start()])
    assert result.status is RuntimeStatus.FAILED
    assert result.failure is not None and result.failure.error_type == "CancelledError"


def test_an_exception_whose_str_raises_is_still_reported() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    def raises(ctx: OrchestrationContext) -> None:
        raise Unprintable

    result = episode(raises, [], [start()])
    assert result.status is RuntimeStatus.FAILED
    assert result.failure is not None and result.failure.error_type == "Unprintable"


def test_non_determinism_found_in_replay_records_the_failure_and_schedules_nothing() -> None:
    def original(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        yield ctx.call_activity("A")
        yield ctx.call_activity("B")

    def changed(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        yield ctx.call_activity("X")
        yield ctx.call_activity("C")

    history: list[HistoryEvent] = []
    episode(original, history, [start()])
    result = episode(changed, history, [TaskCompleted(task_scheduled_id=0, result="1")])
    assert result.status is RuntimeStatus.FAILED
    assert result.failure is not None and result.failure.error_type == "NonDeterminismError"
    assert result.actions == []
    assert result.new_history[-1].kind == "ExecutionFailed"


def test_events_held_during_suspension_are_carried_over_by_continue_as_new() -> None:
    def loop(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        yield ctx.wait_for_external_event("go")
        ctx.continue_as_new(None, preserve_unprocessed_events=True)

    history: list[HistoryEvent] = []
    episode(loop, history, [start()])
    episode(
        loop,
        history,
        [ExecutionSuspended(), EventRaised(name="go", input="1"), EventRaised(name="x", input="2")],
    )
    result = episode(loop, history, [ExecutionResumed()])
    assert result.continue_as_new is not None
    assert [e.input for e in result.continue_as_new.carried_events] == ["2"]


def test_carried_events_keep_their_arrival_order_across_names() -> None:
    def loop(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        yield ctx.create_timer(T0)
        ctx.continue_as_new(None, preserve_unprocessed_events=True)

    history: list[HistoryEvent] = []
    episode(loop, history, [start()])
    arrivals = [EventRaised(name=n, input=p) for n, p in [("a", "1"), ("b", "2"), ("a", "3")]]
    result = episode(loop, history, [*arrivals, TimerFired(timer_id=0, fire_at=T0)])
    assert result.continue_as_new is not None
    carried = [(e.name, e.input) for e in result.continue_as_new.carried_events]
    assert carried == [("a", "1"), ("b", "2"), ("a", "3")]
