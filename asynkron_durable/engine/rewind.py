"""Rewind: turn a failed execution's history back into a running one whose failed work is retried."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from asynkron_durable.history import (
    SCHEDULING_EVENTS,
    TASK_FAILURES,
    TASK_RESULTS,
    EntityCallScheduled,
    ExecutionFailed,
    HistoryEvent,
    SubOrchestrationCreated,
    SubOrchestrationFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)


@dataclass(frozen=True, slots=True)
class RewindPlan:
    """The rewritten history and the work to put back in flight.

    `activities`, `entity_calls` and `timers` had no outcome recorded (it failed, or arrived after
    the instance had failed and was dropped): they are sent again. `children` are failed
    sub-orchestrations to rewind in turn; their completion reaches this instance as usual.
    """

    history: list[HistoryEvent]
    activities: list[TaskScheduled]
    timers: list[TimerCreated]
    children: list[SubOrchestrationCreated]
    entity_calls: list[EntityCallScheduled]


def plan_rewind(history: Sequence[HistoryEvent]) -> RewindPlan:
    """Drop the failure that ended the execution and the task failures that led to it.

    A failure is dropped when no scheduling event follows it: failures the orchestrator went on
    from (a caught error, a retry that scheduled its next attempt) stay, so replay stays
    deterministic, and only the failed work at the end is retried.
    """
    last_scheduling = max((i for i, e in enumerate(history) if isinstance(e, SCHEDULING_EVENTS)), default=-1)
    kept: list[HistoryEvent] = []
    for position, event in enumerate(history):
        if isinstance(event, ExecutionFailed):
            continue
        if isinstance(event, TASK_FAILURES) and position > last_scheduling:
            continue
        kept.append(event)
    finished = {e.task_scheduled_id for e in kept if isinstance(e, TASK_RESULTS)}
    fired = {e.timer_id for e in kept if isinstance(e, TimerFired)}
    failed_children = {
        e.task_scheduled_id
        for position, e in enumerate(history)
        if isinstance(e, SubOrchestrationFailed) and position > last_scheduling
    }
    return RewindPlan(
        history=kept,
        activities=[e for e in kept if isinstance(e, TaskScheduled) and e.event_id not in finished],
        timers=[e for e in kept if isinstance(e, TimerCreated) and e.event_id not in fired],
        children=[
            e for e in kept if isinstance(e, SubOrchestrationCreated) and e.event_id in failed_children
        ],
        entity_calls=[e for e in kept if isinstance(e, EntityCallScheduled) and e.event_id not in finished],
    )
