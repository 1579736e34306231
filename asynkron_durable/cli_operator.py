"""The operator's views of a store: which workers are alive and what they run (`workers`), an
instance's history (`history`), and the messages set aside because they could not be read
(`dead-letters`)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime
from typing import Any

import click
from rich.table import Table

from asynkron_durable.cli_options import opened_client, stderr, store_option
from asynkron_durable.cli_tables import console, json_flag
from asynkron_durable.errors import InstanceNotFound
from asynkron_durable.history import HistoryEvent, utc_now
from asynkron_durable.stores import DeadLetter, WorkerRecord


def _worker_fields(worker: WorkerRecord, now: datetime) -> dict[str, Any]:
    """A worker for `--json`, named like the other commands' fields."""
    return {
        "worker_id": worker.worker_id,
        "host": worker.host,
        "pid": worker.pid,
        "version": worker.version,
        "started_at": worker.started_at.isoformat(),
        "heartbeat_at": worker.heartbeat_at.isoformat(),
        "seconds_since_heartbeat": round((now - worker.heartbeat_at).total_seconds(), 1),
        "instance_names": sorted(worker.instance_names),
        "activity_names": sorted(worker.activity_names),
    }


@click.command()
@json_flag
@store_option
def workers(as_json: bool, store_url: str) -> None:
    """The workers registered in the store: where they run, what they run, their last heartbeat."""

    async def go() -> list[WorkerRecord]:
        async with opened_client(store_url) as client:
            return await client.store.workers.registered()

    found, now = asyncio.run(go()), utc_now()
    if as_json:
        click.echo(json.dumps([_worker_fields(worker, now) for worker in found], indent=2))
        return
    table = Table("worker", "host", "pid", "version", "started", "heartbeat", "runs", "activities")
    for worker in found:
        age = (now - worker.heartbeat_at).total_seconds()
        table.add_row(
            worker.worker_id,
            worker.host,
            str(worker.pid),
            worker.version or "-",
            worker.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{age:.1f} s ago",
            ", ".join(sorted(worker.instance_names)) or "-",
            ", ".join(sorted(worker.activity_names)) or "-",
        )
    console().print(table if found else "no worker is registered")


@click.command(name="dead-letters")
@click.option("--instance", "instance_id", default=None, help="Only the messages to this instance.")
@click.option("--top", type=click.IntRange(min=1), default=100, show_default=True, help="At most N.")
@store_option
def dead_letters(instance_id: str | None, top: int, store_url: str) -> None:
    """Print the messages set aside because they could not be read (newest first) as a JSON list."""

    async def go() -> list[DeadLetter]:
        async with opened_client(store_url) as client:
            return await client.dead_letters(instance_id, top)

    letters = asyncio.run(go())
    click.echo(json.dumps([dataclasses.asdict(letter) for letter in letters], indent=2, default=str))


@click.command()
@click.argument("instance_id")
@json_flag
@store_option
def history(instance_id: str, as_json: bool, store_url: str) -> None:
    """The history of INSTANCE_ID's current execution, oldest event first."""

    async def go() -> list[HistoryEvent] | None:
        async with opened_client(store_url) as client:
            status = await client.get_status(instance_id, show_history=True)
        return None if status is None else status.history or []

    events = asyncio.run(go())
    if events is None:
        raise InstanceNotFound(instance_id)
    if as_json:
        click.echo(json.dumps([event.model_dump(mode="json") for event in events], indent=2))
        return
    if not events:
        stderr.print(f"{instance_id} has no history yet: no worker has run it (see its status)")
        return
    table = Table("#", "time", "event", "id", "details")
    for position, event in enumerate(events):
        details = event.model_dump(mode="json", exclude={"kind", "timestamp", "event_id"}, exclude_none=True)
        shown = "" if event.event_id < 0 else str(event.event_id)
        when = event.timestamp.strftime("%H:%M:%S.%f")[:-3]
        table.add_row(str(position), when, event.kind, shown, json.dumps(details)[:120])
    console().print(table)
