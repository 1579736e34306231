"""Creating and upgrading a PostgreSQL store's schema: a fresh one gets `sql/postgres_schema.sql`,
an older one the files of `sql/postgres_migrations/` it lacks, in order, each recorded as applied."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asynkron_durable.errors import StoreError
from asynkron_durable.stores._postgres_codec import LATEST_VERSION, MIGRATIONS, SCHEMA_SQL, advisory_key


async def migrate(conn: Any, schema: str, queries: Mapping[str, str], where: str) -> None:
    """Bring `schema` to LATEST_VERSION; the advisory lock makes concurrent openers take turns."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key(schema))
        # Only DDL when needed: a role without CREATE rights can use a schema set up for it.
        if await conn.fetchval("SELECT to_regclass($1) IS NULL", f'"{schema}".schema_version'):
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(queries["create_schema_version"])
        applied = [row["version"] for row in await conn.fetch(queries["get_schema_versions"])]
        if applied and applied[-1] > LATEST_VERSION:
            raise StoreError(
                f"{where} has schema version {applied[-1]}, but this version of "
                f"asynkron-durable only knows up to {LATEST_VERSION}: upgrade it"
            )
        missing = [version for version in MIGRATIONS if version not in applied]
        if not missing:
            return
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        for script in [SCHEMA_SQL] if not applied else [MIGRATIONS[v] for v in missing]:
            await conn.execute(script)
        await conn.execute(queries["record_schema_versions"], missing)
