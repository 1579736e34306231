"""The runtime hosted in an ASGI app (`asynkron_durable.http.hosting`) and `samples/asgi_app.py`:
in process through httpx, and served by a real uvicorn that is stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asynkron_durable import DurableApp, DurableFunctionRuntime, OrchestrationContext
from asynkron_durable.client import OrchestrationClient, OrchestrationStatus
from asynkron_durable.errors import StoreError
from asynkron_durable.history import RuntimeStatus
from asynkron_durable.http.hosting import CLIENT_STATE_KEY, durable_client, durable_lifespan
from asynkron_durable.stores import SqliteStateStore

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "asgi_app.py"
FINISHED = ("Completed", "Failed", "Terminated")
ORDER_OUTPUT = {
    "order_id": "42",
    "steps": ["stock reserved for 42", "payment charged for 42", "42 shipped"],
}


@pytest.fixture(scope="module")
def sample() -> ModuleType:
    """samples/asgi_app.py, imported from its file (the samples folder is no package)."""
    spec = importlib.util.spec_from_file_location("asgi_app_sample", SAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def _poll_until_finished(http: httpx.AsyncClient, order_id: str, deadline: float = 30.0) -> Any:
    give_up = time.monotonic() + deadline
    while True:
        response = await http.get(f"/orders/{order_id}")
        assert response.status_code == 200, response.text
        status = response.json()
        if status["runtime_status"] in FINISHED:
            return status
        assert time.monotonic() < give_up, f"order {order_id} did not finish: {status}"
        await asyncio.sleep(0.02)


async def _wait_for(condition: Callable[[], bool], what: str, deadline: float = 30.0) -> None:
    give_up = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < give_up, f"gave up waiting for {what}"
        await asyncio.sleep(0.01)


# ----- (a) in process ---------------------------------------------------------------------------


async def test_sample_runs_an_order_to_completion_in_process(sample: ModuleType, tmp_path: Path) -> None:
    app = sample.create_app(f"sqlite:///{tmp_path}/orders.db")
    async with app.router.lifespan_context(app), _client(app) as http:
        assert (await http.get("/orders/nope")).status_code == 404

        started = await http.post("/orders/42")
        assert started.status_code == 202, started.text
        assert started.json() == {"instance_id": "42"}
        assert started.headers["location"] == "http://test/orders/42"

        status = await _poll_until_finished(http, "42")
    assert status["runtime_status"] == "Completed", status
    assert status["output"] == ORDER_OUTPUT


async def test_inner_lifespan_runs_inside_the_hosted_runtime(tmp_path: Path) -> None:
    """The app's own lifespan runs with the store open (it may use the client), before the workers
    start and after they stop; activities see what it set up; its state goes to the server."""
    resource: dict[str, str] = {}
    durable = DurableApp()

    @durable.activity()
    def read_resource() -> str:
        return resource["db"]

    @durable.orchestrator()
    async def uses_resource(ctx: OrchestrationContext) -> str:
        return str(await ctx.call_activity(read_resource))

    runtime = DurableFunctionRuntime(f"sqlite:///{tmp_path}/d.db", max_poll_interval=0.02)
    runtime.register_app(durable)

    @asynccontextmanager
    async def inner(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        client: OrchestrationClient = getattr(app.state, CLIENT_STATE_KEY)
        resource["db"] = "open"
        await client.start_new("uses_resource", instance_id="at-startup")
        yield {"greeting": "hello"}
        await client.start_new("uses_resource", instance_id="at-shutdown")  # no worker runs it
        resource["db"] = "closed"

    app = Starlette(lifespan=durable_lifespan(runtime, inner=inner))
    async with app.router.lifespan_context(app) as state:
        assert state == {"greeting": "hello"}
        done = await runtime.client.wait_for_completion("at-startup", timeout=30)
        assert (done.runtime_status, done.output) == (RuntimeStatus.COMPLETED, "open")

    statuses = await _read_statuses(tmp_path / "d.db", ["at-shutdown"])
    assert statuses["at-shutdown"].runtime_status is RuntimeStatus.PENDING


async def test_in_flight_activity_is_handed_back_at_shutdown(tmp_path: Path) -> None:
    """An activity still running when the app stops is cancelled and its lease released, so the
    next process runs it at once: with an hour-long lease, anything else would hit the deadline."""
    attempts: list[int] = []
    durable = DurableApp()

    @durable.activity()
    async def slow_once() -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            await asyncio.Event().wait()  # until the shutdown cancels it
        return f"done on attempt {len(attempts)}"

    @durable.orchestrator()
    async def job(ctx: OrchestrationContext) -> str:
        return str(await ctx.call_activity(slow_once))

    def hosted_app() -> tuple[Starlette, DurableFunctionRuntime]:
        runtime = DurableFunctionRuntime(
            f"sqlite:///{tmp_path}/d.db",
            lease_duration=timedelta(hours=1),
            max_poll_interval=0.02,
            shutdown_timeout=0.1,
        )
        runtime.register_app(durable)
        app = Starlette(routes=[Route("/job", _status_of_job)], lifespan=durable_lifespan(runtime))
        return app, runtime

    first, first_runtime = hosted_app()
    async with first.router.lifespan_context(first):
        await first_runtime.client.start_new("job", instance_id="job")
        await _wait_for(lambda: attempts == [1], "the first attempt to start")

    second, _ = hosted_app()
    async with second.router.lifespan_context(second), _client(second) as http:
        give_up = time.monotonic() + 30
        while (status := (await http.get("/job")).json())["runtime_status"] not in FINISHED:
            assert time.monotonic() < give_up, status
            await asyncio.sleep(0.02)
    assert status["output"] == "done on attempt 2"
    assert attempts == [1, 2]


async def _status_of_job(request: Request) -> JSONResponse:
    status = await durable_client(request).get_status("job")
    assert status is not None
    return JSONResponse(status.model_dump(mode="json", exclude={"history"}))


# ----- (c) a store that cannot be opened fails startup ----------------------------------------


async def test_startup_fails_when_the_store_cannot_be_opened(tmp_path: Path) -> None:
    entered: list[str] = []

    @asynccontextmanager
    async def inner(app: Starlette) -> AsyncIterator[None]:
        entered.append("inner")
        yield

    runtime = DurableFunctionRuntime(f"sqlite:///{tmp_path}/no/such/dir/d.db")
    app = Starlette(lifespan=durable_lifespan(runtime, inner=inner))
    with pytest.raises(StoreError, match="no/such/dir"):
        async with app.router.lifespan_context(app):
            pytest.fail("the app must not serve without its store")
    assert entered == []
    assert not hasattr(app.state, CLIENT_STATE_KEY)


async def test_handlers_of_an_app_without_the_lifespan_get_a_clear_error() -> None:
    async def handler(request: Request) -> JSONResponse:
        durable_client(request)
        return JSONResponse({})

    app = Starlette(routes=[Route("/", handler)])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        with pytest.raises(RuntimeError, match="durable_lifespan"):
            await http.get("/")


# ----- (b) a real uvicorn ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start `uvicorn samples.asgi_app:app` as documented, on a store URL; kill it if a test fails
    before stopping it."""
    servers: list[subprocess.Popen[bytes]] = []

    def start(store_url: str, log: Path, port: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, "ASYNKRON_DURABLE_STORE": store_url}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with log.open("wb") as out:
            server = subprocess.Popen(
                [sys.executable, "-W", "error", "-m", "uvicorn", "samples.asgi_app:app",
                 "--host", "127.0.0.1", "--port", str(port)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)


def _wait_until_serving(server: subprocess.Popen[bytes], base: str, log: Path) -> None:
    give_up = time.monotonic() + 30
    while True:
        assert server.poll() is None, f"uvicorn exited with {server.returncode}:\n{log.read_text()}"
        try:
            if httpx.get(f"{base}/orders/not-there", timeout=5).status_code == 404:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < give_up, f"uvicorn did not answer:\n{log.read_text()}"
        time.sleep(0.05)


def _read_statuses_sync(path: Path, ids: list[str]) -> dict[str, OrchestrationStatus]:
    return asyncio.run(_read_statuses(path, ids))


async def _read_statuses(path: Path, ids: list[str]) -> dict[str, OrchestrationStatus]:
    store = SqliteStateStore(path)
    await store.open()
    try:
        client = OrchestrationClient(store)
        found = {i: await client.get_status(i) for i in ids}
    finally:
        await store.close()
    return {i: s for i, s in found.items() if s is not None}


# uvicorn shuts down gracefully on SIGINT and SIGTERM alike, then re-raises the signal it caught
# (its "cooperative signal handling"): Python's SIGINT handler turns that into exit status 0, while
# SIGTERM's default action ends the process with that signal (-15; 0 where SIGTERM is ignored).
@pytest.mark.parametrize(
    ("stop_signal", "clean_exits"),
    [(signal.SIGTERM, {0, -signal.SIGTERM}), (signal.SIGINT, {0})],
    ids=["SIGTERM", "SIGINT"],
)
def test_uvicorn_serves_the_sample_and_stops_gracefully(
    serve: Any, tmp_path: Path, stop_signal: signal.Signals, clean_exits: set[int]
) -> None:
    db, log, port = tmp_path / "orders.db", tmp_path / "uvicorn.log", _free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve(f"sqlite:///{db}", log, port)
    _wait_until_serving(server, base, log)

    started = httpx.post(f"{base}/orders/42", timeout=10)
    assert started.status_code == 202, started.text
    assert started.json() == {"instance_id": "42"}
    give_up = time.monotonic() + 30
    while (status := httpx.get(f"{base}/orders/42", timeout=10).json())["runtime_status"] not in FINISHED:
        assert time.monotonic() < give_up, status
        time.sleep(0.05)
    assert status["runtime_status"] == "Completed", status

    server.send_signal(stop_signal)
    assert server.wait(timeout=30) in clean_exits, log.read_text()
    output = log.read_text()
    assert "Application shutdown complete" in output, output
    assert "Finished server process" in output, output
    assert "Traceback" not in output, output

    stored = _read_statuses_sync(db, ["42"])["42"]
    assert stored.runtime_status is RuntimeStatus.COMPLETED
    assert stored.output == ORDER_OUTPUT


def test_uvicorn_exits_non_zero_when_the_store_cannot_be_opened(serve: Any, tmp_path: Path) -> None:
    log = tmp_path / "uvicorn.log"
    server = serve(f"sqlite:///{tmp_path}/no/such/dir/orders.db", log, _free_port())
    assert server.wait(timeout=30) != 0
    output = log.read_text()
    assert "Application startup failed" in output, output
    assert "StoreError" in output, output
