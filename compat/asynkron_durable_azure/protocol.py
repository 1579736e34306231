"""The out-of-proc orchestrator protocol, computed by our engine.

`execute_orchestrator(fn, context_json)` takes the JSON the Durable Functions host gives the
Python SDK (history, input, instance id, schema version) and returns the OrchestratorState JSON
the SDK would return (isDone, actions, output, error, customStatus, schemaVersion). The history is
converted to our events, replayed by the core executor through the adapter context, and the
actions are reported as the SDK records them.

Kept on purpose: where the SDK's handle raises (user code failed), this returns the state JSON with
its `error`, which is what the SDK embeds after `$OutOfProcData$:` in its exception.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from typing import Any

from azure.durable_functions.models.history.HistoryEvent import HistoryEvent as SdkHistoryEvent
from azure.durable_functions.models.OrchestratorState import OrchestratorState
from azure.durable_functions.models.ReplaySchema import ReplaySchema
from pydantic import BaseModel, ConfigDict, ValidationError

from asynkron_durable import OrchestrationContext, OrchestrationExecutor, RuntimeStatus
from asynkron_durable.azure_history import from_azure_history
from asynkron_durable.history import ExecutionStarted, HistoryEvent, OrchestratorStarted
from asynkron_durable_azure.context import AzureOrchestrationContext
from asynkron_durable_azure.orchestration import (
    declared_input_type,
    run_user_orchestrator,
    user_orchestrator,
)


class OrchestratorInvocation(BaseModel):
    """The host's orchestrator request (fields the SDK reads; others are passed along)."""

    model_config = ConfigDict(extra="allow")

    history: list[dict[str, Any]]
    instanceId: str
    input: Any = None
    isReplaying: bool = False
    parentInstanceId: str | None = None
    upperSchemaVersion: int = 0
    upperSchemaVersionNew: int | None = None

    @property
    def schema(self) -> ReplaySchema:
        """The action layout the host asked for (the newest both sides know)."""
        known = [member.value for member in ReplaySchema]
        schema = (
            ReplaySchema(self.upperSchemaVersion) if self.upperSchemaVersion in known else ReplaySchema.V1
        )
        newer = self.upperSchemaVersionNew
        if newer is not None and newer > schema.value:
            schema = ReplaySchema(newer if newer in known else max(known))
        return schema

    @property
    def input_json(self) -> str | None:
        """The input as JSON text, as the SDK keeps it."""
        if self.input is None or isinstance(self.input, str):
            return self.input
        return json.dumps(self.input)


class _Run:
    """One invocation: the adapter context the engine created, and what the user code raised."""

    def __init__(
        self, user: Callable[..., Any], request: OrchestratorInvocation, input_type: type | None
    ) -> None:
        self.user = user
        self.request = request
        self.input_type = input_type
        self.context: AzureOrchestrationContext | None = None
        self.error: BaseException | None = None

    def orchestrator(self, core: OrchestrationContext) -> Any:
        request = self.request
        self.context = AzureOrchestrationContext(
            core,
            request.schema,
            histories=[SdkHistoryEvent(**event) for event in request.history],
            version=_version(request.history),
            input_type=self.input_type,
        )
        try:
            returned = run_user_orchestrator(self.user, self.context)
        except Exception as exc:
            self.error = exc
            raise
        if isinstance(returned, Generator):
            return self._watch(returned)
        return returned

    def _watch(self, driver: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
        try:
            return (yield from driver)
        except Exception as exc:
            self.error = exc
            raise


def execute_orchestrator(fn: Callable[..., Any], context_json: str | bytes) -> str:
    """Run the Azure-style orchestrator `fn` (or its `df.Orchestrator.create` handle) over the
    host's JSON and return the OrchestratorState JSON. Malformed input raises `ValueError`."""
    request = _parse(context_json)
    history = _with_input(from_azure_history(request.history), request.input_json)
    run = _Run(user_orchestrator(fn), request, declared_input_type(fn))
    executor = OrchestrationExecutor(run.orchestrator, request.instanceId)
    split = max((i for i, e in enumerate(history) if isinstance(e, OrchestratorStarted)), default=0)
    executor.replay(history[:split])
    result = executor.run_episode(history[split:])
    context = run.context
    if context is None:  # no ExecutionStarted yet: nothing has run, as the SDK reports it
        idle: list[list[Any]] = [] if request.schema is ReplaySchema.V1 else [[]]
        return str(OrchestratorState(False, idle, None, request.schema).to_json_string())
    error = None
    if result.status is RuntimeStatus.FAILED:
        error = _error_text(run.error) if run.error is not None else _failure_text(result.failure)
    done = result.status in (RuntimeStatus.COMPLETED, RuntimeStatus.CONTINUED_AS_NEW)
    output = json.loads(result.output) if result.status is RuntimeStatus.COMPLETED and result.output else None
    state = OrchestratorState(
        is_done=done,
        actions=context._actions,
        output=output,
        replay_schema=context._replay_schema,
        error=error,
        custom_status=context.custom_status,
    )
    text: str = state.to_json_string()
    return text


def _parse(context_json: str | bytes) -> OrchestratorInvocation:
    try:
        return OrchestratorInvocation.model_validate_json(context_json)
    except ValidationError as exc:
        raise ValueError(f"malformed orchestrator request: {exc}") from None


def _with_input(history: list[HistoryEvent], input_json: str | None) -> list[HistoryEvent]:
    """The SDK reads the request's `input`, not the ExecutionStarted event's: so does the engine."""
    return [
        event.model_copy(update={"input": input_json}) if isinstance(event, ExecutionStarted) else event
        for event in history
    ]


def _version(history: list[dict[str, Any]]) -> str | None:
    for event in history:
        if event.get("EventType") == 0:
            version = event.get("Version")
            return version if isinstance(version, str) else None
    return None


def _error_text(error: BaseException) -> str:
    """How the SDK reports a user exception: its text, or its type when the text is empty."""
    return str(error) or str(type(error))


def _failure_text(failure: Any) -> str:
    return str(failure.message) if failure is not None else "the orchestration failed"
