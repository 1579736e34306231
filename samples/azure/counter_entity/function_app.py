"""Durable entities: a `Counter` entity with add/reset/get, driven by an orchestrator.

    asynkron-durable run samples/azure/counter_entity counter_orchestrator --input '[5, 5, 5]'

prints 15: the counter `c1` is reset (a one-way signal), then each amount is added with a call
that waits for the entity to apply it, and finally read with `get`. `asynkron-durable entity
Counter c1` shows its state afterwards.
"""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext) -> None:
    current_value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        current_value += context.get_input()
        context.set_result(current_value)
    elif operation == "reset":
        current_value = 0
    elif operation == "get":
        context.set_result(current_value)
    context.set_state(current_value)


@app.orchestration_trigger(context_name="context")
def counter_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    entity_id = df.EntityId("Counter", "c1")
    # Operations from one orchestration reach the entity in the order they were sent.
    context.signal_entity(entity_id, "reset")
    for amount in context.get_input() or [5, 5, 5]:
        yield context.call_entity(entity_id, "add", amount)
    total = yield context.call_entity(entity_id, "get")
    return total
