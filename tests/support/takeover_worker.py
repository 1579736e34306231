"""A worker process for the takeover tests: `held` calls `hold`, which says it started (a file
`started-PID` in the marker folder) and then waits for a `release` file there. Leases last 60 s,
so work taken over sooner was taken over because the worker was seen dead.

Usage: python takeover_worker.py STORE_URL READY_DIR WORKER_TIMEOUT. Runs as a script (its
directory is on sys.path), like the chaos worker.
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

from asynkron_durable import DurableFunctionRuntime, OrchestrationContext

LEASE = timedelta(seconds=60)


def build(store_url: str, worker_timeout: float) -> DurableFunctionRuntime:
    runtime = DurableFunctionRuntime(store_url, lease_duration=LEASE, worker_timeout=worker_timeout)

    @runtime.activity()
    def hold(folder: str) -> int:
        (Path(folder) / f"started-{os.getpid()}").touch()
        while not (Path(folder) / "release").exists():
            time.sleep(0.02)
        return os.getpid()

    @runtime.orchestrator()
    def held(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        pid: int = yield ctx.call_activity(hold, ctx.get_input())
        return pid

    return runtime


async def main(store_url: str, ready_dir: Path, worker_timeout: float) -> None:
    from worker_process import serve

    await serve(build(store_url, worker_timeout), ready_dir, f"{os.getpid()}-{uuid.uuid4().hex[:8]}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])))
