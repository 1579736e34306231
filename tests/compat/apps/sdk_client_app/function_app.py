"""The Azure app `tests/compat/test_serve_sdk_client.py` serves: an orchestrator per client scenario."""

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="orchestrators/{functionName}/{instanceId?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    instance_id = await client.start_new(
        req.route_params["functionName"], req.route_params.get("instanceId"), req.get_json() if body else None
    )
    return client.create_check_status_response(req, instance_id)


@app.route(route="items/{id:int}", methods=["GET"])
def get_item(req: func.HttpRequest) -> func.HttpResponse:
    item = {"id": int(req.route_params["id"]), "q": req.params.get("q")}
    return func.HttpResponse(json.dumps(item), mimetype="application/json")


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("user code broke")


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    context.set_custom_status("greeting")
    greeting = yield context.call_activity("greet", context.get_input())
    return greeting


@app.orchestration_trigger(context_name="context")
def wait_event(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    data = yield context.wait_for_external_event("go")
    return {"got": data}


@app.orchestration_trigger(context_name="context")
def flaky(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    result = yield context.call_activity("fail_until_marker", context.get_input())
    return result


@app.activity_trigger(input_name="name")
def greet(name: str) -> str:
    return f"Hello {name}!"


@app.activity_trigger(input_name="marker")
def fail_until_marker(marker: str) -> str:
    if not Path(marker).exists():
        raise RuntimeError("marker missing")
    return "recovered"


@app.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext) -> None:
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
        context.set_state(value)
    elif context.operation_name == "get":
        context.set_result(value)
