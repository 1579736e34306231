"""A worker process is SIGKILLed mid-chain; a new process finishes the instance from its history."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from asynkron_durable import OrchestrationClient, RuntimeStatus, SqliteStateStore

WORKER = Path(__file__).parent.parent / "support" / "chain_worker.py"


def spawn_worker(store_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(WORKER), store_url, str(log)], env=env)


async def poll(condition: Callable[[], bool], deadline_seconds: float, what: str) -> None:
    deadline = time.monotonic() + deadline_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def log_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


async def test_sigkilled_worker_is_replaced_and_the_chain_finishes(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    log = tmp_path / "steps.log"
    store = SqliteStateStore(db)
    await store.open()
    client = OrchestrationClient(store)
    instance_id = await client.start_new("chain", 100)

    first = spawn_worker(f"sqlite:///{db}", log)
    try:
        done = lambda: sum(line.startswith("done") for line in log_lines(log))  # noqa: E731
        await poll(lambda: done() >= 4, 30, "four steps to finish in the first worker")
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    status = await client.get_status(instance_id)
    assert status is not None and status.runtime_status is RuntimeStatus.RUNNING
    finished_before_kill = done()
    assert finished_before_kill < 10

    second = spawn_worker(f"sqlite:///{db}", log)
    try:
        final = await client.wait_for_completion(instance_id, timeout=60)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, "graceful shutdown should exit cleanly"
    finally:
        if second.poll() is None:
            second.kill()
    await store.close()

    assert final.runtime_status is RuntimeStatus.COMPLETED
    assert final.output == 110
    starts = Counter(line.split()[1] for line in log_lines(log) if line.startswith("start"))
    assert set(starts) == {str(v) for v in range(100, 110)}
    repeated = [step for step, count in starts.items() if count > 1]
    assert len(repeated) <= 1, f"only the in-flight step may run twice, got {starts}"
    assert all(count <= 2 for count in starts.values())
