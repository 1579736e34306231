"""The orchestrations and activities every benchmark runs, as a `DurableApp`.

In-process runs register `app` on their runtimes; worker processes serve it with the real command,
`asynkron-durable worker bench/app.py:app --store URL`.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from datetime import timedelta
from typing import Any

from asynkron_durable import DurableApp, OrchestrationContext

app = DurableApp()

CHAIN_LENGTH = 5

MARKS: dict[str, float] = {}
"""perf_counter() of the first time something ran in this process, by key: measurement side
effects for in-process latency figures (fine in a benchmark, not in an app)."""

FINISHED: set[str] = set()
"""Chains whose orchestrator returned in this process: paces `chain`'s closed loop with in-process
workers without polling the store (the run's figures still come from the store)."""


@app.activity()
def step(value: int) -> int:
    return value + 1


@app.activity()
def stamp(_: int) -> float:
    """The wall-clock time the activity ran: `long` reads these back from the history."""
    return time.time()


@app.activity()
def mark(instance_id: str) -> None:
    MARKS.setdefault(instance_id, time.perf_counter())


@app.orchestrator()
def chain(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
    value = 0
    for _ in range(CHAIN_LENGTH):
        value = yield ctx.call_activity(step, value)
    if not ctx.is_replaying:
        FINISHED.add(ctx.instance_id)
    return value


@app.orchestrator()
def fan_out(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
    results = yield ctx.task_all([ctx.call_activity(step, n) for n in range(ctx.get_input())])
    return sum(results)


@app.orchestrator()
def sequence(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
    steps: int = ctx.get_input()
    for n in range(steps):
        yield ctx.call_activity(stamp, n)
    return steps


@app.orchestrator()
def one_activity(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
    if not ctx.is_replaying:
        MARKS.setdefault(f"orchestration:{ctx.instance_id}", time.perf_counter())
    yield ctx.call_activity(mark, ctx.instance_id)


@app.orchestrator()
def timer(ctx: OrchestrationContext) -> Generator[Any, Any, float]:
    fire_at = ctx.current_utc_datetime + timedelta(seconds=0.2)
    yield ctx.create_timer(fire_at)
    return (ctx.current_utc_datetime - fire_at).total_seconds()
