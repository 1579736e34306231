"""Task hubs: one store URL holds many hubs, each with its own instances (and everything else);
what a store held before hubs existed is the `default` hub, unchanged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.pg_schemas import drop_schema, with_schema

from asynkron_durable import (
    DurableFunctionRuntime,
    OrchestrationClient,
    OrchestrationContext,
    PostgresStateStore,
    SqliteStateStore,
)
from asynkron_durable.stores import InMemoryStateStore, as_store, check_task_hub, store_from_url


async def _started(url: str, hub: str | None, *instance_ids: str) -> None:
    store = store_from_url(url, hub)
    await store.open()
    try:
        for instance_id in instance_ids:
            await OrchestrationClient(store).start_new("anything", None, instance_id)
    finally:
        await store.close()


async def _listed(url: str, hub: str | None) -> list[str]:
    store = store_from_url(url, hub)
    await store.open()
    try:
        return [s.instance_id for s in (await OrchestrationClient(store).list_instances()).instances]
    finally:
        await store.close()


async def _hubs_keep_apart(url: str) -> None:
    await _started(url, None, "before-hubs")  # a store as it was: no hub named
    await _started(url, "Orders", "o1", "shared-id")
    await _started(url, "billing", "b1", "shared-id")  # the same id in another hub is another instance
    assert await _listed(url, "default") == ["before-hubs"]
    assert await _listed(url, "DEFAULT") == ["before-hubs"]
    assert await _listed(url, "orders") == ["o1", "shared-id"]
    assert await _listed(url, "billing") == ["b1", "shared-id"]


async def test_sqlite_hubs_live_in_files_beside_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'durable.db'}"
    await _hubs_keep_apart(url)
    files = ["durable.billing.db", "durable.db", "durable.orders.db"]
    assert all((tmp_path / name).is_file() for name in files)
    hub_store = store_from_url(url, "orders")
    assert isinstance(hub_store, SqliteStateStore) and hub_store.path == tmp_path / "durable.orders.db"


async def test_postgres_hubs_live_in_schemas_beside_the_store(
    pg_dsn: str, pg_schemas: Callable[[], str]
) -> None:
    schema = pg_schemas()
    url = with_schema(pg_dsn, schema)
    try:
        await _hubs_keep_apart(url)
        hub_store = store_from_url(url, "orders")
        assert isinstance(hub_store, PostgresStateStore) and hub_store.schema == f"{schema}_orders"
    finally:
        for hub in ("orders", "billing"):
            await drop_schema(pg_dsn, f"{schema}_{hub}")


def test_a_postgres_hub_whose_schema_name_would_be_too_long_is_refused() -> None:
    hub = "averyveryverylonghubnamethatgoeson"
    with pytest.raises(ValueError, match=rf"task hub '{hub}'.*invalid PostgreSQL schema"):
        store_from_url("postgresql://u@h/db", hub)


@pytest.mark.parametrize("name", ["ab", "1orders", "or-ders", "x" * 46, ""])
def test_a_task_hub_name_breaking_azures_rule_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="3 to 45 letters and digits, starting with a letter"):
        check_task_hub(name)
    with pytest.raises(ValueError, match="invalid task hub name"):
        store_from_url("sqlite:///d.db", name or "?")


def test_a_store_object_serves_its_own_hub() -> None:
    store = InMemoryStateStore()
    assert as_store(store) is store
    with pytest.raises(ValueError, match="task_hub goes with a store URL"):
        as_store(store, "orders")


async def test_a_runtime_serves_the_task_hub_it_names(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'durable.db'}"
    runtime = DurableFunctionRuntime(url, task_hub="orders")

    @runtime.orchestrator()
    def place(ctx: OrchestrationContext) -> str:
        return "placed"

    async with runtime:
        done = await runtime.client.wait_for_completion(await runtime.client.start_new("place"), timeout=10)
    assert done.output == "placed"
    assert await _listed(url, "orders") == [done.instance_id]
    with pytest.raises(ValueError, match="task_hub goes with a store URL"):
        DurableFunctionRuntime(InMemoryStateStore(), task_hub="orders")
