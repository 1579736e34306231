"""Function chaining: call one activity after another, each result feeding the output.

    asynkron-durable run samples/hello_cities.py hello_cities

prints ["Hello Tokyo!", "Hello Seattle!", "Hello London!"].
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from asynkron_durable import DurableApp, OrchestrationContext

app = DurableApp()


@app.activity()
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.orchestrator()
def hello_cities(ctx: OrchestrationContext) -> Generator[Any, Any, list[str]]:
    """Each `yield` waits for one activity; on replay the recorded results come back instead."""
    greetings = []
    for city in ("Tokyo", "Seattle", "London"):
        greetings.append((yield ctx.call_activity(say_hello, city)))
    return greetings
