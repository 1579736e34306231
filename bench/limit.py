"""The database's own ceiling for the chain workload: a batched claim -> execute -> commit loop in plain SQL.

    python -m bench.limit --store postgresql://postgres@127.0.0.1:5432/test --instances 2000 --batch 1 200
    python -m bench.limit --store sqlite:///bench.db --instances 2000 --batch 1 200

No engine, no history, no serialization beyond one integer per step: a `work` table of (instance, step,
input) rows and an `instances` table. Each iteration of a loop is one transaction that claims up to
`batch` work rows (PostgreSQL through asyncpg:
`DELETE ... WHERE id = ANY(ARRAY(SELECT ... FOR UPDATE SKIP LOCKED)) RETURNING`; SQLite through
aiosqlite: `BEGIN IMMEDIATE`, select, delete), runs the trivial activity (input + 1), appends the
result to the instance row and enqueues the next step until the fifth, then commits. `loops` such
loops run concurrently, each on its own connection (default 2 on PostgreSQL, 1 on SQLite, whose
writers serialize anyway).

PostgreSQL runs in a fresh schema `limit_<hex>` of the given database; SQLite in a fresh file
`limit-<hex>.db` in the directory of the given path (WAL, synchronous=NORMAL, as the SQLite store
uses). Both are dropped afterwards unless `keep=True`, in which case the result's `location` names
the schema or file for the caller to read back and remove.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from bench import cpu

STEPS = 5


def activity(value: int) -> int:
    return value + 1


class _Progress:
    def __init__(self, instances: int) -> None:
        self.instances = instances
        self.finished = 0

    @property
    def done(self) -> bool:
        return self.finished >= self.instances


# ---------------------------------------------------------------- PostgreSQL


async def _pg_loop(pool: Any, schema: str, batch: int, progress: _Progress) -> None:
    # ARRAY(...) keeps the plan an index lookup of the claimed ids; `id IN (SELECT ... LIMIT)` can be
    # planned as a semi-join over the whole table, which halves B=1 throughput with two loops.
    claim = (
        f"DELETE FROM {schema}.work WHERE id = ANY(ARRAY("
        f"SELECT id FROM {schema}.work ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)) "
        "RETURNING instance, step, input"
    )
    record = (
        f"UPDATE {schema}.instances AS i SET step = u.step, results = i.results || u.output "
        "FROM unnest($1::bigint[], $2::int[], $3::int[]) AS u(instance, step, output) "
        "WHERE i.id = u.instance"
    )
    enqueue = (
        f"INSERT INTO {schema}.work (instance, step, input) "
        "SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[])"
    )
    async with pool.acquire() as conn:
        while not progress.done:
            async with conn.transaction():
                rows = await conn.fetch(claim, batch)
                if rows:
                    ids = [row["instance"] for row in rows]
                    steps = [row["step"] for row in rows]
                    outputs = [activity(row["input"]) for row in rows]
                    await conn.execute(record, ids, steps, outputs)
                    following = [
                        (i, s + 1, o) for i, s, o in zip(ids, steps, outputs, strict=True) if s < STEPS
                    ]
                    if following:
                        columns = [list(column) for column in zip(*following, strict=True)]
                        await conn.execute(enqueue, *columns)
            if not rows:
                await asyncio.sleep(0.001)  # the other loops hold the rest, or all is done
                continue
            progress.finished += sum(1 for s in steps if s == STEPS)


async def _run_pg(
    url: str, instances: int, batch: int, loops: int, keep: bool
) -> tuple[float, int, str | None, dict[str, float]]:
    import asyncpg  # type: ignore[import-untyped]

    schema = f"limit_{uuid.uuid4().hex[:12]}"
    pool = await asyncpg.create_pool(url, min_size=loops, max_size=loops + 1)
    try:
        async with pool.acquire() as conn:
            await conn.execute(f"CREATE SCHEMA {schema}")
            await conn.execute(
                f"CREATE TABLE {schema}.instances (id bigint PRIMARY KEY, step int NOT NULL DEFAULT 0, "
                "results int[] NOT NULL DEFAULT '{}')"
            )
            await conn.execute(
                f"CREATE TABLE {schema}.work (id bigserial PRIMARY KEY, instance bigint NOT NULL, "
                "step int NOT NULL, input int NOT NULL)"
            )
            await conn.execute(
                f"INSERT INTO {schema}.instances (id) SELECT generate_series(1, $1::bigint)", instances
            )
            await conn.execute(
                f"INSERT INTO {schema}.work (instance, step, input) "
                "SELECT generate_series(1, $1::bigint), 1, 0",
                instances,
            )
            await conn.execute(f"ANALYZE {schema}.work")
        progress = _Progress(instances)
        before = cpu.sample()
        started = time.perf_counter()
        await asyncio.gather(*(_pg_loop(pool, schema, batch, progress) for _ in range(loops)))
        elapsed = time.perf_counter() - started
        spent = cpu.per_step(before, cpu.sample(), instances * STEPS)
        async with pool.acquire() as conn:
            completed = await conn.fetchval(
                f"SELECT count(*) FROM {schema}.instances WHERE step = $1 AND results = $2::int[]",
                STEPS,
                list(range(1, STEPS + 1)),
            )
    finally:
        if not keep:
            async with pool.acquire() as conn:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()
    return elapsed, int(completed), schema if keep else None, spent


# ---------------------------------------------------------------- SQLite


async def _sqlite_loop(file: Path, batch: int, progress: _Progress) -> None:
    import aiosqlite

    async with aiosqlite.connect(file, isolation_level=None) as conn:
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA busy_timeout = 30000")
        while not progress.done:
            await conn.execute("BEGIN IMMEDIATE")  # writers serialize here, whatever the loop count
            try:
                cursor = await conn.execute(
                    "SELECT id, instance, step, input FROM work ORDER BY id LIMIT ?", (batch,)
                )
                rows = list(await cursor.fetchall())
                if rows:
                    await conn.executemany("DELETE FROM work WHERE id = ?", [(r[0],) for r in rows])
                    outputs = [activity(r[3]) for r in rows]
                    await conn.executemany(
                        "UPDATE instances SET step = ?, results = results || ',' || ? WHERE id = ?",
                        [(r[2], str(o), r[1]) for r, o in zip(rows, outputs, strict=True)],
                    )
                    await conn.executemany(
                        "INSERT INTO work (instance, step, input) VALUES (?, ?, ?)",
                        [(r[1], r[2] + 1, o) for r, o in zip(rows, outputs, strict=True) if r[2] < STEPS],
                    )
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise
            if not rows:
                await asyncio.sleep(0.001)
                continue
            progress.finished += sum(1 for r in rows if r[2] == STEPS)


def _fresh_file(path: str) -> Path:
    folder = Path(path).parent if path else Path(".")
    return (folder if folder.is_dir() else Path(".")) / f"limit-{uuid.uuid4().hex[:12]}.db"


def remove_sqlite(file: str | Path) -> None:
    """Remove a SQLite database file with its journal companions."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{file}{suffix}").unlink(missing_ok=True)


async def _run_sqlite(
    path: str, instances: int, batch: int, loops: int, keep: bool
) -> tuple[float, int, str | None, dict[str, float]]:
    import aiosqlite

    file = _fresh_file(path)
    try:
        async with aiosqlite.connect(file, isolation_level=None) as conn:
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.execute("PRAGMA busy_timeout = 30000")
            await conn.execute(
                "CREATE TABLE instances (id INTEGER PRIMARY KEY, step INTEGER NOT NULL DEFAULT 0, "
                "results TEXT NOT NULL DEFAULT '')"
            )
            await conn.execute(
                "CREATE TABLE work (id INTEGER PRIMARY KEY AUTOINCREMENT, instance INTEGER NOT NULL, "
                "step INTEGER NOT NULL, input INTEGER NOT NULL)"
            )
            seed = [(i,) for i in range(1, instances + 1)]
            await conn.execute("BEGIN")
            await conn.executemany("INSERT INTO instances (id) VALUES (?)", seed)
            await conn.executemany("INSERT INTO work (instance, step, input) VALUES (?, 1, 0)", seed)
            await conn.commit()
            progress = _Progress(instances)
            before = cpu.sample()
            started = time.perf_counter()
            await asyncio.gather(*(_sqlite_loop(file, batch, progress) for _ in range(loops)))
            elapsed = time.perf_counter() - started
            spent = cpu.per_step(before, cpu.sample(), instances * STEPS)
            expected = "".join(f",{n}" for n in range(1, STEPS + 1))
            cursor = await conn.execute(
                "SELECT count(*) FROM instances WHERE step = ? AND results = ?", (STEPS, expected)
            )
            row = await cursor.fetchone()
            completed = int(row[0]) if row else 0
    finally:
        if not keep:
            remove_sqlite(file)
    return elapsed, completed, str(file) if keep else None, spent


# ---------------------------------------------------------------- entry points


async def run_limit(
    store_url: str, instances: int, batch: int, loops: int | None = None, *, keep: bool = False
) -> dict[str, Any]:
    """Run `instances` five-step chains through `loops` claim loops of up to `batch` rows a transaction.

    Returns orchestrations_per_s, steps_per_s, batch, instances, plus loops, elapsed_s, completed
    (instances read back at step 5 with all five results) and, with `keep=True`, location (the
    PostgreSQL schema or SQLite file left behind for the caller to inspect and drop).
    """
    if instances < 1 or batch < 1 or (loops is not None and loops < 1):
        raise ValueError("instances, batch and loops must be at least 1")
    scheme, _, rest = store_url.partition("://")
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres"):
        loops = 2 if loops is None else loops
        url = store_url.split("?", 1)[0]  # ?schema= and the like belong to the store, not asyncpg
        elapsed, completed, location, spent = await _run_pg(url, instances, batch, loops, keep)
    elif scheme == "sqlite":
        loops = 1 if loops is None else loops
        elapsed, completed, location, spent = await _run_sqlite(rest[1:], instances, batch, loops, keep)
    else:
        raise ValueError(f"run_limit needs a postgresql:// or sqlite:/// URL, not one with scheme {scheme!r}")
    result: dict[str, Any] = {
        "orchestrations_per_s": instances / elapsed,
        "steps_per_s": instances * STEPS / elapsed,
        "batch": batch,
        "instances": instances,
        "loops": loops,
        "elapsed_s": elapsed,
        "completed": completed,
        **spent,
    }
    if keep:
        result["location"] = location
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", default=os.environ.get("ASYNKRON_DURABLE_PG_DSN") or "sqlite:///limit.db")
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 200])
    parser.add_argument("--loops", type=int, default=None)
    args = parser.parse_args()
    for batch in args.batch:
        print(json.dumps(asyncio.run(run_limit(args.store, args.instances, batch, args.loops))))


if __name__ == "__main__":
    main()
