"""Every Azure Durable Functions sample under samples/azure runs unchanged through the real
`asynkron-durable` command in a fresh process, exactly as samples/azure/README.md tells a reader to
run it, on SQLite and on PostgreSQL, and prints the output the README promises.

PostgreSQL runs need ASYNKRON_DURABLE_PG_DSN (each test gets a schema of its own, named in the
store URL and dropped afterwards); without it they skip.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.azure_samples import (
    AZURE_SAMPLES,
    EXPECTED_OUTPUT,
    HELLO,
    README_COMMANDS,
    REPO,
    documented_commands,
)
from support.pg_schemas import drop_schema, with_schema

PG_DSN_VARIABLE = "ASYNKRON_DURABLE_PG_DSN"

# Like tests/test_samples.py, warnings are errors, except the advisory azure-functions' payload
# codec issues once per process (a DeprecationWarning about its loose typing mode): Azure's worker
# only logs it, and every app that reads an input triggers it.
WARNING_FILTERS = ["-W", "error", "-W", "ignore::DeprecationWarning:azure.functions._durable_functions"]


def durable(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the command in a fresh interpreter, from the repository root, with its own temp dir."""
    return subprocess.run(
        [sys.executable, *WARNING_FILTERS, "-m", "asynkron_durable.cli", *args],
        cwd=REPO,
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ASYNKRON_DURABLE_STORE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["TMPDIR"] = str(tmp_path)  # where the retries sample keeps its attempt counters
    return env


def last_json_line(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL of each backend: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'durable.db'}"
        return
    dsn = os.environ.get(PG_DSN_VARIABLE)
    if not dsn:
        pytest.skip(f"{PG_DSN_VARIABLE} is not set: PostgreSQL tests skipped")
    schema = f"t_{uuid.uuid4().hex}"
    try:
        yield with_schema(dsn, schema)
    finally:
        asyncio.run(drop_schema(dsn, schema))


def test_every_sample_is_documented_with_an_expected_output() -> None:
    folders = {p.name for p in AZURE_SAMPLES.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders == {folder for folder, _ in EXPECTED_OUTPUT}
    assert set(README_COMMANDS) == set(EXPECTED_OUTPUT)


V2_SAMPLES = sorted(p.parent.name for p in AZURE_SAMPLES.glob("*/function_app.py"))


@pytest.mark.parametrize("folder", V2_SAMPLES)
def test_a_command_in_a_sample_docstring_is_the_readmes(folder: str) -> None:
    """The run commands a v2 app's docstring shows are the README's, so the two cannot drift
    (v1 apps, having no function_app.py, keep theirs in the README only)."""
    app = AZURE_SAMPLES / folder / "function_app.py"
    docstring = ast.get_docstring(ast.parse(app.read_text())) or ""
    in_docstring = documented_commands(docstring)
    assert in_docstring, f"{folder}/function_app.py documents no run command"
    assert in_docstring == {key: README_COMMANDS[key] for key in in_docstring}


@pytest.mark.parametrize("sample", sorted(EXPECTED_OUTPUT), ids=lambda key: "-".join(key))
def test_sample_runs_as_documented(sample: tuple[str, str], store_url: str, tmp_path: Path) -> None:
    result = durable(*README_COMMANDS[sample], "--store", store_url, tmp_path=tmp_path)
    assert last_json_line(result) == EXPECTED_OUTPUT[sample]


def test_a_v2_app_also_loads_from_its_function_app_py(store_url: str, tmp_path: Path) -> None:
    result = durable(
        "run", "samples/azure/hello_chaining_v2/function_app.py", "hello_orchestrator",
        "--store", store_url, tmp_path=tmp_path,
    )  # fmt: skip
    assert last_json_line(result) == HELLO


def test_sub_orchestrations_run_under_the_ids_the_parent_chose(store_url: str, tmp_path: Path) -> None:
    run = durable(
        "run", "samples/azure/sub_orchestrations", "ship_order", "--instance-id", "order-7",
        "--input", '["kettle"]', "--store", store_url, tmp_path=tmp_path,
    )  # fmt: skip
    assert last_json_line(run) == {
        "shipped": ["kettle packed, kettle shipped"],
        "receipt": "receipt: 1 items shipped",
    }
    child = json.loads(
        durable("status", "--json", "order-7-kettle", "--store", store_url, tmp_path=tmp_path).stdout
    )
    assert child["runtime_status"] == "Completed"
    assert child["output"] == "kettle packed, kettle shipped"


def test_the_last_custom_status_stays_with_the_instance(store_url: str, tmp_path: Path) -> None:
    run = durable(
        "run", "samples/azure/custom_status", "order_progress", "--instance-id", "progress-1",
        "--input", '["pick", "pack"]', "--store", store_url, tmp_path=tmp_path,
    )  # fmt: skip
    expected = {"done": ["pick ok", "pack ok"], "progress": "2/2"}
    assert last_json_line(run) == expected
    status = json.loads(
        durable("status", "--json", "progress-1", "--store", store_url, tmp_path=tmp_path).stdout
    )
    assert status["custom_status"] == expected


def test_the_counter_entity_keeps_its_state(store_url: str, tmp_path: Path) -> None:
    run = durable(
        "run", "samples/azure/counter_entity", "counter_orchestrator", "--input", "[1, 2, 3]",
        "--store", store_url, tmp_path=tmp_path,
    )  # fmt: skip
    assert last_json_line(run) == 6
    entity = json.loads(durable("entity", "Counter", "c1", "--store", store_url, tmp_path=tmp_path).stdout)
    assert entity == {"exists": True, "state": 6}
