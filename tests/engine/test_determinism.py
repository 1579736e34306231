"""Recorded histories replay to the same actions; changed code is caught, never mis-replayed.

`golden/hello_cities.json` is the history of a real run on the runtime (three activities, then a
timer), kept as a file so an engine change that breaks old histories fails here.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from asynkron_durable import NonDeterminismError, OrchestrationContext, RuntimeStatus, replay_history
from asynkron_durable.engine import CreateTimer, ScheduleActivity
from asynkron_durable.history import EVENT_ADAPTER, HistoryEvent, TaskScheduled, TimerCreated

GOLDEN = Path(__file__).parent / "golden" / "hello_cities.json"


def load_golden() -> list[HistoryEvent]:
    return [EVENT_ADAPTER.validate_python(e) for e in json.loads(GOLDEN.read_text())]


def hello_cities(ctx: OrchestrationContext) -> Generator[Any, Any, list[str]]:
    out = []
    for city in ["Tokyo", "Seattle", "London"]:
        out.append((yield ctx.call_activity("say_hello", city)))
    yield ctx.create_timer(ctx.current_utc_datetime)
    return out


def renamed_activity(ctx: OrchestrationContext) -> Generator[Any, Any, list[str]]:
    out = []
    for city in ["Tokyo", "Seattle", "London"]:
        name = "say_hello" if city != "Seattle" else "say_goodbye"
        out.append((yield ctx.call_activity(name, city)))
    yield ctx.create_timer(ctx.current_utc_datetime)
    return out


def timer_first(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
    yield ctx.create_timer(ctx.current_utc_datetime)


def one_step_short(ctx: OrchestrationContext) -> Generator[Any, Any, list[str]]:
    out = []
    for city in ["Tokyo", "Seattle"]:
        out.append((yield ctx.call_activity("say_hello", city)))
    return out


def one_step_more(ctx: OrchestrationContext) -> Generator[Any, Any, list[str]]:
    out = yield from hello_cities(ctx)
    yield ctx.call_activity("say_hello", "Paris")
    return out


def test_replaying_the_golden_history_reproduces_its_actions() -> None:
    history = load_golden()
    result = replay_history(hello_cities, "golden-1", history)
    assert result.status is RuntimeStatus.COMPLETED
    recorded = [e for e in history if isinstance(e, TaskScheduled | TimerCreated)]
    assert len(result.actions) == len(recorded) == 4
    for action, event in zip(result.actions, recorded, strict=True):
        assert action.sequence == event.event_id
        if isinstance(event, TaskScheduled):
            assert action == ScheduleActivity(event.event_id, event.name, event.input)
        else:
            assert isinstance(action, CreateTimer) and action.fire_at == event.fire_at


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (
            renamed_activity,
            "the history holds activity 'say_hello' but the code asked for activity 'say_goodbye'",
        ),
        (timer_first, "the history holds activity 'say_hello' but the code asked for timer"),
        (one_step_short, "the history holds activity 'say_hello' but the code asked for nothing"),
        (
            one_step_more,
            "the history ends with ExecutionCompleted but the code asked for activity 'say_hello'",
        ),
    ],
    ids=["renamed-activity", "timer-instead-of-activity", "one-step-short", "one-step-more"],
)
def test_changed_code_raises_a_readable_nondeterminism_error(changed: Any, expected: str) -> None:
    with pytest.raises(NonDeterminismError) as caught:
        replay_history(changed, "golden-1", load_golden())
    message = str(caught.value)
    assert expected in message
    assert "golden-1" in message
    assert "sequence" in message
