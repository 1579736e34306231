"""The layering the docs promise ("How the code is laid out"): lower layers never import higher ones,
and no module grows past a size a reader takes in at once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "asynkron_durable"

LOWER = ["engine", "stores", "entities", "azure_history", "history.py", "errors.py", "serialization.py"]
"""What the runtime, the client and the front ends build on."""

HIGHER = (
    "asynkron_durable.worker",
    "asynkron_durable.http",
    "asynkron_durable.cli",
    "asynkron_durable.cli_options",
    "asynkron_durable.app_loader",
    "asynkron_durable.store_opening",
)
"""What those lower layers must not know about."""

LONGEST_MODULE = 500


def _modules(entry: str) -> list[Path]:
    path = PACKAGE / entry
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
    return names


@pytest.mark.parametrize("entry", LOWER)
def test_lower_layers_import_nothing_above_them(entry: str) -> None:
    upward = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in _modules(entry)
        for name in _imported(path)
        if any(name == higher or name.startswith(f"{higher}.") for higher in HIGHER)
    }
    assert upward == set()


def test_no_module_is_longer_than_a_reader_takes_in() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text("utf-8").splitlines())) > LONGEST_MODULE
    }
    assert long == {}
