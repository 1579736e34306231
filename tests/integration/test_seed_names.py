"""The seed's hosting page names keep working: the same multi-host-safe types under the old names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asynkron_durable import (
    ConcurrentDurableFunctionRuntime,
    ConcurrentPostgreSqlStateStore,
    ConcurrentSqliteStateStore,
    DurableFunctionRuntime,
    OrchestrationContext,
    PostgresStateStore,
    SqliteStateStore,
)


async def test_the_seed_console_host_runs_on_the_concurrent_names(tmp_path: Path) -> None:
    assert ConcurrentSqliteStateStore is SqliteStateStore
    assert ConcurrentDurableFunctionRuntime is DurableFunctionRuntime
    assert ConcurrentPostgreSqlStateStore is PostgresStateStore
    store = ConcurrentSqliteStateStore(tmp_path / "functions.db")
    runtime = ConcurrentDurableFunctionRuntime(store, max_poll_interval=0.01)
    runtime.register_json_function("SayHello", lambda _ctx, name: f"Greeted {name}")

    def hello(ctx: OrchestrationContext) -> Any:
        return (yield ctx.call_activity("SayHello", ctx.get_input()))

    runtime.register_orchestrator(hello)
    async with runtime:
        instance_id = await runtime.client.start_new("hello", "world")
        status = await runtime.client.wait_for_completion(instance_id, timeout=20)
    assert status.output == "Greeted world"
