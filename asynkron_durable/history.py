"""History events (the append-only log an instance is replayed from) and the instance record.

Payloads (`input`, `result`) are JSON text, stored once and decoded only where user code needs them.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

ENTITY_ID_PREFIX = "@"
"""Entity instances have ids `@name@key`; no orchestration id may start with this."""


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC (every timestamp here is)."""
    return datetime.now(UTC)


class RuntimeStatus(StrEnum):
    """The lifecycle states an orchestration instance can be in."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    TERMINATED = "Terminated"
    SUSPENDED = "Suspended"

    @property
    def is_terminal(self) -> bool:
        """True once the instance will never run again (unless rewound or restarted)."""
        return self in _TERMINAL


_TERMINAL = {RuntimeStatus.COMPLETED, RuntimeStatus.FAILED, RuntimeStatus.TERMINATED}


def _storable(text: str) -> str:
    """Text any store can encode: lone surrogates (from undecodable file names, say) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class FailureDetails(BaseModel):
    """Why something failed: the exception's type name, message and traceback text."""

    model_config = ConfigDict(frozen=True)

    error_type: str
    message: str
    details: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> FailureDetails:
        """Capture an exception (with its traceback) as storable details; never raises, even for
        an exception whose `__str__` does."""
        try:
            message = str(exc)
        except Exception as broken:
            message = f"<str() of the exception failed: {type(broken).__name__}>"
        try:
            details = "".join(traceback.format_exception(exc))
        except Exception:
            details = ""
        return cls(error_type=type(exc).__name__, message=_storable(message), details=_storable(details))


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: int = -1
    timestamp: datetime = Field(default_factory=utc_now)


class ExecutionStarted(_Event):
    """First event of every execution: which orchestrator, with what input, started by whom."""

    kind: Literal["ExecutionStarted"] = "ExecutionStarted"
    name: str
    input: str | None = None
    execution_id: str
    parent_instance_id: str | None = None
    parent_execution_id: str | None = None
    parent_task_id: int | None = None


class OrchestratorStarted(_Event):
    """Opens an episode; its timestamp is the orchestrator's deterministic `current_utc_datetime`."""

    kind: Literal["OrchestratorStarted"] = "OrchestratorStarted"


class OrchestratorCompleted(_Event):
    """Closes an episode."""

    kind: Literal["OrchestratorCompleted"] = "OrchestratorCompleted"


class TaskScheduled(_Event):
    """An activity call; `event_id` is its sequence number."""

    kind: Literal["TaskScheduled"] = "TaskScheduled"
    name: str
    input: str | None = None


class TaskCompleted(_Event):
    """An activity returned `result`."""

    kind: Literal["TaskCompleted"] = "TaskCompleted"
    task_scheduled_id: int
    result: str | None = None


class TaskFailed(_Event):
    """An activity raised."""

    kind: Literal["TaskFailed"] = "TaskFailed"
    task_scheduled_id: int
    failure: FailureDetails


class SubOrchestrationCreated(_Event):
    """A sub-orchestration call; `event_id` is its sequence number."""

    kind: Literal["SubOrchestrationCreated"] = "SubOrchestrationCreated"
    name: str
    instance_id: str
    input: str | None = None


class SubOrchestrationCompleted(_Event):
    """A sub-orchestration finished with `result`."""

    kind: Literal["SubOrchestrationCompleted"] = "SubOrchestrationCompleted"
    task_scheduled_id: int
    result: str | None = None


class SubOrchestrationFailed(_Event):
    """A sub-orchestration failed (or was terminated)."""

    kind: Literal["SubOrchestrationFailed"] = "SubOrchestrationFailed"
    task_scheduled_id: int
    failure: FailureDetails


class TimerCreated(_Event):
    """A durable timer; `event_id` is its sequence number."""

    kind: Literal["TimerCreated"] = "TimerCreated"
    fire_at: datetime


class TimerFired(_Event):
    """A durable timer came due."""

    kind: Literal["TimerFired"] = "TimerFired"
    timer_id: int
    fire_at: datetime


class EventRaised(_Event):
    """An external event delivered to this instance."""

    kind: Literal["EventRaised"] = "EventRaised"
    name: str
    input: str | None = None


class EventSent(_Event):
    """This instance sent an event to another instance; `event_id` is its sequence number."""

    kind: Literal["EventSent"] = "EventSent"
    instance_id: str
    name: str
    input: str | None = None


class ContinuedAsNew(_Event):
    """The execution restarted itself with fresh history and this input."""

    kind: Literal["ContinuedAsNew"] = "ContinuedAsNew"
    input: str | None = None


class ExecutionSuspended(_Event):
    """Suspended: later events are held until resumed."""

    kind: Literal["ExecutionSuspended"] = "ExecutionSuspended"
    reason: str | None = None


class ExecutionResumed(_Event):
    """Resumed after a suspension; held events are applied now."""

    kind: Literal["ExecutionResumed"] = "ExecutionResumed"
    reason: str | None = None


class ExecutionTerminated(_Event):
    """Terminated from outside; `reason` becomes the output."""

    kind: Literal["ExecutionTerminated"] = "ExecutionTerminated"
    reason: str | None = None


class ExecutionCompleted(_Event):
    """The orchestrator returned `result`."""

    kind: Literal["ExecutionCompleted"] = "ExecutionCompleted"
    result: str | None = None


class ExecutionFailed(_Event):
    """The orchestrator raised (or broke determinism)."""

    kind: Literal["ExecutionFailed"] = "ExecutionFailed"
    failure: FailureDetails


class ExecutionRewound(_Event):
    """A failed execution was rewound: its failed work is retried. Wakes the instance."""

    kind: Literal["ExecutionRewound"] = "ExecutionRewound"
    reason: str | None = None


class EntityCallScheduled(_Event):
    """An orchestration called an entity operation; `event_id` is its sequence number."""

    kind: Literal["EntityCallScheduled"] = "EntityCallScheduled"
    entity_id: str
    operation: str
    input: str | None = None


class EntitySignalSent(_Event):
    """An orchestration signalled an entity (one way); `event_id` is its sequence number."""

    kind: Literal["EntitySignalSent"] = "EntitySignalSent"
    entity_id: str
    operation: str
    input: str | None = None
    scheduled_time: datetime | None = None


class EntityLockScheduled(_Event):
    """An orchestration asked to lock entities (a critical section); `event_id` is its sequence."""

    kind: Literal["EntityLockScheduled"] = "EntityLockScheduled"
    entity_ids: tuple[str, ...]


class EntityUnlockSent(_Event):
    """An orchestration left the critical section opened by `lock_task_id`."""

    kind: Literal["EntityUnlockSent"] = "EntityUnlockSent"
    entity_ids: tuple[str, ...]
    lock_task_id: int


class EntityCallCompleted(_Event):
    """An entity operation called by this orchestration returned `result`."""

    kind: Literal["EntityCallCompleted"] = "EntityCallCompleted"
    task_scheduled_id: int
    result: str | None = None


class EntityCallFailed(_Event):
    """An entity operation called by this orchestration raised."""

    kind: Literal["EntityCallFailed"] = "EntityCallFailed"
    task_scheduled_id: int
    failure: FailureDetails


class EntityLockGranted(_Event):
    """Every entity of the critical section `task_scheduled_id` asked for is now locked for us."""

    kind: Literal["EntityLockGranted"] = "EntityLockGranted"
    task_scheduled_id: int
    entity_ids: tuple[str, ...]


class EntityLockFailed(_Event):
    """An entity of the critical section `task_scheduled_id` could not be locked (its stored
    document is unreadable); the entities locked before it were released."""

    kind: Literal["EntityLockFailed"] = "EntityLockFailed"
    task_scheduled_id: int
    failure: FailureDetails


class EntityOperation(_Event):
    """An operation for an entity (its inbox): a signal when `task_id` is None, else a call whose
    result goes back to `source_instance_id` as an EntityCallCompleted/Failed."""

    kind: Literal["EntityOperation"] = "EntityOperation"
    operation: str
    input: str | None = None
    source_instance_id: str | None = None
    source_execution_id: str | None = None
    task_id: int | None = None


class EntityLockRequest(_Event):
    """Lock this entity for `owner_instance_id`, then pass the request on to `entity_ids[position + 1]`
    (or grant it, after the last). Entities are locked in `entity_ids` order, which is sorted."""

    kind: Literal["EntityLockRequest"] = "EntityLockRequest"
    owner_instance_id: str
    owner_execution_id: str
    task_id: int
    entity_ids: tuple[str, ...]
    position: int


class EntityUnlock(_Event):
    """Release the lock `owner_instance_id` took with its lock request `task_id`."""

    kind: Literal["EntityUnlock"] = "EntityUnlock"
    owner_instance_id: str
    owner_execution_id: str
    task_id: int


HistoryEvent = Annotated[
    ExecutionStarted
    | OrchestratorStarted
    | OrchestratorCompleted
    | TaskScheduled
    | TaskCompleted
    | TaskFailed
    | SubOrchestrationCreated
    | SubOrchestrationCompleted
    | SubOrchestrationFailed
    | TimerCreated
    | TimerFired
    | EventRaised
    | EventSent
    | ContinuedAsNew
    | ExecutionSuspended
    | ExecutionResumed
    | ExecutionTerminated
    | ExecutionCompleted
    | ExecutionFailed
    | ExecutionRewound
    | EntityCallScheduled
    | EntitySignalSent
    | EntityLockScheduled
    | EntityUnlockSent
    | EntityCallCompleted
    | EntityCallFailed
    | EntityLockGranted
    | EntityLockFailed
    | EntityOperation
    | EntityLockRequest
    | EntityUnlock,
    Field(discriminator="kind"),
]

SCHEDULING_EVENTS = (
    TaskScheduled,
    SubOrchestrationCreated,
    TimerCreated,
    EventSent,
    EntityCallScheduled,
    EntitySignalSent,
    EntityLockScheduled,
    EntityUnlockSent,
)
"""Events an orchestrator's own actions record (as opposed to outcomes and messages it receives)."""

EXECUTION_ENDED = (ExecutionCompleted, ExecutionFailed, ExecutionTerminated, ContinuedAsNew)
"""Events that close an execution's history: nothing of that execution is applied after one."""

TASK_FAILURES = (TaskFailed, SubOrchestrationFailed, EntityCallFailed)
"""Outcomes of scheduled work that failed (an activity, a sub-orchestration, an entity call)."""

TASK_RESULTS = (TaskCompleted, SubOrchestrationCompleted, EntityCallCompleted, *TASK_FAILURES)
"""Outcomes of scheduled work that answers with a result or a failure."""

OUTCOMES = (*TASK_RESULTS, TimerFired)
"""Every outcome of work an orchestration scheduled, timers included: what a failed instance
keeps when it arrives late, so a rewind neither waits for it nor runs it again."""

HELD_WHILE_SUSPENDED = (*OUTCOMES, EventRaised, EntityLockGranted, EntityLockFailed)
"""Events a suspended orchestration keeps aside, to apply in order once it is resumed."""

EVENT_ADAPTER: TypeAdapter[HistoryEvent] = TypeAdapter(HistoryEvent)
"""Parses one stored event (JSON text or dict) into its typed model."""


def event_to_json(event: HistoryEvent) -> str:
    """Encode one event for storage."""
    return event.model_dump_json(exclude_defaults=False)


def event_from_json(text: str | bytes) -> HistoryEvent:
    """Decode one stored event; raises pydantic's ValidationError on a corrupt row."""
    return EVENT_ADAPTER.validate_json(text)


EVENTS_ADAPTER: TypeAdapter[list[HistoryEvent]] = TypeAdapter(list[HistoryEvent])
"""Parses a stored history row: the events one commit appended."""


def events_to_json(events: Sequence[HistoryEvent]) -> str:
    """Encode the events one commit appends as one history row (a JSON array): one row per
    commit instead of one per event keeps the write to a single insert and index entry."""
    return "[" + ",".join(map(event_to_json, events)) + "]"


def events_from_json(text: str | bytes) -> list[HistoryEvent]:
    """Decode a history row: a JSON array of events, or a single event object (the one-event rows
    of stores written before rows held a whole commit); raises ValidationError on a corrupt row
    and TypeError on a value that is not text."""
    if not isinstance(text, str | bytes):
        raise TypeError(f"expected JSON text, got {type(text).__name__}")
    if text.lstrip()[:1] in ("[", b"["):
        return EVENTS_ADAPTER.validate_json(text)
    return [EVENT_ADAPTER.validate_json(text)]


class InstanceRecord(BaseModel):
    """The summary row of one orchestration instance: what queries and status calls return."""

    model_config = ConfigDict(frozen=True)

    instance_id: str
    name: str
    execution_id: str
    runtime_status: RuntimeStatus
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    failure: FailureDetails | None = None
    created_at: datetime
    last_updated_at: datetime
    parent_instance_id: str | None = None
    version: int = 0

    def addresses(self, execution_id: str | None) -> bool:
        """True if a message pinned to `execution_id` is for this record's current execution.
        A message pinned to none (an external event, a signal) is for whichever runs; one pinned to
        an execution that continued as new or was restarted is dropped."""
        return execution_id is None or execution_id == self.execution_id
