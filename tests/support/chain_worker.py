"""A worker process for crash tests: a 10-step chain whose steps log to a file as they run.

Usage: python chain_worker.py STORE_URL LOG_PATH. Runs until SIGTERM/SIGINT (graceful) or SIGKILL.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

from asynkron_durable import DurableFunctionRuntime, OrchestrationContext

STEP_SECONDS = 0.25


def build(store_url: str, log_path: Path) -> DurableFunctionRuntime:
    runtime = DurableFunctionRuntime(store_url, lease_duration=timedelta(seconds=1), max_poll_interval=0.02)

    @runtime.activity()
    def step(value: int) -> int:
        with log_path.open("a") as log:
            log.write(f"start {value}\n")
        time.sleep(STEP_SECONDS)
        with log_path.open("a") as log:
            log.write(f"done {value}\n")
        return value + 1

    @runtime.orchestrator()
    def chain(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        value: int = ctx.get_input()
        for _ in range(10):
            value = yield ctx.call_activity(step, value)
        return value

    return runtime


async def main(store_url: str, log_path: Path) -> None:
    runtime = build(store_url, log_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runtime.run_and_poll(stop)
    await runtime.store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
