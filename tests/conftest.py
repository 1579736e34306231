"""Shared fixtures. `store` runs a test against every state-store backend.

A backend is one entry in STORE_FACTORIES: a function from the test's tmp_path to an unopened store.
A backend that needs outside infrastructure (the PostgreSQL store, reading ASYNKRON_DURABLE_PG_DSN)
calls `pytest.skip` from its factory when that is not configured.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from asynkron_durable.stores import InMemoryStateStore, SqliteStateStore, StateStore

STORE_FACTORIES: dict[str, Callable[[Path], StateStore]] = {
    "memory": lambda tmp_path: InMemoryStateStore(),
    "sqlite": lambda tmp_path: SqliteStateStore(tmp_path / "durable.db"),
}


@pytest.fixture(params=list(STORE_FACTORIES), ids=list(STORE_FACTORIES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    """An opened, empty store of each backend; closed after the test."""
    backend: StateStore = STORE_FACTORIES[request.param](tmp_path)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
