"""The Durable Functions HTTP management API, in process over httpx's ASGI transport, against a
real runtime running native orchestrations: every route with the status codes and bodies Azure
documents, malformed requests, the body limit and the API key.

Nothing sleeps to synchronise: waits poll the API (or the client) until a deadline.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from support.orchestrations import eventually, wait_for_status

from asynkron_durable import DurableFunctionRuntime, EntityContext, OrchestrationContext, RuntimeStatus
from asynkron_durable.http.management import DEFAULT_BODY_LIMIT, management_app
from asynkron_durable.http.urls import ApiLocation, client_binding
from asynkron_durable.stores import InMemoryStateStore

BASE = "/runtime/webhooks/durabletask"
RPC = "/durabletask"
ORIGIN = "http://testserver"
DEADLINE = 10.0
PAYLOAD_KEYS = {
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

# ----- the app under test -------------------------------------------------------------------------


def waiter(ctx: OrchestrationContext) -> Any:
    """Runs until event `go` arrives; returns its input and the event's data."""
    data = yield ctx.wait_for_external_event("go")
    return {"input": ctx.get_input(), "event": data}


def shout(text: str) -> str:
    return text.upper()


def greeter(ctx: OrchestrationContext) -> Any:
    result = yield ctx.call_activity("shout", ctx.get_input())
    return result


def boom(ctx: OrchestrationContext) -> Any:
    raise ValueError("boom!")
    yield  # a generator orchestrator


FLAKY_CALLS: list[int] = []


def flaky() -> str:
    """Fails the first time it runs, succeeds after (for rewind)."""
    FLAKY_CALLS.append(1)
    if len(FLAKY_CALLS) == 1:
        raise RuntimeError("first call fails")
    return "second time lucky"


def uses_flaky(ctx: OrchestrationContext) -> Any:
    result = yield ctx.call_activity("flaky")
    return result


def counter(ctx: EntityContext) -> Any:
    total: int = ctx.get_state(lambda: 0)
    if ctx.operation_name == "add":
        ctx.set_state(total + ctx.get_input(int))
    return total


def make_runtime(store: Any) -> DurableFunctionRuntime:
    runtime = DurableFunctionRuntime(store, max_poll_interval=0.02, shutdown_timeout=5.0)
    runtime.register_orchestrator(waiter, "waiter")
    runtime.register_orchestrator(greeter, "greeter")
    runtime.register_orchestrator(boom, "boom")
    runtime.register_orchestrator(uses_flaky, "uses_flaky")
    runtime.activity("shout")(shout)
    runtime.activity("flaky")(flaky)
    runtime.register_entity(counter, "counter")
    return runtime


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN, timeout=DEADLINE)


@pytest.fixture
async def api() -> AsyncIterator[tuple[DurableFunctionRuntime, httpx.AsyncClient]]:
    """A running runtime on the in-memory store and an HTTP client for its management API."""
    FLAKY_CALLS.clear()
    runtime = make_runtime(InMemoryStateStore())
    async with runtime, client_for(management_app(runtime.client, ApiLocation(ORIGIN))) as http:
        yield runtime, http


@pytest.fixture
def http(api: tuple[DurableFunctionRuntime, httpx.AsyncClient]) -> httpx.AsyncClient:
    return api[1]


async def poll(
    get: Callable[[], Awaitable[httpx.Response]],
    done: Callable[[httpx.Response], bool],
    what: str,
) -> httpx.Response:
    """Repeat `get` until `done` holds for its answer; fail at the deadline."""
    return await eventually(get, done, what, timeout=DEADLINE)


async def status_of(http: httpx.AsyncClient, instance_id: str, *runtime_statuses: str) -> httpx.Response:
    """Poll the status route until the instance is in one of `runtime_statuses`."""
    return await poll(
        lambda: http.get(f"{BASE}/instances/{instance_id}"),
        lambda r: r.status_code != 404 and r.json()["runtimeStatus"] in runtime_statuses,
        f"{instance_id} to reach {runtime_statuses}",
    )


async def start(http: httpx.AsyncClient, name: str, body: Any = None, instance_id: str = "") -> str:
    path = f"{BASE}/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
    response = await http.post(path, json=body)
    assert response.status_code == 202, response.text
    instance: str = response.json()["id"]
    return instance


def assert_error(response: httpx.Response, status: int, mentions: str = "") -> None:
    """A problem answer: the status, a JSON body with both message fields, the text it names."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == body["ExceptionMessage"] and body["error"]
    assert mentions.lower() in body["error"].lower()


# ----- start --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["orchestrators/waiter", "orchestrators/waiter/"])
async def test_start_answers_202_with_the_management_payload_and_where_to_poll(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.post(f"{BASE}/{path}", json={"order": 42})
    assert response.status_code == 202
    payload = response.json()
    assert set(payload) == PAYLOAD_KEYS
    instance_id = payload["id"]
    base = f"{ORIGIN}{BASE}/instances/{instance_id}"
    query = "taskHub=default&connection=Storage"
    assert payload["statusQueryGetUri"] == f"{base}?{query}"
    assert payload["sendEventPostUri"] == f"{base}/raiseEvent/{{eventName}}?{query}"
    assert payload["terminatePostUri"] == f"{base}/terminate?reason={{text}}&{query}"
    assert payload["purgeHistoryDeleteUri"] == f"{base}?{query}"
    assert payload["restartPostUri"] == f"{base}/restart?{query}"
    assert response.headers["location"] == payload["statusQueryGetUri"]
    assert response.headers["retry-after"] == "10"
    status = (await http.get(payload["statusQueryGetUri"])).json()
    assert (status["name"], status["input"]) == ("waiter", {"order": 42})


async def test_create_and_wait_answers_with_what_finished_in_time_else_202(http: httpx.AsyncClient) -> None:
    """The binding's createAndWaitOnNewInstancePostUri: `timeout` and `pollingInterval` seconds."""
    done = await http.post(f"{BASE}/orchestrators/greeter/w-1?timeout=10&pollingInterval=1", json="hi")
    assert (done.status_code, done.json()) == (200, "HI")

    failed = await http.post(f"{BASE}/orchestrators/boom/w-2?timeout=10&pollingInterval=1")
    assert failed.status_code == 200
    assert (failed.json()["instanceId"], failed.json()["runtimeStatus"]) == ("w-2", "Failed")

    waiting = await http.post(f"{BASE}/orchestrators/waiter/w-3?timeout=1&pollingInterval=1")
    assert waiting.status_code == 202 and waiting.json()["id"] == "w-3"
    assert waiting.headers["location"] == waiting.json()["statusQueryGetUri"]

    for bad in ("timeout=0", "timeout=soon", "timeout=5&pollingInterval=-1"):
        assert_error(await http.post(f"{BASE}/orchestrators/greeter?{bad}"), 400)


async def test_start_with_an_explicit_id_and_a_running_duplicate_is_409(http: httpx.AsyncClient) -> None:
    assert await start(http, "waiter", "first", instance_id="order-1") == "order-1"
    again = await http.post(f"{BASE}/orchestrators/waiter/order-1", json="second")
    assert_error(again, 409, "order-1")
    # Once it finished, the id can be used again.
    await http.post(f"{BASE}/instances/order-1/raiseEvent/go", json=None)
    await status_of(http, "order-1", "Completed")
    assert await start(http, "waiter", "third", instance_id="order-1") == "order-1"
    assert (await status_of(http, "order-1", "Running", "Pending")).json()["input"] == "third"


async def test_start_with_no_body_has_no_input(http: httpx.AsyncClient) -> None:
    instance_id = await start(http, "greeter", "hi")
    response = await http.post(f"{BASE}/orchestrators/waiter")
    assert response.status_code == 202
    assert (await http.get(f"{BASE}/instances/{response.json()['id']}")).json()["input"] is None
    assert (await status_of(http, instance_id, "Completed")).json()["output"] == "HI"


@pytest.mark.parametrize(
    ("path", "content", "mentions"),
    [
        ("/orchestrators/nope", b"1", "nope"),
        ("/orchestrators/waiter", b"{not json", "not JSON"),
        ("/orchestrators/waiter", b"NaN", "not JSON"),
        ("/orchestrators/waiter", b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        ("/orchestrators/waiter", b"\xff\xfe", "not JSON"),
        ("/orchestrators/waiter/@counter@k", b"1", "entity"),
        ("/orchestrators/waiter/%20", b"1", "empty"),
    ],
    ids=["unknown-orchestrator", "not-json", "nan", "too-deep", "not-utf8", "entity-id", "blank-id"],
)
async def test_a_start_that_cannot_be_done_is_400(
    http: httpx.AsyncClient, path: str, content: bytes, mentions: str
) -> None:
    assert_error(await http.post(BASE + path, content=content), 400, mentions)


# ----- status -------------------------------------------------------------------------------------


async def test_status_of_a_running_instance_is_202_with_location(http: httpx.AsyncClient) -> None:
    instance_id = await start(http, "waiter", {"a": 1})
    response = await status_of(http, instance_id, "Running")
    assert response.status_code == 202
    assert (
        response.headers["location"]
        == f"{ORIGIN}{BASE}/instances/{instance_id}?taskHub=default&connection=Storage"
    )
    assert response.headers["retry-after"] == "10"
    body = response.json()
    assert set(body) == {
        "name",
        "instanceId",
        "runtimeStatus",
        "input",
        "customStatus",
        "output",
        "createdTime",
        "lastUpdatedTime",
    }
    assert (body["name"], body["instanceId"], body["input"], body["output"]) == (
        "waiter",
        instance_id,
        {"a": 1},
        None,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body["createdTime"])
    no_input = await http.get(f"{BASE}/instances/{instance_id}", params={"showInput": "false"})
    assert no_input.json()["input"] is None


async def test_status_of_a_completed_instance_is_200_with_its_output(http: httpx.AsyncClient) -> None:
    instance_id = await start(http, "greeter", "hello")
    response = await status_of(http, instance_id, "Completed")
    assert response.status_code == 200
    assert "location" not in response.headers
    assert response.json()["output"] == "HELLO"


async def test_show_history_gives_the_host_json_history_with_or_without_outputs(
    http: httpx.AsyncClient,
) -> None:
    instance_id = await start(http, "greeter", "hello")
    await status_of(http, instance_id, "Completed")
    plain = (await http.get(f"{BASE}/instances/{instance_id}")).json()
    assert "historyEvents" not in plain

    with_outputs = await http.get(
        f"{BASE}/instances/{instance_id}", params={"showHistory": "true", "showHistoryOutput": "true"}
    )
    events = with_outputs.json()["historyEvents"]
    kinds = [e["EventType"] for e in events]
    assert kinds[0] in (0, 12) and 0 in kinds and 4 in kinds and 5 in kinds and 1 in kinds  # Azure numbers
    completed = next(e for e in events if e["EventType"] == 5)
    assert json.loads(completed["Result"]) == "HELLO"
    scheduled = next(e for e in events if e["EventType"] == 4)
    assert scheduled["Name"] == "shout"

    without = await http.get(f"{BASE}/instances/{instance_id}", params={"showHistory": "true"})
    events = without.json()["historyEvents"]
    assert len(events) == len(kinds)
    assert not any("Result" in e for e in events)


async def test_status_of_a_failed_instance_is_200_or_500_when_asked(http: httpx.AsyncClient) -> None:
    instance_id = await start(http, "boom")
    response = await status_of(http, instance_id, "Failed")
    assert response.status_code == 200  # the Azure host's default
    assert "boom!" in response.json()["output"]
    strict = await http.get(
        f"{BASE}/instances/{instance_id}", params={"returnInternalServerErrorOnFailure": "true"}
    )
    assert strict.status_code == 500
    assert strict.json()["runtimeStatus"] == "Failed"


async def test_status_of_a_terminated_instance_is_200_and_unknown_is_404(http: httpx.AsyncClient) -> None:
    instance_id = await start(http, "waiter")
    terminate = await http.post(f"{BASE}/instances/{instance_id}/terminate", params={"reason": "enough"})
    assert terminate.status_code == 202
    response = await status_of(http, instance_id, "Terminated")
    assert response.status_code == 200
    assert response.json()["output"] == "enough"
    assert_error(await http.get(f"{BASE}/instances/nobody"), 404, "nobody")


# ----- query --------------------------------------------------------------------------------------


async def test_query_filters_by_time_status_and_prefix(http: httpx.AsyncClient) -> None:
    ids = [await start(http, "waiter", instance_id=f"q-{n}") for n in range(3)]
    await start(http, "greeter", "x", instance_id="other-1")
    await status_of(http, "other-1", "Completed")
    created = [(await http.get(f"{BASE}/instances/{i}")).json()["createdTime"] for i in ids]
    assert created == sorted(created) and len(set(created)) == 3

    async def ids_of(**params: Any) -> set[str]:
        response = await http.get(f"{BASE}/instances", params=params)
        assert response.status_code == 200, response.text
        assert "x-ms-continuation-token" not in response.headers
        return {s["instanceId"] for s in response.json()}

    assert await ids_of() == {*ids, "other-1"}
    assert await ids_of(instanceIdPrefix="q-") == set(ids)
    assert await ids_of(createdTimeFrom=created[1], instanceIdPrefix="q-") == {"q-1", "q-2"}
    assert await ids_of(createdTimeTo=created[1]) == {"q-0", "q-1"}
    assert await ids_of(createdTimeFrom=created[1], createdTimeTo=created[1]) == {"q-1"}
    assert await ids_of(runtimeStatus="Completed") == {"other-1"}
    await status_of(http, "q-0", "Running")
    assert await ids_of(runtimeStatus="Completed,Running", instanceIdPrefix="q-0") == {"q-0"}
    both = await http.get(f"{BASE}/instances?runtimeStatus=completed&runtimeStatus=Terminated")
    assert {s["instanceId"] for s in both.json()} == {"other-1"}
    no_input = await http.get(f"{BASE}/instances", params={"showInput": "false", "instanceIdPrefix": "other"})
    assert [s["input"] for s in no_input.json()] == [None]


async def test_query_pages_with_top_and_the_continuation_token(http: httpx.AsyncClient) -> None:
    ids = {await start(http, "waiter", instance_id=f"p-{n}") for n in range(5)}
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        headers = {"x-ms-continuation-token": token} if token else {}
        response = await http.get(f"{BASE}/instances", params={"top": "2"}, headers=headers)
        assert response.status_code == 200
        page = [s["instanceId"] for s in response.json()]
        assert 1 <= len(page) <= 2
        seen += page
        pages += 1
        token = response.headers.get("x-ms-continuation-token")
        if token is None:
            break
    assert sorted(seen) == sorted(ids) and pages == 3
    bad = await http.get(f"{BASE}/instances", headers={"x-ms-continuation-token": "garbage"})
    assert_error(bad, 400)


# ----- raise event, terminate, suspend, resume, rewind, restart -----------------------------------


async def test_raise_event_delivers_and_is_404_unknown_410_finished(http: httpx.AsyncClient) -> None:
    instance_id = await start(http, "waiter", "in")
    response = await http.post(f"{BASE}/instances/{instance_id}/raiseEvent/go", json={"x": [1, 2]})
    assert response.status_code == 202 and response.content == b""
    done = await status_of(http, instance_id, "Completed")
    assert done.json()["output"] == {"input": "in", "event": {"x": [1, 2]}}
    assert_error(await http.post(f"{BASE}/instances/{instance_id}/raiseEvent/go", json=1), 410, instance_id)
    assert_error(await http.post(f"{BASE}/instances/ghost/raiseEvent/go", json=1), 404, "ghost")
    assert_error(await http.post(f"{BASE}/instances/{instance_id}/raiseEvent/go", content=b"{"), 400)


async def test_terminate_is_404_unknown_and_410_finished(http: httpx.AsyncClient) -> None:
    instance_id = await start(http, "greeter", "x")
    await status_of(http, instance_id, "Completed")
    assert_error(await http.post(f"{BASE}/instances/{instance_id}/terminate"), 410)
    assert_error(await http.post(f"{BASE}/instances/ghost/terminate"), 404)


async def test_suspend_and_resume(http: httpx.AsyncClient) -> None:
    instance_id = await start(http, "waiter")
    await status_of(http, instance_id, "Running")
    assert (
        await http.post(f"{BASE}/instances/{instance_id}/suspend", params={"reason": "hold"})
    ).status_code == 202
    suspended = await status_of(http, instance_id, "Suspended")
    assert suspended.status_code == 202  # still in progress
    assert (
        await http.post(f"{BASE}/instances/{instance_id}/resume", params={"reason": "go"})
    ).status_code == 202
    await status_of(http, instance_id, "Running")
    await http.post(f"{BASE}/instances/{instance_id}/raiseEvent/go")
    await status_of(http, instance_id, "Completed")
    for verb in ("suspend", "resume"):
        assert_error(await http.post(f"{BASE}/instances/{instance_id}/{verb}"), 410)
        assert_error(await http.post(f"{BASE}/instances/ghost/{verb}"), 404)


async def test_rewind_a_failed_instance_and_410_for_any_other(http: httpx.AsyncClient) -> None:
    instance_id = await start(http, "uses_flaky")
    await status_of(http, instance_id, "Failed")
    response = await http.post(f"{BASE}/instances/{instance_id}/rewind", params={"reason": "retry"})
    assert response.status_code == 202
    assert (await status_of(http, instance_id, "Completed")).json()["output"] == "second time lucky"
    assert_error(await http.post(f"{BASE}/instances/{instance_id}/rewind"), 410, "not Failed")
    assert_error(await http.post(f"{BASE}/instances/ghost/rewind"), 404)


async def test_restart_with_a_new_id_or_the_same(http: httpx.AsyncClient) -> None:
    instance_id = await start(http, "greeter", "again")
    await status_of(http, instance_id, "Completed")
    fresh = await http.post(f"{BASE}/instances/{instance_id}/restart")
    assert fresh.status_code == 202
    new_id = fresh.json()["id"]
    assert new_id != instance_id and set(fresh.json()) == PAYLOAD_KEYS
    assert fresh.headers["location"] == fresh.json()["statusQueryGetUri"]
    assert (await status_of(http, new_id, "Completed")).json()["output"] == "AGAIN"

    same = await http.post(
        f"{BASE}/instances/{instance_id}/restart", params={"restartWithNewInstanceId": "false"}
    )
    assert same.status_code == 202 and same.json()["id"] == instance_id
    assert (await status_of(http, instance_id, "Completed")).json()["output"] == "AGAIN"

    running = await start(http, "waiter")
    refused = await http.post(
        f"{BASE}/instances/{running}/restart", params={"restartWithNewInstanceId": "false"}
    )
    assert_error(refused, 410, "running")
    assert (await http.get(f"{BASE}/instances/{running}")).json()["runtimeStatus"] in ("Pending", "Running")
    assert_error(await http.post(f"{BASE}/instances/ghost/restart"), 404)


# ----- purge --------------------------------------------------------------------------------------


async def test_purge_one_and_by_filter(http: httpx.AsyncClient) -> None:
    done = [await start(http, "greeter", "x", instance_id=f"d-{n}") for n in range(3)]
    for instance_id in done:
        await status_of(http, instance_id, "Completed")
    running = await start(http, "waiter", instance_id="r-1")

    one = await http.delete(f"{BASE}/instances/d-0")
    assert (one.status_code, one.json()) == (200, {"instancesDeleted": 1})
    assert_error(await http.get(f"{BASE}/instances/d-0"), 404)
    assert_error(await http.delete(f"{BASE}/instances/d-0"), 404)

    many = await http.delete(f"{BASE}/instances", params={"runtimeStatus": "Completed"})
    assert (many.status_code, many.json()) == (200, {"instancesDeleted": 2})
    assert_error(await http.delete(f"{BASE}/instances", params={"runtimeStatus": "Completed"}), 404)
    assert (await http.get(f"{BASE}/instances/{running}")).status_code == 202  # not matched, kept
    future = await http.delete(f"{BASE}/instances", params={"createdTimeFrom": "2999-01-01T00:00:00Z"})
    assert_error(future, 404)


# ----- entities -----------------------------------------------------------------------------------


async def test_entities_signal_read_and_list(http: httpx.AsyncClient) -> None:
    assert_error(await http.get(f"{BASE}/entities/counter/k1"), 404, "counter")
    for amount in (2, 3):
        response = await http.post(f"{BASE}/entities/counter/k1", params={"op": "add"}, json=amount)
        assert response.status_code == 202 and response.content == b""
    read = await poll(
        lambda: http.get(f"{BASE}/entities/counter/k1"),
        lambda r: r.status_code == 200 and r.json() == 5,
        "counter k1 to reach 5",
    )
    assert read.json() == 5
    await http.post(f"{BASE}/entities/Counter/k2", params={"op": "add"}, json=7)  # names are case-insensitive
    await poll(lambda: http.get(f"{BASE}/entities/counter/k2"), lambda r: r.status_code == 200, "k2")

    listing = await http.get(f"{BASE}/entities")
    assert listing.status_code == 200
    assert sorted((e["entityId"]["name"], e["entityId"]["key"]) for e in listing.json()) == [
        ("counter", "k1"),
        ("counter", "k2"),
    ]
    assert all("state" not in e and e["lastOperationTime"].endswith("Z") for e in listing.json())
    with_state = await http.get(f"{BASE}/entities/counter", params={"fetchState": "true", "top": "1"})
    assert [e["state"] for e in with_state.json()] == [5]
    token = with_state.headers["x-ms-continuation-token"]
    rest = await http.get(
        f"{BASE}/entities/counter", params={"fetchState": "true"}, headers={"x-ms-continuation-token": token}
    )
    assert [e["state"] for e in rest.json()] == [7]
    assert (await http.get(f"{BASE}/entities/other")).json() == []
    # Entities stay out of the orchestration listing.
    assert (await http.get(f"{BASE}/instances")).json() == []


async def test_signal_to_an_unknown_entity_is_404_and_a_bad_entity_name_400(http: httpx.AsyncClient) -> None:
    assert_error(await http.post(f"{BASE}/entities/nosuch/k", params={"op": "add"}, json=1), 404, "nosuch")
    assert_error(await http.post(f"{BASE}/entities/a@b/k", json=1), 400)
    assert_error(await http.post(f"{BASE}/entities/counter/k", content=b"{"), 400)


# ----- the SDK client's RPC routes ----------------------------------------------------------------


async def test_rpc_routes_decode_a_json_string_body_once_more(http: httpx.AsyncClient) -> None:
    response = await http.post(f"{RPC}/orchestrators/waiter/rpc-1", json=json.dumps({"n": 1}))
    assert response.status_code == 202 and response.json()["id"] == "rpc-1"
    assert (await http.get(f"{RPC}/instances/rpc-1")).json()["input"] == {"n": 1}
    raised = await http.post(f"{RPC}/instances/rpc-1/raiseEvent/go", json=json.dumps("a string"))
    assert raised.status_code == 202
    done = await status_of(http, "rpc-1", "Completed")
    assert done.json()["output"] == {"input": {"n": 1}, "event": "a string"}
    # The webhook routes take the body as it is.
    await http.post(f"{BASE}/orchestrators/waiter/hook-1", json=json.dumps({"n": 1}))
    assert (await http.get(f"{BASE}/instances/hook-1")).json()["input"] == '{"n": 1}'
    assert_error(await http.post(f"{RPC}/orchestrators/waiter", json="not json"), 400, "JSON string")


async def test_the_runtime_client_and_http_see_the_same_instances(
    api: tuple[DurableFunctionRuntime, httpx.AsyncClient],
) -> None:
    runtime, http = api
    instance_id = await start(http, "waiter", [1])
    await runtime.client.raise_event(instance_id, "go", 2)
    status = await wait_for_status(runtime.client, instance_id, RuntimeStatus.COMPLETED)
    assert status.output == {"input": [1], "event": 2}


# ----- malformed requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/instances?top=abc"),
        ("GET", "/instances?top=0"),
        ("GET", "/instances?top=-3"),
        ("GET", "/instances?createdTimeFrom=yesterday"),
        ("GET", "/instances?createdTimeTo=2024-13-01T00:00:00Z"),
        ("GET", "/instances?createdTimeFrom=0001-01-01T00:00:00%2B01:00"),
        ("GET", "/instances?runtimeStatus=Sleeping"),
        ("GET", "/instances?runtimeStatus=Running,Bogus"),
        ("GET", "/instances?showInput=maybe"),
        ("DELETE", "/instances?createdTimeFrom=not-a-time"),
        ("DELETE", "/instances?runtimeStatus=Nope"),
        ("GET", "/instances/x?showHistory=yes"),
        ("GET", "/instances/x?showHistoryOutput=2"),
        ("POST", "/instances/x/restart?restartWithNewInstanceId=perhaps"),
        ("GET", "/entities?top=none"),
        ("GET", "/entities?fetchState=sure"),
    ],
)
async def test_bad_query_values_are_400(http: httpx.AsyncClient, method: str, path: str) -> None:
    assert_error(await http.request(method, BASE + path), 400)


@pytest.mark.parametrize("prefix", [BASE, RPC, ""])
async def test_unknown_routes_are_404_and_wrong_methods_405_as_json(
    http: httpx.AsyncClient, prefix: str
) -> None:
    assert_error(await http.get(f"{prefix}/nothing/here"), 404)
    if prefix:
        wrong = await http.put(f"{prefix}/instances/x")
        assert_error(wrong, 405)
        assert set(wrong.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "DELETE"}


@pytest.mark.parametrize("path", ["/openapi.json", f"{BASE}/openapi.json"])
async def test_the_openapi_document_is_served_where_the_docs_say(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.0") and "/instances/{instanceId}" in document["paths"]


# ----- body limit ---------------------------------------------------------------------------------


@pytest.fixture
async def small_limit() -> AsyncIterator[httpx.AsyncClient]:
    runtime = make_runtime(InMemoryStateStore())
    async with (
        runtime,
        client_for(management_app(runtime.client, ApiLocation(ORIGIN), body_limit=64)) as http,
    ):
        yield http


async def test_a_body_over_the_limit_is_413_with_or_without_content_length(
    small_limit: httpx.AsyncClient,
) -> None:
    http = small_limit
    assert (await http.post(f"{BASE}/orchestrators/waiter", json="x" * 60)).status_code == 202  # 62 bytes
    declared = await http.post(f"{BASE}/orchestrators/waiter", json="x" * 63)
    assert_error(declared, 413, "64 bytes")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b'"xxxxxxxxxx'[:10]

    streamed = await http.post(f"{BASE}/orchestrators/waiter", content=chunks())
    assert "content-length" not in streamed.request.headers
    assert_error(streamed, 413)
    assert len((await http.get(f"{BASE}/instances")).json()) == 1  # only the first started


# ----- API key ------------------------------------------------------------------------------------

KEY = "s3cr/et"


@pytest.fixture
async def keyed() -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    runtime = make_runtime(InMemoryStateStore())
    app = management_app(runtime.client, ApiLocation(ORIGIN, api_key=KEY))
    async with runtime, client_for(app) as http:
        yield app, http


def management_requests(app: Starlette) -> Iterator[tuple[str, str]]:
    """(method, path) for every route of the app under a management prefix, its path parameters
    filled in: walked from the route table, so a route added later is covered too."""
    for route in app.routes:
        if isinstance(route, Mount):
            for inner in route.routes:
                assert isinstance(inner, Route)
                for method in sorted(inner.methods or ()):
                    if method != "HEAD":
                        yield method, route.path + re.sub(r"\{[^}]+\}", "x", inner.path)
        elif isinstance(route, Route) and route.path.startswith(BASE):
            yield "GET", route.path


async def test_every_management_route_needs_the_key(keyed: tuple[Starlette, httpx.AsyncClient]) -> None:
    app, http = keyed
    requests = list(management_requests(app))
    assert len(requests) >= 2 * 18 + 1  # both prefixes and the document
    for method, path in requests:
        for headers, params in [({}, {}), ({"x-functions-key": "wrong"}, {"code": "wrong"})]:
            response = await http.request(method, path, headers=headers, params=params, content=b"1")
            assert_error(response, 401, "API key")
        by_code = await http.request(method, path, params={"code": KEY}, content=b"1")
        by_header = await http.request(method, path, headers={"x-functions-key": KEY}, content=b"1")
        assert by_code.status_code != 401 and by_header.status_code != 401, (method, path)
    # Outside the management prefixes nothing is guarded (404 stays 404, the document is public).
    assert (await http.get("/openapi.json")).status_code == 200
    assert_error(await http.get("/elsewhere"), 404)


async def test_the_key_as_the_rpc_path_segment(keyed: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, http = keyed
    binding = client_binding(ApiLocation(ORIGIN, api_key=KEY))
    rpc_base = binding["rpcBaseUrl"]
    assert rpc_base == f"{ORIGIN}/durabletask/code/s3cr%2Fet/"
    started = await http.post(f"{rpc_base}orchestrators/waiter/k-1", json=json.dumps(1))
    assert started.status_code == 202
    # The URLs it hands out carry the key.
    assert "code=s3cr%2Fet" in started.json()["statusQueryGetUri"]
    assert (await http.get(started.json()["statusQueryGetUri"])).status_code == 202
    assert (await http.get(f"{rpc_base}instances/k-1")).json()["input"] == 1
    assert_error(await http.get(f"{ORIGIN}/durabletask/code/wrong/instances/k-1"), 401)
    # The path segment is the RPC base's alone.
    assert_error(await http.get(f"{BASE}/code/s3cr%2Fet/instances/k-1"), 401)


# ----- on every store backend ---------------------------------------------------------------------


async def test_start_status_query_and_purge_on_each_store(runtime: DurableFunctionRuntime) -> None:
    runtime.register_orchestrator(greeter, "greeter")
    runtime.activity("shout")(shout)
    async with runtime, client_for(management_app(runtime.client, ApiLocation(ORIGIN))) as http:
        instance_id = await start(http, "greeter", "store", instance_id="s-1")
        assert (await status_of(http, instance_id, "Completed")).json()["output"] == "STORE"
        listed = await http.get(f"{BASE}/instances", params={"runtimeStatus": "Completed", "top": "1"})
        assert [s["instanceId"] for s in listed.json()] == ["s-1"]
        assert (await http.delete(f"{BASE}/instances/s-1")).json() == {"instancesDeleted": 1}
        assert_error(await http.get(f"{BASE}/instances/s-1"), 404)


@pytest.mark.parametrize(
    ("instance_id", "problem"),
    [
        ("a" * 257, "at most 256 characters"),
        ("%00abc", "may not contain '\\x00'"),
        ("back%5Cslash", "may not contain '\\\\'"),
        ("orders%2F42", "may not contain '/'"),
        ("bad%FFbyte", "holds U+FFFD, or bytes that are not UTF-8"),
    ],
)
async def test_a_chosen_instance_id_breaking_azures_rules_is_400(
    http: httpx.AsyncClient, instance_id: str, problem: str
) -> None:
    response = await http.post(f"{BASE}/orchestrators/waiter/{instance_id}")
    assert response.status_code == 400
    assert problem in response.json()["error"]


@pytest.mark.parametrize("body", [b"1e999", b'{"x": -1e400}', b"[1.5e308, 2e308]"])
async def test_numbers_out_of_float_range_are_400_not_stored(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post(f"{BASE}/orchestrators/waiter/poison", content=body)
    assert response.status_code == 400
    assert "out of range" in response.json()["error"]
    listing = await http.get(f"{BASE}/instances")
    assert listing.status_code == 200
    assert all(item["instanceId"] != "poison" for item in listing.json())


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("orchestrators/waiter/poison", b'"\\ud800"'),
        ("orchestrators/waiter/poison", b'{"deep": ["ok", "\\uDC00 alone"]}'),
        ("instances/target/raiseEvent/go", b'"\\ud83d"'),
    ],
    ids=["start-input", "nested", "event-data"],
)
async def test_text_that_is_not_unicode_is_400_and_listing_still_works(
    http: httpx.AsyncClient, path: str, body: bytes
) -> None:
    await start(http, "waiter", None, instance_id="target")
    response = await http.post(f"{BASE}/{path}", content=body)
    assert response.status_code == 400
    assert "lone surrogate" in response.json()["error"]
    listing = await http.get(f"{BASE}/instances")
    assert listing.status_code == 200
    assert "poison" not in [item["instanceId"] for item in listing.json()]
    assert (await http.get(f"{BASE}/instances/target")).status_code == 202


async def test_a_pair_of_surrogate_escapes_is_one_character_and_fine(http: httpx.AsyncClient) -> None:
    response = await http.post(f"{BASE}/orchestrators/waiter/emoji", content=b'"\\ud83d\\ude00"')
    assert response.status_code == 202
    assert (await http.get(f"{BASE}/instances/emoji")).json()["input"] == "\U0001f600"


async def test_the_key_is_checked_before_the_body_is_read(keyed: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, http = keyed
    response = await http.post(f"{BASE}/orchestrators/waiter", content=b"x" * (DEFAULT_BODY_LIMIT + 1))
    assert response.status_code == 401


async def test_the_status_route_long_polls_until_the_instance_finishes(http: httpx.AsyncClient) -> None:
    """`?timeout=S`: the answer comes when the instance finishes, not before; 202 after S seconds."""
    await start(http, "waiter", "long", instance_id="lp-1")
    held = asyncio.ensure_future(http.get(f"{BASE}/instances/lp-1?timeout=30"))
    running = await http.get(f"{BASE}/instances/lp-1")
    assert running.status_code == 202
    await http.post(f"{BASE}/instances/lp-1/raiseEvent/go", json="now")
    answer = await held
    assert answer.status_code == 200 and answer.json()["output"] == {"input": "long", "event": "now"}

    await start(http, "waiter", "forever", instance_id="lp-2")
    still = await http.get(f"{BASE}/instances/lp-2?timeout=1")
    assert still.status_code == 202 and still.json()["runtimeStatus"] in ("Pending", "Running")
    assert_error(await http.get(f"{BASE}/instances/nobody?timeout=5"), 404)
    for bad in ("timeout=0", "timeout=301", "timeout=soon", "timeout=300&showHistory=maybe"):
        assert_error(await http.get(f"{BASE}/instances/lp-2?{bad}"), 400)  # at once, not after 300 s
