"""`context.call_http` makes a real HTTP request as a durable activity, with Azure's 202 polling:
a local server answers 202 + Location twice before the final answer."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import azure.durable_functions as df
import pytest
from asynkron_durable_azure.http_activity import HTTP_ACTIVITY_NAME, http_activity
from asynkron_durable_azure.orchestration import core_orchestrator

from asynkron_durable import DurableFunctionRuntime, RuntimeStatus


class _Job(BaseHTTPRequestHandler):
    """POST /jobs starts a job (202 + Location); GET /jobs/1 is 202 until its third poll."""

    polls: ClassVar[int] = 0
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        body = self.rfile.read(length).decode()
        type(self).received.append(
            {"path": self.path, "body": body, "auth": self.headers.get("authorization")}
        )
        self._answer(202, "", {"Location": "/jobs/1", "Retry-After": "0"})

    def do_GET(self) -> None:
        type(self).polls += 1
        if type(self).polls < 3:
            self._answer(202, "", {"Location": "/jobs/1", "Retry-After": "0"})
        else:
            self._answer(
                200, json.dumps({"job": 1, "polls": type(self).polls}), {"Content-Type": "application/json"}
            )

    def _answer(self, status: int, body: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body.encode())))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test asserts on what arrived."""


@pytest.fixture
def server() -> Iterator[str]:
    _Job.polls, _Job.received = 0, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Job)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def start_job(context: df.DurableOrchestrationContext) -> Any:
    base = context.get_input()
    response = yield context.call_http(
        "POST", f"{base}/jobs", {"size": 3}, headers={"Authorization": "Bearer t"}
    )
    return {"status": response["statusCode"], "content": json.loads(response["content"])}


async def test_call_http_follows_202_polling_to_the_final_answer(server: str) -> None:
    runtime = DurableFunctionRuntime("memory://", max_poll_interval=0.02)
    runtime.register_function(HTTP_ACTIVITY_NAME, http_activity)
    runtime.register_orchestrator(core_orchestrator(start_job), "start_job")
    async with runtime:
        instance_id = await runtime.client.start_new("start_job", server)
        status = await runtime.client.wait_for_completion(instance_id, timeout=20)
    assert status.runtime_status is RuntimeStatus.COMPLETED, status.failure
    assert status.output == {"status": 200, "content": {"job": 1, "polls": 3}}
    assert _Job.received == [{"path": "/jobs", "body": '{"size": 3}', "auth": "Bearer t"}]


async def test_a_token_source_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="managed identity, which is not available outside Azure"):
        await http_activity({"method": "GET", "uri": "http://127.0.0.1:1/", "tokenSource": {"resource": "x"}})
