"""Shared fixtures. `store` runs a test against every state-store backend.

A backend is one entry in STORE_FACTORIES: a function from the test's tmp_path to an async context
manager yielding an unopened store and cleaning up after it. The PostgreSQL backend reads its server
from ASYNKRON_DURABLE_PG_DSN: unset, its tests skip; set but unreachable, they fail. Each PostgreSQL
test gets a fresh schema, dropped afterwards even when the test failed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from asynkron_durable import DurableFunctionRuntime
from asynkron_durable.stores import InMemoryStateStore, PostgresStateStore, SqliteStateStore, StateStore

PG_DSN_VARIABLE = "ASYNKRON_DURABLE_PG_DSN"


def postgres_dsn() -> str:
    """The PostgreSQL server the tests use; skips the calling test when none is configured."""
    dsn = os.environ.get(PG_DSN_VARIABLE)
    if not dsn:
        pytest.skip(f"{PG_DSN_VARIABLE} is not set: PostgreSQL tests skipped")
    return dsn


@asynccontextmanager
async def fresh_schemas(dsn: str) -> AsyncIterator[Callable[[], str]]:
    """Hand out new unique schema names; drop every one of them at the end (CASCADE), on a
    connection of its own, so a test that broke its store cannot stop the cleanup."""
    made: list[str] = []

    def new_schema() -> str:
        made.append(f"t_{uuid.uuid4().hex}")
        return made[-1]

    try:
        yield new_schema
    finally:
        if made:
            conn = await asyncpg.connect(dsn, timeout=10)
            try:
                for schema in made:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()


@asynccontextmanager
async def _memory(tmp_path: Path) -> AsyncIterator[StateStore]:
    yield InMemoryStateStore()


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[StateStore]:
    yield SqliteStateStore(tmp_path / "durable.db")


@asynccontextmanager
async def _postgres(tmp_path: Path) -> AsyncIterator[StateStore]:
    dsn = postgres_dsn()
    async with fresh_schemas(dsn) as new_schema:
        yield PostgresStateStore(dsn, schema=new_schema(), max_pool_size=4, connect_timeout=5)


STORE_FACTORIES: dict[str, Callable[[Path], AbstractAsyncContextManager[StateStore]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=list(STORE_FACTORIES), ids=list(STORE_FACTORIES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    """An opened, empty store of each backend; closed (and cleaned up) after the test."""
    async with STORE_FACTORIES[request.param](tmp_path) as backend:
        await backend.open()
        try:
            yield backend
        finally:
            await backend.close()


@pytest.fixture
async def pg_schemas() -> AsyncIterator[Callable[[], str]]:
    """For PostgreSQL-only tests: fresh schema names (see `fresh_schemas`), dropped afterwards."""
    async with fresh_schemas(postgres_dsn()) as new_schema:
        yield new_schema


@pytest.fixture
def pg_dsn() -> str:
    """The DSN of the test server (skips when ASYNKRON_DURABLE_PG_DSN is unset)."""
    return postgres_dsn()


@pytest.fixture
async def runtime(store: StateStore) -> AsyncIterator[DurableFunctionRuntime]:
    """A runtime on the parameterised store; tests start it with `async with runtime:`."""
    yield DurableFunctionRuntime(store, max_poll_interval=0.02, shutdown_timeout=5.0)


@pytest.fixture
async def impatient_runtime(store: StateStore) -> AsyncIterator[DurableFunctionRuntime]:
    """`runtime`, but work no live worker registers fails as unknown after 0.2 s, not 10 min."""
    yield DurableFunctionRuntime(store, max_poll_interval=0.02, shutdown_timeout=5.0, unserved_timeout=0.2)
