"""Actions: what an orchestrator asked for, by sequence number. Each maps to one scheduling event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asynkron_durable.history import (
    EntityCallScheduled,
    EntityLockScheduled,
    EntitySignalSent,
    EntityUnlockSent,
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


@dataclass(frozen=True, slots=True)
class CallEntity:
    """Run `operation` on the entity `entity_id` (an instance id) and send back its result."""

    sequence: int
    entity_id: str
    operation: str
    input: str | None

    def to_event(self, now: datetime) -> HistoryEvent:
        """The history event that records this action."""
        return EntityCallScheduled(
            event_id=self.sequence,
            timestamp=now,
            entity_id=self.entity_id,
            operation=self.operation,
            input=self.input,
        )

    def describe(self) -> str:
        """Human-readable form for non-determinism messages."""
        return f"call of {self.operation!r} on entity {self.entity_id!r}"


@dataclass(frozen=True, slots=True)
class SignalEntity:
    """Send `operation` to the entity `entity_id` without waiting; delivered at `scheduled_time`."""

    sequence: int
    entity_id: str
    operation: str
    input: str | None
    scheduled_time: datetime | None = None

    def to_event(self, now: datetime) -> HistoryEvent:
        """The history event that records this action."""
        return EntitySignalSent(
            event_id=self.sequence,
            timestamp=now,
            entity_id=self.entity_id,
            operation=self.operation,
            input=self.input,
            scheduled_time=self.scheduled_time,
        )

    def describe(self) -> str:
        """Human-readable form for non-determinism messages."""
        return f"signal {self.operation!r} to entity {self.entity_id!r}"


@dataclass(frozen=True, slots=True)
class LockEntities:
    """Lock `entity_ids` (sorted, distinct) for this orchestration: a critical section."""

    sequence: int
    entity_ids: tuple[str, ...]

    def to_event(self, now: datetime) -> HistoryEvent:
        """The history event that records this action."""
        return EntityLockScheduled(event_id=self.sequence, timestamp=now, entity_ids=self.entity_ids)

    def describe(self) -> str:
        """Human-readable form for non-determinism messages."""
        return f"lock of {', '.join(self.entity_ids)}"


@dataclass(frozen=True, slots=True)
class UnlockEntities:
    """Release the critical section that the lock action `lock_sequence` opened."""

    sequence: int
    entity_ids: tuple[str, ...]
    lock_sequence: int

    def to_event(self, now: datetime) -> HistoryEvent:
        """The history event that records this action."""
        return EntityUnlockSent(
            event_id=self.sequence,
            timestamp=now,
            entity_ids=self.entity_ids,
            lock_task_id=self.lock_sequence,
        )

    def describe(self) -> str:
        """Human-readable form for non-determinism messages."""
        return f"unlock of {', '.join(self.entity_ids)}"


Action = (
    ScheduleActivity
    | ScheduleSubOrchestration
    | CreateTimer
    | SendEvent
    | CallEntity
    | SignalEntity
    | LockEntities
    | UnlockEntities
)


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
        case EntityCallScheduled(operation=op, entity_id=entity):
            return f"call of {op!r} on entity {entity!r}"
        case EntitySignalSent(operation=op, entity_id=entity):
            return f"signal {op!r} to entity {entity!r}"
        case EntityLockScheduled(entity_ids=ids):
            return f"lock of {', '.join(ids)}"
        case EntityUnlockSent(entity_ids=ids):
            return f"unlock of {', '.join(ids)}"
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
        case CallEntity(operation=a, entity_id=ia), EntityCallScheduled(operation=b, entity_id=ib):
            return a == b and ia == ib
        case SignalEntity(operation=a, entity_id=ia), EntitySignalSent(operation=b, entity_id=ib):
            return a == b and ia == ib
        case LockEntities(entity_ids=a), EntityLockScheduled(entity_ids=b):
            return a == b
        case UnlockEntities(entity_ids=a), EntityUnlockSent(entity_ids=b):
            return a == b
    return False
