"""How the command line shows things to a person: rich tables of instances, of one instance, of
entities. Every such command takes `--json` for scripts, which prints the same data as JSON."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from asynkron_durable.client import OrchestrationStatus
from asynkron_durable.entities import EntityMetadata

json_flag = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table."
)

_WIDEST_VALUE = 120
"""Characters of a payload shown in a table cell; --json shows it whole."""


def console() -> Console:
    """Tables for people: as wide as the terminal, or one line a row into a pipe or a file."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 240)


def shown(value: Any) -> str:
    """A payload in a cell: its JSON, cut short."""
    text = json.dumps(value, default=str)
    return text if len(text) <= _WIDEST_VALUE else text[: _WIDEST_VALUE - 1] + "…"


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def instances_table(statuses: list[OrchestrationStatus]) -> Table | str:
    """One row an instance: id, name, status, created, last updated, custom status."""
    if not statuses:
        return "no instances"
    table = Table("instance", "name", "status", "created", "updated", "custom status")
    for status in statuses:
        custom = "" if status.custom_status is None else shown(status.custom_status)
        table.add_row(
            status.instance_id,
            status.name,
            status.runtime_status.value,
            when(status.created_at),
            when(status.last_updated_at),
            custom,
        )
    return table


def status_table(status: OrchestrationStatus) -> Table:
    """One instance, a field a row; empty fields left out."""
    table = Table("field", "value", show_header=False)
    failure = status.failure
    rows: list[tuple[str, str]] = [
        ("instance", status.instance_id),
        ("name", status.name),
        ("status", status.runtime_status.value),
        ("created", when(status.created_at)),
        ("updated", when(status.last_updated_at)),
        ("input", shown(status.input)),
        ("output", "" if status.output is None else shown(status.output)),
        ("custom status", "" if status.custom_status is None else shown(status.custom_status)),
        ("failure", "" if failure is None else f"{failure.error_type}: {failure.message}"),
        ("waiting", status.waiting or ""),
        ("unreadable", status.unreadable or ""),
        ("dead letters", str(status.dead_letters) if status.dead_letters else ""),
        ("history", f"{len(status.history)} events (asynkron-durable history)" if status.history else ""),
    ]
    for field, value in rows:
        if value:
            table.add_row(field, value)
    return table


def entities_table(entities: list[EntityMetadata]) -> Table | str:
    """One row an entity: id, state, lock holder, backlog, last change, error."""
    if not entities:
        return "no entities"
    table = Table("entity", "state", "locked by", "backlog", "changed", "error")
    for entity in entities:
        state = shown(entity.state) if entity.exists else "(none)"
        table.add_row(
            str(entity.entity_id),
            state,
            entity.locked_by or "",
            str(entity.backlog),
            when(entity.last_modified),
            entity.error or "",
        )
    return table
