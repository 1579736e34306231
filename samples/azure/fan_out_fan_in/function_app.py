"""Fan-out/fan-in: one activity per work item, all in parallel, then sum their results.

    asynkron-durable run samples/azure/fan_out_fan_in fan_out_fan_in --input 10

prints 385, the sum of the squares of 1..10. The input is the number of work items.
"""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def fan_out_fan_in(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    work_items = yield context.call_activity(get_work_items, context.get_input() or 10)
    # Scheduling every task before yielding lets them all run at once.
    parallel_tasks = [context.call_activity(process_item, item) for item in work_items]
    results = yield context.task_all(parallel_tasks)
    return sum(results)


@app.activity_trigger(input_name="count")
def get_work_items(count: int) -> list[int]:
    return list(range(1, count + 1))


@app.activity_trigger(input_name="item")
def process_item(item: int) -> int:
    return item * item
