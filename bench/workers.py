"""Workers for a run: W runtimes in this process, or W `asynkron-durable worker` processes.

Each in-process runtime gets its own store object, as separate workers would (memory:// runs share
the one store). Processes run the real command on `bench/app.py:app` and are stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from asynkron_durable import DurableFunctionRuntime
from bench.app import app
from bench.stores import BenchStore

APP_SPEC = f"{Path(__file__).with_name('app.py')}:app"
READY_TIMEOUT = 60.0
_DRAINS: set[asyncio.Task[None]] = set()
STOP_TIMEOUT = 60.0


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident memory (MB) of this process, or of live process `pid` (Linux /proc)."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


@dataclass
class Workers:
    runtimes: list[DurableFunctionRuntime] = field(default_factory=list)
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)

    def peak_rss_mb(self) -> float:
        """The largest peak RSS of a worker: this process, or the biggest worker process."""
        if not self.processes:
            return peak_rss_mb()
        return max(peak_rss_mb(p.pid) for p in self.processes)


@contextlib.asynccontextmanager
async def workers(store: BenchStore, count: int, processes: bool) -> AsyncIterator[Workers]:
    if count < 1:
        raise ValueError("at least one worker is needed")
    if processes:
        if store.shared is not None:
            raise ValueError("memory:// cannot be shared with worker processes; use sqlite or postgres")
        async with _processes(store.url, count) as running:
            yield running
        return
    async with contextlib.AsyncExitStack() as stack:
        running = Workers()
        for _ in range(count):
            runtime = DurableFunctionRuntime(store.make())
            runtime.register_app(app)
            if store.shared is not None:  # one store object: __aexit__ would close it under the others
                stop = asyncio.Event()
                task = asyncio.create_task(runtime.run_and_poll(stop))
                stack.push_async_callback(_stop_task, stop, task)
            else:
                await stack.enter_async_context(runtime)
            running.runtimes.append(runtime)
        yield running


async def _stop_task(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await task


@contextlib.asynccontextmanager
async def _processes(url: str, count: int) -> AsyncIterator[Workers]:
    running = Workers()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        for _ in range(count):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "asynkron_durable.cli",
                "worker",
                APP_SPEC,
                "--store",
                url,
                stderr=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                env=env,
            )
            running.processes.append(process)
        await asyncio.wait_for(asyncio.gather(*(_ready(p) for p in running.processes)), READY_TIMEOUT)
        yield running
    finally:
        for process in running.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in running.processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _ready(process: asyncio.subprocess.Process) -> None:
    """The command prints `worker ... serving URL` to stderr once its loops are about to start."""
    assert process.stderr is not None
    seen: list[str] = []
    while True:
        line = await process.stderr.readline()
        if not line:
            raise RuntimeError(f"worker process exited before serving: {''.join(seen)[-2000:]}")
        text = line.decode(errors="replace")
        seen.append(text)
        if "serving" in text:
            _DRAINS.add(asyncio.get_running_loop().create_task(_drain(process.stderr)))
            return


async def _drain(stream: asyncio.StreamReader) -> None:
    """Keep reading, so a chatty worker never blocks on a full pipe; echo errors."""
    try:
        while line := await stream.readline():
            if b"worker stopped" not in line:
                sys.stderr.write(f"[worker] {line.decode(errors='replace')}")
    finally:
        _DRAINS.discard(asyncio.current_task())
