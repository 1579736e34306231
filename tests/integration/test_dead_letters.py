"""A message that cannot be read is set aside (a dead letter), and the instance it was for says so:
the client's status counts it, `dead_letters` lists it, the HTTP API shows both (`deadLetters` on
the status, `GET .../deadletters`), and so does the command line (`status` warns, `dead-letters`)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from asynkron_durable import (
    DurableFunctionRuntime,
    OrchestrationClient,
    OrchestrationContext,
    PostgresStateStore,
    RuntimeStatus,
    SqliteStateStore,
)
from asynkron_durable.history import utc_now
from asynkron_durable.http.management import management_app
from asynkron_durable.http.urls import ApiLocation
from asynkron_durable.stores import StateStore

ORIGIN = "http://testserver"
BASE = "/runtime/webhooks/durabletask"
REPO = Path(__file__).resolve().parents[2]


async def _garble_inbox(store: StateStore, instance_id: str) -> None:
    """Overwrite the instance's inbox messages behind the store's back, as a bad migration might."""
    if isinstance(store, SqliteStateStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE inbox SET event = 'not json{' WHERE instance_id = ?", (instance_id,))
    elif isinstance(store, PostgresStateStore):
        async with store._pool.acquire() as conn:  # type: ignore[union-attr]
            sql = f'UPDATE "{store.schema}".inbox SET event = $1 WHERE instance_id = $2'
            await conn.execute(sql, "not json{", instance_id)
    else:
        pytest.skip("the in-memory store holds no rows to garble")


async def _dead_lettered(store: StateStore) -> OrchestrationClient:
    """`lost` started with its start message garbled and claimed once (set aside); `fine` started."""
    client = OrchestrationClient(store)
    await client.start_new("anything", 1, "lost")
    await _garble_inbox(store, "lost")
    await client.start_new("anything", 2, "fine")
    now = utc_now()
    claimed = await store.claim_orchestrations("w", now, now, 10)
    assert [item.record.instance_id for item in claimed if item.messages] == ["fine"]
    return client


async def test_the_client_counts_and_lists_an_instances_dead_letters(store: StateStore) -> None:
    client = await _dead_lettered(store)

    lost, fine = await client.get_status("lost"), await client.get_status("fine")
    assert lost is not None and lost.dead_letters == 1
    assert fine is not None and fine.dead_letters == 0
    [letter] = await client.dead_letters("lost")
    assert letter.instance_id == "lost" and letter.event == "not json{"
    assert "'lost'" in letter.error and "inbox message" in letter.error
    assert await client.dead_letters() == [letter]
    assert await client.dead_letters("fine") == []


async def test_the_http_api_shows_dead_letters(store: StateStore) -> None:
    client = await _dead_lettered(store)
    app = management_app(client, ApiLocation(ORIGIN))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as http:
        lost = await http.get(f"{BASE}/instances/lost")
        fine = await http.get(f"{BASE}/instances/fine")
        listed = await http.get(f"{BASE}/deadletters", params={"instanceId": "lost"})
        everything = await http.get(f"{BASE}/deadletters")
        none = await http.get(f"{BASE}/deadletters", params={"instanceId": "fine"})
        bad_top = await http.get(f"{BASE}/deadletters", params={"top": "0"})

    assert lost.json()["deadLetters"] == 1
    assert "deadLetters" not in fine.json()  # the Azure shape, untouched, when there are none
    [letter] = listed.json()
    assert letter["instanceId"] == "lost" and letter["message"] == "not json{"
    assert "inbox message" in letter["error"] and letter["deadTime"].endswith("Z")
    assert everything.json() == [letter]
    assert none.json() == []
    assert bad_top.status_code == 400 and "top" in bad_top.text


async def test_the_command_line_warns_on_status_and_lists_dead_letters(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "durable.db")
    await store.open()
    try:
        await _dead_lettered(store)
    finally:
        await store.close()
    url = f"sqlite:///{tmp_path / 'durable.db'}"

    def durable(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "asynkron_durable.cli", *args, "--store", url]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)

    status = durable("status", "--json", "lost")
    listed = durable("dead-letters", "--instance", "lost")

    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["dead_letters"] == 1
    assert "could not be read" in status.stderr and "dead-letters --instance lost" in status.stderr
    assert listed.returncode == 0, listed.stderr
    [letter] = json.loads(listed.stdout)
    assert letter["instance_id"] == "lost" and letter["event"] == "not json{"


async def test_waiting_reports_the_dead_letters_of_the_instance_it_waited_for(store: StateStore) -> None:
    client = await _dead_lettered(store)
    runtime = DurableFunctionRuntime(store, max_poll_interval=0.02)

    @runtime.orchestrator()
    async def anything(ctx: OrchestrationContext) -> Any:
        return ctx.get_input()

    async with runtime:
        await client.terminate("lost", "its start was set aside")
        lost = await client.wait_for_completion("lost", timeout=30)
        fine = await client.wait_for_completion("fine", timeout=30)
    assert lost.runtime_status is RuntimeStatus.TERMINATED and lost.dead_letters == 1
    assert fine.output == 2 and fine.dead_letters == 0
