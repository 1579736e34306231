"""Sub-orchestrations: a parent runs one child orchestration per item, then one for the receipt.

    asynkron-durable run samples/azure/sub_orchestrations ship_order --input '["book", "lamp"]'

prints {"shipped": ["book packed, book shipped", "lamp packed, lamp shipped"], "receipt": "receipt:
2 items shipped"}. The shipping children run in parallel under ids the parent chooses (with
`--instance-id order-1`: `order-1-book` and `order-1-lamp`, which `asynkron-durable status` can
show); the receipt child gets an id generated for it.
"""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def ship_order(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    items = context.get_input() or ["book", "lamp"]
    shipments = [
        context.call_sub_orchestrator(ship_item, item, instance_id=f"{context.instance_id}-{item}")
        for item in items
    ]
    shipped = yield context.task_all(shipments)
    receipt = yield context.call_sub_orchestrator("write_receipt", shipped)
    return {"shipped": shipped, "receipt": receipt}


@app.orchestration_trigger(context_name="context")
def ship_item(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    item = context.get_input()
    packed = yield context.call_activity(pack, item)
    shipped = yield context.call_activity(ship, item)
    return f"{packed}, {shipped}"


@app.orchestration_trigger(context_name="context")
def write_receipt(context: df.DurableOrchestrationContext) -> str:
    """An orchestrator with nothing to wait for may be a plain function."""
    lines = context.get_input()
    return f"receipt: {len(lines)} items shipped"


@app.activity_trigger(input_name="item")
def pack(item: str) -> str:
    return f"{item} packed"


@app.activity_trigger(input_name="item")
def ship(item: str) -> str:
    return f"{item} shipped"
