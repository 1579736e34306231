"""Every sample runs, through the real `asynkron-durable` command in a fresh process, exactly as its
docstring tells a reader to run it, and prints the output the docstring promises."""

from __future__ import annotations

import ast
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"

EXPECTED_OUTPUT: dict[str, Any] = {
    "hello_cities.py": ["Hello Tokyo!", "Hello Seattle!", "Hello London!"],
    "fan_out_fan_in.py": 385,
    "human_interaction.py": "escalated",
    "monitor.py": {"checks": 3, "readings": ["check 1: up", "check 2: up", "check 3: up"]},
    "sub_orchestrations.py": {
        "shipped": ["book packed, book shipped", "lamp packed, lamp shipped"],
        "receipt": "receipt: 2 items shipped",
    },
    "retries.py": "inventory fetched on attempt 3",
    "bank_accounts.py": {"alice": 65, "bob": 135, "total": 200, "refused": 1},
    "asgi_app.py": {
        "order_id": "42",
        "steps": ["stock reserved for 42", "payment charged for 42", "42 shipped"],
    },
}


def durable(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run the command in a fresh interpreter that, like the test suite, treats warnings as errors."""
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "asynkron_durable.cli", *args],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ASYNKRON_DURABLE_STORE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def last_json_line(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def documented_run_command(sample: Path) -> list[str]:
    """The `asynkron-durable run ...` line of the sample's docstring, as arguments."""
    docstring = ast.get_docstring(ast.parse(sample.read_text())) or ""
    lines = [line.strip() for line in docstring.splitlines()]
    commands = [line for line in lines if line.startswith("asynkron-durable run ")]
    assert len(commands) == 1, f"{sample.name} should document exactly one run command"
    return shlex.split(commands[0])[1:]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """An existing store (as the samples' first `run` leaves one): `start` refuses a missing file."""
    sqlite3.connect(tmp_path / "d.db").close()
    return f"sqlite:///{tmp_path}/d.db"


def test_every_sample_has_an_expected_output() -> None:
    assert {p.name for p in SAMPLES.glob("*.py")} == set(EXPECTED_OUTPUT)


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUT))
def test_sample_runs_as_documented(name: str, store_url: str) -> None:
    result = durable(*documented_run_command(SAMPLES / name), "--store", store_url)
    assert last_json_line(result) == EXPECTED_OUTPUT[name]


def test_sub_orchestration_with_an_explicit_id_can_be_queried(store_url: str) -> None:
    run = durable(
        "run", "samples/sub_orchestrations.py", "sub_orchestrations",
        "--instance-id", "order-7", "--input", '["kettle"]', "--store", store_url,
    )  # fmt: skip
    assert last_json_line(run) == {
        "shipped": ["kettle packed, kettle shipped"],
        "receipt": "receipt: 1 items shipped",
    }
    receipt = json.loads(durable("status", "--json", "order-7-receipt", "--store", store_url).stdout)
    assert receipt["runtime_status"] == "Completed"
    assert receipt["output"] == "receipt: 1 items shipped"


def test_monitor_keeps_only_the_last_rounds_history(store_url: str) -> None:
    run = durable(
        "run", "samples/monitor.py", "monitor", "--instance-id", "mon",
        "--input", '{"checks_left": 2, "interval_seconds": 0.05}', "--store", store_url,
    )  # fmt: skip
    assert last_json_line(run) == {"checks": 2, "readings": ["check 1: up", "check 2: up"]}
    status = json.loads(durable("status", "--json", "mon", "--show-history", "--store", store_url).stdout)
    assert status["input"] == {"checks_left": 1, "interval_seconds": 0.05, "readings": ["check 1: up"]}
    assert status["custom_status"] == {"checks_done": 2, "last": "check 2: up"}
    scheduled = [e["input"] for e in status["history"] if e["kind"] == "TaskScheduled"]
    assert scheduled == ["2"]


def test_human_interaction_is_approved_through_a_separate_worker(tmp_path: Path, store_url: str) -> None:
    started = durable(
        "start", "human_interaction", "--instance-id", "approval-1",
        "--input", '{"timeout_seconds": 60}', "--store", store_url,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "approval-1"

    log = tmp_path / "worker.log"
    with log.open("w") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-W", "error", "-m", "asynkron_durable.cli",
             "worker", "samples/human_interaction.py", "--store", store_url],
            cwd=REPO, env=_environment(), stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            raised = durable(
                "raise-event", "approval-1", "Approval", "--data", '"alice"', "--store", store_url
            )  # fmt: skip
            assert raised.returncode == 0, raised.stderr
            status = _wait_until_finished("approval-1", store_url)
        finally:
            worker.send_signal(signal.SIGTERM)
            exit_code = worker.wait(timeout=30)

    assert status["runtime_status"] == "Completed"
    assert status["output"] == "approved by alice"
    assert exit_code == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def _wait_until_finished(instance_id: str, store_url: str, deadline: float = 30.0) -> Any:
    """Poll `status` until the instance finishes; fail the test after `deadline` seconds."""
    give_up = time.monotonic() + deadline
    while True:
        result = durable("status", "--json", instance_id, "--store", store_url)
        assert result.returncode == 0, result.stderr
        status = json.loads(result.stdout)
        if status["runtime_status"] in ("Completed", "Failed", "Terminated"):
            return status
        assert time.monotonic() < give_up, f"{instance_id} did not finish: {status}"
        time.sleep(0.05)
