"""A worker process for chaos tests: runs a 5-step chain and logs every activity execution.

Usage: python chaos_worker.py STORE_URL EXEC_LOG_DIR
(environment: CHAOS_STEP_SECONDS makes every step block that long after logging; default 0)

Each execution of activity `step` appends one line, `INSTANCE_ID TASK_ID ATTEMPT PID`, to this
process's own file `EXEC_LOG_DIR/exec-PID-TOKEN.log` with one unbuffered `os.write` on an O_APPEND
descriptor, so a line is either there whole or not at all, even when the process is SIGKILLed.
Once the signal handlers are installed the worker creates `EXEC_LOG_DIR/ready-PID-TOKEN`: from then
on SIGTERM or SIGINT stops it gracefully and it exits 0. SIGKILL is the chaos.

This file runs as a script (its directory, not `tests/`, is on sys.path): it imports nothing from
the test support package.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

from asynkron_durable import ActivityContext, DurableFunctionRuntime, OrchestrationContext

CONCURRENCY = 8
"""`max_concurrent_activities` of every worker: at most this many activities run in one process."""

STEPS = 5
"""Activities in one chain; the chain's output is its input plus STEPS."""

LEASE_SECONDS = 2.0

STEP_SECONDS = float(os.environ.get("CHAOS_STEP_SECONDS", "0"))
"""How long each step blocks after logging (0 by default); a test sets it to hold leases open."""


def build(store_url: str, exec_log: Path) -> DurableFunctionRuntime:
    """A runtime with the `chain` orchestrator and the `step` activity, logging to `exec_log`."""
    runtime = DurableFunctionRuntime(
        store_url,
        lease_duration=timedelta(seconds=LEASE_SECONDS),
        max_concurrent_activities=CONCURRENCY,
        max_poll_interval=0.02,
        # These workers are killed every second or two on purpose, far more often than a fleet's;
        # the poison limit would fail an innocent activity caught in three of those kills.
        max_activity_starts=1_000,
    )
    fd = os.open(exec_log, os.O_APPEND | os.O_WRONLY | os.O_CREAT, 0o644)
    pid = os.getpid()

    def step(ctx: ActivityContext, value: int) -> int:
        # One write per execution, before the result exists: every execution that could have
        # produced a recorded result is counted, and a SIGKILL cannot leave half a line.
        os.write(fd, f"{ctx.instance_id} {ctx.task_id} {ctx.attempt} {pid}\n".encode())
        if STEP_SECONDS:
            time.sleep(STEP_SECONDS)
        return value + 1

    # With the context, so each logged execution names its instance and task.
    runtime.registry.add_activity(step, "step", passes_context=True)

    @runtime.orchestrator()
    def chain(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        value: int = ctx.get_input()
        for _ in range(STEPS):
            value = yield ctx.call_activity("step", value)
        return value

    return runtime


async def main(store_url: str, log_dir: Path) -> None:
    from worker_process import (
        serve,
    )  # a sibling of this script; imported here so `support.*` can import the constants

    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    await serve(build(store_url, log_dir / f"exec-{token}.log"), log_dir, token)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
