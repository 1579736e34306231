"""Our history events as the JSON history the Durable Functions host hands the Python SDK, and back.

The SDK (and code written against it) reads history as the host serialises DurableTask.Core's
events: `EventType` numbers, PascalCase fields, payloads as JSON text. Our stores keep typed
events. `to_azure_history` writes ours in the host's shape (for the SDK, parity tests and anyone
reading our histories with Azure tools); `from_azure_history` reads the host's (or ours) back.

Mapping (our event -> EventType: fields; every event also has EventType, EventId, IsPlayed and
Timestamp; EventId is our `event_id`: the sequence number of scheduling events, -1 otherwise):

- ExecutionStarted -> 0: Name, Version (null), Input, OrchestrationInstance {InstanceId,
  ExecutionId}, ParentInstance (null, or {Name: null, Version: null, TaskScheduleId,
  OrchestrationInstance {InstanceId, ExecutionId}})
- ExecutionCompleted -> 1: Result, OrchestrationStatus 1 (Completed)
- ExecutionFailed -> 2, TaskFailed -> 6 (+ TaskScheduledId), SubOrchestrationFailed -> 9
  (+ TaskScheduledId): Reason = message, Details = details, FailureDetails {ErrorType,
  ErrorMessage, StackTrace} (DurableTask.Core's failure shape, which carries the error type)
- ExecutionTerminated -> 3: Input = the reason
- TaskScheduled -> 4: Name, Version (null), Input; TaskCompleted -> 5: TaskScheduledId, Result
- SubOrchestrationCreated -> 7: Name, Version (null), InstanceId, Input;
  SubOrchestrationCompleted -> 8: TaskScheduledId, Result
- TimerCreated -> 10: FireAt; TimerFired -> 11: TimerId, FireAt
- OrchestratorStarted -> 12, OrchestratorCompleted -> 13
- EventSent -> 14: InstanceId, Name, Input; EventRaised -> 15: Name, Input
- ContinuedAsNew -> 16: Input; ExecutionRewound -> 17 (GenericEvent): Data = the reason
- ExecutionSuspended -> 19, ExecutionResumed -> 20: Reason
- Entities, as Azure records them: EntityCallScheduled / EntitySignalSent -> 14 to the entity
  (`@name@key`), Name "op", Input = the request message {id, op, signal, input, parent, due?};
  EntityLockScheduled -> 14 to the first entity, Name "lock", Input {id, op: null, parent,
  lockset, pos: 0}; EntityUnlockSent -> 14 to the first entity, Name "release", Input {id (of the
  lock request), parent, lockset}. Each request id is `entity_request_id(instance id, sequence)`.
  Answers are 15 named by the request id, Input = the response message: EntityCallCompleted
  {result}, EntityLockGranted {result: the locked ids as JSON text}, EntityCallFailed and
  EntityLockFailed {result: the message as JSON text, exceptionType, failureDetails}.
- EntityOperation, EntityLockRequest, EntityUnlock live in entity inboxes, never in an
  orchestration's history: `to_azure_history` refuses them.

Order: the host closes an episode with its terminal event (ExecutionCompleted, ExecutionFailed,
ContinueAsNew) before OrchestratorCompleted; our runtime writes it just after. Each side's order is
restored on the way in and out.

`from_azure_history(to_azure_history(h))` gives `h` back for every history our runtime writes.
What the host's format cannot tell apart, and so what comes back differently:
- times come back as aware UTC datetimes (naive ones are read as UTC);
- every GenericEvent reads as ExecutionRewound (its Data as the reason);
- a failure without FailureDetails (or exceptionType, for entities) gets the error type
  `UNKNOWN_ERROR_TYPE` ("Exception", what the Python SDK raises for it); missing Reason/Details
  read as "";
- an EventRaised named by the id of an earlier entity call or lock request is that request's
  answer, and an EventSent to an `@...` instance id is an entity request (our orchestrations can
  send neither on their own);
- ParentInstance is only written when the start has a parent instance id.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, Literal, TypeVar

from asynkron_durable.history import (
    ENTITY_ID_PREFIX,
    ContinuedAsNew,
    EntityCallCompleted,
    EntityCallFailed,
    EntityCallScheduled,
    EntityLockFailed,
    EntityLockGranted,
    EntityLockRequest,
    EntityLockScheduled,
    EntityOperation,
    EntitySignalSent,
    EntityUnlock,
    EntityUnlockSent,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionRewound,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    FailureDetails,
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

T = TypeVar("T")


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


UNKNOWN_ERROR_TYPE = "Exception"
"""The error type of a failure read from JSON that does not name one."""

COMPLETED_STATUS = 1
"""DurableTask.Core's `OrchestrationStatus.Completed`, written on ExecutionCompleted."""

OPERATION_EVENT = "op"
LOCK_EVENT = "lock"
RELEASE_EVENT = "release"

_REQUEST_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/asynkron/durable/entity-request")
_TERMINAL = (ExecutionCompleted, ExecutionFailed, ContinuedAsNew)
_ENTITY_INBOX = (EntityOperation, EntityLockRequest, EntityUnlock)


def entity_request_id(instance_id: str, sequence: int) -> str:
    """The GUID of the entity request an orchestration made at `sequence`: deterministic, so the
    same history always reads the same."""
    return str(uuid.uuid5(_REQUEST_NAMESPACE, f"{instance_id}\n{sequence}"))


def _swap_pairs(items: Sequence[T], first: Callable[[T], bool], second: Callable[[T], bool]) -> list[T]:
    """`items` with every adjacent pair (a, b) where `first(a)` and `second(b)` swapped."""
    out = list(items)
    i = 0
    while i < len(out) - 1:
        if first(out[i]) and second(out[i + 1]):
            out[i], out[i + 1] = out[i + 1], out[i]
            i += 2
        else:
            i += 1
    return out


def _is_terminal(event: HistoryEvent) -> bool:
    return isinstance(event, _TERMINAL)


def _is_episode_end(event: HistoryEvent) -> bool:
    return isinstance(event, OrchestratorCompleted)


# ----- ours -> host ---------------------------------------------------------------------------------


def to_azure_history(events: Sequence[HistoryEvent], *, instance_id: str) -> list[dict[str, Any]]:
    """Our history of `instance_id` as the host's JSON history (plain JSON values)."""
    ordered = _swap_pairs(events, _is_episode_end, _is_terminal)
    last_start = max((i for i, e in enumerate(ordered) if isinstance(e, OrchestratorStarted)), default=0)
    return [
        _to_azure_event(event, position, position < last_start, instance_id)
        for position, event in enumerate(ordered)
    ]


def format_time(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a `Z`, as the SDK's own timestamps read."""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
            return AzureEventType.ExecutionFailed, _failure_fields(failure)
        case ExecutionTerminated(reason=reason):
            return AzureEventType.ExecutionTerminated, {"Input": reason}
        case TaskScheduled(name=name, input=payload):
            return AzureEventType.TaskScheduled, {"Name": name, "Version": None, "Input": payload}
        case TaskCompleted(task_scheduled_id=seq, result=result):
            return AzureEventType.TaskCompleted, {"TaskScheduledId": seq, "Result": result}
        case TaskFailed(task_scheduled_id=seq, failure=failure):
            return AzureEventType.TaskFailed, {"TaskScheduledId": seq, **_failure_fields(failure)}
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
                **_failure_fields(failure),
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
            return _entity_fields(event, instance_id)


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


def _failure_details(failure: FailureDetails) -> dict[str, Any]:
    return {"ErrorType": failure.error_type, "ErrorMessage": failure.message, "StackTrace": failure.details}


def _failure_fields(failure: FailureDetails) -> dict[str, Any]:
    return {
        "Reason": failure.message,
        "Details": failure.details,
        "FailureDetails": _failure_details(failure),
    }


def _entity_fields(
    event: EntityCallScheduled
    | EntitySignalSent
    | EntityLockScheduled
    | EntityUnlockSent
    | EntityCallCompleted
    | EntityCallFailed
    | EntityLockGranted
    | EntityLockFailed,
    instance_id: str,
) -> tuple[AzureEventType, dict[str, Any]]:
    request_id = entity_request_id(instance_id, event.event_id)
    match event:
        case EntityCallScheduled(entity_id=target, operation=operation, input=payload):
            request = _operation(request_id, operation, payload, instance_id, signal=False)
            return _sent(target, OPERATION_EVENT, request)
        case EntitySignalSent(entity_id=target, operation=operation, input=payload, scheduled_time=due):
            request = _operation(request_id, operation, payload, instance_id, signal=True)
            if due is not None:
                request["due"] = format_time(due)
            return _sent(target, OPERATION_EVENT, request)
        case EntityLockScheduled(entity_ids=ids):
            request = {"id": request_id, "op": None, "parent": instance_id, "lockset": list(ids), "pos": 0}
            return _sent(ids[0], LOCK_EVENT, request)
        case EntityUnlockSent(entity_ids=ids, lock_task_id=lock):
            lock_id = entity_request_id(instance_id, lock)
            return _sent(ids[0], RELEASE_EVENT, {"id": lock_id, "parent": instance_id, "lockset": list(ids)})
        case EntityCallCompleted(task_scheduled_id=seq, result=result):
            return _answer(instance_id, seq, {"result": result})
        case EntityLockGranted(task_scheduled_id=seq, entity_ids=ids):
            return _answer(instance_id, seq, {"result": json.dumps(list(ids))})
        case EntityCallFailed(task_scheduled_id=seq, failure=failure):
            return _answer(instance_id, seq, _failure_response(failure))
        case EntityLockFailed(task_scheduled_id=seq, failure=failure):
            return _answer(instance_id, seq, _failure_response(failure))


def _operation(
    request_id: str, operation: str, payload: str | None, instance_id: str, *, signal: bool
) -> dict[str, Any]:
    return {"id": request_id, "op": operation, "signal": signal, "input": payload, "parent": instance_id}


def _sent(target: str, name: str, message: dict[str, Any]) -> tuple[AzureEventType, dict[str, Any]]:
    return AzureEventType.EventSent, {"InstanceId": target, "Name": name, "Input": json.dumps(message)}


def _answer(instance_id: str, seq: int, response: dict[str, Any]) -> tuple[AzureEventType, dict[str, Any]]:
    name = entity_request_id(instance_id, seq)
    return AzureEventType.EventRaised, {"Name": name, "Input": json.dumps(response)}


def _failure_response(failure: FailureDetails) -> dict[str, Any]:
    return {
        "result": json.dumps(failure.message),
        "exceptionType": failure.error_type,
        "failureDetails": _failure_details(failure),
    }


# ----- host -> ours ---------------------------------------------------------------------------------


def from_azure_history(history: Sequence[Mapping[str, Any]]) -> list[HistoryEvent]:
    """The host's JSON history (or ours) as our events. Malformed input raises `ValueError` naming
    the event's index and the problem; unknown fields are ignored."""
    if not isinstance(history, list | tuple):
        raise ValueError(f"a history must be a list of events, got {type(history).__name__}")
    reader = _HistoryReader()
    events = [reader.read(index, raw) for index, raw in enumerate(history)]
    return _swap_pairs(events, _is_terminal, _is_episode_end)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (any fraction length, `Z` or an offset; naive means UTC) in aware UTC."""
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _texts(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


class _Fields:
    """A JSON object read field by field; every problem is a `ValueError` saying where it is."""

    def __init__(self, where: str, raw: Mapping[str, Any]) -> None:
        self.where = where
        self.raw = raw

    def error(self, problem: str) -> ValueError:
        return ValueError(f"{self.where}: {problem}")

    def optional_text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is not None and not isinstance(value, str):
            raise self.error(f"{key} must be text or null, got {type(value).__name__}")
        return value

    def text(self, key: str) -> str:
        value = self.optional_text(key)
        if value is None:
            raise self.error(f"missing {key}")
        return value

    def optional_integer(self, key: str) -> int | None:
        value = self.raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.error(f"{key} must be an integer, got {type(value).__name__}")
        return value

    def integer(self, key: str) -> int:
        value = self.optional_integer(key)
        if value is None:
            raise self.error(f"missing {key}")
        return value

    def flag(self, key: str) -> bool:
        value = self.raw.get(key, False)
        if not isinstance(value, bool):
            raise self.error(f"{key} must be true or false, got {type(value).__name__}")
        return value

    def optional_time(self, key: str) -> datetime | None:
        value = self.optional_text(key)
        if value is None:
            return None
        try:
            return parse_time(value)
        except ValueError:
            raise self.error(f"{key} {value!r} is not an ISO 8601 time") from None

    def time(self, key: str) -> datetime:
        value = self.optional_time(key)
        if value is None:
            raise self.error(f"missing {key}")
        return value

    def text_list(self, key: str) -> tuple[str, ...]:
        value = _texts(self.raw.get(key))
        if value is None:
            raise self.error(f"{key} must be a list of texts")
        return value

    def nested(self, key: str) -> _Fields | None:
        """The object at `key` (None when missing or null)."""
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.error(f"{key} must be an object or null, got {type(value).__name__}")
        return _Fields(f"{self.where}, {key}", value)

    def decoded(self, key: str) -> Any:
        """The JSON value encoded in the text at `key` (None when missing or null)."""
        text = self.optional_text(key)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise self.error(f"{key} is not JSON text") from None

    def embedded(self, key: str) -> _Fields:
        """The object encoded as JSON text at `key` (an entity request or response message)."""
        value = self.decoded(key)
        if not isinstance(value, dict):
            raise self.error(f"{key} must hold a JSON object, got {type(value).__name__}")
        return _Fields(f"{self.where}, {key}", value)


@dataclass(frozen=True, slots=True)
class _Request:
    """An entity call or lock request seen in the history, by the id its answer is named with."""

    kind: Literal["call", "lock"]
    sequence: int


_Base = dict[str, Any]


class _HistoryReader:
    """Reads one history in order: entity answers are matched with the requests before them."""

    def __init__(self) -> None:
        self._requests: dict[str, _Request] = {}
        self._readers: dict[AzureEventType, Callable[[_Fields, _Base], HistoryEvent]] = {
            AzureEventType.ExecutionStarted: _execution_started,
            AzureEventType.ExecutionCompleted: lambda f, b: ExecutionCompleted(
                **b, result=f.optional_text("Result")
            ),
            AzureEventType.ExecutionFailed: lambda f, b: ExecutionFailed(**b, failure=_failure(f)),
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
                **b, task_scheduled_id=f.integer("TaskScheduledId"), failure=_failure(f)
            ),
            AzureEventType.SubOrchestrationInstanceCreated: lambda f, b: SubOrchestrationCreated(
                **b, name=f.text("Name"), instance_id=f.text("InstanceId"), input=f.optional_text("Input")
            ),
            AzureEventType.SubOrchestrationInstanceCompleted: lambda f, b: SubOrchestrationCompleted(
                **b, task_scheduled_id=f.integer("TaskScheduledId"), result=f.optional_text("Result")
            ),
            AzureEventType.SubOrchestrationInstanceFailed: lambda f, b: SubOrchestrationFailed(
                **b, task_scheduled_id=f.integer("TaskScheduledId"), failure=_failure(f)
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
        fields = _Fields(f"{where} ({event_type.name})", raw)
        event_id = fields.optional_integer("EventId")
        base: _Base = {
            "event_id": -1 if event_id is None else event_id,
            "timestamp": fields.time("Timestamp"),
        }
        return self._readers[event_type](fields, base)

    def _sent(self, fields: _Fields, base: _Base) -> HistoryEvent:
        target, name = fields.text("InstanceId"), fields.text("Name")
        if not target.startswith(ENTITY_ID_PREFIX):
            return EventSent(**base, instance_id=target, name=name, input=fields.optional_text("Input"))
        request = fields.embedded("Input")
        if name == LOCK_EVENT:
            self._requests[request.text("id")] = _Request("lock", base["event_id"])
            return EntityLockScheduled(**base, entity_ids=request.text_list("lockset"))
        if name == RELEASE_EVENT:
            lock = self._requests.get(request.text("id"))
            if lock is None or lock.kind != "lock":
                raise fields.error(f"release of a lock request not in the history ({request.text('id')})")
            return EntityUnlockSent(
                **base, entity_ids=request.text_list("lockset"), lock_task_id=lock.sequence
            )
        operation, payload = request.text("op"), request.optional_text("input")
        if request.flag("signal"):
            due = request.optional_time("due")
            return EntitySignalSent(
                **base, entity_id=target, operation=operation, input=payload, scheduled_time=due
            )
        self._requests[request.text("id")] = _Request("call", base["event_id"])
        return EntityCallScheduled(**base, entity_id=target, operation=operation, input=payload)

    def _raised(self, fields: _Fields, base: _Base) -> HistoryEvent:
        name = fields.text("Name")
        request = self._requests.get(name)
        if request is None:
            return EventRaised(**base, name=name, input=fields.optional_text("Input"))
        response = fields.embedded("Input")
        error_type = response.optional_text("exceptionType")
        seq = request.sequence
        if error_type is not None:
            failure = _response_failure(response, error_type)
            if request.kind == "lock":
                return EntityLockFailed(**base, task_scheduled_id=seq, failure=failure)
            return EntityCallFailed(**base, task_scheduled_id=seq, failure=failure)
        if request.kind == "lock":
            ids = _texts(response.decoded("result"))
            if ids is None:
                raise response.error("result of a lock grant must hold the list of locked entity ids")
            return EntityLockGranted(**base, task_scheduled_id=seq, entity_ids=ids)
        return EntityCallCompleted(**base, task_scheduled_id=seq, result=response.optional_text("result"))


def _execution_started(fields: _Fields, base: _Base) -> HistoryEvent:
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


def _failure(fields: _Fields) -> FailureDetails:
    details = fields.nested("FailureDetails")
    return FailureDetails(
        error_type=(details.optional_text("ErrorType") if details else None) or UNKNOWN_ERROR_TYPE,
        message=fields.optional_text("Reason") or "",
        details=fields.optional_text("Details") or "",
    )


def _response_failure(response: _Fields, error_type: str) -> FailureDetails:
    """An entity's error answer: `result` holds the message as JSON text (or, from .NET, the
    serialised exception, kept as it is)."""
    message = _message(response.optional_text("result"))
    details = response.nested("failureDetails")
    stack = details.optional_text("StackTrace") if details else None
    return FailureDetails(error_type=error_type, message=message, details=stack or "")


def _message(result: str | None) -> str:
    if result is None:
        return ""
    try:
        decoded = json.loads(result)
    except ValueError:
        return result
    return decoded if isinstance(decoded, str) else result
