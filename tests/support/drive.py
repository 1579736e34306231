"""A tiny in-test driver: runs episodes through the pure engine, answering activities inline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from asynkron_durable.engine import EpisodeResult, OrchestrationExecutor, Orchestrator, ScheduleActivity
from asynkron_durable.history import (
    ExecutionStarted,
    HistoryEvent,
    OrchestratorStarted,
    TaskCompleted,
)
from asynkron_durable.serialization import from_json, to_json

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def episode(
    fn: Orchestrator, history: list[HistoryEvent], new: list[HistoryEvent], at: datetime = T0
) -> EpisodeResult:
    """Replay `history` in a fresh executor, run one episode of `new`, append it to `history`."""
    executor = OrchestrationExecutor(fn, "instance-1")
    executor.replay(history)
    result = executor.run_episode([OrchestratorStarted(timestamp=at), *new])
    history.extend(result.new_history)
    return result


def run_to_end(
    fn: Orchestrator, activities: dict[str, Callable[[Any], Any]], input: Any = None
) -> tuple[EpisodeResult, list[HistoryEvent]]:
    """Drive an orchestration that only uses activities until it stops scheduling."""
    history: list[HistoryEvent] = []
    start = ExecutionStarted(name="orchestrator", input=to_json(input), execution_id="e1")
    result = episode(fn, history, [start])
    step = 1
    while result.actions:
        completions: list[HistoryEvent] = []
        for action in result.actions:
            assert isinstance(action, ScheduleActivity)
            value = activities[action.name](from_json(action.input))
            completions.append(TaskCompleted(task_scheduled_id=action.sequence, result=to_json(value)))
        result = episode(fn, history, completions, T0 + timedelta(seconds=step))
        step += 1
    return result, history
