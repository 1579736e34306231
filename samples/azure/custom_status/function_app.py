"""Custom status: publish progress between steps, for anyone watching the instance.

    asynkron-durable run samples/azure/custom_status order_progress --input '["validate", "charge", "ship"]'

prints {"done": ["validate ok", "charge ok", "ship ok"], "progress": "3/3"}, the last status it
set; while it runs, `asynkron-durable status ID` (or the status URL on Azure) shows the current one.
"""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def order_progress(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    steps = context.get_input() or ["validate", "charge", "ship"]
    done: list[str] = []
    context.set_custom_status({"done": done, "progress": f"0/{len(steps)}"})
    for step in steps:
        result = yield context.call_activity(run_step, step)
        done = [*done, result]  # a new list: the status set before must not change with it
        context.set_custom_status({"done": done, "progress": f"{len(done)}/{len(steps)}"})
    return context.custom_status


@app.activity_trigger(input_name="step")
def run_step(step: str) -> str:
    return f"{step} ok"
