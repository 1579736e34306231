"""How the PostgreSQL store's SQL is loaded and how values cross it: rows, parameters and errors.

Kept apart from the store so the transaction logic in `postgres.py` reads without the plumbing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from asynkron_durable.errors import StoreError
from asynkron_durable.history import (
    InstanceRecord,
    RuntimeStatus,
    event_to_json,
)
from asynkron_durable.stores._paging import PageKey
from asynkron_durable.stores._rows import decode_event, record_from_row
from asynkron_durable.stores._sql_files import named_statements, sql_path, sql_text
from asynkron_durable.stores.base import (
    ENTITY_ID_PREFIX,
    ActivityTask,
    InboxMessage,
    InstanceFilter,
    Message,
    OrchestrationWorkItem,
)

_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_SCHEMA_NAME = re.compile(r"^(?!pg_)[a-z_][a-z0-9_]{0,47}$")


def _load_migrations() -> dict[int, str]:
    migrations: dict[int, str] = {}
    for entry in sql_path("postgres_migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            migrations[int(match[1])] = entry.read_text("utf-8")
    return dict(sorted(migrations.items()))


_QUERIES = named_statements("postgres_queries.sql")
SCHEMA_SQL = sql_text("postgres_schema.sql")
"""`sql/postgres_schema.sql`: the whole current schema, unqualified (run with search_path set)."""
MIGRATIONS = _load_migrations()
"""The files of `sql/postgres_migrations/` by number, in order."""
LATEST_VERSION = max(MIGRATIONS)
"""The schema version this code reads and writes; `open()` refuses schemas with a newer one."""
TERMINAL = frozenset(status.value for status in RuntimeStatus if status.is_terminal)
"""Stored `runtime_status` values of instances that a new one with the same id may replace."""

DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
"""What asyncpg and the network raise; the store turns each into `StoreError` at one place."""
RETRYABLE: tuple[type[BaseException], ...] = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.UniqueViolationError,
)
"""Errors of a transaction that lost a race (two creators of one id, a deadlock): rerun it."""
BAD_VALUES: tuple[type[BaseException], ...] = (asyncpg.DataError, asyncpg.ProgramLimitExceededError)
"""Errors caused by the values themselves (a NUL character, a key too long for an index)."""


def check_schema_name(schema: str) -> str:
    """`schema` if it is a plain lowercase identifier PostgreSQL accepts unquoted; else ValueError."""
    if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
        raise ValueError(
            f"invalid PostgreSQL schema name {schema!r}: use 1 to 48 lowercase letters, digits and "
            "underscores, starting with a letter or underscore and not with 'pg_'"
        )
    return schema


def queries_for(schema: str) -> dict[str, str]:
    """The named statements of `sql/postgres_queries.sql` with their tables in `schema`."""
    return {name: sql.replace("{schema}", f'"{schema}"') for name, sql in _QUERIES.items()}


def advisory_key(schema: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_xact_lock`, one per schema: migrations of
    different task hubs in one database never wait for each other."""
    digest = hashlib.sha256(f"asynkron_durable:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def channel_for(schema: str) -> str:
    """The NOTIFY channel of `schema` (at most 53 bytes: well under PostgreSQL's 63)."""
    return f"{schema}_wake"


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
"""Query parameters asyncpg takes secrets from."""
_KEY_VALUE_SECRET = re.compile(r"(?<![\w.-])((?:ssl)?password)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
"""A password in a libpq `key=value` string: quoted (with backslash escapes) or up to a blank."""


def redact(dsn: str) -> str:
    """`dsn` with its passwords masked (`***`), for log lines and error messages; the rest stays as
    written. Masked: the password of `user:password@`, the `password` and `sslpassword` query
    parameters (asyncpg reads both), and those keys of a libpq `key=value` string."""
    if not _URL.match(dsn):
        return _KEY_VALUE_SECRET.sub(lambda found: f"{found[1]}=***", dsn)
    try:
        parts = urlsplit(dsn)
        netloc, query = parts.netloc, parts.query
        if parts.password is not None:
            userinfo, _, hosts = netloc.rpartition("@")
            netloc = f"{userinfo.partition(':')[0]}:***@{hosts}"
        if query:
            query = "&".join(_masked_parameter(field) for field in query.split("&"))
    except ValueError:
        return "<unparseable DSN>"
    if (netloc, query) == (parts.netloc, parts.query):
        return dsn
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _masked_parameter(field: str) -> str:
    key, separator, _ = field.partition("=")
    if separator and unquote_plus(key).strip().lower() in _SECRET_PARAMETERS:
        return f"{key}=***"
    return field


def store_error(where: str, operation: str, exc: BaseException) -> StoreError:
    """The `StoreError` for a driver error: which store, which operation, what went wrong."""
    detail = str(exc) or ("no answer within command_timeout" if isinstance(exc, TimeoutError) else repr(exc))
    return StoreError(f"{where}: {operation} failed: {type(exc).__name__}: {detail}")


def aware(value: datetime) -> datetime:
    """A timezone-aware time as is; naive times are a caller bug (asyncpg would guess a zone)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: stores need timezone-aware UTC times")
    return value


def _optional_aware(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value)


def transpose(rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
    """Rows as column arrays: the parameters of an `unnest(...)` insert or update."""
    return [list(column) for column in zip(*rows, strict=True)]


def record_columns(records: Sequence[tuple[InstanceRecord, int]]) -> list[list[Any]]:
    """The 12 column arrays of instance rows (see the queries file), each record with the version
    the store decided on."""
    return transpose(_record_row(record, version) for record, version in records)


def _record_row(record: InstanceRecord, version: int) -> tuple[Any, ...]:
    return (
        record.instance_id,
        record.name,
        record.execution_id,
        record.runtime_status.value,
        record.input,
        record.output,
        record.custom_status,
        None if record.failure is None else record.failure.model_dump_json(),
        aware(record.created_at),
        aware(record.last_updated_at),
        record.parent_instance_id,
        version,
    )


@dataclass(frozen=True, slots=True)
class Claimed:
    """Claimed rows decoded: the work items, and what could not be read, with why."""

    items: list[OrchestrationWorkItem]
    unreadable: list[tuple[str, str]]
    """(instance id, error) of instance rows that cannot be decoded: to quarantine."""
    dead: list[tuple[int, str]]
    """(message id, error) of inbox rows that cannot be decoded: to move to dead_letters."""


def decode_claimed(rows: Iterable[Any]) -> Claimed:
    """Decode `select_claimed` rows, setting aside the rows that cannot be read."""
    claimed = Claimed([], [], [])
    for row in rows:
        instance_id = row["instance_id"]
        try:
            record = record_from_row(row)
        except StoreError as exc:
            claimed.unreadable.append((instance_id, str(exc)))
            continue
        messages: list[InboxMessage] = []
        columns = (row["message_ids"] or [], row["execution_ids"] or [], row["events"] or [])
        for message_id, execution_id, text in zip(*columns, strict=True):
            try:
                event = decode_event(text, instance_id, f"inbox message {message_id}")
            except StoreError as exc:
                claimed.dead.append((message_id, str(exc)))
                continue
            messages.append(InboxMessage(message_id, event, execution_id))
        claimed.items.append(OrchestrationWorkItem(record, messages))
    return claimed


def message_columns(messages: Iterable[Message]) -> list[list[Any]]:
    """The column arrays of `insert_messages`: instance ids, execution ids, events, visible_at."""
    return transpose(
        (m.instance_id, m.execution_id, event_to_json(m.event), _optional_aware(m.visible_at))
        for m in messages
    )


def activity_columns(tasks: Iterable[ActivityTask]) -> list[list[Any]]:
    """The column arrays of `insert_activities`: instance ids, execution ids, task ids, names, inputs."""
    return transpose((t.instance_id, t.execution_id, t.task_id, t.name, t.input) for t in tasks)


_ENTITY_IDS = (ENTITY_ID_PREFIX, ENTITY_ID_PREFIX[:-1] + chr(ord(ENTITY_ID_PREFIX[-1]) + 1))
"""Entity ids are exactly those in this [from, to) range ("C" collation: code-point order), so the
`entities` filter is a range of the primary key."""


def filter_args(query: InstanceFilter) -> list[Any]:
    """The filter parameters of `filter_instances` and `lock_matching_instances`: unset fields are
    NULL; the last three are the `entities` flag and the range of entity ids."""
    statuses = query.runtime_status
    return [
        None if statuses is None else sorted(status.value for status in statuses),
        _optional_aware(query.created_from),
        _optional_aware(query.created_to),
        query.instance_id_prefix or None,
        query.name,
        query.entities,
        *_ENTITY_IDS,
    ]


def page_args(after: PageKey | None) -> list[Any]:
    """The keyset parameters of `filter_instances`: where the previous page ended (NULL: start)."""
    if after is None:
        return [None, None]
    return [aware(after.created_at), after.instance_id]
