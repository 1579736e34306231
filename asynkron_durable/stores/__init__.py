"""State stores: where instances, histories, inboxes and the activity queue live.

`store_from_url` picks a backend from a URL so applications and the CLI configure storage with one
string; the classes can also be constructed directly.
"""

from __future__ import annotations

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
from asynkron_durable.stores.memory import InMemoryStateStore
from asynkron_durable.stores.postgres import PostgresStateStore
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
    "redact",
    "store_from_url",
]

_SUPPORTED = (
    "memory://, sqlite:///path/to/file.db (sqlite:////absolute/path.db) or "
    "postgresql://user@host/database?schema=name"
)


def store_from_url(url: str) -> StateStore:
    """Make an unopened store from a URL: `memory://`, `sqlite:///relative.db`, `sqlite:////abs.db`,
    `postgresql://user:password@host:port/database` (or `postgres://`); for PostgreSQL an optional
    `?schema=NAME` picks the schema (default `asynkron_durable`), other parameters go to asyncpg.

    Raises `ValueError` naming what was wrong and what is supported.
    """
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
        return SqliteStateStore(path)
    if scheme in ("postgresql", "postgres"):
        return _postgres_from_url(url)
    raise ValueError(f"unsupported store URL scheme {scheme!r} in {redact(url)!r}; use {_SUPPORTED}")


def _postgres_from_url(url: str) -> PostgresStateStore:
    """Split the store's own `schema` parameter off a PostgreSQL URL; the rest is asyncpg's DSN."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in params if key == "schema"]
    if len(schemas) > 1:
        raise ValueError(f"store URL {redact(url)!r} gives ?schema= more than once")
    dsn = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in params if k != "schema"])))
    if not schemas:
        return PostgresStateStore(dsn)
    try:
        return PostgresStateStore(dsn, schema=schemas[0])
    except ValueError as exc:
        raise ValueError(f"store URL {redact(url)!r}: {exc}") from exc
