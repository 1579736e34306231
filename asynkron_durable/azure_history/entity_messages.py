"""Entity requests and their answers as Azure records them in an orchestration's history, both
directions: EventSent to the entity with the request message, EventRaised named by the request id
with the response message."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from asynkron_durable.azure_history.event_types import AzureEventType, format_time
from asynkron_durable.azure_history.failures import failure_details
from asynkron_durable.azure_history.fields import Base, Fields, texts
from asynkron_durable.history import (
    EntityCallCompleted,
    EntityCallFailed,
    EntityCallScheduled,
    EntityLockFailed,
    EntityLockGranted,
    EntityLockScheduled,
    EntitySignalSent,
    EntityUnlockSent,
    FailureDetails,
    HistoryEvent,
)

OPERATION_EVENT = "op"
LOCK_EVENT = "lock"
RELEASE_EVENT = "release"

_REQUEST_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/asynkron/durable/entity-request")


def entity_request_id(instance_id: str, sequence: int) -> str:
    """The GUID of the entity request an orchestration made at `sequence`: deterministic, so the
    same history always reads the same."""
    return str(uuid.uuid5(_REQUEST_NAMESPACE, f"{instance_id}\n{sequence}"))


# ----- ours -> host ---------------------------------------------------------------------------------


def entity_fields(
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
    """The host's event type and fields of an entity request or answer in `instance_id`'s history."""
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
        "failureDetails": failure_details(failure),
    }


# ----- host -> ours ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Request:
    """An entity call or lock request seen in the history, by the id its answer is named with."""

    kind: Literal["call", "lock"]
    sequence: int


class EntityMessageReader:
    """Reads one history's entity requests and answers in order: each answer is matched with the
    request before it."""

    def __init__(self) -> None:
        self._requests: dict[str, _Request] = {}

    def request(self, fields: Fields, base: Base, target: str, name: str) -> HistoryEvent:
        """The EventSent `name` to the entity `target`, whose Input is the request message."""
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

    def answer(self, fields: Fields, base: Base, name: str) -> HistoryEvent | None:
        """The EventRaised `name` as the answer to an earlier request of that id (its Input is the
        response message); None when no request has that id."""
        request = self._requests.get(name)
        if request is None:
            return None
        response = fields.embedded("Input")
        error_type = response.optional_text("exceptionType")
        seq = request.sequence
        if error_type is not None:
            failure = _response_failure(response, error_type)
            if request.kind == "lock":
                return EntityLockFailed(**base, task_scheduled_id=seq, failure=failure)
            return EntityCallFailed(**base, task_scheduled_id=seq, failure=failure)
        if request.kind == "lock":
            ids = texts(response.decoded("result"))
            if ids is None:
                raise response.error("result of a lock grant must hold the list of locked entity ids")
            return EntityLockGranted(**base, task_scheduled_id=seq, entity_ids=ids)
        return EntityCallCompleted(**base, task_scheduled_id=seq, result=response.optional_text("result"))


def _response_failure(response: Fields, error_type: str) -> FailureDetails:
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
