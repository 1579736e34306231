"""The main loop of the test worker scripts (`chaos_worker.py`, `entity_worker.py`): run until
SIGTERM or SIGINT, announcing readiness with a file once the signal handlers are installed.

The scripts run with this directory on sys.path, so they import this as `worker_process`.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from asynkron_durable import DurableFunctionRuntime


async def serve(runtime: DurableFunctionRuntime, ready_dir: Path, token: str) -> None:
    """Create `ready_dir/ready-TOKEN` once stoppable, then work until a stop signal; exit cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    (ready_dir / f"ready-{token}").touch()
    try:
        await runtime.run_and_poll(stop)
    finally:
        await runtime.store.close()
