"""The operator's views of a store: which workers are alive and what they run (`workers`), and the
messages set aside because they could not be read (`dead-letters`)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys

import click
from rich.console import Console
from rich.table import Table

from asynkron_durable.cli_options import opened_client, store_option
from asynkron_durable.history import utc_now
from asynkron_durable.http.status_json import worker_json
from asynkron_durable.stores import DeadLetter, WorkerRecord


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@store_option
def workers(as_json: bool, store_url: str) -> None:
    """The workers registered in the store: where they run, what they run, their last heartbeat."""

    async def go() -> list[WorkerRecord]:
        async with opened_client(store_url) as client:
            return await client.store.workers.registered()

    found, now = asyncio.run(go()), utc_now()
    if as_json:
        click.echo(json.dumps([worker_json(worker, now) for worker in found], indent=2))
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
    wide = None if sys.stdout.isatty() else 240  # to a pipe or file: one line per worker
    Console(highlight=False, width=wide).print(table if found else "no worker is registered")


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
