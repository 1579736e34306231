"""A worker process for the poison-activity test: `suicide` kills its own process (SIGKILL) every
time it runs; `chain` is three ordinary steps. Leases are short, so a dead worker's work is claimed
again within a second or two.

Usage: python poison_worker.py STORE_URL READY_DIR. This file runs as a script (its directory is on
sys.path), like the chaos worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

from asynkron_durable import DurableFunctionRuntime, OrchestrationContext

LEASE_SECONDS = 1.0


def build(store_url: str) -> DurableFunctionRuntime:
    runtime = DurableFunctionRuntime(
        store_url, lease_duration=timedelta(seconds=LEASE_SECONDS), max_poll_interval=0.02
    )

    @runtime.activity()
    def suicide(_: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    @runtime.activity()
    def double(value: int) -> int:
        return value * 2

    @runtime.orchestrator()
    def poisoned(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        yield ctx.call_activity(suicide, None)

    @runtime.orchestrator()
    def chain(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        value: int = ctx.get_input()
        for _ in range(3):
            value = yield ctx.call_activity(double, value)
        return value

    return runtime


async def main(store_url: str, ready_dir: Path) -> None:
    from worker_process import serve

    await serve(build(store_url), ready_dir, f"{os.getpid()}-{uuid.uuid4().hex[:8]}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
