"""DurableOrchestrationClientAdapter: the SDK client's API in process, on a real runtime.

Each test runs an Azure-style app (generator orchestrators against `df.DurableOrchestrationContext`,
plain core activities, a core entity) on the `runtime` fixture's stores and drives it only through
the adapter, checking the SDK's result types and the SDK's answers (as it gives them against
Azure) for every method, error cases included.
"""

from __future__ import annotations

import inspect
import json
import typing
import uuid
from collections.abc import Callable, Generator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest
from asynkron_durable_azure.client_adapter import DurableOrchestrationClientAdapter
from asynkron_durable_azure.orchestration import core_orchestrator
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus
from azure.durable_functions.models.EntityStateResponse import EntityStateResponse
from azure.durable_functions.models.PurgeHistoryResult import PurgeHistoryResult
from support.orchestrations import eventually, wait_for_status

from asynkron_durable import DurableFunctionRuntime, EntityContext, RuntimeStatus
from asynkron_durable.http.urls import ApiLocation, client_binding

Status = df.OrchestrationRuntimeStatus


# ----- the app ----------------------------------------------------------------------------------


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    @staticmethod
    def to_json(point: Point) -> dict[str, int]:
        return {"x": point.x, "y": point.y}

    @staticmethod
    def from_json(data: dict[str, int]) -> Point:
        return Point(data["x"], data["y"])


def greet(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    context.set_custom_status({"step": "greeting"})
    greeting: str = yield context.call_activity("hello", context.get_input())
    return greeting


def approval(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    context.set_custom_status("waiting")
    answer = yield context.wait_for_external_event("Approval")
    return {"answer": answer, "input": context.get_input()}


def point_sum(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    point: Point = context.get_input(Point)
    total: int = yield context.call_activity("add", [point.x, point.y])
    return total


def fragile(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    first: str = yield context.call_activity("hello", "before")
    second: str = yield context.call_activity("fails_once", context.instance_id)
    return f"{first} / {second}"


def hello(name: str) -> str:
    return f"Hello {name}!"


def add(pair: list[int]) -> int:
    return pair[0] + pair[1]


_failed_once: set[str] = set()


def fails_once(key: str) -> str:
    if key not in _failed_once:
        _failed_once.add(key)
        raise RuntimeError(f"first attempt for {key} fails")
    return "recovered"


def counter(ctx: EntityContext) -> None:
    if ctx.operation_name == "add":
        ctx.set_state(ctx.get_state(lambda: 0) + ctx.get_input())
    elif ctx.operation_name == "set":
        ctx.set_state(ctx.get_input())


def build(runtime: DurableFunctionRuntime) -> DurableOrchestrationClientAdapter:
    for orchestrator in (greet, approval, point_sum, fragile):
        runtime.register_orchestrator(core_orchestrator(orchestrator), orchestrator.__name__)
    runtime.register_function("hello", hello)
    runtime.register_function("add", add)
    runtime.register_function("fails_once", fails_once)
    runtime.register_entity(counter, "Counter")
    return DurableOrchestrationClientAdapter(runtime.client)


def request(url: str = "https://functions.example.test:8443/api/orchestrators/greet") -> func.HttpRequest:
    return func.HttpRequest("POST", url, body=b"")


async def finished(runtime: DurableFunctionRuntime, instance_id: str) -> RuntimeStatus:
    return (await runtime.client.wait_for_completion(instance_id, timeout=10)).runtime_status


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ----- the API's shape --------------------------------------------------------------------------


def test_the_public_methods_are_the_sdk_clients() -> None:
    def public(cls: type) -> dict[str, Any]:
        return {
            name: member
            for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")
        }

    ours, theirs = public(DurableOrchestrationClientAdapter), public(df.DurableOrchestrationClient)
    assert set(ours) == set(theirs)
    for name, sdk_method in theirs.items():
        mine, sdk = inspect.signature(ours[name]), inspect.signature(sdk_method)
        assert [(p.name, p.kind, p.default) for p in mine.parameters.values()] == [
            (p.name, p.kind, p.default) for p in sdk.parameters.values()
        ], name
        assert inspect.iscoroutinefunction(ours[name]) == inspect.iscoroutinefunction(sdk_method), name
        assert returns(ours[name]) == returns(sdk_method), name


def returns(method: Callable[..., Any]) -> tuple[Any, ...]:
    """A method's declared result, `Dict[str, str]` and `dict[str, str]` alike (no annotation: None)."""
    hint = typing.get_type_hints(method).get("return", type(None))
    return (typing.get_origin(hint) or hint, typing.get_args(hint))


# ----- starting and status ----------------------------------------------------------------------


async def test_start_new_and_get_status(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        instance_id = await adapter.start_new("greet", None, "Tokyo")
        assert isinstance(instance_id, str)
        assert await finished(runtime, instance_id) is RuntimeStatus.COMPLETED

        status = await adapter.get_status(instance_id)
        assert isinstance(status, DurableOrchestrationStatus)
        assert status
        assert status.name == "greet"
        assert status.instance_id == instance_id
        assert status.runtime_status is Status.Completed
        assert status.output == "Hello Tokyo!"
        assert status.custom_status == {"step": "greeting"}
        # the SDK sends showInput only when true, and the host's default is true
        assert status.input_ == "Tokyo"
        assert (await adapter.get_status(instance_id, show_input=True)).input_ == "Tokyo"
        assert isinstance(status.created_time, datetime)
        assert status.created_time <= status.last_updated_time
        assert not hasattr(status, "historyEvents")
        assert status.history is None


async def test_get_status_with_history(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        instance_id = await adapter.start_new("greet", client_input="Oslo")
        await finished(runtime, instance_id)

        status = await adapter.get_status(instance_id, show_history=True)
        # the host's key is historyEvents, which the SDK's constructor keeps as an attribute
        assert status.history is None
        events = status.historyEvents
        completed = next(e for e in events if e["EventType"] == 5)  # TaskCompleted
        assert "Result" not in completed
        assert events[-2]["EventType"] == 1  # ExecutionCompleted, before the last OrchestratorCompleted
        assert "Result" not in events[-2]

        with_output = await adapter.get_status(instance_id, show_history=True, show_history_output=True)
        completed = next(e for e in with_output.historyEvents if e["EventType"] == 5)
        assert json.loads(completed["Result"]) == "Hello Oslo!"


async def test_start_new_with_an_instance_id_and_a_custom_class_input(
    runtime: DurableFunctionRuntime,
) -> None:
    adapter = build(runtime)
    async with runtime:
        instance_id = unique("point")
        assert await adapter.start_new("point_sum", instance_id, Point(2, 3)) == instance_id
        await finished(runtime, instance_id)
        status = await adapter.get_status(instance_id)
        assert status.output == 5
        assert status.input_["__data__"] == {"x": 2, "y": 3}  # the SDK's encoding, as stored


async def test_start_new_errors(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        with pytest.raises(Exception) as unknown:
            await adapter.start_new("nope")
        assert type(unknown.value) is Exception
        assert str(unknown.value) == (
            "The function 'nope' doesn't exist, is disabled, or is not an orchestrator function. "
            "Additional info: The following are the known orchestrator functions: "
            "'greet', 'approval', 'point_sum', 'fragile'."
        )

        instance_id = await adapter.start_new("approval", unique("busy"))
        await wait_for_status(runtime.client, instance_id, RuntimeStatus.RUNNING)
        with pytest.raises(Exception) as busy:
            await adapter.start_new("approval", instance_id)
        assert busy.value.args == (
            {"Message": "An Orchestration instance with the status Running already exists."},
        )

        with pytest.raises(TypeError):
            await adapter.start_new("greet", client_input=object())

        # an empty id is an empty route segment to the host, which then picks the id
        picked = await adapter.start_new("greet", "", "Quito")
        assert picked
        assert await finished(runtime, picked) is RuntimeStatus.COMPLETED


async def test_get_status_of_an_unknown_instance(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        status = await adapter.get_status("no-such-instance")
        assert isinstance(status, DurableOrchestrationStatus)
        assert not status
        assert status.instance_id is None and status.runtime_status is None
        assert status.message == ""  # what from_json makes of the host's empty 404 body


# ----- queries ----------------------------------------------------------------------------------


async def test_get_status_all_lists_orchestrations_only(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        done = await adapter.start_new("greet", client_input="A")
        waiting = await adapter.start_new("approval")
        await adapter.signal_entity(df.EntityId("Counter", "all"), "add", 1)
        await finished(runtime, done)
        await wait_for_status(runtime.client, waiting, RuntimeStatus.RUNNING)

        statuses = await adapter.get_status_all()
        assert isinstance(statuses, list)
        assert all(isinstance(s, DurableOrchestrationStatus) for s in statuses)
        by_id = {s.instance_id: s for s in statuses}
        assert set(by_id) == {done, waiting}
        assert by_id[done].runtime_status is Status.Completed
        assert by_id[done].input_ == "A"
        assert by_id[waiting].runtime_status is Status.Running


async def test_get_status_by_filters(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        before = datetime.now(UTC) - timedelta(seconds=1)
        done = await adapter.start_new("greet", "job-done", "B")
        waiting = await adapter.start_new("approval", "job-waiting")
        other = await adapter.start_new("greet", "other-done", "C")
        await finished(runtime, done)
        await finished(runtime, other)
        await wait_for_status(runtime.client, waiting, RuntimeStatus.RUNNING)
        after = datetime.now(UTC) + timedelta(seconds=1)

        def ids(statuses: list[DurableOrchestrationStatus]) -> set[str]:
            assert all(isinstance(s, DurableOrchestrationStatus) for s in statuses)
            return {s.instance_id for s in statuses}

        assert ids(await adapter.get_status_by(runtime_status=[Status.Completed])) == {done, other}
        assert ids(await adapter.get_status_by(runtime_status=[Status.Running, Status.Pending])) == {waiting}
        assert ids(await adapter.get_status_by(runtime_status=[Status.Canceled])) == set()
        assert ids(await adapter.get_status_by(runtime_status=[])) == {done, waiting, other}
        assert ids(await adapter.get_status_by(before, after)) == {done, waiting, other}
        assert ids(await adapter.get_status_by(after)) == set()
        assert ids(await adapter.get_status_by(created_time_to=before)) == set()
        assert ids(await adapter.get_status_by(instance_id_prefix="job-")) == {done, waiting}
        assert ids(
            await adapter.get_status_by(before, after, [Status.Completed], instance_id_prefix="job-")
        ) == {done}

        # the SDK writes a time's clock reading with a "Z", whatever its zone: a naive UTC reading
        # works, and an aware time counts by its clock reading, not by the instant it stands for
        assert ids(await adapter.get_status_by(before.replace(tzinfo=None))) == {done, waiting, other}
        five_hours_west = timezone(timedelta(hours=-5))
        clock_of_before = before.replace(tzinfo=five_hours_west)  # 5 h after `before` as an instant
        assert ids(await adapter.get_status_by(clock_of_before)) == {done, waiting, other}


# ----- events, terminate, suspend and resume ----------------------------------------------------


async def test_raise_event(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        instance_id = await adapter.start_new("approval", client_input={"doc": 7})
        await wait_for_status(runtime.client, instance_id, RuntimeStatus.RUNNING)
        assert (await adapter.get_status(instance_id)).custom_status == "waiting"

        await adapter.raise_event(instance_id, "Approval", {"by": "ada", "ok": True})
        await finished(runtime, instance_id)
        status = await adapter.get_status(instance_id)
        assert status.output == {"answer": {"by": "ada", "ok": True}, "input": {"doc": 7}}


async def test_raise_event_errors(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        with pytest.raises(Exception) as unknown:
            await adapter.raise_event("ghost", "Approval", True)
        assert type(unknown.value) is Exception
        assert str(unknown.value) == "No instance with ID ghost found."

        done = await adapter.start_new("greet", client_input="D")
        await finished(runtime, done)
        with pytest.raises(Exception) as gone:
            await adapter.raise_event(done, "Approval", True)
        assert str(gone.value) == f"Instance with ID {done} is gone: either completed or failed"

        with pytest.raises(ValueError, match="event_name must be a non-empty string"):
            await adapter.raise_event(done, "", True)
        waiting = await adapter.start_new("approval")
        with pytest.raises(TypeError):  # the SDK encodes event data with json.dumps
            await adapter.raise_event(waiting, "Approval", Point(1, 2))


async def test_terminate(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        instance_id = await adapter.start_new("approval")
        await wait_for_status(runtime.client, instance_id, RuntimeStatus.RUNNING)
        await adapter.terminate(instance_id, "no longer needed")
        assert await finished(runtime, instance_id) is RuntimeStatus.TERMINATED
        status = await adapter.get_status(instance_id)
        assert status.runtime_status is Status.Terminated
        assert status.output == "no longer needed"

        # a finished instance: the host's 410, which the SDK accepts silently
        await adapter.terminate(instance_id, "again")
        assert (await adapter.get_status(instance_id)).output == "no longer needed"

        with pytest.raises(Exception) as unknown:
            await adapter.terminate("ghost", "why")
        assert str(unknown.value) == "No instance with ID 'ghost' found."


async def test_suspend_and_resume(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        instance_id = await adapter.start_new("approval")
        await wait_for_status(runtime.client, instance_id, RuntimeStatus.RUNNING)

        await adapter.suspend(instance_id, "hold on")
        await wait_for_status(runtime.client, instance_id, RuntimeStatus.SUSPENDED)
        assert (await adapter.get_status(instance_id)).runtime_status is Status.Suspended
        await adapter.raise_event(instance_id, "Approval", "yes")  # queued while suspended
        assert (await adapter.get_status(instance_id)).runtime_status is Status.Suspended

        await adapter.resume(instance_id, "go on")
        assert await finished(runtime, instance_id) is RuntimeStatus.COMPLETED
        assert (await adapter.get_status(instance_id)).output == {"answer": "yes", "input": None}

        await adapter.suspend(instance_id, "finished: ignored")
        await adapter.resume(instance_id, "finished: ignored")
        assert (await adapter.get_status(instance_id)).runtime_status is Status.Completed

        for steer in (adapter.suspend, adapter.resume):
            with pytest.raises(Exception) as unknown:
                await steer("ghost", "why")
            assert str(unknown.value) == "No instance with ID 'ghost' found."


# ----- rewind and restart -----------------------------------------------------------------------


async def test_rewind_a_failed_instance(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        instance_id = await adapter.start_new("fragile", unique("fragile"))
        assert await finished(runtime, instance_id) is RuntimeStatus.FAILED
        failed = await adapter.get_status(instance_id)
        assert failed.runtime_status is Status.Failed
        assert "first attempt for" in failed.output

        await adapter.rewind(instance_id, "try again")
        await wait_for_status(runtime.client, instance_id, RuntimeStatus.COMPLETED)  # still Failed at first
        assert (await adapter.get_status(instance_id)).output == "Hello before! / recovered"

        with pytest.raises(Exception) as not_failed:
            await adapter.rewind(instance_id, "again")
        assert str(not_failed.value) == (
            "This orchestration has status Completed, "
            'but only orchestrations in the "Failed" state can be rewound.'
        )
        with pytest.raises(Exception) as unknown:
            await adapter.rewind("ghost", "why")
        assert str(unknown.value) == "No instance with ID ghost found."


async def test_restart(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        original = await adapter.start_new("greet", client_input="Lima")
        await finished(runtime, original)

        fresh = await adapter.restart(original)
        assert isinstance(fresh, str) and fresh != original
        await finished(runtime, fresh)
        restarted = await adapter.get_status(fresh)
        assert (restarted.name, restarted.input_, restarted.output) == ("greet", "Lima", "Hello Lima!")

        first_run = await adapter.get_status(original)
        assert await adapter.restart(original, restart_with_new_instance_id=False) == original
        await wait_for_status(runtime.client, original, RuntimeStatus.COMPLETED)
        again = await adapter.get_status(original)
        assert again.output == "Hello Lima!"
        assert again.created_time > first_run.created_time

        with pytest.raises(Exception) as unknown:
            await adapter.restart("ghost")
        assert str(unknown.value) == "The operation failed with an unexpected status code 400"

        waiting = await adapter.start_new("approval")
        await wait_for_status(runtime.client, waiting, RuntimeStatus.RUNNING)
        with pytest.raises(Exception) as running:
            await adapter.restart(waiting, restart_with_new_instance_id=False)
        assert str(running.value) == "The operation failed with an unexpected status code 409"
        assert (await adapter.get_status(waiting)).runtime_status is Status.Running


# ----- purge ------------------------------------------------------------------------------------


async def test_purge_one_instance(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        done = await adapter.start_new("greet", client_input="E")
        await finished(runtime, done)
        result = await adapter.purge_instance_history(done)
        assert isinstance(result, PurgeHistoryResult)
        assert result.instances_deleted == 1
        assert not await adapter.get_status(done)

        missing = await adapter.purge_instance_history(done)
        assert isinstance(missing, PurgeHistoryResult)
        assert missing.instances_deleted == 0

        waiting = await adapter.start_new("approval")
        with pytest.raises(Exception) as running:
            await adapter.purge_instance_history(waiting)
        assert str(running.value) == "The operation failed with an unexpected status code 412"
        assert await adapter.get_status(waiting)


async def test_purge_by_filter(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        start = datetime.now(UTC) - timedelta(seconds=1)
        done = [await adapter.start_new("greet", client_input=n) for n in ("F", "G")]
        stopped = await adapter.start_new("approval")
        waiting = await adapter.start_new("approval")
        for instance_id in done:
            await finished(runtime, instance_id)
        await wait_for_status(runtime.client, stopped, RuntimeStatus.RUNNING)
        await adapter.terminate(stopped, "stop")
        await finished(runtime, stopped)

        with pytest.raises(ValueError, match="created_time_from is required"):
            await adapter.purge_instance_history_by()

        nothing = await adapter.purge_instance_history_by(
            start - timedelta(days=2), start - timedelta(days=1)
        )
        assert isinstance(nothing, PurgeHistoryResult)
        assert nothing.instances_deleted == 0

        result = await adapter.purge_instance_history_by(start, runtime_status=[Status.Completed])
        assert isinstance(result, PurgeHistoryResult)
        assert result.instances_deleted == 2
        remaining = {s.instance_id for s in await adapter.get_status_all()}
        assert remaining == {stopped, waiting}

        result = await adapter.purge_instance_history_by(
            start, runtime_status=[Status.Terminated, Status.Failed]
        )
        assert result.instances_deleted == 1
        assert {s.instance_id for s in await adapter.get_status_all()} == {waiting}


# ----- entities ---------------------------------------------------------------------------------


async def test_signal_entity_and_read_entity_state(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        entity = df.EntityId("Counter", unique("c"))
        absent = await adapter.read_entity_state(entity)
        assert isinstance(absent, EntityStateResponse)
        assert (absent.entity_exists, absent.entity_state) == (False, None)

        await adapter.signal_entity(entity, "add", 5)
        await adapter.signal_entity(entity, "add", 2)

        async def reads_seven() -> bool:
            return bool((await adapter.read_entity_state(entity)).entity_state == 7)

        await eventually(reads_seven, bool, "the counter reaching 7", timeout=10.0)
        state = await adapter.read_entity_state(entity)
        assert isinstance(state, EntityStateResponse)
        assert state.entity_exists is True

        # the SDK sends no input for a falsy one, so "set" to 0 sets None; and a null state
        # reads as "" (the SDK's HTTP helper turns an empty answer into "")
        await adapter.signal_entity(entity, "set", 0)

        async def reads_empty() -> bool:
            return bool((await adapter.read_entity_state(entity)).entity_state == "")

        await eventually(reads_empty, bool, "the counter set to nothing", timeout=10.0)
        assert (await adapter.read_entity_state(entity)).entity_exists is True

        await adapter.signal_entity(entity, "set", {"deep": [1, 2]})

        async def reads_dict() -> bool:
            return bool((await adapter.read_entity_state(entity)).entity_state == {"deep": [1, 2]})

        await eventually(reads_dict, bool, "the counter set to a dict", timeout=10.0)


async def test_entity_errors(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        stranger = df.EntityId("Stranger", "x")
        with pytest.raises(Exception) as signal:
            await adapter.signal_entity(stranger, "add", 1)
        assert str(signal.value) == "The operation failed with an unexpected status code 400"
        with pytest.raises(Exception) as read:
            await adapter.read_entity_state(stranger)
        assert str(read.value) == "The operation failed with an unexpected status code 400"
        with pytest.raises(TypeError):  # the SDK encodes operation input with json.dumps
            await adapter.signal_entity(df.EntityId("Counter", "y"), "set", Point(1, 2))


# ----- HTTP responses and management URLs -------------------------------------------------------


def test_management_urls_match_the_sdk_client_on_our_binding() -> None:
    location = ApiLocation("http://127.0.0.1:7071", task_hub="hub", api_key="s3cret")
    adapter = DurableOrchestrationClientAdapter(None, location)  # type: ignore[arg-type]
    sdk = df.DurableOrchestrationClient(json.dumps(client_binding(location)))

    payload = adapter.create_http_management_payload("abc123")
    assert payload == sdk.create_http_management_payload("abc123")
    assert payload["id"] == "abc123"
    assert payload["statusQueryGetUri"] == (
        "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/abc123"
        "?taskHub=hub&connection=Storage&code=s3cret"
    )

    incoming = request()
    ours, theirs = (
        adapter.create_check_status_response(incoming, "abc123"),
        sdk.create_check_status_response(incoming, "abc123"),
    )
    assert isinstance(ours, func.HttpResponse)
    assert ours.status_code == theirs.status_code == 202
    assert dict(ours.headers) == dict(theirs.headers)
    assert json.loads(ours.get_body()) == json.loads(theirs.get_body())
    assert adapter.get_client_response_links(incoming, "abc123") == sdk.get_client_response_links(
        incoming, "abc123"
    )


def test_check_status_response() -> None:
    adapter = DurableOrchestrationClientAdapter(None)  # type: ignore[arg-type]
    assert adapter.create_http_management_payload("i1")["statusQueryGetUri"].startswith(
        "http://localhost:7071/runtime/webhooks/durabletask/instances/i1?"
    )

    response = adapter.create_check_status_response(request(), "i1")
    assert isinstance(response, func.HttpResponse)
    assert response.status_code == 202
    body = json.loads(response.get_body())
    assert set(body) == {
        "id",
        "statusQueryGetUri",
        "sendEventPostUri",
        "terminatePostUri",
        "rewindPostUri",
        "purgeHistoryDeleteUri",
        "restartPostUri",
        "suspendPostUri",
        "resumePostUri",
    }
    assert body["id"] == "i1"
    base = "https://functions.example.test:8443/runtime/webhooks/durabletask/instances/i1"
    assert body["statusQueryGetUri"] == f"{base}?taskHub=default&connection=Storage"
    assert body["sendEventPostUri"] == f"{base}/raiseEvent/{{eventName}}?taskHub=default&connection=Storage"
    assert response.headers["Location"] == body["statusQueryGetUri"]
    assert response.headers["Retry-After"] == "10"
    assert response.headers["Content-Type"] == "application/json"


async def test_wait_for_completion_or_create_check_status_response(runtime: DurableFunctionRuntime) -> None:
    adapter = build(runtime)
    async with runtime:
        # it waits for the instance to finish: Completed answers 200 with the output
        greeting = await adapter.start_new("greet", client_input="Rome")
        response = await adapter.wait_for_completion_or_create_check_status_response(request(), greeting)
        assert isinstance(response, func.HttpResponse)
        assert response.status_code == 200
        assert response.get_body() == b"Hello Rome!"  # a string output goes out as it is
        assert response.headers["Content-Type"] == "application/json"

        summed = await adapter.start_new("point_sum", client_input=Point(20, 22))
        response = await adapter.wait_for_completion_or_create_check_status_response(request(), summed)
        assert (response.status_code, json.loads(response.get_body())) == (200, 42)

        # still running at the deadline: the check-status response
        waiting = await adapter.start_new("approval")
        response = await adapter.wait_for_completion_or_create_check_status_response(
            request(), waiting, timeout_in_milliseconds=50, retry_interval_in_milliseconds=10
        )
        assert response.status_code == 202
        assert response.headers["Location"] == json.loads(response.get_body())["statusQueryGetUri"]
        assert response.headers["Retry-After"] == "10"

        await adapter.terminate(waiting, "enough")
        await finished(runtime, waiting)
        response = await adapter.wait_for_completion_or_create_check_status_response(request(), waiting)
        body = json.loads(response.get_body())
        assert (response.status_code, body["runtimeStatus"], body["output"]) == (200, "Terminated", "enough")

        failing = await adapter.start_new("fragile", unique("fragile"))
        response = await adapter.wait_for_completion_or_create_check_status_response(request(), failing)
        body = json.loads(response.get_body())
        assert (response.status_code, body["runtimeStatus"], body["instanceId"]) == (500, "Failed", failing)

        response = await adapter.wait_for_completion_or_create_check_status_response(
            request(), "ghost", timeout_in_milliseconds=30, retry_interval_in_milliseconds=10
        )
        assert response.status_code == 202

        with pytest.raises(Exception) as bad:
            await adapter.wait_for_completion_or_create_check_status_response(
                request(), greeting, timeout_in_milliseconds=100, retry_interval_in_milliseconds=200
            )
        assert str(bad.value) == "Total timeout 100 (ms) should be bigger than retry timeout 200 (ms)"
