"""Hosting the runtime in a web app: a Starlette app whose lifespan runs the durable workers.

From the repository root,

    uvicorn samples.asgi_app:app

serves http://127.0.0.1:8000 on the store named by ASYNKRON_DURABLE_STORE (default
sqlite:///./durable.db, as for the command line). Then

    curl -i -X POST localhost:8000/orders/42   # 202 {"instance_id": "42"} and a Location header
    curl localhost:8000/orders/42              # {"runtime_status": "Completed", "output": {...}, ...}

Ctrl-C (or SIGTERM) stops the server: the workers finish or hand back what they hold, then exit.
The orchestration alone, without the web app:

    asynkron-durable run samples/asgi_app.py:durable process_order --input '"42"'
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asynkron_durable import DurableApp, DurableFunctionRuntime, OrchestrationContext
from asynkron_durable.cli_options import DEFAULT_STORE, STORE_ENV_VAR
from asynkron_durable.errors import InstanceAlreadyExists
from asynkron_durable.http.hosting import durable_client, durable_lifespan

durable = DurableApp()


@durable.activity()
def reserve_stock(order_id: str) -> str:
    return f"stock reserved for {order_id}"


@durable.activity()
def charge_payment(order_id: str) -> str:
    return f"payment charged for {order_id}"


@durable.activity()
def ship(order_id: str) -> str:
    return f"{order_id} shipped"


@durable.orchestrator()
def process_order(ctx: OrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Reserve, charge, ship: one activity after another, each recorded in the instance's history."""
    order_id = ctx.get_input()
    steps = []
    for step in (reserve_stock, charge_payment, ship):
        steps.append((yield ctx.call_activity(step, order_id)))
    return {"order_id": order_id, "steps": steps}


async def start_order(request: Request) -> JSONResponse:
    """Start `process_order` with the order id as the instance id; a running one is a conflict."""
    order_id = request.path_params["order_id"]
    try:
        instance_id = await durable_client(request).start_new("process_order", order_id, order_id)
    except InstanceAlreadyExists:
        return JSONResponse({"error": f"order {order_id} is already being processed"}, status_code=409)
    location = str(request.url_for("order_status", order_id=instance_id))
    return JSONResponse({"instance_id": instance_id}, status_code=202, headers={"Location": location})


async def order_status(request: Request) -> JSONResponse:
    order_id = request.path_params["order_id"]
    status = await durable_client(request).get_status(order_id)
    if status is None:
        return JSONResponse({"error": f"no order {order_id}"}, status_code=404)
    return JSONResponse(status.model_dump(mode="json", exclude={"history"}))


def create_app(store_url: str | None = None) -> Starlette:
    """The web app on `store_url` (default: ASYNKRON_DURABLE_STORE, else sqlite:///./durable.db)."""
    runtime = DurableFunctionRuntime(store_url or os.environ.get(STORE_ENV_VAR) or DEFAULT_STORE)
    runtime.register_app(durable)
    routes = [
        Route("/orders/{order_id}", start_order, methods=["POST"]),
        Route("/orders/{order_id}", order_status, methods=["GET"], name="order_status"),
    ]
    return Starlette(routes=routes, lifespan=durable_lifespan(runtime))


app = create_app()
