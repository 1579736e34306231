"""The store that worker processes and the test share: a SQLite file in the test's folder, or a
fresh PostgreSQL schema (dropped afterwards; skipped when ASYNKRON_DURABLE_PG_DSN is unset)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.pg_schemas import drop_schema, with_schema

from asynkron_durable.stores import StateStore, store_from_url

PG_DSN_VARIABLE = "ASYNKRON_DURABLE_PG_DSN"


@contextlib.asynccontextmanager
async def shared_store(backend: str, tmp_path: Path, name: str) -> AsyncIterator[tuple[str, StateStore]]:
    """The URL the workers get and the test's own opened store on the same data."""
    async with contextlib.AsyncExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / f'{name}.db'}"
        else:
            dsn = os.environ.get(PG_DSN_VARIABLE)
            if not dsn:
                pytest.skip(f"{PG_DSN_VARIABLE} is not set")
            schema = f"{name}_{uuid.uuid4().hex[:12]}"
            url = with_schema(dsn, schema)
            stack.push_async_callback(drop_schema, dsn, schema)
        store = store_from_url(url)
        await store.open()
        stack.push_async_callback(store.close)
        yield url, store
