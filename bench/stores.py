"""A fresh, empty store for one run: a temp SQLite file, a new PostgreSQL schema (dropped after),
or memory (in-process only). Yields the URL workers are given; `memory://` runs share one object."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from asynkron_durable import InMemoryStateStore, StateStore, store_from_url


def kind_of(url: str) -> str:
    """`sqlite`, `postgres` or `memory`: the name figures and result files use."""
    scheme = url.partition("://")[0].lower()
    return {"postgresql": "postgres", "postgres": "postgres"}.get(scheme, scheme)


@dataclass
class BenchStore:
    url: str
    """What a worker or client is given: it names this run's database or schema."""
    kind: str
    shared: StateStore | None = None
    """The one store object of a memory:// run (memory cannot be shared between objects)."""

    def make(self) -> StateStore:
        """A new, unopened store object on this run's data (as another process would have)."""
        return self.shared if self.shared is not None else store_from_url(self.url)

    async def close(self, store: StateStore) -> None:
        if store is not self.shared:
            await store.close()


def _with_schema(url: str, schema: str) -> str:
    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode([*params, ("schema", schema)])))


def _without_schema(url: str) -> str:
    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode(params)))


@contextlib.asynccontextmanager
async def fresh_store(url: str) -> AsyncIterator[BenchStore]:
    """`url` names the server or the kind (`sqlite:///` alone means a temp file)."""
    kind = kind_of(url)
    if kind == "memory":
        yield BenchStore("memory://", kind, InMemoryStateStore())
    elif kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="bench-"))
        try:
            yield BenchStore(f"sqlite:///{folder / 'bench.db'}", kind)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    elif kind == "postgres":
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        try:
            yield BenchStore(_with_schema(url, schema), kind)
        finally:
            await drop_schema(_without_schema(url), schema)
    else:
        raise ValueError(f"unsupported store {url!r}: use sqlite:///, postgresql://... or memory://")


async def drop_schema(dsn: str, schema: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
