"""`asynkron-durable serve` and `binding`, in real processes over real HTTP: serving a native app
with in-process workers or (`--workers 0`) with a separate `worker` process, the refusal to serve
beyond loopback without a key, the README's curl example against an Azure sample, clients that
stall, and a database that is not up yet when the server starts."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from support.pg_schemas import drop_schema, with_schema
from support.tcp_relay import TcpRelay

REPO = Path(__file__).resolve().parents[1]
HELLO = str(REPO / "samples" / "hello_cities.py")
COMMAND = [sys.executable, "-m", "asynkron_durable.cli"]
WEBHOOK = "/runtime/webhooks/durabletask"
GREETINGS = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
UNREACHABLE = "the store cannot be reached"


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNKRON_DURABLE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@contextmanager
def _process(args: list[str], log_path: Path, cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A command in the background; SIGTERM at the end, which must make it exit 0."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*COMMAND, *args], cwd=cwd, env=_environment(), stdout=subprocess.DEVNULL, stderr=log
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=30)
        output = log_path.read_text()
        assert exit_code == 0, output
        assert "Traceback" not in output, output


def _wait_for(check: Callable[[], Any], what: str, deadline: float = 30.0) -> Any:
    end = time.monotonic() + deadline
    while not (result := check()):
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


@contextmanager
def served(tmp_path: Path, *args: str, port: str = "0", log_path: Path | None = None) -> Iterator[str]:
    """`serve ARGS` on a free port (or `port`), logging to `log_path`; yields the origin it announced."""
    log_path = log_path or tmp_path / f"serve-{time.monotonic_ns()}.log"
    with _process(["serve", *args, "--port", port], log_path, tmp_path) as process:

        def announced() -> str | None:
            assert process.poll() is None, log_path.read_text()
            found = re.search(r" on (http://\S+:\d+) ", log_path.read_text())
            return found.group(1) if found else None

        yield _wait_for(announced, "the server to announce itself")
    assert "server stopped" in log_path.read_text()


def _completed(http: httpx.Client, url: str) -> dict[str, Any]:
    """Poll a status URL until it answers 200 (the instance finished)."""

    def check() -> dict[str, Any] | None:
        answer = http.get(url)
        return answer.json() if answer.status_code == 200 else None

    result: dict[str, Any] = _wait_for(check, f"{url} to answer 200")
    return result


def test_serve_runs_orchestrations_with_in_process_workers(tmp_path: Path) -> None:
    with served(tmp_path, HELLO, "--store", f"sqlite:///{tmp_path}/d.db") as origin, httpx.Client() as http:
        assert origin.startswith("http://127.0.0.1:")
        assert http.get(f"{origin}/openapi.json").status_code == 200
        started = http.post(f"{origin}{WEBHOOK}/orchestrators/hello_cities")
        assert started.status_code == 202, started.text
        status = _completed(http, started.json()["statusQueryGetUri"])
        assert status["runtimeStatus"] == "Completed" and status["output"] == GREETINGS
        unknown = http.post(f"{origin}{WEBHOOK}/orchestrators/nope")
        assert unknown.status_code == 400


def test_api_only_server_with_a_separate_worker(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/d.db"
    with (
        served(tmp_path, HELLO, "--store", store, "--workers", "0", "--api-key", "s3cret") as origin,
        httpx.Client() as http,
    ):
        assert http.post(f"{origin}{WEBHOOK}/orchestrators/hello_cities").status_code == 401
        started = http.post(f"{origin}{WEBHOOK}/orchestrators/hello_cities?code=s3cret")
        assert started.status_code == 202, started.text
        url = started.json()["statusQueryGetUri"]
        assert http.get(url).json()["runtimeStatus"] == "Pending"  # nobody works in the server
        with _process(["worker", HELLO, "--store", store], tmp_path / "worker.log", tmp_path):
            assert _completed(http, url)["output"] == GREETINGS


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com"])
def test_non_loopback_host_without_key_is_refused(tmp_path: Path, host: str) -> None:
    result = subprocess.run(
        [*COMMAND, "serve", HELLO, "--host", host, "--port", "0", "--store", f"sqlite:///{tmp_path}/d.db"],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: refusing to serve on non-loopback host {host!r} without an API key; "
        "set ASYNKRON_DURABLE_API_KEY or --api-key-file, or pass --insecure"
    ]
    assert not (tmp_path / "d.db").exists()  # refused before anything was opened


def test_insecure_allows_serving_on_all_interfaces(tmp_path: Path) -> None:
    with (
        served(
            tmp_path, HELLO, "--host", "0.0.0.0", "--insecure", "--store", f"sqlite:///{tmp_path}/d.db"
        ) as origin,
        httpx.Client() as http,
    ):
        assert origin.startswith("http://127.0.0.1:")  # where this machine reaches it
        assert http.get(f"{origin}{WEBHOOK}/instances").status_code == 200


def test_binding_prints_the_client_binding(tmp_path: Path) -> None:
    result = subprocess.run(
        [*COMMAND, "binding", "--url", "http://127.0.0.1:7071/", "--api-key", "k", "--task-hub", "hub"],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    binding = json.loads(result.stdout)
    assert binding["rpcBaseUrl"] == "http://127.0.0.1:7071/durabletask/code/k/"
    assert binding["taskHubName"] == "hub"
    assert binding["managementUrls"]["statusQueryGetUri"].startswith(
        "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/INSTANCEID?"
    )
    bad = subprocess.run(
        [*COMMAND, "binding", "--url", "localhost:7071"],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: --url must be an http(s) origin")


def _binding(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "binding", "--url", "http://127.0.0.1:7071", *args],
        cwd=tmp_path,
        env=_environment() | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_api_key_comes_from_a_file_or_the_environment_and_the_command_line_is_warned_about(
    tmp_path: Path,
) -> None:
    (tmp_path / "key.txt").write_text("from-file\n")
    from_file = _binding(tmp_path, "--api-key-file", "key.txt")
    assert from_file.returncode == 0 and from_file.stderr == ""
    assert json.loads(from_file.stdout)["rpcBaseUrl"].endswith("/code/from-file/")
    from_env = _binding(tmp_path, env={"ASYNKRON_DURABLE_API_KEY": "from-env"})
    assert from_env.returncode == 0 and from_env.stderr == ""
    assert json.loads(from_env.stdout)["rpcBaseUrl"].endswith("/code/from-env/")
    visible = _binding(tmp_path, "--api-key", "on-the-line")
    assert visible.returncode == 0
    assert "visible to every local user" in visible.stderr and "--api-key-file" in visible.stderr
    both = _binding(tmp_path, "--api-key-file", "key.txt", "--api-key", "x")
    assert both.returncode == 2 and both.stderr.startswith("error: give the API key once")
    (tmp_path / "empty.txt").write_text("\n")
    empty = _binding(tmp_path, "--api-key-file", "empty.txt")
    assert empty.returncode == 2 and "is empty" in empty.stderr


def test_readme_curl_example_against_the_azure_sample(tmp_path: Path) -> None:
    pytest.importorskip("asynkron_durable_azure")
    app = str(REPO / "samples" / "azure" / "hello_chaining_v2")
    with served(tmp_path, app, "--store", f"sqlite:///{tmp_path}/d.db") as origin, httpx.Client() as http:
        started = http.post(f"{origin}/api/orchestrators/hello_orchestrator")
        assert started.status_code == 202, started.text
        assert started.headers["location"] == started.json()["statusQueryGetUri"]
        status = _completed(http, started.json()["statusQueryGetUri"])
        assert status["runtimeStatus"] == "Completed" and status["output"] == GREETINGS


def test_a_client_that_never_sends_its_body_gets_408_and_the_api_keeps_answering(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'slow.db'}"
    with served(tmp_path, HELLO, "--store", store, "--workers", "0", "--body-timeout", "0.5") as origin:
        host, port = origin.removeprefix("http://").rsplit(":", 1)
        stalled = [socket.create_connection((host, int(port)), timeout=10) for _ in range(20)]
        try:
            for conn in stalled:  # headers that promise a body, and then nothing
                conn.sendall(
                    f"POST {WEBHOOK}/orchestrators/hello_cities HTTP/1.1\r\nHost: {host}\r\n"
                    "Content-Type: application/json\r\nContent-Length: 10\r\n\r\n".encode()
                )
            with httpx.Client() as http:  # meanwhile the API answers
                assert http.get(f"{origin}{WEBHOOK}/instances").status_code == 200
            answers = [_response(conn) for conn in stalled]
        finally:
            for conn in stalled:
                conn.close()
    assert all(answer.startswith("HTTP/1.1 408") for answer in answers), answers[0]
    assert "did not arrive within 0.5 s" in answers[0]


def test_a_client_that_stalls_in_its_headers_is_cut_off_and_the_api_keeps_answering(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'slow.db'}"
    with served(tmp_path, HELLO, "--store", store, "--workers", "0", "--body-timeout", "0.5") as origin:
        host, port = origin.removeprefix("http://").rsplit(":", 1)
        silent = socket.create_connection((host, int(port)), timeout=10)  # sends nothing at all
        halves = [socket.create_connection((host, int(port)), timeout=10) for _ in range(20)]
        reused = socket.create_connection((host, int(port)), timeout=10)  # a whole request first
        stalled = [silent, *halves, reused]
        try:
            for conn in halves:  # half a request head, and never the blank line that ends it
                conn.sendall(f"GET {WEBHOOK}/instances HTTP/1.1\r\nHost: {host}\r\n".encode())
            reused.sendall(f"GET {WEBHOOK}/instances HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert _response(reused).startswith("HTTP/1.1 200")
            reused.sendall(f"GET {WEBHOOK}/instances HTTP/1.1\r\nHost: {host}\r\n".encode())
            with httpx.Client() as http:  # meanwhile the API answers
                assert http.get(f"{origin}{WEBHOOK}/instances").status_code == 200
            # The server closes each within the 0.5 s deadline; recv raises TimeoutError after 10 s.
            ends = [conn.recv(4096) for conn in stalled]
        finally:
            for conn in stalled:
                conn.close()
    assert ends == [b""] * len(stalled)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_waits_for_an_unreachable_database_and_a_signal_still_stops_it(
    tmp_path: Path, signum: signal.Signals
) -> None:
    log_path = tmp_path / "serve.log"
    store = "postgresql://app:pw-in-userinfo@127.0.0.1:1/db?password=pw-in-query"  # nothing on port 1
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*COMMAND, "serve", HELLO, "--port", "0", "--store", store],
            cwd=tmp_path,
            env=_environment(),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:

        def counted() -> bool:
            assert process.poll() is None, log_path.read_text()  # still waiting, not exited
            return log_path.read_text().count(UNREACHABLE) >= 2  # the first line, then a count

        _wait_for(counted, "a line saying the store cannot be reached, then one counting the retries")
    finally:
        process.send_signal(signum)
        exit_code = process.wait(timeout=30)
    output = log_path.read_text()
    assert exit_code == 0, output
    lines = [line for line in output.splitlines() if UNREACHABLE in line]
    assert re.search(rf"{UNREACHABLE} \(\d+ more times in \d+ s, retrying\)", lines[1]), lines
    assert "127.0.0.1:1" in output and "ConnectionRefusedError" in output
    assert "pw-in-userinfo" not in output and "pw-in-query" not in output, output
    assert "Traceback" not in output and output.rstrip().endswith("server stopped"), output


def test_serve_answers_once_its_database_comes_up(tmp_path: Path, pg_dsn: str) -> None:
    server = urlsplit(pg_dsn)
    relay = TcpRelay((server.hostname or "127.0.0.1", server.port or 5432))
    userinfo = server.netloc.rpartition("@")[0]
    through_relay = urlunsplit(server._replace(netloc=f"{userinfo}@127.0.0.1:{relay.port}".lstrip("@")))
    schema = f"t_{uuid.uuid4().hex}"
    store = with_schema(through_relay, schema)
    log_path = tmp_path / "serve.log"
    try:
        with (
            served(tmp_path, HELLO, "--store", store, log_path=log_path) as origin,
            httpx.Client(timeout=30) as http,
        ):
            _wait_for(lambda: UNREACHABLE in log_path.read_text(), "a line saying the store is unreachable")
            with pytest.raises(httpx.TimeoutException):  # the connection waits for the store
                http.get(f"{origin}{WEBHOOK}/instances", timeout=0.5)
            relay.open()  # the database is up
            assert http.get(f"{origin}{WEBHOOK}/instances").status_code == 200  # answered once it is open
            started = http.post(f"{origin}{WEBHOOK}/orchestrators/hello_cities")
            assert started.status_code == 202, started.text
            assert _completed(http, started.json()["statusQueryGetUri"])["output"] == GREETINGS
    finally:
        relay.close()
        asyncio.run(drop_schema(pg_dsn, schema))


def _response(conn: socket.socket) -> str:
    """One whole HTTP response off a raw connection: headers, then the body its length announces."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _received(conn, data)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += _received(conn, body)
    return (head + b"\r\n\r\n" + body).decode("latin-1")


def _received(conn: socket.socket, so_far: bytes) -> bytes:
    chunk = conn.recv(4096)
    assert chunk, f"the server closed the connection after {so_far!r}"
    return chunk
