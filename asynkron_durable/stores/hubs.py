"""Task hubs, as Azure Durable Functions has them: one store holds any number of hubs, each with
its own instances, messages, activities, timers, entities and workers, and a runtime serves one.

A hub other than `default` lives beside the store's own data: on SQLite in a file next to the
store's (`durable.db` holds `default`, `durable.orders.db` the hub `orders`), so hubs never wait on
one file's single writer; on PostgreSQL in a schema of its own (`asynkron_durable_orders` beside
`asynkron_durable`). The data a store held before hubs existed is the `default` hub, unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path

DEFAULT_TASK_HUB = "default"
TASK_HUB_ENV_VAR = "ASYNKRON_DURABLE_TASK_HUB"

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,44}$")


def check_task_hub(name: str) -> str:
    """`name` in the form stored (lower case: hub names are case-insensitive, as on Azure), or a
    `ValueError` giving Azure's rule: 3 to 45 letters and digits, starting with a letter."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"invalid task hub name {name!r}: use 3 to 45 letters and digits, starting with a letter"
        )
    return name.lower()


def sqlite_path_for(path: Path, task_hub: str) -> Path:
    """The file of `task_hub` for a SQLite store at `path`."""
    hub = check_task_hub(task_hub)
    return path if hub == DEFAULT_TASK_HUB else path.with_name(f"{path.stem}.{hub}{path.suffix}")


def postgres_schema_for(schema: str, task_hub: str) -> str:
    """The schema of `task_hub` for a PostgreSQL store whose default hub is in `schema`."""
    hub = check_task_hub(task_hub)
    return schema if hub == DEFAULT_TASK_HUB else f"{schema}_{hub}"
