"""Our history as the host's JSON history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asynkron_durable.azure_history.entity_messages import entity_fields
from asynkron_durable.azure_history.event_types import COMPLETED_STATUS, AzureEventType, format_time
from asynkron_durable.azure_history.failures import failure_fields
from asynkron_durable.azure_history.order import to_host_order
from asynkron_durable.history import (
    ContinuedAsNew,
    EntityLockRequest,
    EntityOperation,
    EntityUnlock,
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


def to_azure_history(events: Sequence[HistoryEvent], *, instance_id: str) -> list[dict[str, Any]]:
    """Our history of `instance_id` as the host's JSON history (plain JSON values)."""
    ordered = to_host_order(events)
    last_start = max((i for i, e in enumerate(ordered) if isinstance(e, OrchestratorStarted)), default=0)
    return [
        _to_azure_event(event, position, position < last_start, instance_id)
        for position, event in enumerate(ordered)
    ]


def _to_azure_event(event: HistoryEvent, position: int, played: bool, instance_id: str) -> dict[str, Any]:
    event_type, fields = _azure_fields(event, position, instance_id)
    return {
        "EventType": int(event_type),
        "EventId": event.event_id,
        "IsPlayed": played,
        "Timestamp": format_time(event.timestamp),
        **fields,
    }


def _azure_fields(
    event: HistoryEvent, position: int, instance_id: str
) -> tuple[AzureEventType, dict[str, Any]]:
    match event:
        case ExecutionStarted():
            return AzureEventType.ExecutionStarted, _started_fields(event, instance_id)
        case ExecutionCompleted(result=result):
            return AzureEventType.ExecutionCompleted, {
                "Result": result,
                "OrchestrationStatus": COMPLETED_STATUS,
            }
        case ExecutionFailed(failure=failure):
            return AzureEventType.ExecutionFailed, failure_fields(failure)
        case ExecutionTerminated(reason=reason):
            return AzureEventType.ExecutionTerminated, {"Input": reason}
        case TaskScheduled(name=name, input=payload):
            return AzureEventType.TaskScheduled, {"Name": name, "Version": None, "Input": payload}
        case TaskCompleted(task_scheduled_id=seq, result=result):
            return AzureEventType.TaskCompleted, {"TaskScheduledId": seq, "Result": result}
        case TaskFailed(task_scheduled_id=seq, failure=failure):
            return AzureEventType.TaskFailed, {"TaskScheduledId": seq, **failure_fields(failure)}
        case SubOrchestrationCreated(name=name, instance_id=child, input=payload):
            created = {"Name": name, "Version": None, "InstanceId": child, "Input": payload}
            return AzureEventType.SubOrchestrationInstanceCreated, created
        case SubOrchestrationCompleted(task_scheduled_id=seq, result=result):
            return AzureEventType.SubOrchestrationInstanceCompleted, {
                "TaskScheduledId": seq,
                "Result": result,
            }
        case SubOrchestrationFailed(task_scheduled_id=seq, failure=failure):
            return AzureEventType.SubOrchestrationInstanceFailed, {
                "TaskScheduledId": seq,
                **failure_fields(failure),
            }
        case TimerCreated(fire_at=fire_at):
            return AzureEventType.TimerCreated, {"FireAt": format_time(fire_at)}
        case TimerFired(timer_id=seq, fire_at=fire_at):
            return AzureEventType.TimerFired, {"TimerId": seq, "FireAt": format_time(fire_at)}
        case OrchestratorStarted():
            return AzureEventType.OrchestratorStarted, {}
        case OrchestratorCompleted():
            return AzureEventType.OrchestratorCompleted, {}
        case EventSent(instance_id=target, name=name, input=payload):
            return AzureEventType.EventSent, {"InstanceId": target, "Name": name, "Input": payload}
        case EventRaised(name=name, input=payload):
            return AzureEventType.EventRaised, {"Name": name, "Input": payload}
        case ContinuedAsNew(input=payload):
            return AzureEventType.ContinueAsNew, {"Input": payload}
        case ExecutionRewound(reason=reason):
            return AzureEventType.GenericEvent, {"Data": reason}
        case ExecutionSuspended(reason=reason):
            return AzureEventType.ExecutionSuspended, {"Reason": reason}
        case ExecutionResumed(reason=reason):
            return AzureEventType.ExecutionResumed, {"Reason": reason}
        case EntityOperation() | EntityLockRequest() | EntityUnlock():
            raise ValueError(
                f"history position {position}: {event.kind} is an entity-inbox event; it never "
                "appears in an orchestration history and has no host JSON form"
            )
        case _:
            return entity_fields(event, instance_id)


def _started_fields(event: ExecutionStarted, instance_id: str) -> dict[str, Any]:
    parent = None
    if event.parent_instance_id is not None:
        parent = {
            "Name": None,
            "Version": None,
            "TaskScheduleId": event.parent_task_id,
            "OrchestrationInstance": {
                "InstanceId": event.parent_instance_id,
                "ExecutionId": event.parent_execution_id,
            },
        }
    return {
        "Name": event.name,
        "Version": None,
        "Input": event.input,
        "OrchestrationInstance": {"InstanceId": instance_id, "ExecutionId": event.execution_id},
        "ParentInstance": parent,
    }
