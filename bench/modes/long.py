"""`long`: one orchestration of S sequential activities. Each activity returns the wall-clock time
it ran; from the history, the time per step over the first and the last 500 steps, and their ratio
(near 1 if the cost of a step does not grow with the length of the history). If the sequence has
not finished within `budget` seconds it is terminated and the figures use the steps that ran."""

from __future__ import annotations

import json
import time
from typing import Any

from asynkron_durable import OrchestrationClient
from asynkron_durable.errors import OrchestrationTimeout
from asynkron_durable.history import TaskCompleted
from bench.results import show
from bench.stores import fresh_store
from bench.workers import workers

WINDOW = 500


async def run(
    store_url: str,
    steps: int = 10_000,
    workers_count: int = 1,
    processes: bool = False,
    budget: float = 60.0,
) -> dict[str, Any]:
    if steps < 2:
        raise ValueError("long needs at least 2 steps")
    async with fresh_store(store_url) as store:
        client_store = store.make()
        await client_store.open()
        try:
            client = OrchestrationClient(client_store)
            async with workers(store, workers_count, processes):
                started = time.perf_counter()
                instance_id = await client.start_new("sequence", steps)
                try:
                    await client.wait_for_completion(instance_id, timeout=budget, poll_interval=0.05)
                    finished = True
                except OrchestrationTimeout:  # cost grew with history: report what ran
                    await client.terminate(instance_id, "bench budget exhausted")
                    finished = False
                elapsed = time.perf_counter() - started
            history = await client_store.get_history(instance_id)
        finally:
            await store.close(client_store)
    ran_at = [json.loads(e.result) for e in history if isinstance(e, TaskCompleted) and e.result]
    if finished and len(ran_at) != steps:
        raise RuntimeError(f"{len(ran_at)} of {steps} steps in the history")
    if len(ran_at) < 2:
        raise RuntimeError(f"only {len(ran_at)} steps ran within the {budget:g} s budget")
    done = len(ran_at)
    window = min(WINDOW, done // 2)
    first = (ran_at[window] - ran_at[0]) / window * 1000
    last = (ran_at[-1] - ran_at[-1 - window]) / window * 1000
    figures = {
        "steps": steps,
        "steps_done": done,
        "finished": finished,
        "budget_s": budget,
        "window": window,
        "workers": workers_count,
        "processes": processes,
        "seconds": elapsed,
        "steps_per_s": done / elapsed,
        "ms_per_step_first": first,
        "ms_per_step_last": last,
        "last_over_first": last / first,
        "history_events": len(history),
    }
    print(f"long on {store.kind}: 1 orchestration of {steps} sequential activities")
    if not finished:
        print(f"  NOT FINISHED: {done} of {steps} steps ran within the {budget:g} s budget (terminated)")
    show("total", elapsed, "s")
    show("steps/s", figures["steps_per_s"], "/s")
    show(f"time per step, first {window}", first, "ms")
    show(f"time per step, last {window}", last, "ms")
    show("last / first", figures["last_over_first"], "x")
    return figures
