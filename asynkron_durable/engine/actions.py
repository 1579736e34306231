"""Actions: what an orchestrator asked for, by sequence number. Each maps to one scheduling event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asynkron_durable.history import (
    EventSent,
    HistoryEvent,
    SubOrchestrationCreated,
    TaskScheduled,
    TimerCreated,
)


@dataclass(frozen=True, slots=True)
class ScheduleActivity:
    """Run activity `name` with `input` (JSON text)."""

    sequence: int
    name: str
    input: str | None

    def to_event(self, now: datetime) -> HistoryEvent:
        """The history event that records this action."""
        return TaskScheduled(event_id=self.sequence, timestamp=now, name=self.name, input=self.input)

    def describe(self) -> str:
        """Human-readable form for non-determinism messages."""
        return f"activity {self.name!r}"


@dataclass(frozen=True, slots=True)
class ScheduleSubOrchestration:
    """Start orchestration `name` as a child with id `instance_id`."""

    sequence: int
    name: str
    instance_id: str
    input: str | None

    def to_event(self, now: datetime) -> HistoryEvent:
        """The history event that records this action."""
        return SubOrchestrationCreated(
            event_id=self.sequence,
            timestamp=now,
            name=self.name,
            instance_id=self.instance_id,
            input=self.input,
        )

    def describe(self) -> str:
        """Human-readable form for non-determinism messages."""
        return f"sub-orchestration {self.name!r}"


@dataclass(frozen=True, slots=True)
class CreateTimer:
    """Wake at `fire_at`. `cancelled` timers are recorded but never enqueued."""

    sequence: int
    fire_at: datetime
    cancelled: bool = False

    def to_event(self, now: datetime) -> HistoryEvent:
        """The history event that records this action."""
        return TimerCreated(event_id=self.sequence, timestamp=now, fire_at=self.fire_at)

    def describe(self) -> str:
        """Human-readable form for non-determinism messages."""
        return "timer"


@dataclass(frozen=True, slots=True)
class SendEvent:
    """Raise event `name` on instance `instance_id`."""

    sequence: int
    instance_id: str
    name: str
    input: str | None

    def to_event(self, now: datetime) -> HistoryEvent:
        """The history event that records this action."""
        return EventSent(
            event_id=self.sequence,
            timestamp=now,
            instance_id=self.instance_id,
            name=self.name,
            input=self.input,
        )

    def describe(self) -> str:
        """Human-readable form for non-determinism messages."""
        return f"event {self.name!r} to {self.instance_id!r}"


Action = ScheduleActivity | ScheduleSubOrchestration | CreateTimer | SendEvent


def describe_scheduling_event(event: HistoryEvent) -> str:
    """How a recorded scheduling event reads in a non-determinism message."""
    match event:
        case TaskScheduled(name=name):
            return f"activity {name!r}"
        case SubOrchestrationCreated(name=name):
            return f"sub-orchestration {name!r}"
        case TimerCreated():
            return "timer"
        case EventSent(name=name, instance_id=target):
            return f"event {name!r} to {target!r}"
    return event.kind


def matches(action: Action, event: HistoryEvent) -> bool:
    """True when a replayed action is the one the history recorded at its position."""
    match action, event:
        case ScheduleActivity(name=a), TaskScheduled(name=b):
            return a == b
        case ScheduleSubOrchestration(name=a), SubOrchestrationCreated(name=b):
            return a == b
        case CreateTimer(), TimerCreated():
            return True
        case SendEvent(name=a, instance_id=ia), EventSent(name=b, instance_id=ib):
            return a == b and ia == ib
    return False
