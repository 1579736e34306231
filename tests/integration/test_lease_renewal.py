"""Leases on long activities are renewed, so a second runtime on the same file never steals them."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

from asynkron_durable import DurableFunctionRuntime, OrchestrationContext, RuntimeStatus, SqliteStateStore


def build(db: Path, runs: list[str], name: str) -> DurableFunctionRuntime:
    runtime = DurableFunctionRuntime(
        SqliteStateStore(db),
        worker_id=name,
        lease_duration=timedelta(seconds=0.3),
        max_poll_interval=0.01,
    )

    @runtime.activity()
    def slow(value: int) -> int:
        runs.append(threading.current_thread().name)
        time.sleep(1.5)  # five lease durations: only renewal keeps the lease alive
        return value * 2

    @runtime.orchestrator()
    def one_slow_step(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        return (yield ctx.call_activity(slow, ctx.get_input()))

    return runtime


async def test_a_long_activity_keeps_its_lease_and_runs_once(tmp_path: Path) -> None:
    db = tmp_path / "lease.db"
    runs: list[str] = []
    first, second = build(db, runs, "worker-a"), build(db, runs, "worker-b")
    async with first, second:
        instance_id = await first.client.start_new("one_slow_step", 21)
        status = await first.client.wait_for_completion(instance_id, timeout=30)
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert status.output == 42
    assert len(runs) == 1, f"the activity ran {len(runs)} times: its lease was not renewed"
