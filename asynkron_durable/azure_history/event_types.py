"""The host's event type numbers and time format."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum


class AzureEventType(IntEnum):
    """DurableTask.Core's `EventType`, the number the host writes as `EventType`."""

    ExecutionStarted = 0
    ExecutionCompleted = 1
    ExecutionFailed = 2
    ExecutionTerminated = 3
    TaskScheduled = 4
    TaskCompleted = 5
    TaskFailed = 6
    SubOrchestrationInstanceCreated = 7
    SubOrchestrationInstanceCompleted = 8
    SubOrchestrationInstanceFailed = 9
    TimerCreated = 10
    TimerFired = 11
    OrchestratorStarted = 12
    OrchestratorCompleted = 13
    EventSent = 14
    EventRaised = 15
    ContinueAsNew = 16
    GenericEvent = 17
    HistoryState = 18
    ExecutionSuspended = 19
    ExecutionResumed = 20


COMPLETED_STATUS = 1
"""DurableTask.Core's `OrchestrationStatus.Completed`, written on ExecutionCompleted."""


def format_time(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a `Z`, as the SDK's own timestamps read."""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (any fraction length, `Z` or an offset; naive means UTC) in aware UTC."""
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
