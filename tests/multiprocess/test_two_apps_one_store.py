"""Two apps, one native and one Azure v2, whose workers share ONE store with nothing configured
(the first thing a user following the samples does): each worker runs only what its app registers,
so instances started from the command line and entity signals to both apps all complete, nothing
is failed or dropped, and `workers` shows both workers with what they run.

The PostgreSQL run needs ASYNKRON_DURABLE_PG_DSN (a fresh schema, dropped afterwards)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.chaos import poll_until
from support.shared_store import shared_store

from asynkron_durable import EntityId, OrchestrationClient, RuntimeStatus

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 60.0


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ASYNKRON_DURABLE_STORE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def durable(*args: str) -> str:
    """Run one `asynkron-durable` command from the repository root; its stdout."""
    command = [sys.executable, "-m", "asynkron_durable.cli", *args]
    done = subprocess.run(command, cwd=REPO, env=_environment(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


class Worker:
    """`asynkron-durable worker APP` as a process, its log kept in a file."""

    def __init__(self, app: str, url: str, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            command = [sys.executable, "-m", "asynkron_durable.cli", "worker", app, "--store", url]
            self.proc = subprocess.Popen(
                command, cwd=REPO, env=_environment(), stdout=out, stderr=subprocess.STDOUT
            )

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(30)
        return self.log.read_text(errors="replace")


def _state(found: Any) -> Any:
    return found.state if found.exists else None


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_native_and_an_azure_app_share_one_store(backend: str, tmp_path: Path) -> None:
    async with shared_store(backend, tmp_path, "twoapps") as (url, store):
        client = OrchestrationClient(store)
        native = Worker("samples/bank_accounts.py", url, tmp_path / "native.log")
        azure = Worker("samples/azure/counter_entity", url, tmp_path / "azure.log")
        try:

            async def both_registered() -> bool:
                return len(await store.workers.registered()) == 2

            await poll_until(both_registered, DEADLINE, "both workers to register")
            bank = durable("start", "bank_demo", "--store", url).strip()
            counter = durable("start", "counter_orchestrator", "--input", "[1, 2, 3]", "--store", url).strip()
            durable("signal-entity", "account", "carol", "deposit", "--input", "10", "--store", url)
            durable("signal-entity", "Counter", "c2", "add", "--input", "7", "--store", url)

            banked = await client.wait_for_completion(bank, timeout=DEADLINE)
            counted = await client.wait_for_completion(counter, timeout=DEADLINE)
            assert banked.runtime_status is RuntimeStatus.COMPLETED, banked.failure
            assert banked.output == {"alice": 65, "bob": 135, "total": 200, "refused": 1}
            assert counted.runtime_status is RuntimeStatus.COMPLETED, counted.failure
            assert counted.output == 6

            async def signals_applied() -> bool:
                carol = await client.read_entity_state(EntityId("account", "carol"))
                c2 = await client.read_entity_state(EntityId("counter", "c2"))
                return _state(carol) == {"balance": 10} and _state(c2) == 7

            await poll_until(signals_applied, DEADLINE, "both entity signals to be applied")
            listed = {item["instance_id"] for item in json.loads(durable("list", "--json", "--store", url))}
            assert {bank, counter} <= listed
            workers = json.loads(durable("workers", "--json", "--store", url))
            runs = sorted(tuple(w["instance_names"]) for w in workers)
            assert runs == [("account", "bank_demo", "transfer"), ("counter", "counter_orchestrator")]
        finally:
            logs = native.stop() + azure.stop()
        assert "UnknownFunction" not in logs and "failed" not in logs, logs
