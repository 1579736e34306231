"""The out-of-proc entity protocol: the batch the Functions host gives the SDK's entity handle, and
the answer the handle returns, computed by the core's batch machinery (`run_entity_batch`).

In: `{"self": {"name", "key"}, "state": <JSON text or null>, "exists": bool, "batch": [{"name",
"input": <JSON text of the operation's JSON text>, ...}]}`. Out: `{"entityExists", "entityState":
<JSON text>, "results": [{"isError", "duration", "startTime", "result": <JSON text>}], "signals"}`.
Each operation is run as a call, so the core answers every one of them (result or failure) in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from asynkron_durable import EntityContext, EntityId
from asynkron_durable.entities.batch import run_entity_batch
from asynkron_durable.entities.document import EntityDocument
from asynkron_durable.history import EntityCallCompleted, EntityCallFailed, EntityOperation
from asynkron_durable_azure.entities import core_entity

_CALLER = "azure-entity-batch"
"""The caller the operations are answered to; the answers are read back, never sent."""


def execute_entity_batch(user_fn: Callable[..., Any], request_json: str) -> str:
    """Run the host's entity batch `request_json` through the Azure-style entity function `user_fn`
    (or its `df.Entity.create` handle); the JSON the SDK's handle would answer."""
    request = json.loads(request_json)
    entity_id = EntityId(request["self"]["name"], request["self"]["key"])
    now = datetime.now(UTC)
    operations = [_operation(position, item, now) for position, item in enumerate(request["batch"])]
    run = core_entity(user_fn)
    timings: list[tuple[int, int]] = []  # (start, duration) in ms, one per operation, in order

    def timed(context: EntityContext) -> None:
        start = datetime.now(UTC)
        try:
            run(context)
        finally:
            elapsed = datetime.now(UTC) - start
            timings.append((int(start.timestamp() * 1000), int(elapsed.total_seconds() * 1000)))

    document = EntityDocument(exists=bool(request["exists"]), state=request["state"])
    outcome = run_entity_batch(entity_id, document, operations, timed, now)
    answers = {
        message.event.task_scheduled_id: message.event
        for message in outcome.messages
        if isinstance(message.event, EntityCallCompleted | EntityCallFailed)
    }
    results = [_result(answers[position], *timings[position]) for position in range(len(operations))]
    state = outcome.document.state
    return json.dumps(
        {
            "entityExists": outcome.document.exists,
            "entityState": "null" if state is None else state,
            "results": results,
            "signals": [],  # the SDK's entity context cannot signal
        }
    )


def _operation(position: int, item: dict[str, Any], now: datetime) -> EntityOperation:
    name = item.get("name")
    if not isinstance(name, str):
        raise ValueError(f"entity batch operation {position} has no name: {item!r}")
    return EntityOperation(
        timestamp=now,
        operation=name,
        input=_input(item.get("input")),
        source_instance_id=_CALLER,
        task_id=position,
    )


def _input(field: str | None) -> str | None:
    """The operation's JSON text. The host sends the JSON text of the caller's JSON text (the SDK
    decodes it twice); a body posted as `application/json` arrives decoded once, and is taken as it
    is. No input at all stays None (the SDK's `get_input` would crash on it)."""
    if field is None:
        return None
    inner = json.loads(field)
    return inner if isinstance(inner, str) else field


def _result(
    answer: EntityCallCompleted | EntityCallFailed, start_ms: int, duration_ms: int
) -> dict[str, Any]:
    if isinstance(answer, EntityCallFailed):
        is_error, result = True, json.dumps(answer.failure.message)  # the SDK answers str(exception)
    else:
        is_error, result = False, answer.result or "null"
    return {"isError": is_error, "duration": duration_ms, "startTime": start_ms, "result": result}
