"""`asynkron-durable serve` on an Azure app, driven by the unmodified SDK client over real HTTP.

The server runs in its own process (SQLite file, free port, API key configured so the keyed RPC
base is used); the test builds `df.DurableOrchestrationClient` from `asynkron-durable binding`'s
JSON and calls every client method, then fetches the management URLs the client hands out. The
same scenario runs through `DurableOrchestrationClientAdapter` on an in-process runtime and must
give the same statuses and outputs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import httpx
import pytest

from asynkron_durable import DurableFunctionRuntime
from asynkron_durable.app_loader import load_registry

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "tests" / "compat" / "apps" / "sdk_client_app")
COMMAND = [sys.executable, "-m", "asynkron_durable.cli"]
API_KEY = "k3y with spaces"  # a "/" in the key breaks the RPC path key: reported
Status = df.OrchestrationRuntimeStatus
DEADLINE = 20.0


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNKRON_DURABLE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@contextmanager
def served(tmp_path: Path, *args: str) -> Iterator[str]:
    """Run `serve` on a free port; yield its origin; stop it with SIGTERM, which must exit 0."""
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*COMMAND, "serve", *args, "--port", "0"],
            cwd=tmp_path,
            env=_environment(),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 30
        while (found := re.search(r"on (http://\S+:\d+)", log_path.read_text())) is None:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.02)
        yield found.group(1)
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=30)
        output = log_path.read_text()
        assert exit_code == 0, output
        # The one traceback is the logged failure of the `boom` HTTP function.
        assert output.count("Traceback") == output.count("HTTP function 'boom' failed"), output


async def _until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll `check` until it returns something truthy, or fail after DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _reach(client: Any, instance_id: str, status: Status) -> Any:
    async def check() -> Any:
        found = await client.get_status(instance_id)
        return found if found.runtime_status == status else None

    return await _until(check, f"{instance_id} to be {status.value}")


def _request(url: str = "http://127.0.0.1:7071/api/start") -> func.HttpRequest:
    return func.HttpRequest("POST", url, headers={}, params={}, route_params={}, body=b"")


async def scenario(client: Any, marker: Path) -> dict[str, Any]:
    """Every client method; the results that must not depend on the transport."""
    results: dict[str, Any] = {}
    since = datetime.now(UTC) - timedelta(minutes=1)

    chained = await client.start_new("chain", None, "world")
    await _reach(client, chained, Status.Completed)
    status = await client.get_status(chained, show_history=True, show_history_output=True, show_input=True)
    results["chain"] = (status.runtime_status.value, status.output, status.input_, status.custom_status)
    results["chain_history"] = [event["EventType"] for event in status.historyEvents or []][:2]

    waiting = await client.start_new("wait_event")
    await _reach(client, waiting, Status.Running)
    await client.raise_event(waiting, "go", {"x": 1})
    results["event"] = (await _reach(client, waiting, Status.Completed)).output

    steered = await client.start_new("wait_event")
    await _reach(client, steered, Status.Running)
    await client.suspend(steered, "pause")
    await _reach(client, steered, Status.Suspended)
    await client.resume(steered, "go on")
    await _reach(client, steered, Status.Running)
    await client.terminate(steered, "stop")
    results["terminated"] = (await _reach(client, steered, Status.Terminated)).output

    flaky = await client.start_new("flaky", None, str(marker))
    failed = await _reach(client, flaky, Status.Failed)
    results["failed"] = "marker missing" in str(failed.output)
    await asyncio.to_thread(marker.touch)
    await client.rewind(flaky, "fixed")
    results["rewound"] = (await _reach(client, flaky, Status.Completed)).output

    renewed = _restarted_id(await client.restart(chained))
    results["restart_new_id"] = renewed != chained
    results["restarted"] = (await _reach(client, renewed, Status.Completed)).output
    same = await client.restart(chained, restart_with_new_instance_id=False)
    results["restart_same_id"] = _restarted_id(same) == chained
    results["restarted_same"] = (await _reach(client, chained, Status.Completed)).output

    everything = await client.get_status_all()
    results["all"] = sorted({s.name for s in everything})
    completed = await client.get_status_by(
        created_time_from=since,
        created_time_to=datetime.now(UTC) + timedelta(minutes=1),
        runtime_status=[Status.Completed],
    )
    results["completed"] = sorted(s.name for s in completed)
    results["none_before"] = len(await client.get_status_by(created_time_to=since - timedelta(days=1)))

    entity = df.EntityId("counter", "c1")
    await client.signal_entity(entity, "add", 5)
    await client.signal_entity(entity, "add", 2)

    async def counted() -> Any:
        state = await client.read_entity_state(entity)
        return state if state.entity_exists and state.entity_state == 7 else None

    results["entity"] = (await _until(counted, "the counter to reach 7")).entity_state
    results["no_entity"] = (await client.read_entity_state(df.EntityId("counter", "nope"))).entity_exists

    done = await client.wait_for_completion_or_create_check_status_response(
        _request(), renewed, timeout_in_milliseconds=5000, retry_interval_in_milliseconds=50
    )
    results["waited_done"] = (done.status_code, done.get_body().decode())
    pending = await client.start_new("wait_event")
    await _reach(client, pending, Status.Running)
    timed_out = await client.wait_for_completion_or_create_check_status_response(
        _request(), pending, timeout_in_milliseconds=200, retry_interval_in_milliseconds=50
    )
    results["waited_timeout"] = (timed_out.status_code, sorted(json.loads(timed_out.get_body())))
    checked = client.create_check_status_response(_request(), pending)
    results["check_status"] = (checked.status_code, sorted(json.loads(checked.get_body())))

    results["purged_one"] = (await client.purge_instance_history(waiting)).instances_deleted
    results["gone"] = (await client.get_status(waiting)).runtime_status
    purged = await client.purge_instance_history_by(
        created_time_from=since, runtime_status=[Status.Terminated]
    )
    results["purged_terminated"] = purged.instances_deleted
    await client.terminate(pending, "done")
    await _reach(client, pending, Status.Terminated)
    results["__pending"] = pending
    return results


def _restarted_id(answer: Any) -> str:
    """The SDK's `restart` returns the body of the host's 202 when it has one: our API answers
    with the management payload (Azure's RPC answer is under review); the adapter with the id."""
    return str(answer["id"]) if isinstance(answer, dict) else str(answer)


def _binding(origin: str, tmp_path: Path) -> str:
    result = subprocess.run(
        [*COMMAND, "binding", "--url", origin, "--api-key", API_KEY],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    binding = json.loads(result.stdout)
    assert "/durabletask/code/" in binding["rpcBaseUrl"]
    return result.stdout


async def test_sdk_client_against_serve(tmp_path: Path) -> None:
    with served(tmp_path, APP, "--store", f"sqlite:///{tmp_path}/d.db", "--api-key", API_KEY) as origin:
        client = df.DurableOrchestrationClient(_binding(origin, tmp_path))
        over_http = await scenario(client, tmp_path / "marker")
        pending = over_http.pop("__pending")

        async with httpx.AsyncClient(timeout=10) as http:
            await _management_urls(http, client, origin, pending)
            await _http_triggers(http, origin)

    adapter_results = await _adapter_scenario(tmp_path)
    adapter_results.pop("__pending")
    assert over_http == adapter_results
    assert over_http["chain"] == ("Completed", "Hello world!", "world", "greeting")
    assert over_http["event"] == {"got": {"x": 1}}
    assert over_http["rewound"] == "recovered"
    assert over_http["entity"] == 7
    assert over_http["waited_done"][0] == 200 and "Hello world!" in over_http["waited_done"][1]
    assert over_http["waited_timeout"][0] == 202
    assert over_http["purged_one"] == 1


async def _adapter_scenario(tmp_path: Path) -> dict[str, Any]:
    adapter_module = pytest.importorskip("asynkron_durable_azure.client_adapter")
    runtime = DurableFunctionRuntime(f"sqlite:///{tmp_path}/adapter.db")
    modules, path = set(sys.modules), list(sys.path)
    try:
        runtime.registry.merge(load_registry(APP))
    finally:  # the app's `function_app` module must not shadow other tests' apps
        for name in set(sys.modules) - modules:
            if str(getattr(sys.modules[name], "__file__", "") or "").startswith(APP):
                del sys.modules[name]
        sys.path[:] = path
    async with runtime:
        adapter = adapter_module.DurableOrchestrationClientAdapter(runtime.client)
        return await scenario(adapter, tmp_path / "adapter-marker")


async def _management_urls(http: httpx.AsyncClient, client: Any, origin: str, instance_id: str) -> None:
    """The URLs of a check-status response work as they are (the key is in their query)."""
    # A fresh waiting instance: suspend, resume, raise its event, then purge it, all by URL.
    fresh = await client.start_new("wait_event")
    await _reach(client, fresh, Status.Running)
    urls = json.loads(client.create_check_status_response(_request(origin + "/api/x"), fresh).get_body())
    assert all(url.startswith(origin) for key, url in urls.items() if key != "id")

    status = await http.get(urls["statusQueryGetUri"])
    assert status.status_code == 202 and status.json()["runtimeStatus"] == "Running"
    assert (await http.post(urls["suspendPostUri"].replace("{text}", "p"))).status_code == 202
    await _reach(client, fresh, Status.Suspended)
    assert (await http.post(urls["resumePostUri"].replace("{text}", "r"))).status_code == 202
    await _reach(client, fresh, Status.Running)
    raised = await http.post(urls["sendEventPostUri"].replace("{eventName}", "go"), json={"via": "url"})
    assert raised.status_code == 202

    async def completed() -> Any:
        answer = await http.get(urls["statusQueryGetUri"])
        return answer if answer.status_code == 200 else None

    assert (await _until(completed, "the status URL to say 200")).json()["output"] == {"got": {"via": "url"}}
    assert (await http.post(urls["restartPostUri"])).status_code == 202
    assert (await http.delete(urls["purgeHistoryDeleteUri"])).status_code in (200, 404)

    # terminate and rewind URLs, on the instance the scenario left running and then terminated.
    terminated = json.loads(
        client.create_check_status_response(_request(origin + "/api/x"), instance_id).get_body()
    )
    answer = await http.post(terminated["terminatePostUri"].replace("{text}", "again"))
    assert answer.status_code in (202, 410)  # already terminated: Azure answers 410 Gone
    assert (await http.get(urls["statusQueryGetUri"].replace("code=", "code=wrong"))).status_code == 401


async def _http_triggers(http: httpx.AsyncClient, origin: str) -> None:
    """The app's HTTP functions: an optional route parameter, a constraint, a user fault."""
    started = await http.post(f"{origin}/api/orchestrators/chain/my-id", json="route")
    assert started.status_code == 202 and started.json()["id"] == "my-id"

    async def completed() -> Any:
        answer = await http.get(started.json()["statusQueryGetUri"])
        return answer if answer.status_code == 200 else None

    assert (await _until(completed, "my-id to complete")).json()["output"] == "Hello route!"
    anonymous = await http.post(f"{origin}/api/orchestrators/chain", json="x")
    assert anonymous.status_code == 202 and anonymous.json()["id"] != "my-id"
    item = await http.get(f"{origin}/api/items/42?q=a")
    assert item.status_code == 200 and item.json() == {"id": 42, "q": "a"}
    assert item.headers["content-type"].startswith("application/json")
    assert (await http.get(f"{origin}/api/items/abc")).status_code == 404
    assert (await http.post(f"{origin}/api/items/42")).status_code == 405
    broken = await http.get(f"{origin}/api/boom")
    assert broken.status_code == 500 and "incident" in broken.json()["error"]
    assert "user code broke" not in broken.text  # the details stay in the server log
