"""Fuzz the management API against its own OpenAPI document with schemathesis.

The app runs for real: uvicorn on a free port in a thread, a runtime on the in-memory store in the
same event loop, a registered orchestrator and entity. Every operation of the document gets a
bounded number of generated requests; each answer must not be a 5xx and must be what the document
says (status code, content type, headers, body schema).

Failed instances answer 500 only with `returnInternalServerErrorOnFailure=true` (Azure's
semantics); the fuzz never creates one: the orchestrator here cannot fail (it waits for an event
and returns its input, and there are no activities), so a 500 is always a bug.
"""

from __future__ import annotations

import asyncio
import copy
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from asynkron_durable import DurableFunctionRuntime, EntityContext, OrchestrationContext
from asynkron_durable.http.management import management_app
from asynkron_durable.http.openapi import openapi_document
from asynkron_durable.http.urls import ApiLocation
from asynkron_durable.stores import InMemoryStateStore

EXAMPLES_PER_OPERATION = 50
KNOWN_IDS = ["fuzz-running", "fuzz-done", "fuzz-terminated"]


def echo(ctx: OrchestrationContext) -> Any:
    """Cannot fail: waits for `go`, then returns its input."""
    yield ctx.wait_for_external_event("go")
    return ctx.get_input()


def box(ctx: EntityContext) -> None:
    """Cannot fail: keeps the last input."""
    ctx.set_state(ctx.get_input())


def _steered(document: dict[str, Any]) -> dict[str, Any]:
    """The document with the path parameters widened to also name what exists (the registered
    orchestrator and entity, instances made up front): random strings alone would almost never
    hit a registered name or an existing instance, so only 404s would be tested. Long polls are
    kept to a second."""
    steered = copy.deepcopy(document)
    known = {"functionName": ["echo"], "entityName": ["box"], "instanceId": KNOWN_IDS}
    for spec in steered["paths"].values():
        for operation in spec.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in known:
                    parameter["schema"] = {
                        "anyOf": [{"type": "string", "enum": known[parameter["name"]]}, {"type": "string"}]
                    }
                if parameter["in"] == "query" and parameter["name"] == "timeout":
                    parameter["schema"] = {**parameter["schema"], "maximum": 1}  # a long poll on
                    # fuzz-running would hold the request for minutes; its bounds are tested elsewhere
    return steered


LOCATION = ApiLocation("http://127.0.0.1")
schema = schemathesis.openapi.from_dict(_steered(openapi_document(LOCATION)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The API's webhook base on a live server, with a few instances in known states."""
    port = _free_port()
    origin = f"http://127.0.0.1:{port}"
    runtime = DurableFunctionRuntime(InMemoryStateStore(), max_poll_interval=0.02, shutdown_timeout=5.0)
    runtime.register_orchestrator(echo, "echo")
    runtime.register_entity(box, "box")
    app = management_app(runtime.client, ApiLocation(origin))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="error")
    )

    async def serve() -> None:
        async with runtime:
            await server.serve()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    base = f"{origin}/runtime/webhooks/durabletask"
    with httpx.Client(base_url=base, timeout=10) as http:
        for instance_id in KNOWN_IDS:
            assert http.post(f"/orchestrators/echo/{instance_id}", json={"n": 1}).status_code == 202
        assert http.post("/instances/fuzz-done/raiseEvent/go").status_code == 202
        assert http.post("/instances/fuzz-terminated/terminate?reason=fuzz").status_code == 202
        assert http.post("/entities/box/k1", json=1).status_code == 202
        while http.get("/instances/fuzz-done").status_code != 200:
            assert time.monotonic() < deadline, "fuzz-done never completed"
            time.sleep(0.01)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_as_its_document_says(case: Case[Any], base_url: str) -> None:
    case.call_and_validate(
        base_url=base_url,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )
