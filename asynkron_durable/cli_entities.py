"""The entity commands: `signal-entity`, `entity`, `entities` and `purge-entities`."""

from __future__ import annotations

import asyncio
import json

import click

from asynkron_durable.cli_options import (
    json_option,
    opened_client,
    parse_json_option,
    parse_time_option,
    stderr,
    store_option,
)
from asynkron_durable.cli_tables import console, entities_table, json_flag
from asynkron_durable.entities import EntityId, EntityMetadata, EntityStateResponse


@click.command(name="signal-entity")
@click.argument("name")
@click.argument("key")
@click.argument("operation")
@json_option("--input", "Operation input.")
@click.option(
    "--at",
    "scheduled_at",
    default=None,
    metavar="TIME",
    help="Deliver no earlier than this time (ISO 8601; UTC unless an offset is given).",
)
@store_option
def signal_entity(
    name: str,
    key: str,
    operation: str,
    payload: str | None,
    scheduled_at: str | None,
    store_url: str,
) -> None:
    """Send OPERATION to the entity NAME/KEY (one way); a worker runs it."""
    input = parse_json_option(payload, "--input")
    scheduled_time = parse_time_option(scheduled_at, "--at")
    entity = EntityId(name, key)

    async def go() -> None:
        async with opened_client(store_url) as client:
            await client.signal_entity(entity, operation, input, scheduled_time=scheduled_time)

    asyncio.run(go())
    stderr.print(f"signalled {operation} to {entity}")


@click.command()
@click.argument("name")
@click.argument("key")
@store_option
def entity(name: str, key: str, store_url: str) -> None:
    """Print the state of the entity NAME/KEY as JSON: {"exists": ..., "state": ...}."""
    target = EntityId(name, key)

    async def go() -> EntityStateResponse:
        async with opened_client(store_url) as client:
            return await client.read_entity_state(target)

    click.echo(json.dumps(asyncio.run(go()).model_dump(mode="json"), indent=2))


@click.command()
@click.option("--prefix", default=None, help="Only entities whose name starts with this.")
@click.option("--top", type=click.IntRange(min=1), default=100, show_default=True, help="At most N.")
@click.option("--include-deleted", is_flag=True, help="Also entities without state.")
@json_flag
@store_option
def entities(prefix: str | None, top: int, include_deleted: bool, as_json: bool, store_url: str) -> None:
    """Show the entities with their state, lock holder and backlog (a table, or JSON with --json)."""

    async def go() -> list[EntityMetadata]:
        found: list[EntityMetadata] = []
        token: str | None = None
        async with opened_client(store_url) as client:
            while len(found) < top:  # pages skip entities without state: keep going until N
                page = await client.list_entities(
                    prefix, top, token, include_state=True, include_deleted=include_deleted
                )
                found += page.entities
                token = page.continuation_token
                if token is None:
                    break
        return found[:top]

    found = asyncio.run(go())
    if not as_json:
        console().print(entities_table(found))
        return
    listed = [{**e.model_dump(mode="json"), "entity_id": str(e.entity_id)} for e in found]
    click.echo(json.dumps(listed, indent=2))


@click.command(name="purge-entities")
@store_option
def purge_entities(store_url: str) -> None:
    """Delete the rows of entities left empty (no state, no lock, nothing queued)."""

    async def go() -> int:
        async with opened_client(store_url) as client:
            return await client.purge_entities()

    stderr.print(f"purged {asyncio.run(go())} empty entities")
