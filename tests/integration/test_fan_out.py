"""A 1,000-way fan-out/fan-in on a real SQLite file, end to end through the runtime."""

from __future__ import annotations

import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

from asynkron_durable import DurableFunctionRuntime, OrchestrationContext, RuntimeStatus, SqliteStateStore
from asynkron_durable.history import TaskCompleted, TaskScheduled

WIDTH = 1000


async def test_thousand_way_fan_out_on_sqlite(tmp_path: Path) -> None:
    runtime = DurableFunctionRuntime(SqliteStateStore(tmp_path / "fan.db"))
    executions: list[int] = []

    @runtime.activity()
    def square(n: int) -> int:
        executions.append(n)
        return n * n

    @runtime.orchestrator()
    def fan_out(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        results = yield ctx.task_all([ctx.call_activity(square, n) for n in range(WIDTH)])
        return sum(results)

    async with runtime:
        started = time.perf_counter()
        instance_id = await runtime.client.start_new("fan_out")
        status = await runtime.client.wait_for_completion(instance_id, timeout=90)
        elapsed = time.perf_counter() - started
        history = await runtime.store.get_history(instance_id)

    print(f"\n1,000-way fan-out on SQLite: {elapsed:.2f} s")
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert status.output == sum(n * n for n in range(WIDTH))
    assert sorted(executions) == list(range(WIDTH))
    scheduled = [e.event_id for e in history if isinstance(e, TaskScheduled)]
    completed = [e.task_scheduled_id for e in history if isinstance(e, TaskCompleted)]
    assert sorted(scheduled) == sorted(completed) == list(range(WIDTH))
