"""Stuck user code under real `asynkron-durable worker` processes: an orchestrator that never yields
fails alone while 200 chains complete, a stop is not held up by it, and code blocked where it cannot
be interrupted fails its instance and makes the worker exit with the reason, for a supervisor.

The PostgreSQL runs need ASYNKRON_DURABLE_PG_DSN (a fresh schema, dropped afterwards)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.shared_store import shared_store

from asynkron_durable import OrchestrationClient, OrchestrationStatus, RuntimeStatus

REPO = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import threading
    from asynkron_durable import DurableApp

    app = DurableApp()

    @app.activity()
    def double(value):
        return value * 2

    @app.orchestrator()
    def chain(ctx):
        value = ctx.get_input()
        for _ in range(3):
            value = yield ctx.call_activity(double, value)
        return value

    @app.orchestrator(deadline=1.0)
    def spin(ctx):
        while True:
            pass

    @app.orchestrator(deadline=600)
    def patient_spin(ctx):
        open(ctx.get_input(), "w").close()  # tells the test the episode has begun
        while True:
            pass

    @app.orchestrator(deadline=0.5)
    def blocked(ctx):
        threading.Event().wait()
    """
)


@contextlib.contextmanager
def workers(count: int, app: Path, url: str, logs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`asynkron-durable worker` processes, each logging to `logs/worker-N.log`; killed at the end."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "asynkron_durable.cli", "worker", str(app), "--store", url]
    with contextlib.ExitStack() as stack:
        procs = []
        for n in range(count):
            log = stack.enter_context((logs / f"worker-{n}.log").open("wb"))
            env = {**os.environ, "PYTHONPATH": path}
            procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env))
        try:
            yield procs
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(10)


async def wait_terminal(client: OrchestrationClient, instance_id: str, timeout: float) -> OrchestrationStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = await client.get_status(instance_id)
        if status is not None and status.runtime_status.is_terminal:
            return status
        assert time.monotonic() < deadline, f"{instance_id} still {status and status.runtime_status}"
        await asyncio.sleep(0.1)


async def exited(proc: subprocess.Popen[bytes], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, f"worker {proc.pid} still running after {timeout} s"
        await asyncio.sleep(0.05)
    return proc.returncode


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_spinning_orchestrator_fails_alone_while_200_chains_complete(
    backend: str, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    async with shared_store(backend, tmp_path, "stuck") as (url, store):
        client = OrchestrationClient(store)
        with workers(2, app, url, tmp_path) as procs:
            await client.start_new("spin", instance_id="spin")
            ids = [await client.start_new("chain", n, instance_id=f"chain-{n}") for n in range(200)]
            began = time.monotonic()
            statuses = [await wait_terminal(client, i, 60) for i in ids]
            spun = await wait_terminal(client, "spin", 60)
            took = time.monotonic() - began
            assert all(proc.poll() is None for proc in procs), "a worker died"
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            assert [await exited(proc, 30) for proc in procs] == [0, 0]
    assert [s.output for s in statuses] == [n * 8 for n in range(200)], "not every chain completed"
    assert took < 60
    assert spun.runtime_status is RuntimeStatus.FAILED and spun.failure is not None
    assert spun.failure.error_type == "OrchestratorDeadlock"
    assert f"{app}:" in spun.failure.message and "in spin: while True:" in spun.failure.message


async def test_a_stop_is_not_held_up_by_an_orchestrator_that_never_yields(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    async with shared_store("sqlite", tmp_path, "stuck") as (url, store):
        client = OrchestrationClient(store)
        with workers(1, app, url, tmp_path) as [proc]:
            begun = tmp_path / "begun"
            await client.start_new("patient_spin", str(begun), instance_id="p")
            deadline = time.monotonic() + 30
            while not begun.exists():
                assert time.monotonic() < deadline, "the episode never began"
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            assert await exited(proc, 15) == 0
        status = await client.get_status("p")
    assert status is not None and not status.runtime_status.is_terminal  # another worker runs it again


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_code_that_cannot_be_interrupted_fails_its_instance_and_stops_the_worker(
    backend: str, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    async with shared_store(backend, tmp_path, "stuck") as (url, store):
        client = OrchestrationClient(store)
        with workers(1, app, url, tmp_path) as [proc]:
            await client.start_new("blocked", instance_id="b")
            code = await exited(proc, 30)
            status = await client.get_status("b")
    log = (tmp_path / "worker-0.log").read_text()
    assert code == 1, log
    errors = [line for line in log.splitlines() if line.startswith("error: ")]
    assert (
        len(errors) == 1 and "orchestrator 'blocked'" in errors[0] and "could not be interrupted" in errors[0]
    )
    assert "Traceback" not in log
    assert status is not None and status.runtime_status is RuntimeStatus.FAILED and status.failure is not None
    assert "in blocked: threading.Event().wait()" in status.failure.message


async def test_run_exits_with_the_reason_when_a_sub_orchestration_is_stuck(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        APP + "\n@app.orchestrator()\ndef parent(ctx):\n    yield ctx.call_sub_orchestrator('blocked')\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "asynkron_durable.cli",
            "run",
            str(app),
            "parent",
            "--store",
            f"sqlite:///{tmp_path / 'r.db'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "orchestrator 'blocked'" in errors[0], result.stderr
