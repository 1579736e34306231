"""One corrupt row never breaks a listing: the client, the HTTP API and the command line list every
other instance as usual and name the unreadable one, its column and why; its own status is a 5xx
naming them, and a payload that is not JSON is reported on the instance instead of failing it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from asynkron_durable import OrchestrationClient, PostgresStateStore, SqliteStateStore
from asynkron_durable.http.management import management_app
from asynkron_durable.http.urls import ApiLocation
from asynkron_durable.stores import StateStore

ORIGIN = "http://testserver"
BASE = "/runtime/webhooks/durabletask"


async def _corrupt(store: StateStore, instance_id: str, column: str, value: str) -> None:
    """Write `value` into the instance's row behind the store's back, as a bad migration might."""
    if isinstance(store, SqliteStateStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(f"UPDATE instances SET {column} = ? WHERE instance_id = ?", (value, instance_id))
    elif isinstance(store, PostgresStateStore):
        async with store._pool.acquire() as conn:  # type: ignore[union-attr]
            sql = f'UPDATE "{store.schema}".instances SET {column} = $1 WHERE instance_id = $2'
            await conn.execute(sql, value, instance_id)
    else:
        pytest.skip("the in-memory store holds no rows to corrupt")


@pytest.fixture
async def corrupted(store: StateStore) -> AsyncIterator[OrchestrationClient]:
    """Instances good-1, good-2, bad-status (runtime_status 'Bogus') and bad-output ('garbage{')."""
    client = OrchestrationClient(store)
    for instance_id in ("good-1", "bad-status", "bad-output", "good-2"):
        await client.start_new("anything", {"n": 1}, instance_id)
    await _corrupt(store, "bad-status", "runtime_status", "Bogus")
    await _corrupt(store, "bad-output", "output", "garbage{")
    yield client


async def test_the_client_lists_every_other_instance_and_names_the_unreadable_one(
    corrupted: OrchestrationClient,
) -> None:
    page = await corrupted.list_instances()
    assert [s.instance_id for s in page.instances] == ["good-1", "bad-output", "good-2"]
    [bad] = page.unreadable
    assert bad.instance_id == "bad-status"
    assert "'bad-status'" in bad.reason and "runtime_status" in bad.reason and "Bogus" in bad.reason
    garbled = page.instances[1]
    assert garbled.output is None and garbled.input == {"n": 1}
    assert garbled.unreadable is not None and garbled.unreadable.startswith(
        "output: stored payload is not valid JSON"
    )


async def test_small_pages_step_over_an_unreadable_row(corrupted: OrchestrationClient) -> None:
    seen: list[str] = []
    token = None
    while True:
        page = await corrupted.list_instances(page_size=1, continuation_token=token)
        seen += [s.instance_id for s in page.instances] + [u.instance_id for u in page.unreadable]
        token = page.continuation_token
        if token is None:
            break
    assert seen == ["good-1", "bad-status", "bad-output", "good-2"]


async def test_the_http_api_lists_everything_and_answers_5xx_naming_the_unreadable_row(
    corrupted: OrchestrationClient,
) -> None:
    app = management_app(corrupted, ApiLocation(ORIGIN))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as http:
        listing = await http.get(f"{BASE}/instances")
        one = await http.get(f"{BASE}/instances/bad-status")
        garbled = await http.get(f"{BASE}/instances/bad-output")
    assert listing.status_code == 200
    body: list[dict[str, Any]] = listing.json()
    assert [item["instanceId"] for item in body] == ["good-1", "bad-output", "good-2", "bad-status"]
    assert body[3]["runtimeStatus"] is None and "runtime_status" in body[3]["unreadable"]
    assert one.status_code >= 500 and "bad-status" in one.text and "runtime_status" in one.text
    assert garbled.status_code == 202  # Pending, and readable but for its output
    assert garbled.json()["unreadable"].startswith("output: stored payload is not valid JSON")
