"""Which function a call names: a string, or in the v2 model the decorated function itself.

A decorated function stands for the name it is registered under: its trigger's `activity` /
`orchestration` name, else its function name (`@app.function_name` included). The SDK sends the
Python name, which names no function when they differ."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from azure.durable_functions.decorators.metadata import ActivityTrigger, OrchestrationTrigger
from azure.functions.decorators.function_app import FunctionBuilder

_TRIGGERS: dict[str, type[Any]] = {"activity": ActivityTrigger, "orchestrator": OrchestrationTrigger}


def function_name(name: str | Callable[..., Any], kind: str) -> str:
    """The registered name `name` stands for; a callable must be a v2 function of the right trigger."""
    if isinstance(name, str):
        return name
    if not isinstance(name, FunctionBuilder):
        raise ValueError(
            f"a {kind} was named by a callable without an Azure Functions trigger ({name!r}): pass "
            f"the function decorated with the {kind} trigger (v2 model), or its name as a string"
        )
    function = name._function
    trigger = function._trigger
    if not isinstance(trigger, _TRIGGERS[kind]):
        found = getattr(trigger, "type", None)
        raise ValueError(
            f"function {function._name!r} has a {found!r} trigger, so it is not an {kind}: decorate "
            f"it as an {kind} or pass the name of an {kind} as a string"
        )
    declared = getattr(trigger, kind if kind == "activity" else "orchestration", None)
    return str(declared or function.get_function_name())
