"""The parity oracle: the real SDK and our `execute_orchestrator` give the same OrchestratorState
for every prefix of every history our runtime recorded for an Azure-style orchestrator.

Each corpus orchestrator runs on our runtime (in-memory store) to completion; its history, in the
host's JSON shape, is then cut after every event and each prefix is given to both sides.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import azure.durable_functions as df
import pytest
from asynkron_durable_azure.orchestration import core_orchestrator
from asynkron_durable_azure.protocol import execute_orchestrator
from azure.durable_functions.models.utils.df_serialization import df_dumps
from support.azure_corpus import (
    ACTIVITIES,
    CASES,
    ENTITIES,
    TALLY,
    Case,
    failing,
    unknown_activity,
    yields_a_number,
)
from support.azure_sdk import assert_parity_at_every_prefix, request
from support.orchestrations import wait_for_status

from asynkron_durable import DurableFunctionRuntime, RuntimeStatus
from asynkron_durable.azure_history import to_azure_history


async def recorded(case: Case) -> tuple[str, str | None, list[dict[str, Any]], Any]:
    """Run `case` on our runtime; its instance id, input, history as host JSON, and output."""
    # an unknown activity (a case below) fails after 0.2 s unserved, not 10 min
    runtime = DurableFunctionRuntime("memory://", max_poll_interval=0.02, unserved_timeout=0.2)
    for name, fn in ACTIVITIES.items():
        runtime.register_function(name, fn)
    for name, fn in ENTITIES.items():
        runtime.register_entity(fn, name)
    for name, fn in {case.name: case.orchestrator, **case.children}.items():
        runtime.register_orchestrator(core_orchestrator(fn), name)
    async with runtime:
        client = runtime.client
        instance_id = await client.start_new(case.name, case.input)
        if case.drive is not None:
            await wait_for_status(client, instance_id, RuntimeStatus.RUNNING)
            await case.drive(runtime, instance_id)
        status = await client.wait_for_completion(instance_id, timeout=20)
        history = await runtime.store.get_history(instance_id)
    assert status.runtime_status in (RuntimeStatus.COMPLETED, RuntimeStatus.FAILED), status
    input_json = None if case.input is None else json.dumps(case.input)
    return instance_id, input_json, to_azure_history(history, instance_id=instance_id), status


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_sdk_and_ours_agree_at_every_history_prefix(case: Case) -> None:
    instance_id, input_json, history, status = await recorded(case)
    assert status.runtime_status is RuntimeStatus.COMPLETED, status.failure
    if case.expected is not None:
        assert status.output == case.expected
    # only the last execution of a continue-as-new chain is in the store
    assert assert_parity_at_every_prefix(case.orchestrator, instance_id, input_json, history) > 0


async def test_an_uncaught_activity_failure_fails_both_alike() -> None:
    case = Case("failing", failing)
    instance_id, input_json, history, status = await recorded(case)
    assert status.runtime_status is RuntimeStatus.FAILED
    assert status.failure is not None and "uncaught" in status.failure.message
    assert_parity_at_every_prefix(failing, instance_id, input_json, history)
    final = json.loads(execute_orchestrator(failing, request(history, instance_id, input_json, 1)))
    assert final["isDone"] is False and final["error"].startswith("uncaught")


async def test_yielding_something_that_is_not_a_task_fails_the_instance_with_a_clear_message() -> None:
    case = Case("yields_a_number", yields_a_number)
    _, _, _, status = await recorded(case)
    assert status.runtime_status is RuntimeStatus.FAILED
    assert status.failure is not None
    assert "yielded 5 (of type int), which is not a Durable Functions task" in status.failure.message


async def test_an_unknown_activity_fails_the_instance_naming_it_and_what_is_registered() -> None:
    case = Case("unknown_activity", unknown_activity)
    instance_id, input_json, history, status = await recorded(case)
    assert status.runtime_status is RuntimeStatus.FAILED
    assert status.failure is not None
    assert "unknown activity 'no_such_activity'; registered activities: " in status.failure.message
    assert_parity_at_every_prefix(unknown_activity, instance_id, input_json, history)


async def test_nothing_yielded_after_continue_as_new_runs() -> None:
    TALLY.clear()
    case = next(c for c in CASES if c.name == "continue_then_yield")
    _, _, _, status = await recorded(case)
    assert status.output == 0
    assert TALLY == [2, 1, 0]


class Point:
    """A custom class as azure-functions serialises them (static to_json / from_json)."""

    def __init__(self, x: int) -> None:
        self.x = x

    @staticmethod
    def to_json(obj: Point) -> str:
        return json.dumps({"x": obj.x})

    @staticmethod
    def from_json(text: str) -> Point:
        return Point(json.loads(text)["x"])


def reads_a_point(context: df.DurableOrchestrationContext) -> Any:
    point = context.get_input()
    return {"type": type(point).__name__, "x": point.x}
    yield  # a generator, as orchestrators are


async def test_the_declared_input_type_decodes_the_input_in_strict_typing_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_FUNCTIONS_DURABLE_STRICT_TYPING", "1")  # no type: no custom classes
    handle = df.Orchestrator.create(reads_a_point)
    handle._df_input_type = Point  # what @app.orchestration_trigger(input_type=Point) sets
    # an unknown activity (a case below) fails after 0.2 s unserved, not 10 min
    runtime = DurableFunctionRuntime("memory://", max_poll_interval=0.02, unserved_timeout=0.2)
    runtime.register_orchestrator(core_orchestrator(handle), "reads_a_point")
    point = json.loads(df_dumps(Point(7)))
    async with runtime:
        instance_id = await runtime.client.start_new("reads_a_point", point)
        status = await runtime.client.wait_for_completion(instance_id, timeout=10)
        history = to_azure_history(await runtime.store.get_history(instance_id), instance_id=instance_id)
    assert status.output == {"type": "Point", "x": 7}, status.failure
    body = request(history, instance_id, json.dumps(point), 1)
    assert json.loads(execute_orchestrator(handle, body)) == json.loads(handle(SimpleNamespace(body=body)))
