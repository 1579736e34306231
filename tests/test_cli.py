"""The `asynkron-durable` command, run in real processes: bad input gets one `error:` line and a
non-zero exit (never a traceback), and the instance commands work against a SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from asynkron_durable import store_from_url

REPO = Path(__file__).resolve().parents[1]
HELLO = str(REPO / "samples" / "hello_cities.py")
APPROVAL = str(REPO / "samples" / "human_interaction.py")
COMMAND = [sys.executable, "-W", "error", "-m", "asynkron_durable.cli"]


def durable(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        cwd=cwd,
        env=_environment(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ASYNKRON_DURABLE_STORE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env | (extra or {})


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def error_line(result: subprocess.CompletedProcess[str], exit_code: int) -> str:
    """The single `error: ...` line of a failed command, after checking the exit code."""
    assert result.returncode == exit_code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def existing_store(path: Path) -> str:
    """The URL of a SQLite store created at `path` (as a worker or `run` would): commands that read
    or change instances refuse a file that does not exist."""
    sqlite3.connect(path).close()
    return f"sqlite:///{path}"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return existing_store(tmp_path / "d.db")


def write(path: Path, source: str) -> str:
    path.write_text(textwrap.dedent(source))
    return str(path)


@pytest.mark.parametrize("app", ["README.md", "docs/README.md"])
def test_an_app_that_is_not_a_python_file_is_named(tmp_path: Path, app: str) -> None:
    (tmp_path / "docs").mkdir()
    for readme in (tmp_path / "README.md", tmp_path / "docs" / "README.md"):
        readme.write_text("# not code\n")
    message = error_line(durable("worker", app, cwd=tmp_path), 2)
    assert message == f"error: app file {app!r} is not a Python file; use FILE.py[:ATTR] or MODULE[:ATTR]"


def test_logs_to_a_pipe_are_one_unwrapped_line_a_record(tmp_path: Path) -> None:
    app = write(
        tmp_path / "chatty.py",
        """
        import logging

        from asynkron_durable import DurableApp

        app = DurableApp()

        @app.activity()
        def chatter(_: None) -> None:
            logging.getLogger("chatty").warning("long/" * 60 + "end")

        @app.orchestrator()
        def talk(ctx):
            yield ctx.call_activity(chatter)
            return "done"
        """,
    )
    result = durable("run", app, "talk", "--store", f"sqlite:///{tmp_path / 'chatty.db'}", cwd=tmp_path)
    assert ok(result).strip().splitlines()[-1] == '"done"'
    lines = [line for line in result.stderr.splitlines() if "chatty:" in line]
    assert len(lines) == 1 and lines[0].endswith(" WARNING chatty: " + "long/" * 60 + "end")


# ----- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", HELLO, "nope"], "unknown orchestrator 'nope'; registered orchestrators: hello_cities"),
        (["run", HELLO, "hello_cities", "--input", "{bad"], "--input is not valid JSON"),
        (["run", "missing.py", "x"], "app file 'missing.py' not found"),
        (["run", "no_such_module:app", "x"], "no module named 'no_such_module'"),
        (["run", f"{HELLO}:nothing", "x"], "has no attribute 'nothing'"),
        (["run", f"{HELLO}:say_hello", "x"], "is a function, not a DurableApp or DurableFunctionRuntime"),
        (["worker", f"{HELLO}:RETRY"], "has no attribute 'RETRY'"),
        (["status", "x", "--store", "redis://db"], "unsupported store URL scheme 'redis'"),
        (["status", "x", "--store", "durable.db"], "store URL 'durable.db' has no scheme"),
        (["list", "--store", "sqlite:///"], "has no file path"),
        (["raise-event", "x", "Approval", "--data", "[1,"], "--data is not valid JSON"),
        (["start", "x", "--input", "nope"], "--input is not valid JSON"),
        (["start", "x", "--input", "NaN"], "--input is not valid JSON: NaN is not JSON"),
        (["start", "x", "--instance-id", "a/b"], "an instance id may not contain '/'"),
        (["run", HELLO, "hello_cities", "--instance-id", "a#b"], "an instance id may not contain '#'"),
        (["signal-entity", "account", "k", "deposit", "--at", "tomorrow"], "--at is not an ISO 8601 time"),
        (["run", HELLO, "hello_cities", "--input", "[1e999]"], "1e999 is out of range for a number"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    line = error_line(durable(*args, cwd=tmp_path), 2)
    assert message in line
    assert not list(tmp_path.iterdir()), "bad input must not create a store"


@pytest.mark.parametrize("command", ["status", "terminate", "suspend", "resume", "purge"])
def test_unknown_instance_id(tmp_path: Path, store_url: str, command: str) -> None:
    line = error_line(durable(command, "ghost", "--store", store_url, cwd=tmp_path), 2)
    assert line == "error: orchestration instance 'ghost' not found"


def test_app_files_that_do_not_fit(tmp_path: Path) -> None:
    none = write(tmp_path / "plain.py", "x = 1\n")
    assert "defines neither 'app' nor 'runtime'" in error_line(durable("run", none, "x", cwd=tmp_path), 2)
    wrong = write(tmp_path / "wrong.py", "app = 42\n")
    assert "wrong.py:app is a int, not a DurableApp" in error_line(
        durable("run", wrong, "x", cwd=tmp_path), 2
    )
    broken = write(tmp_path / "broken.py", "import json\n\njson.loads('{')\n")
    line = error_line(durable("run", broken, "x", cwd=tmp_path), 2)
    assert "loading" in line and "JSONDecodeError" in line and "(broken.py:3)" in line
    write(tmp_path / "syntax.py", "def f(:\n")
    assert "SyntaxError" in error_line(durable("run", "syntax", "x", cwd=tmp_path), 2)


EMPTY_APP = "from asynkron_durable import DurableApp\napp = DurableApp()\n"


def test_an_unwritable_store_path(tmp_path: Path) -> None:
    missing_dir = f"sqlite:///{tmp_path}/no/such/dir/d.db"
    assert "unable to open database file" in error_line(
        durable("worker", write(tmp_path / "empty.py", EMPTY_APP), "--store", missing_dir, cwd=tmp_path), 2
    )


@pytest.mark.parametrize(
    "command", [["list"], ["status", "x"], ["start", "hello"], ["raise-event", "x", "go"]]
)
def test_a_store_file_that_does_not_exist_is_refused_not_created(tmp_path: Path, command: list[str]) -> None:
    result = durable(*command, cwd=tmp_path)  # the default store, ./durable.db, is not there
    where = tmp_path.resolve() / "durable.db"
    assert (
        error_line(result, 2) == f"error: no store at {where}; start a worker or `run` first, or pass --store"
    )
    assert not (tmp_path / "durable.db").exists()


def test_every_command_names_the_store_it_used(tmp_path: Path, store_url: str) -> None:
    result = durable("list", "--json", "--store", store_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"store: {(tmp_path / 'd.db').resolve()} (task hub default)" in result.stderr.splitlines()


# ----- run ---------------------------------------------------------------------------------------


def test_a_failed_orchestration_exits_1(tmp_path: Path, store_url: str) -> None:
    app = write(
        tmp_path / "failing.py",
        """
        from asynkron_durable import DurableApp

        app = DurableApp()

        @app.activity()
        def boom(n: int) -> int:
            raise ValueError(f"boom {n}")

        @app.orchestrator()
        def fails(ctx):
            return (yield ctx.call_activity(boom, 7))
        """,
    )
    result = durable("run", app, "fails", "--instance-id", "f1", "--store", store_url, cwd=tmp_path)
    line = error_line(result, 1)
    assert line == "error: instance f1 failed: TaskFailedError: activity 'boom' failed: ValueError: boom 7"
    assert result.stdout == ""


def test_run_gives_up_after_its_timeout(tmp_path: Path, store_url: str) -> None:
    result = durable("run", APPROVAL, "human_interaction", "--timeout", "0.2",
                     "--instance-id", "slow", "--store", store_url, cwd=tmp_path)  # fmt: skip
    assert error_line(result, 1) == "error: instance 'slow' still Running after 0.2s"


def test_a_terminated_run_exits_1(tmp_path: Path, store_url: str) -> None:
    run = subprocess.Popen(
        [*COMMAND, "run", APPROVAL, "human_interaction", "--instance-id", "t1", "--store", store_url],
        cwd=tmp_path, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_status("t1", "Running", store_url, tmp_path)
        ok(durable("terminate", "t1", "--reason", "no longer needed", "--store", store_url, cwd=tmp_path))
        stdout, stderr = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 1
    assert "error: instance t1 was terminated: no longer needed" in stderr.splitlines()
    assert "Traceback" not in stderr and stdout == ""


def test_apps_by_module_name_and_runtime_objects(tmp_path: Path) -> None:
    write(tmp_path / "helpers.py", "def greet(name: str) -> str:\n    return f'hi {name}'\n")
    write(
        tmp_path / "rt.py",
        """
        from asynkron_durable import DurableFunctionRuntime
        from helpers import greet

        runtime = DurableFunctionRuntime("memory://")
        runtime.register_function("greet", greet)

        @runtime.orchestrator()
        def hi(ctx):
            return (yield ctx.call_activity("greet", ctx.get_input()))
        """,
    )
    by_module = durable("run", "rt", "hi", "--input", '"bob"', "--store", "memory://", cwd=tmp_path)
    assert ok(by_module).splitlines()[-1] == '"hi bob"'
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    by_file = durable("run", "../rt.py:runtime", "hi", "--input", '"ann"',
                      "--store", "memory://", cwd=elsewhere)  # fmt: skip
    assert ok(by_file).splitlines()[-1] == '"hi ann"'


def test_the_store_comes_from_the_environment(tmp_path: Path, store_url: str) -> None:
    env = {"ASYNKRON_DURABLE_STORE": store_url}
    ok(durable("run", HELLO, "hello_cities", "--instance-id", "h1", cwd=tmp_path, env=env))
    status = json.loads(ok(durable("status", "--json", "h1", "--store", store_url, cwd=tmp_path)))
    assert status["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert not (tmp_path / "durable.db").exists()


# ----- managing instances ------------------------------------------------------------------------


def wait_for_status(instance_id: str, wanted: str, store_url: str, cwd: Path) -> Any:
    """Poll `status` until the instance has status `wanted`; fail after 30 seconds."""
    give_up = time.monotonic() + 30
    while True:
        result = durable("status", "--json", instance_id, "--store", store_url, cwd=cwd)
        status = json.loads(result.stdout) if result.returncode == 0 else None
        if status is not None and status["runtime_status"] == wanted:
            return status
        assert time.monotonic() < give_up, f"{instance_id} never became {wanted}: {status}"
        time.sleep(0.05)


@contextmanager
def worker(app: str, store_url: str, tmp_path: Path) -> Iterator[None]:
    """A worker process for the block; it must stop cleanly (exit 0) on SIGTERM."""
    log = tmp_path / "worker.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [*COMMAND, "worker", app, "--store", store_url],
            cwd=tmp_path, env=_environment(), stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield
        finally:
            process.send_signal(signal.SIGTERM)
            exit_code = process.wait(timeout=30)
    assert exit_code == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def test_start_status_and_list(tmp_path: Path, store_url: str) -> None:
    for n in range(3):
        started = durable("start", "human_interaction", "--instance-id", f"batch-{n}", "--input",
                          '{"timeout_seconds": 60}', "--store", store_url, cwd=tmp_path)  # fmt: skip
        assert ok(started) == f"batch-{n}\n"
    generated = ok(durable("start", "human_interaction", "--store", store_url, cwd=tmp_path)).strip()
    assert len(generated) == 32

    status = json.loads(ok(durable("status", "--json", "batch-1", "--store", store_url, cwd=tmp_path)))
    assert status["runtime_status"] == "Pending"
    assert status["input"] == {"timeout_seconds": 60}
    assert "history" not in status
    with_history = durable(
        "status", "--json", "batch-1", "--show-history", "--store", store_url, cwd=tmp_path
    )
    assert isinstance(json.loads(ok(with_history))["history"], list)

    def listed(*args: str) -> list[str]:
        result = durable("list", "--json", *args, "--store", store_url, cwd=tmp_path)
        return [s["instance_id"] for s in json.loads(ok(result))]

    assert listed("--prefix", "batch-") == ["batch-0", "batch-1", "batch-2"]
    table = ok(durable("list", "--prefix", "batch-", "--store", store_url, cwd=tmp_path))  # for people
    rows = [line for line in table.splitlines() if "batch-" in line]
    assert len(rows) == 3 and all("human_interaction" in row and "Pending" in row for row in rows)
    shown = ok(durable("status", "batch-1", "--store", store_url, cwd=tmp_path))
    assert all(
        text in shown for text in ("batch-1", "human_interaction", "Pending", '{"timeout_seconds": 60}')
    )
    assert listed("--prefix", "batch-", "--top", "2") == ["batch-0", "batch-1"]
    assert len(listed("--status", "Pending")) == 4
    assert listed("--status", "completed", "--status", "Failed") == []


def test_suspend_resume_terminate_and_purge(tmp_path: Path, store_url: str) -> None:
    ok(durable("start", "human_interaction", "--instance-id", "a1", "--store", store_url, cwd=tmp_path))
    with worker(APPROVAL, store_url, tmp_path):
        wait_for_status("a1", "Running", store_url, tmp_path)
        requested = durable("suspend", "a1", "--reason", "hold on", "--store", store_url, cwd=tmp_path)
        ok(requested)  # a request: the status changes when a worker applies it
        assert "suspension of a1 requested; a worker applies it" in requested.stderr
        wait_for_status("a1", "Suspended", store_url, tmp_path)
        ok(durable("resume", "a1", "--store", store_url, cwd=tmp_path))
        wait_for_status("a1", "Running", store_url, tmp_path)
        requested = durable("terminate", "a1", "--reason", "not needed", "--store", store_url, cwd=tmp_path)
        assert "termination of a1 requested; a worker applies it" in ok(requested) + requested.stderr
        terminated = wait_for_status("a1", "Terminated", store_url, tmp_path)
    assert terminated["output"] == "not needed"
    listed = json.loads(
        ok(durable("list", "--json", "--status", "Terminated", "--store", store_url, cwd=tmp_path))
    )
    assert [s["instance_id"] for s in listed] == ["a1"]

    again = durable("terminate", "a1", "--store", store_url, cwd=tmp_path)
    assert "already finished (Terminated)" in error_line(again, 2)
    ok(durable("purge", "a1", "--store", store_url, cwd=tmp_path))
    assert "not found" in error_line(durable("status", "--json", "a1", "--store", store_url, cwd=tmp_path), 2)


def test_history_restart_and_rewind(tmp_path: Path, store_url: str) -> None:
    ok(durable("start", "human_interaction", "--instance-id", "h1", "--store", store_url, cwd=tmp_path))
    pending = durable("history", "h1", "--store", store_url, cwd=tmp_path)
    assert "h1 has no history yet" in pending.stderr and ok(pending) == ""
    with worker(APPROVAL, store_url, tmp_path):
        wait_for_status("h1", "Running", store_url, tmp_path)
        events = json.loads(ok(durable("history", "h1", "--json", "--store", store_url, cwd=tmp_path)))
        table = ok(durable("history", "h1", "--store", store_url, cwd=tmp_path))
        refused = durable("rewind", "h1", "--store", store_url, cwd=tmp_path)
        ok(durable("terminate", "h1", "--store", store_url, cwd=tmp_path))
        wait_for_status("h1", "Terminated", store_url, tmp_path)
        again = ok(durable("restart", "h1", "--store", store_url, cwd=tmp_path)).strip()
        wait_for_status(again, "Running", store_url, tmp_path)
    assert [e["kind"] for e in events][:2] == ["OrchestratorStarted", "ExecutionStarted"]
    assert "ExecutionStarted" in table and "human_interaction" in table
    assert "cannot rewind instance 'h1': it is Running, not Failed" in error_line(refused, 2)
    assert len(again) == 32 and again != "h1"
    assert "not found" in error_line(durable("history", "ghost", "--store", store_url, cwd=tmp_path), 2)


def test_an_interrupted_run_says_the_instance_goes_on_and_how(tmp_path: Path, store_url: str) -> None:
    log = tmp_path / "run.log"
    with log.open("w") as out:
        command = [*COMMAND, "run", APPROVAL, "human_interaction", "--instance-id", "r1",
                   "--input", '{"timeout_seconds": 600}', "--store", store_url]  # fmt: skip
        process = subprocess.Popen(command, cwd=tmp_path, env=_environment(), stderr=out)
        try:
            wait_for_status("r1", "Running", store_url, tmp_path)
            process.send_signal(signal.SIGINT)
            exit_code = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    said = log.read_text()
    assert exit_code == 130, said
    assert "interrupted: instance r1 is still running in the store" in said
    assert f"asynkron-durable worker {APPROVAL}" in said and "asynkron-durable status r1" in said
    assert "Traceback" not in said
    assert (
        json.loads(ok(durable("status", "--json", "r1", "--store", store_url, cwd=tmp_path)))[
            "runtime_status"
        ]
        == "Running"
    )


def test_version_and_short_help(tmp_path: Path) -> None:
    assert ok(durable("--version", cwd=tmp_path)).startswith("asynkron-durable, version ")
    assert "Usage: asynkron-durable" in ok(durable("-h", cwd=tmp_path))
    assert "Usage: asynkron-durable history" in ok(durable("history", "-h", cwd=tmp_path))


BANK = str(REPO / "samples" / "bank_accounts.py")


def entity_state(name: str, key: str, store_url: str, cwd: Path) -> Any:
    return json.loads(ok(durable("entity", name, key, "--store", store_url, cwd=cwd)))


@pytest.mark.parametrize(
    ("given", "due"),
    [
        ("2030-01-01T00:00:00.5+01:00", datetime(2029, 12, 31, 23, 0, 0, 500000, tzinfo=UTC)),
        ("2030-01-02T03:04:05Z", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02", datetime(2030, 1, 2, tzinfo=UTC)),  # no offset: UTC
    ],
)
def test_signal_entity_at_takes_an_iso_8601_time(tmp_path: Path, given: str, due: datetime) -> None:
    store_url = existing_store(tmp_path / "at.db")
    ok(
        durable(
            "signal-entity", "account", "dave", "deposit", "--at", given, "--store", store_url, cwd=tmp_path
        )
    )

    async def next_due() -> datetime | None:
        store = store_from_url(store_url)
        await store.open()
        try:
            return await store.next_due(datetime(2029, 1, 1, tzinfo=UTC))
        finally:
            await store.close()

    assert asyncio.run(next_due()) == due


def test_entity_commands(tmp_path: Path, store_url: str) -> None:
    assert entity_state("account", "carol", store_url, tmp_path) == {"exists": False, "state": None}
    ok(
        durable(
            "signal-entity",
            "account",
            "carol",
            "deposit",
            "--input",
            "25",
            "--store",
            store_url,
            cwd=tmp_path,
        )
    )
    ok(
        durable(
            "signal-entity", "Account", "carol", "deposit", "--input", "5", "--store", store_url, cwd=tmp_path
        )
    )
    assert entity_state("account", "carol", store_url, tmp_path)["exists"] is False  # no worker yet

    listed = json.loads(
        ok(durable("entities", "--json", "--include-deleted", "--store", store_url, cwd=tmp_path))
    )
    assert [e["entity_id"] for e in listed] == ["@account@carol"]
    table = ok(durable("entities", "--include-deleted", "--store", store_url, cwd=tmp_path))
    assert any("@account@carol" in line and "(none)" in line for line in table.splitlines())
    with worker(BANK, store_url, tmp_path):
        give_up = time.monotonic() + 30
        while entity_state("account", "carol", store_url, tmp_path)["state"] != {"balance": 30}:
            assert time.monotonic() < give_up, "the worker never applied the deposits"
            time.sleep(0.05)
        ok(durable("signal-entity", "account", "carol", "delete", "--store", store_url, cwd=tmp_path))
        while entity_state("account", "carol", store_url, tmp_path)["exists"]:
            assert time.monotonic() < give_up, "the worker never applied the delete"
            time.sleep(0.05)

    assert json.loads(ok(durable("entities", "--json", "--store", store_url, cwd=tmp_path))) == []
    purged = durable("purge-entities", "--store", store_url, cwd=tmp_path)
    assert "purged 1 empty entities" in ok(purged) + purged.stderr
    listed = json.loads(
        ok(durable("entities", "--json", "--include-deleted", "--store", store_url, cwd=tmp_path))
    )
    assert listed == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["signal-entity", "account", "k", "deposit", "--input", "{"], "--input is not valid JSON"),
        (["signal-entity", "acc@unt", "k", "deposit"], "entity name must be a non-empty string without '@'"),
        (["entity", "acc@unt", "k"], "entity name must be a non-empty string without '@'"),
    ],
)
def test_bad_entity_input_is_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    line = error_line(durable(*args, cwd=tmp_path), 2)
    assert message in line
    assert not list(tmp_path.iterdir()), "bad input must not create a store"


def test_a_worker_waits_for_its_database_and_never_shows_the_password(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*COMMAND, "worker", HELLO, "--store", "postgresql://app:s3cret-pw@127.0.0.1:1/db"],
            cwd=tmp_path,
            env=_environment(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 30
        while log.read_text().count("the store cannot be reached") < 2:  # the first line, then a count
            assert process.poll() is None, log.read_text()  # still waiting, not exited
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=30)
    output = log.read_text()
    assert exit_code == 0, output
    assert "127.0.0.1:1" in output and "ConnectionRefusedError" in output
    assert "s3cret-pw" not in output and "Traceback" not in output
    assert output.rstrip().endswith("worker stopped")


def test_list_names_an_unreadable_row_and_lists_the_rest(tmp_path: Path) -> None:
    store_url = existing_store(tmp_path / "corrupt.db")
    for instance_id in ("fine", "broken"):
        ok(durable("start", "anything", "--instance-id", instance_id, "--store", store_url, cwd=tmp_path))
    with sqlite3.connect(tmp_path / "corrupt.db") as conn:
        conn.execute("UPDATE instances SET runtime_status = 'Bogus' WHERE instance_id = 'broken'")
    result = durable("list", "--json", "--store", store_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [s["instance_id"] for s in json.loads(result.stdout)] == ["fine"]
    [warning] = [line for line in result.stderr.splitlines() if not line.startswith("store: ")]
    assert warning.startswith("warning: instance 'broken': corrupt instance row, runtime_status:")
