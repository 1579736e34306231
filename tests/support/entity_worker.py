"""A worker process for the multi-process entity tests: a counter entity and the orchestrations
that signal and call it.

Usage: python entity_worker.py STORE_URL READY_DIR

Once its signal handlers are installed the worker creates `READY_DIR/ready-PID-TOKEN`: from then
on SIGTERM or SIGINT stops it gracefully and it exits 0.

The counter keeps, besides its total and count, how many amounts each worker process applied
(`by_pid`), so a test can see how the work was spread. This file runs as a script (its directory,
not `tests/`, is on sys.path): it imports nothing from the test support package but its sibling
`worker_process` (the shared main loop).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

from asynkron_durable import (
    DurableFunctionRuntime,
    EntityContext,
    EntityId,
    OrchestrationContext,
)


def build(store_url: str) -> DurableFunctionRuntime:
    """A runtime with the `counter` entity and the `send_adds` and `read_counter` orchestrators."""
    runtime = DurableFunctionRuntime(store_url, max_poll_interval=0.02, shutdown_timeout=5.0)
    pid = str(os.getpid())

    @runtime.entity()
    def counter(ctx: EntityContext) -> Any:
        state = ctx.get_state(lambda: {"total": 0, "count": 0, "by_pid": {}})
        if ctx.operation_name == "add":
            state["total"] += ctx.get_input(int)
            state["count"] += 1
            state["by_pid"][pid] = state["by_pid"].get(pid, 0) + 1
            ctx.set_state(state)
            return state["total"]
        if ctx.operation_name == "get":
            return ctx.get_state()
        raise ValueError(f"counter has no operation {ctx.operation_name!r}")

    @runtime.orchestrator()
    def send_adds(ctx: OrchestrationContext) -> Generator[Any, Any, list[int]]:
        """Signal `add` for every amount in chunks; between chunks call `get`, recording the count."""
        job = ctx.get_input()
        target = EntityId("counter", job["key"])
        amounts: list[int] = job["amounts"]
        seen: list[int] = []
        for first in range(0, len(amounts), job["chunk"]):
            for amount in amounts[first : first + job["chunk"]]:
                ctx.signal_entity(target, "add", amount)
            state = yield ctx.call_entity(target, "get")
            seen.append(state["count"])
        return seen

    @runtime.orchestrator()
    def read_counter(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        state = yield ctx.call_entity(EntityId("counter", ctx.get_input()), "get")
        return state

    return runtime


async def main(store_url: str, ready_dir: Path) -> None:
    from worker_process import (
        serve,
    )  # a sibling of this script; imported here so `support.*` can import the constants

    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    await serve(build(store_url), ready_dir, token)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
