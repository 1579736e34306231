"""State stores: where instances, histories, inboxes and the activity queue live.

`store_from_url` picks a backend from a URL so applications and the CLI configure storage with one
string; the classes can also be constructed directly.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from asynkron_durable.stores._postgres_codec import redact
from asynkron_durable.stores.base import (
    ActivityClaim,
    ActivityResult,
    ActivityStep,
    ActivityTask,
    ActivityWorkItem,
    Committed,
    Completion,
    DeadLetter,
    EpisodeCommit,
    InboxMessage,
    InstanceFilter,
    InstancePage,
    LeaseRenewal,
    Message,
    NewInstance,
    OrchestrationWorkItem,
    StateStore,
    UnreadableInstance,
    Work,
)
from asynkron_durable.stores.hubs import (
    DEFAULT_TASK_HUB,
    check_task_hub,
    postgres_schema_for,
    sqlite_path_for,
)
from asynkron_durable.stores.memory import InMemoryStateStore
from asynkron_durable.stores.postgres import DEFAULT_SCHEMA, PostgresStateStore
from asynkron_durable.stores.sqlite import SqliteStateStore
from asynkron_durable.stores.workers import WorkerRecord, WorkerRegistry

__all__ = [
    "ActivityClaim",
    "ActivityResult",
    "ActivityStep",
    "ActivityTask",
    "ActivityWorkItem",
    "Committed",
    "Completion",
    "DeadLetter",
    "EpisodeCommit",
    "InMemoryStateStore",
    "InboxMessage",
    "InstanceFilter",
    "InstancePage",
    "LeaseRenewal",
    "Message",
    "NewInstance",
    "OrchestrationWorkItem",
    "PostgresStateStore",
    "SqliteStateStore",
    "StateStore",
    "UnreadableInstance",
    "Work",
    "WorkerRecord",
    "WorkerRegistry",
    "as_store",
    "check_task_hub",
    "redact",
    "store_from_url",
]

_SUPPORTED = (
    "memory://, sqlite:///path/to/file.db (sqlite:////absolute/path.db) or "
    "postgresql://user@host/database?schema=name"
)


def store_from_url(url: str, task_hub: str | None = None) -> StateStore:
    """Make an unopened store from a URL: `memory://`, `sqlite:///relative.db`, `sqlite:////abs.db`,
    `postgresql://user:password@host:port/database` (or `postgres://`); for PostgreSQL an optional
    `?schema=NAME` picks the schema (default `asynkron_durable`), other parameters go to asyncpg.
    The store serves `task_hub` (default: `default`; see `stores/hubs.py`).

    Raises `ValueError` naming what was wrong and what is supported.
    """
    hub = check_task_hub(task_hub or DEFAULT_TASK_HUB)
    scheme, separator, rest = url.partition("://")
    if not separator:
        shown = repr(url) if "@" not in url else "(not shown: it may hold a password)"
        raise ValueError(f"store URL {shown} has no scheme; use {_SUPPORTED}")
    scheme = scheme.lower()
    if scheme == "memory":
        if rest:
            raise ValueError(f"store URL {url!r}: memory:// takes no path; use 'memory://'")
        return InMemoryStateStore()
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise ValueError(
                f"store URL {url!r} has no file path; use sqlite:///relative/path.db "
                "or sqlite:////absolute/path.db"
            )
        path = rest[1:]
        if path == ":memory:":
            raise ValueError(
                f"store URL {url!r}: an in-memory SQLite database cannot be shared between "
                "connections or processes; use memory:// for an in-memory store"
            )
        return SqliteStateStore(sqlite_path_for(Path(path), hub))
    if scheme in ("postgresql", "postgres"):
        return _postgres_from_url(url, hub)
    raise ValueError(f"unsupported store URL scheme {scheme!r} in {redact(url)!r}; use {_SUPPORTED}")


def as_store(store: StateStore | str, task_hub: str | None = None) -> StateStore:
    """`store` itself, or the store its URL names for `task_hub` (a store object serves the hub it
    was made for: giving a hub with one is a `ValueError`)."""
    if isinstance(store, str):
        return store_from_url(store, task_hub)
    if task_hub is not None:
        raise ValueError("task_hub goes with a store URL: a store object already serves its hub")
    return store


def _postgres_from_url(url: str, task_hub: str) -> PostgresStateStore:
    """Split the store's own `schema` parameter off a PostgreSQL URL; the rest is asyncpg's DSN."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in params if key == "schema"]
    if len(schemas) > 1:
        raise ValueError(f"store URL {redact(url)!r} gives ?schema= more than once")
    dsn = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in params if k != "schema"])))
    schema = postgres_schema_for(schemas[0] if schemas else DEFAULT_SCHEMA, task_hub)
    try:
        return PostgresStateStore(dsn, schema=schema)
    except ValueError as exc:
        raise ValueError(f"store URL {redact(url)!r}, task hub {task_hub!r}: {exc}") from exc
