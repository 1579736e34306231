"""A dead worker's leased work is taken over within seconds, not when its leases run out: workers
beat a heartbeat in the store, and the others end the leases of one that is gone. Leases here last
60 s; every wait below is far shorter, so each test fails when the takeover is missing.

The PostgreSQL runs need ASYNKRON_DURABLE_PG_DSN (a fresh schema, dropped afterwards)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.chaos import poll_until
from support.shared_store import shared_store

from asynkron_durable import OrchestrationClient, RuntimeStatus

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "support" / "takeover_worker.py"
TAKEOVER = 30.0
"""Seconds a takeover may take here: half the lease, many times what it needs (about 3 s)."""


class Worker:
    """One worker process, its stderr kept in a file to read what it logged."""

    def __init__(self, url: str, folder: Path, name: str, worker_timeout: float) -> None:
        self.log = folder / f"{name}.log"
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER), url, str(folder), str(worker_timeout)],
                env={**os.environ, "PYTHONPATH": path},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def logged(self) -> str:
        return self.log.read_text(errors="replace")

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def started_by(folder: Path, worker: Worker) -> bool:
    return (folder / f"started-{worker.proc.pid}").exists()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_killed_workers_activity_is_taken_over_within_seconds(backend: str, tmp_path: Path) -> None:
    async with shared_store(backend, tmp_path, "takeover") as (url, store):
        client = OrchestrationClient(store)
        first = Worker(url, tmp_path, "first", worker_timeout=10)
        second: Worker | None = None
        try:
            await client.start_new("held", str(tmp_path), instance_id="held")
            await poll_until(lambda: started_by(tmp_path, first), 30, "the activity to start")
            first.proc.kill()
            first.proc.wait(10)
            (tmp_path / "release").touch()
            second = Worker(url, tmp_path, "second", worker_timeout=10)

            status = await client.wait_for_completion("held", timeout=TAKEOVER)

            assert status.runtime_status is RuntimeStatus.COMPLETED
            assert status.output == second.proc.pid
            assert "taken for dead" in second.logged()
        finally:
            first.end()
            if second is not None:
                second.end()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_frozen_worker_is_taken_for_dead_and_its_late_result_is_refused(
    backend: str, tmp_path: Path
) -> None:
    async with shared_store(backend, tmp_path, "frozen") as (url, store):
        client = OrchestrationClient(store)
        frozen = Worker(url, tmp_path, "frozen", worker_timeout=2)
        other: Worker | None = None
        try:
            await client.start_new("held", str(tmp_path), instance_id="held")
            await poll_until(lambda: started_by(tmp_path, frozen), 30, "the activity to start")
            frozen.proc.send_signal(signal.SIGSTOP)  # its process and session stay: only silence tells
            (tmp_path / "release").touch()
            other = Worker(url, tmp_path, "other", worker_timeout=2)

            status = await client.wait_for_completion("held", timeout=TAKEOVER)
            assert status.output == other.proc.pid

            frozen.proc.send_signal(signal.SIGCONT)  # it wakes, finishes its copy, is refused
            await poll_until(lambda: "registering again" in frozen.logged(), 30, "it to notice")
            await poll_until(lambda: "result was dropped" in frozen.logged(), 30, "its late result refused")
            after = await client.get_status("held", show_history=True)
            assert after is not None and after.output == other.proc.pid
            assert after.runtime_status is RuntimeStatus.COMPLETED
        finally:
            frozen.proc.send_signal(signal.SIGCONT)
            frozen.end()
            if other is not None:
                other.end()
