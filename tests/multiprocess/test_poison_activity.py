"""An activity that kills its worker's process every time it runs must not crash-loop a fleet: it
fails once its workers died running it `max_activity_starts` times (3), the last times running it
alone, and 500 unrelated chains complete meanwhile on two workers that a supervisor restarts
whenever they die.

The PostgreSQL run needs ASYNKRON_DURABLE_PG_DSN (a fresh schema, dropped afterwards)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.shared_store import shared_store

from asynkron_durable import OrchestrationClient, RuntimeStatus

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "support" / "poison_worker.py"
CHAINS = 500


class Supervisor:
    """Keeps `count` worker processes running, starting a new one whenever one exits."""

    def __init__(self, url: str, ready_dir: Path, count: int) -> None:
        self._command = [sys.executable, str(WORKER), url, str(ready_dir)]
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        self._env = {**os.environ, "PYTHONPATH": path}
        self.procs = [self._spawn() for _ in range(count)]
        self.deaths = 0

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self._command, env=self._env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def keep_up(self) -> None:
        for n, proc in enumerate(self.procs):
            if proc.poll() is not None:
                self.deaths += 1
                self.procs[n] = self._spawn()

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_process_killing_activity_fails_after_three_deaths_and_strands_nothing(
    backend: str, tmp_path: Path
) -> None:
    async with shared_store(backend, tmp_path, "poison") as (url, store):
        client = OrchestrationClient(store)
        supervisor = Supervisor(url, tmp_path, 2)
        try:
            await client.start_new("poisoned", instance_id="poisoned")
            for n in range(CHAINS):
                await client.start_new("chain", n, instance_id=f"chain-{n:03}")
            deadline = time.monotonic() + 120
            while True:
                supervisor.keep_up()
                poisoned = await client.get_status("poisoned")
                chains = [await client.get_status(f"chain-{n:03}") for n in range(CHAINS)]
                if (
                    poisoned is not None
                    and poisoned.runtime_status.is_terminal
                    and all(c is not None and c.runtime_status.is_terminal for c in chains)
                ):
                    break
                assert time.monotonic() < deadline, (
                    f"after 120 s: poisoned {poisoned and poisoned.runtime_status}, "
                    f"{sum(1 for c in chains if c and c.runtime_status.is_terminal)} of {CHAINS} chains done"
                )
                await asyncio.sleep(0.2)
        finally:
            supervisor.stop()
    failed = [c for c in chains if c is not None and c.runtime_status is not RuntimeStatus.COMPLETED]
    assert failed == [], failed[:3]
    assert [c.output for c in chains if c is not None] == [n * 8 for n in range(CHAINS)]
    assert poisoned.runtime_status is RuntimeStatus.FAILED and poisoned.failure is not None
    assert "ActivityCrashed" in poisoned.failure.message and "'suicide'" in poisoned.failure.message
    assert "started 3 times" in poisoned.failure.message
    assert supervisor.deaths <= 3
