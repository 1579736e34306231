"""The SQL files the SQL stores ship, read from the package: one loader for both backends.

A queries file holds named statements, each under a header line `-- name --`; a store runs them by
name, so every statement it sends can be read (and reviewed) in one file.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.abc import Traversable

_HEADER = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)


def sql_path(name: str) -> Traversable:
    """A file or folder of the package's `stores/sql/`."""
    return resources.files("asynkron_durable.stores") / "sql" / name


def sql_text(name: str) -> str:
    """The text of one file of `stores/sql/`."""
    return sql_path(name).read_text("utf-8")


def named_statements(name: str) -> dict[str, str]:
    """The statements of a queries file of `stores/sql/`, by the names their headers give."""
    parts = _HEADER.split(sql_text(name))
    return {header: body.strip() for header, body in zip(parts[1::2], parts[2::2], strict=True)}
