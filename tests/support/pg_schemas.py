"""PostgreSQL schemas for tests whose worker processes need a store URL: one fresh schema per
test, named in the URL, dropped afterwards."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def with_schema(dsn: str, schema: str) -> str:
    """The store URL for `schema` on the server `dsn` names."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(query=urlencode([*parse_qsl(parts.query), ("schema", schema)])))


async def drop_schema(dsn: str, schema: str) -> None:
    """Drop the schema and everything in it (on a connection of its own)."""
    import asyncpg  # only needed, and only installed, where PostgreSQL is

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
