"""Where an operator sees the workers: `GET .../workers` and `asynkron-durable workers` (a table, or
JSON with --json), each worker with where it runs, what it runs and its last heartbeat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from asynkron_durable import DurableFunctionRuntime, OrchestrationContext, SqliteStateStore
from asynkron_durable.history import utc_now
from asynkron_durable.http.management import management_app
from asynkron_durable.http.urls import ApiLocation
from asynkron_durable.stores import WorkerRecord

ORIGIN = "http://testserver"
REPO = Path(__file__).resolve().parents[2]


async def test_the_http_api_lists_a_running_runtime_with_what_it_runs() -> None:
    runtime = DurableFunctionRuntime("memory://")

    @runtime.orchestrator()
    def greet(ctx: OrchestrationContext) -> str:
        return "hi"

    @runtime.activity()
    def shout(text: str) -> str:
        return text.upper()

    app = management_app(runtime.client, ApiLocation(ORIGIN))
    async with runtime, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as http:
        await runtime.client.wait_for_completion(await runtime.client.start_new("greet"), timeout=10)
        listed = (await http.get("/runtime/webhooks/durabletask/workers")).json()

    [worker] = listed
    assert worker["workerId"] == runtime.worker_id
    assert worker["orchestrationsAndEntities"] == ["greet"] and worker["activities"] == ["shout"]
    assert worker["lastHeartbeatTime"].endswith("Z") and worker["secondsSinceHeartbeat"] >= 0


async def test_the_command_line_shows_workers_as_a_table_or_json(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "durable.db")
    await store.open()
    now = utc_now()
    names = frozenset({"checkout", "cart"})
    await store.workers.register(
        WorkerRecord("w-1", "host-a", 4242, now, now, None, names, frozenset({"charge"}))
    )
    await store.close()

    def durable(*args: str) -> str:
        command = [sys.executable, "-m", "asynkron_durable.cli", *args, "--store", f"sqlite:///{store.path}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)
        assert done.returncode == 0, done.stderr
        return done.stdout

    table, as_json = durable("workers"), json.loads(durable("workers", "--json"))
    assert all(text in table for text in ("w-1", "host-a", "4242", "cart, checkout", "charge"))
    [worker] = as_json
    assert worker["worker_id"] == "w-1" and worker["instance_names"] == ["cart", "checkout"]
