"""Sub-orchestrations: a parent runs child orchestrations, in parallel and one by one.

    asynkron-durable run samples/sub_orchestrations.py sub_orchestrations --instance-id order-1

ships every item in its own child (ids derived from the parent's), then writes the receipt in a
child with an explicit instance id, `order-1-receipt`, which `asynkron-durable status` can show.
The input is the list of items, default ["book", "lamp"].
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from asynkron_durable import DurableApp, OrchestrationContext

app = DurableApp()


@app.activity()
def pack(item: str) -> str:
    return f"{item} packed"


@app.activity()
def ship(item: str) -> str:
    return f"{item} shipped"


@app.orchestrator()
def ship_item(ctx: OrchestrationContext) -> Generator[Any, Any, str]:
    item: str = ctx.get_input()
    packed = yield ctx.call_activity(pack, item)
    shipped = yield ctx.call_activity(ship, item)
    return f"{packed}, {shipped}"


@app.orchestrator()
def write_receipt(ctx: OrchestrationContext) -> str:
    """An orchestrator with no work to wait for may be a plain function."""
    lines: list[str] = ctx.get_input()
    return f"receipt: {len(lines)} items shipped"


@app.orchestrator()
async def sub_orchestrations(ctx: OrchestrationContext) -> dict[str, Any]:
    """Children run on any worker; the parent resumes when their outputs arrive."""
    items: list[str] = ctx.get_input() or ["book", "lamp"]
    shipped = await ctx.task_all([ctx.call_sub_orchestrator(ship_item, item) for item in items])
    receipt = await ctx.call_sub_orchestrator(
        write_receipt, shipped, instance_id=f"{ctx.instance_id}-receipt"
    )
    return {"shipped": shipped, "receipt": receipt}
