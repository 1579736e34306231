"""Human interaction: ask for an approval, then race the answer against a deadline.

    asynkron-durable run samples/azure/human_interaction approval_workflow --input '{"timeout_seconds": 2}'

prints "timed out" after two seconds, as nobody answers. Raise an "Approval" event with `true` or
`false` before the deadline (`asynkron-durable raise-event ID Approval --data true`, or POST
/api/approvals/ID/true on Azure) to get "approved" or "rejected".
"""

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def approval_workflow(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    request = context.get_input() or {}
    yield context.call_activity(request_approval, request.get("document", "expense report"))

    deadline = context.current_utc_datetime + timedelta(seconds=request.get("timeout_seconds", 2))
    timeout_task = context.create_timer(deadline)
    approval_task = context.wait_for_external_event("Approval")
    winner = yield context.task_any([approval_task, timeout_task])
    if winner == approval_task:
        timeout_task.cancel()  # so the instance can complete without waiting for the timer
        return "approved" if approval_task.result else "rejected"
    return "timed out"


@app.activity_trigger(input_name="document")
def request_approval(document: str) -> str:
    return f"approval requested for {document}"


@app.route(route="approvals/{instanceId}/{decision}")
@app.durable_client_input(client_name="client")
async def approve(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = req.route_params["instanceId"]
    await client.raise_event(instance_id, "Approval", req.route_params["decision"] == "true")
    return func.HttpResponse(f"answer sent to {instance_id}", status_code=202)
