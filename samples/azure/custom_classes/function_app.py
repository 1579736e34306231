"""Custom classes as payloads: a class with static `to_json` and `from_json` travels as an
activity's input and as its output, rebuilt on the other side.

    asynkron-durable run samples/azure/custom_classes make_invoice --input '{"sku": "tea", "quantity": 3}'

prints {"sku": "tea", "quantity": 3, "total": 13.5}. On the wire an Order or Invoice is
{"__class__": ..., "__module__": "function_app", "__data__": <its to_json string>}. An
orchestration's own output must be plain JSON (the SDK checks it with `json.dumps`), so the
orchestrator returns the invoice's fields.
"""

import json
from collections.abc import Generator
from dataclasses import asdict, dataclass
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

UNIT_PRICES = {"tea": 4.5, "coffee": 6.0}


@dataclass
class Order:
    sku: str
    quantity: int

    @staticmethod
    def to_json(obj: "Order") -> str:
        return json.dumps(asdict(obj))

    @staticmethod
    def from_json(json_str: str) -> "Order":
        return Order(**json.loads(json_str))


@dataclass
class Invoice:
    sku: str
    quantity: int
    total: float

    @staticmethod
    def to_json(obj: "Invoice") -> str:
        return json.dumps(asdict(obj))

    @staticmethod
    def from_json(json_str: str) -> "Invoice":
        return Invoice(**json.loads(json_str))


@app.orchestration_trigger(context_name="context")
def make_invoice(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    order = Order(**context.get_input())
    invoice = yield context.call_activity(price_order, order)  # an Invoice again, not a dict
    context.set_custom_status(f"{invoice.quantity} x {invoice.sku}: {invoice.total}")
    return asdict(invoice)


@app.activity_trigger(input_name="order")
def price_order(order: Order) -> Invoice:
    return Invoice(sku=order.sku, quantity=order.quantity, total=order.quantity * UNIT_PRICES[order.sku])
