"""Which name `call_activity(fn)` / `call_sub_orchestrator(fn)` send for a v2 decorated function."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import pytest
from asynkron_durable_azure.function_names import function_name

app = df.DFApp()


@app.activity_trigger(input_name="city", activity="SayHello")
def say_hello(city: str) -> str:
    return f"Hello {city}"


@app.function_name("Greeter")
@app.activity_trigger(input_name="city")
def greet(city: str) -> str:
    return f"Hi {city}"


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext) -> Any:
    return (yield context.call_activity(say_hello, "Tokyo"))


def test_the_trigger_name_wins_over_the_python_name() -> None:
    assert function_name(say_hello, "activity") == "SayHello"


def test_the_function_name_setting_is_the_registered_name() -> None:
    assert function_name(greet, "activity") == "Greeter"


def test_strings_are_names() -> None:
    assert function_name("anything", "activity") == "anything"


def test_a_function_of_another_trigger_is_refused() -> None:
    with pytest.raises(
        ValueError, match="'chain' has a 'orchestrationTrigger' trigger, so it is not an activity"
    ):
        function_name(chain, "activity")


def test_a_plain_callable_is_refused() -> None:
    with pytest.raises(ValueError, match="named by a callable without an Azure Functions trigger"):
        function_name(print, "activity")
