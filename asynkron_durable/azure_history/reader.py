"""The host's JSON history (or ours) as our history."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from asynkron_durable.azure_history.entity_messages import EntityMessageReader
from asynkron_durable.azure_history.event_types import AzureEventType
from asynkron_durable.azure_history.failures import read_failure
from asynkron_durable.azure_history.fields import Base, Fields
from asynkron_durable.azure_history.order import to_our_order
from asynkron_durable.history import (
    ENTITY_ID_PREFIX,
    ContinuedAsNew,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionRewound,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    SubOrchestrationCompleted,
    SubOrchestrationCreated,
    SubOrchestrationFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)


def from_azure_history(history: Sequence[Mapping[str, Any]]) -> list[HistoryEvent]:
    """The host's JSON history (or ours) as our events. Malformed input raises `ValueError` naming
    the event's index and the problem; unknown fields are ignored."""
    if not isinstance(history, list | tuple):
        raise ValueError(f"a history must be a list of events, got {type(history).__name__}")
    reader = _HistoryReader()
    events = [reader.read(index, raw) for index, raw in enumerate(history)]
    return to_our_order(events)


class _HistoryReader:
    """Reads one history in order: entity answers are matched with the requests before them."""

    def __init__(self) -> None:
        self._entities = EntityMessageReader()
        self._readers: dict[AzureEventType, Callable[[Fields, Base], HistoryEvent]] = {
            AzureEventType.ExecutionStarted: _execution_started,
            AzureEventType.ExecutionCompleted: lambda f, b: ExecutionCompleted(
                **b, result=f.optional_text("Result")
            ),
            AzureEventType.ExecutionFailed: lambda f, b: ExecutionFailed(**b, failure=read_failure(f)),
            AzureEventType.ExecutionTerminated: lambda f, b: ExecutionTerminated(
                **b, reason=f.optional_text("Input")
            ),
            AzureEventType.TaskScheduled: lambda f, b: TaskScheduled(
                **b, name=f.text("Name"), input=f.optional_text("Input")
            ),
            AzureEventType.TaskCompleted: lambda f, b: TaskCompleted(
                **b, task_scheduled_id=f.integer("TaskScheduledId"), result=f.optional_text("Result")
            ),
            AzureEventType.TaskFailed: lambda f, b: TaskFailed(
                **b, task_scheduled_id=f.integer("TaskScheduledId"), failure=read_failure(f)
            ),
            AzureEventType.SubOrchestrationInstanceCreated: lambda f, b: SubOrchestrationCreated(
                **b, name=f.text("Name"), instance_id=f.text("InstanceId"), input=f.optional_text("Input")
            ),
            AzureEventType.SubOrchestrationInstanceCompleted: lambda f, b: SubOrchestrationCompleted(
                **b, task_scheduled_id=f.integer("TaskScheduledId"), result=f.optional_text("Result")
            ),
            AzureEventType.SubOrchestrationInstanceFailed: lambda f, b: SubOrchestrationFailed(
                **b, task_scheduled_id=f.integer("TaskScheduledId"), failure=read_failure(f)
            ),
            AzureEventType.TimerCreated: lambda f, b: TimerCreated(**b, fire_at=f.time("FireAt")),
            AzureEventType.TimerFired: lambda f, b: TimerFired(
                **b, timer_id=f.integer("TimerId"), fire_at=f.time("FireAt")
            ),
            AzureEventType.OrchestratorStarted: lambda f, b: OrchestratorStarted(**b),
            AzureEventType.OrchestratorCompleted: lambda f, b: OrchestratorCompleted(**b),
            AzureEventType.EventSent: self._sent,
            AzureEventType.EventRaised: self._raised,
            AzureEventType.ContinueAsNew: lambda f, b: ContinuedAsNew(**b, input=f.optional_text("Input")),
            AzureEventType.GenericEvent: lambda f, b: ExecutionRewound(**b, reason=f.optional_text("Data")),
            AzureEventType.ExecutionSuspended: lambda f, b: ExecutionSuspended(
                **b, reason=f.optional_text("Reason")
            ),
            AzureEventType.ExecutionResumed: lambda f, b: ExecutionResumed(
                **b, reason=f.optional_text("Reason")
            ),
        }

    def read(self, index: int, raw: Any) -> HistoryEvent:
        where = f"history event {index}"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where} is not an object (got {type(raw).__name__})")
        if "EventType" not in raw:
            raise ValueError(f"{where} has no EventType")
        code = raw["EventType"]
        if isinstance(code, bool) or not isinstance(code, int) or code not in self._readers:
            raise ValueError(f"{where} has an unknown or unsupported EventType {code!r}")
        event_type = AzureEventType(code)
        fields = Fields(f"{where} ({event_type.name})", raw)
        event_id = fields.optional_integer("EventId")
        base: Base = {
            "event_id": -1 if event_id is None else event_id,
            "timestamp": fields.time("Timestamp"),
        }
        return self._readers[event_type](fields, base)

    def _sent(self, fields: Fields, base: Base) -> HistoryEvent:
        target, name = fields.text("InstanceId"), fields.text("Name")
        if not target.startswith(ENTITY_ID_PREFIX):
            return EventSent(**base, instance_id=target, name=name, input=fields.optional_text("Input"))
        return self._entities.request(fields, base, target, name)

    def _raised(self, fields: Fields, base: Base) -> HistoryEvent:
        name = fields.text("Name")
        answer = self._entities.answer(fields, base, name)
        if answer is not None:
            return answer
        return EventRaised(**base, name=name, input=fields.optional_text("Input"))


def _execution_started(fields: Fields, base: Base) -> HistoryEvent:
    instance = fields.nested("OrchestrationInstance")
    execution_id = instance.optional_text("ExecutionId") if instance else None
    parent = fields.nested("ParentInstance")
    parent_instance = parent.nested("OrchestrationInstance") if parent else None
    return ExecutionStarted(
        **base,
        name=fields.text("Name"),
        input=fields.optional_text("Input"),
        execution_id=execution_id or "",
        parent_instance_id=parent_instance.optional_text("InstanceId") if parent_instance else None,
        parent_execution_id=parent_instance.optional_text("ExecutionId") if parent_instance else None,
        parent_task_id=parent.optional_integer("TaskScheduleId") if parent else None,
    )
