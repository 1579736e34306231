"""Where a task hub is named: `--task-hub` / ASYNKRON_DURABLE_TASK_HUB on the command line,
`DurableApp(task_hub=...)`, an Azure app's host.json (`extensions.durableTask.hubName`), and
`taskHub=` on the HTTP API, which answers only for the hub it serves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from asynkron_durable import OrchestrationClient
from asynkron_durable.http.management import management_app
from asynkron_durable.http.urls import ApiLocation
from asynkron_durable.stores import InMemoryStateStore

REPO = Path(__file__).resolve().parents[2]
ORIGIN = "http://testserver"


def durable(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ASYNKRON_DURABLE_")}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "asynkron_durable.cli", *args]
    return subprocess.run(
        command, cwd=cwd, env=environment | (env or {}), capture_output=True, text=True, timeout=60
    )


def listed(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    result = durable("list", "--json", *args, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    return [item["name"] for item in json.loads(result.stdout)]


def test_the_command_line_keeps_task_hubs_apart(tmp_path: Path) -> None:
    hello = str(REPO / "samples" / "hello_cities.py")
    assert durable("run", hello, "hello_cities", cwd=tmp_path).returncode == 0  # the default hub
    ran = durable("run", hello, "hello_cities", "--task-hub", "Orders", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "task hub orders" in ran.stderr

    assert listed(tmp_path) == ["hello_cities"]
    assert listed(tmp_path, "--task-hub", "orders") == ["hello_cities"]
    assert listed(tmp_path, env={"ASYNKRON_DURABLE_TASK_HUB": "orders"}) == ["hello_cities"]
    nobody = durable("list", "--json", cwd=tmp_path, env={"ASYNKRON_DURABLE_TASK_HUB": "billing"})
    assert nobody.returncode == 2 and "no store at" in nobody.stderr and "durable.billing.db" in nobody.stderr
    bad = durable("list", "--json", "--task-hub", "no-such!", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid task hub name 'no-such!'" in bad.stderr


def test_a_durable_app_names_its_task_hub(tmp_path: Path) -> None:
    (tmp_path / "billing.py").write_text(
        "from asynkron_durable import DurableApp\n"
        "app = DurableApp(task_hub='billing')\n"
        "@app.orchestrator()\n"
        "def invoice(ctx):\n"
        "    return 'sent'\n"
    )
    ran = durable("run", "billing.py", "invoice", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert listed(tmp_path, "--task-hub", "billing") == ["invoice"]
    assert not (tmp_path / "durable.db").exists()  # nothing went to the default hub's file


@pytest.mark.parametrize(
    ("hub_name", "env", "hub"),
    [("AzureHub", {}, "azurehub"), ("%MY_HUB%", {"MY_HUB": "FromSetting"}, "fromsetting")],
)
def test_an_azure_apps_host_json_names_its_task_hub(
    tmp_path: Path, hub_name: str, env: dict[str, str], hub: str
) -> None:
    app = tmp_path / "app"
    shutil.copytree(REPO / "samples" / "azure" / "hello_chaining_v2", app)
    host = {"version": "2.0", "extensions": {"durableTask": {"hubName": hub_name}}}
    (app / "host.json").write_text(json.dumps(host))
    ran = durable("run", str(app), "hello_orchestrator", cwd=tmp_path, env=env)
    assert ran.returncode == 0, ran.stderr
    assert listed(tmp_path, "--task-hub", hub) == ["hello_orchestrator"]
    assert not (tmp_path / "durable.db").exists()  # nothing went to the default hub's file


async def test_the_http_api_answers_only_for_the_task_hub_it_serves() -> None:
    store = InMemoryStateStore()
    await store.open()
    client = OrchestrationClient(store)
    await client.start_new("anything", None, "i1")
    app = management_app(client, ApiLocation(ORIGIN, "orders"))
    base = "/runtime/webhooks/durabletask/instances"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as http:
        served = await http.get(base, params={"taskHub": "Orders"})
        unnamed = await http.get(f"{base}/i1")
        other = await http.get(f"{base}/i1", params={"taskHub": "billing"})
    assert served.status_code == 200 and [i["instanceId"] for i in served.json()] == ["i1"]
    assert unnamed.status_code == 202
    assert other.status_code == 404
    assert other.json()["error"] == "task hub 'billing' is not served here; this server serves 'orders'"
