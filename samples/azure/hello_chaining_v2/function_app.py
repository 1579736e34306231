"""Function chaining in the v2 programming model: one activity after another.

    asynkron-durable run samples/azure/hello_chaining_v2 hello_orchestrator

prints ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]. On Azure, POST
/api/orchestrators/hello_orchestrator starts it through `http_start`.
"""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="orchestrators/{functionName}")
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = await client.start_new(req.route_params["functionName"])
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def hello_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, list[str]]:
    result1 = yield context.call_activity("hello", "Tokyo")
    result2 = yield context.call_activity("hello", "Seattle")
    result3 = yield context.call_activity("hello", "London")
    return [result1, result2, result3]


@app.activity_trigger(input_name="city")
def hello(city: str) -> str:
    return f"Hello {city}!"
