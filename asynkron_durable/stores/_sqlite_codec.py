"""How the SQLite store's SQL is loaded and how values cross it: rows and parameters.

Kept apart from the store so the transaction logic in `sqlite.py` reads without the plumbing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asynkron_durable.errors import StoreError
from asynkron_durable.history import (
    InstanceRecord,
    event_to_json,
)
from asynkron_durable.stores._paging import PageKey
from asynkron_durable.stores._sql_files import named_statements, sql_text
from asynkron_durable.stores.base import ENTITY_ID_PREFIX, InstanceFilter, Message


def _split_statements(script: str) -> list[str]:
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    return statements


QUERIES = named_statements("sqlite_queries.sql")
"""The named statements of `sql/sqlite_queries.sql`, by name."""
SCHEMA = _split_statements(sql_text("sqlite_schema.sql"))
"""The statements of `sql/sqlite_schema.sql`, in order."""


def open_probe(path: Path) -> sqlite3.Connection:
    """A read-only connection used on the event loop itself for the store's idle checks."""
    probe = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    probe.execute("PRAGMA busy_timeout = 0")
    probe.execute("PRAGMA query_only = ON")
    return probe


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether `exc` says another connection holds a lock (worth trying again), not a real fault."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def try_open(path: Path) -> None:
    """Open and close `path`: fails here, with sqlite3's error, when it cannot be opened."""
    sqlite3.connect(path).close()


def epoch(value: datetime) -> float:
    """A timezone-aware time as REAL epoch seconds (indexable); naive times are a caller bug."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: stores need timezone-aware UTC times")
    return value.timestamp()


def optional_epoch(value: datetime | None) -> float | None:
    """`epoch`, passing None through (NULL visible_at / lease columns)."""
    return None if value is None else epoch(value)


def from_epoch(value: float) -> datetime:
    """REAL epoch seconds back to a timezone-aware UTC datetime."""
    return datetime.fromtimestamp(value, UTC)


def json_list(values: Iterable[str | int]) -> str:
    """A list parameter for `json_each(:ids)`: one statement, no variable-count limits."""
    return json.dumps(list(values))


def _prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None: no bound).

    SQLite compares TEXT bytewise and UTF-8 preserves code-point order, so a range scan on
    [prefix, end) is exact and uses the primary key, with no LIKE/GLOB escaping to get wrong.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


_ENTITY_FROM = ENTITY_ID_PREFIX
_ENTITY_TO = _prefix_end(ENTITY_ID_PREFIX) or ""
"""Entity ids are exactly those in [_ENTITY_FROM, _ENTITY_TO): a range of the primary key."""


def record_params(record: InstanceRecord, version: int, *, instance_id: str | None = None) -> dict[str, Any]:
    """The named parameters of an instances row, with the version the store decided on (and the
    id, when a message creating its target gives it)."""
    return {
        "instance_id": record.instance_id if instance_id is None else instance_id,
        "name": record.name,
        "execution_id": record.execution_id,
        "runtime_status": record.runtime_status.value,
        "input": record.input,
        "output": record.output,
        "custom_status": record.custom_status,
        "failure": None if record.failure is None else record.failure.model_dump_json(),
        "created_at": epoch(record.created_at),
        "last_updated_at": epoch(record.last_updated_at),
        "parent_instance_id": record.parent_instance_id,
        "version": version,
    }


def message_params(message: Message) -> dict[str, Any]:
    """The named parameters of `insert_message`."""
    return {
        "instance_id": message.instance_id,
        "execution_id": message.execution_id,
        "event": event_to_json(message.event),
        "visible_at": optional_epoch(message.visible_at),
    }


def _id_range(query: InstanceFilter) -> tuple[str | None, str | None]:
    """The [from, to) id range the prefix and `entities=True` allow together (None: unbounded)."""
    prefix = query.instance_id_prefix or None
    low, high = (None, None) if prefix is None else (prefix, _prefix_end(prefix))
    if query.entities:
        low = _ENTITY_FROM if low is None else max(low, _ENTITY_FROM)
        high = _ENTITY_TO if high is None else min(high, _ENTITY_TO)
    return low, high


def filter_params(query: InstanceFilter, after: PageKey | None, limit: int) -> dict[str, Any]:
    """The named parameters of `filter_instances`: unset filter fields are NULL (match all)."""
    statuses = query.runtime_status
    id_from, id_to = _id_range(query)
    exclude = query.entities is False
    return {
        "after_created_at": float("-inf") if after is None else epoch(after.created_at),
        "after_instance_id": "" if after is None else after.instance_id,
        "statuses": None if statuses is None else json_list(sorted(s.value for s in statuses)),
        "created_from": optional_epoch(query.created_from),
        "created_to": optional_epoch(query.created_to),
        "id_from": id_from,
        "id_to": id_to,
        "not_from": _ENTITY_FROM if exclude else None,
        "not_to": _ENTITY_TO if exclude else None,
        "name": query.name,
        "limit": limit,
    }


@contextmanager
def driver_errors(path: Path) -> Iterator[None]:
    """The one boundary where sqlite3/aiosqlite errors become `StoreError`."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite store {str(path)!r}: {type(exc).__name__}: {exc}") from exc
