"""Eternal orchestrations: each execution does one step, then restarts itself with continue-as-new,
so its history never grows, until the counter reaches the limit.

    asynkron-durable run samples/azure/continue_as_new count_to --input '{"limit": 5}'

prints 5 after six executions (n = 0..5), each with a fresh history.
"""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def count_to(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int | None]:
    state = context.get_input() or {}
    n, limit = state.get("n", 0), state.get("limit", 5)
    yield context.call_activity(do_step, n)
    if n >= limit:
        return n
    context.continue_as_new({"n": n + 1, "limit": limit})
    return None


@app.activity_trigger(input_name="n")
def do_step(n: int) -> str:
    return f"step {n} done"
