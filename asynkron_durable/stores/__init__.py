"""State stores: where instances, histories, inboxes and the activity queue live.

`store_from_url` picks a backend from a URL so applications and the CLI configure storage with one
string; the classes can also be constructed directly.
"""

from __future__ import annotations

from asynkron_durable.stores.base import (
    ActivityResult,
    ActivityTask,
    ActivityWorkItem,
    EpisodeCommit,
    InboxMessage,
    InstanceFilter,
    InstancePage,
    LeaseRenewal,
    Message,
    NewInstance,
    OrchestrationWorkItem,
    StateStore,
)
from asynkron_durable.stores.memory import InMemoryStateStore
from asynkron_durable.stores.sqlite import SqliteStateStore

__all__ = [
    "ActivityResult",
    "ActivityTask",
    "ActivityWorkItem",
    "EpisodeCommit",
    "InMemoryStateStore",
    "InboxMessage",
    "InstanceFilter",
    "InstancePage",
    "LeaseRenewal",
    "Message",
    "NewInstance",
    "OrchestrationWorkItem",
    "SqliteStateStore",
    "StateStore",
    "store_from_url",
]

_SUPPORTED = "memory:// or sqlite:///path/to/file.db (sqlite:////absolute/path.db)"


def store_from_url(url: str) -> StateStore:
    """Make an unopened store from a URL: `memory://`, `sqlite:///relative.db`, `sqlite:////abs.db`.

    Raises `ValueError` naming what was wrong and what is supported.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise ValueError(f"store URL {url!r} has no scheme; use {_SUPPORTED}")
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
    raise ValueError(f"unsupported store URL scheme {scheme!r} in {url!r}; use {_SUPPORTED}")
