"""Fan-out/fan-in: start many activities at once, wait for all of them, combine their results.

    asynkron-durable run samples/fan_out_fan_in.py fan_out_fan_in --input 10

squares 1..N in parallel activities (N is the input, default 10) and prints their sum, 385.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from asynkron_durable import DurableApp, OrchestrationContext

app = DurableApp()


@app.activity()
def square(number: int) -> int:
    return number * number


@app.orchestrator()
def fan_out_fan_in(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
    """All N activities are scheduled in one episode; `task_all` resumes once every one is done."""
    requested: int | None = ctx.get_input()
    count = 10 if requested is None else requested
    squares = yield ctx.task_all([ctx.call_activity(square, n) for n in range(1, count + 1)])
    return sum(squares)
