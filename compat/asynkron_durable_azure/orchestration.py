"""Azure-style orchestrator functions as core orchestrators.

The user's generator yields adapter tasks; this driver turns each into a core task, yields that
to the core engine, and hands the outcome back as the SDK would (values decoded the SDK's way,
failures as `Exception("reason \\n details")`, `task_any` answering with the winning task).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Generator
from typing import Any

from asynkron_durable import OrchestrationContext, Task
from asynkron_durable_azure.context import AzureOrchestrationContext
from asynkron_durable_azure.tasks import AzureTask

UserOrchestrator = Callable[[AzureOrchestrationContext], Any]


def user_orchestrator(fn: Callable[..., Any]) -> UserOrchestrator:
    """The user's function behind a `df.Orchestrator.create(fn)` handle (or `fn` itself)."""
    inner = getattr(fn, "orchestrator_function", None)
    return inner if callable(inner) else fn


def declared_input_type(fn: Callable[..., Any]) -> type | None:
    """The `input_type` of `@app.orchestration_trigger(input_type=...)`, kept on the SDK's handle:
    `get_input()` decodes into it when the call names no type."""
    input_type = getattr(fn, "_df_input_type", None)
    return input_type if isinstance(input_type, type) else None


def core_orchestrator(
    fn: Callable[..., Any], input_type: type | None = None
) -> Callable[[OrchestrationContext], Any]:
    """A core orchestrator running the Azure-style orchestrator `fn` (or its handle)."""
    user = user_orchestrator(fn)
    default_type = input_type or declared_input_type(fn)

    def orchestrator(ctx: OrchestrationContext) -> Any:
        return run_user_orchestrator(user, AzureOrchestrationContext(ctx, input_type=default_type))

    orchestrator.__name__ = getattr(user, "__name__", "orchestrator")
    return orchestrator


def run_user_orchestrator(user: UserOrchestrator, az: AzureOrchestrationContext) -> Any:
    """Call the user's function; a generator is driven, anything else is the output (SDK rules)."""
    returned = user(az)
    if inspect.isgenerator(returned):
        return _drive(returned, az)
    return _output(returned, az)


def _drive(user: Generator[Any, Any, Any], az: AzureOrchestrationContext) -> Generator[Task, Any, Any]:
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            yielded = user.throw(error) if error is not None else user.send(value)
        except StopIteration as stop:
            return _output(stop.value, az)
        if not isinstance(yielded, AzureTask):
            raise TypeError(
                f"the orchestrator yielded {yielded!r} (of type {type(yielded).__name__}), which is not a "
                "Durable Functions task: yield what the context returns (call_activity, create_timer, "
                "wait_for_external_event, task_all, ...)"
            )
        if az.will_continue_as_new:  # the SDK schedules nothing after continue_as_new
            user.close()
            return None
        core_task = az._yielded(yielded)
        try:
            yield core_task
        except Exception:  # the core throws the task's failure; the SDK's form of it goes in
            value, error = None, yielded.result
        else:
            value, error = yielded.result, None


def _output(value: Any, az: AzureOrchestrationContext) -> Any:
    """The SDK requires a plain-JSON output: it tries `json.dumps` (no custom classes) first and
    fails the orchestration with that error, so this does the same."""
    if az.will_continue_as_new:
        return None
    json.dumps(value)
    return value
