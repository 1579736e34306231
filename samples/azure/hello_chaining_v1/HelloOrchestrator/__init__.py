"""The orchestrator: calls the `Hello` activity once per city, in order."""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext) -> Generator[Any, Any, list[str]]:
    result1 = yield context.call_activity("Hello", "Tokyo")
    result2 = yield context.call_activity("Hello", "Seattle")
    result3 = yield context.call_activity("Hello", "London")
    return [result1, result2, result3]


main = df.Orchestrator.create(orchestrator_function)
