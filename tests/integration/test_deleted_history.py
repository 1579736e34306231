"""History rows deleted behind the store's back (a hand edit, a bad cleanup job) fail their instance
with a message naming it and the missing row, instead of leaving it Running with a wrong past."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from support.chaos import poll_until

from asynkron_durable import (
    DurableFunctionRuntime,
    OrchestrationClient,
    OrchestrationContext,
    PostgresStateStore,
    RuntimeStatus,
    SqliteStateStore,
)
from asynkron_durable.stores import StateStore


async def _delete_history(store: StateStore, instance_id: str, seqs: list[int] | None) -> None:
    """Delete the instance's history rows `seqs` (None: all of them)."""
    where = "" if seqs is None else f" AND seq IN ({', '.join(map(str, seqs))})"
    if isinstance(store, SqliteStateStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(f"DELETE FROM history WHERE instance_id = ?{where}", (instance_id,))
    elif isinstance(store, PostgresStateStore):
        async with store._pool.acquire() as conn:  # type: ignore[union-attr]
            await conn.execute(
                f'DELETE FROM "{store.schema}".history WHERE instance_id = $1{where}', instance_id
            )
    else:
        pytest.skip("the in-memory store holds no rows to delete")


@pytest.mark.parametrize(
    ("seqs", "reason"),
    [([0], "history row seq=0 is missing"), ([1], "history row seq=1 is missing"), (None, "history is gone")],
)
async def test_an_instance_whose_history_rows_were_deleted_fails_naming_them(
    runtime: DurableFunctionRuntime, seqs: list[int] | None, reason: str
) -> None:
    runtime.episode_cache_size = 0  # every episode replays from the store

    @runtime.activity()
    def double(value: int) -> int:
        return value * 2

    @runtime.orchestrator()
    def flow(ctx: OrchestrationContext) -> Any:
        first = yield ctx.call_activity(double, 1)
        second = yield ctx.call_activity(double, first)
        extra = yield ctx.wait_for_external_event("go")
        return second + extra

    async with runtime:
        client = runtime.client
        await client.start_new("flow", None, "damaged")
        await wait_until_waiting(client)
        await _delete_history(runtime.store, "damaged", seqs)
        await client.raise_event("damaged", "go", 1)
        status = await client.wait_for_completion("damaged", timeout=10)

    assert status.runtime_status is RuntimeStatus.FAILED
    assert status.failure is not None and status.failure.error_type == "StoreError"
    assert "'damaged'" in status.failure.message and reason in status.failure.message


async def wait_until_waiting(client: OrchestrationClient) -> None:
    """Until both activities are done (three commits: rows 0, 1, 2) and it waits for "go"."""

    async def waiting() -> bool:
        status = await client.get_status("damaged", show_history=True)
        history = status.history if status is not None else None
        return history is not None and sum(e.kind == "TaskCompleted" for e in history) == 2

    await poll_until(waiting, 10, "both activities to complete")
