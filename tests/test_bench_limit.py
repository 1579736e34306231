"""Smoke test of the plain-SQL ceiling benchmark (bench/limit.py): every chain reaches step 5."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _limit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_limit_under_test", ROOT / "bench" / "limit.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_limit_on_sqlite_finishes_every_chain(tmp_path: Path) -> None:
    import aiosqlite

    limit = _limit()
    result = await limit.run_limit(f"sqlite:///{tmp_path / 'limit.db'}", 25, 4, keep=True)
    try:
        async with aiosqlite.connect(result["location"]) as conn:
            cursor = await conn.execute("SELECT step, results FROM instances")
            rows = list(await cursor.fetchall())
            cursor = await conn.execute("SELECT count(*) FROM work")
            left = await cursor.fetchone()
    finally:
        limit.remove_sqlite(result["location"])
    assert len(rows) == 25
    assert all(step == 5 and results == ",1,2,3,4,5" for step, results in rows)
    assert left == (0,)
    assert result["completed"] == 25 and result["steps_per_s"] > 0


async def test_limit_on_postgres_finishes_every_chain() -> None:
    dsn = os.environ.get("ASYNKRON_DURABLE_PG_DSN")
    if not dsn:
        pytest.skip("ASYNKRON_DURABLE_PG_DSN is not set")
    import asyncpg

    limit = _limit()
    result = await limit.run_limit(dsn, 25, 4, keep=True)
    schema = result["location"]
    conn = await asyncpg.connect(dsn.split("?", 1)[0])
    try:
        rows = await conn.fetch(f"SELECT step, results FROM {schema}.instances")
        left = await conn.fetchval(f"SELECT count(*) FROM {schema}.work")
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()
    assert len(rows) == 25
    assert all(row["step"] == 5 and list(row["results"]) == [1, 2, 3, 4, 5] for row in rows)
    assert left == 0
    assert result["completed"] == 25
