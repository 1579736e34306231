"""What every `asynkron-durable` command shares: the store option, strict reading of JSON, time
and instance-id options (checked before any store is opened), and one-line error reporting."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from click.core import ParameterSource
from rich.console import Console

from asynkron_durable.client import OrchestrationClient
from asynkron_durable.errors import DurableError, OrchestrationTimeout, WorkerStuck
from asynkron_durable.instance_ids import instance_id_problem
from asynkron_durable.serialization import parse_json
from asynkron_durable.stores import (
    InMemoryStateStore,
    SqliteStateStore,
    StateStore,
    check_task_hub,
    redact,
    store_from_url,
)
from asynkron_durable.stores.hubs import DEFAULT_TASK_HUB, TASK_HUB_ENV_VAR

_F = TypeVar("_F", bound=Callable[..., Any])

DEFAULT_STORE = "sqlite:///./durable.db"
STORE_ENV_VAR = "ASYNKRON_DURABLE_STORE"

stderr = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)


def store_identity(store: StateStore, store_url: str) -> str:
    """Which store a command uses, unambiguously: a SQLite file's absolute path, a PostgreSQL DSN
    without its password."""
    if isinstance(store, SqliteStateStore):
        return str(store.path.resolve())
    if isinstance(store, InMemoryStateStore):
        return "memory:// (in this process only)"
    return redact(store_url)


@asynccontextmanager
async def opened_client(store_url: str) -> AsyncIterator[OrchestrationClient]:
    """A client on an opened store, closed again afterwards; the store is named on stderr. A SQLite
    file that does not exist is refused, not created: from another folder, or with a typo, a new
    empty store would take the command and its instance would wait there for ever."""
    hub = chosen_task_hub() or DEFAULT_TASK_HUB
    store = store_from_url(store_url, hub)
    stderr.print(f"store: {store_identity(store, store_url)} (task hub {hub})")
    if isinstance(store, SqliteStateStore) and not store.path.exists():
        raise ValueError(
            f"no store at {store.path.resolve()}; start a worker or `run` first, or pass --store"
        )
    await store.open()
    try:
        yield OrchestrationClient(store)
    finally:
        await store.close()


class Failed(Exception):
    """The orchestration itself did not succeed: reported with exit code 1, not as bad input."""


class ReportingGroup(click.Group):
    """Turns the errors a user can cause into one `error: ...` line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (Failed, OrchestrationTimeout, WorkerStuck) as exc:
            exit_with_error(ctx, str(exc), 1)
        except (DurableError, ValueError, OSError) as exc:  # json.JSONDecodeError is a ValueError
            exit_with_error(ctx, str(exc), 2)


def api_key_options(env_var: str, help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--api-key-file PATH` (or the environment variable) for a key, and `--api-key KEY`, which
    still works but is visible to every local user (`ps`): `api_key_from` warns about it."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option(
            "--api-key-file",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            metavar="PATH",
            help=f"{help} Read the key from this file (or set {env_var}).",
        )(fn)
        return click.option(
            "--api-key",
            envvar=env_var,
            default=None,
            metavar="KEY",
            help="Not recommended: see --api-key-file.",
        )(fn)

    return decorate


def api_key_from(ctx: click.Context, api_key: str | None, api_key_file: str | None) -> str | None:
    """The key of `api_key_options`: from the file (which wins over the environment variable), the
    environment or the command line."""
    if api_key_file is not None:
        if api_key is not None and ctx.get_parameter_source("api_key") is ParameterSource.COMMANDLINE:
            raise ValueError("give the API key once: --api-key-file or --api-key, not both")
        key = Path(api_key_file).read_text("utf-8").strip()
        if not key:
            raise ValueError(f"--api-key-file {api_key_file} is empty")
        return key
    if api_key and ctx.get_parameter_source("api_key") is ParameterSource.COMMANDLINE:
        stderr.print(
            "warning: a key given with --api-key is visible to every local user (ps); use --api-key-file"
        )
    return api_key or None


def exit_with_error(ctx: click.Context, message: str, code: int) -> NoReturn:
    """Messages may span lines (validation errors); the error stays on one."""
    click.echo(f"error: {' '.join(message.split())}", err=True)
    ctx.exit(code)


def json_option(name: str, help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A raw-text option: parsed by `parse_json_option`, because click's errors span several lines."""
    return click.option(name, "payload", default=None, metavar="JSON", help=help)


def parse_json_option(text: str | None, option: str) -> Any:
    """Decode an option's JSON here, so a typo is reported before anything is started."""
    if text is None:
        return None
    try:
        return parse_json(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{option} is not valid JSON: {exc}") from None


def parse_time_option(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 time (fractions, `Z`, a date alone...); UTC unless it gives an offset."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} is not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def check_instance_id_option(instance_id: str | None) -> None:
    """Refuse an id no instance may have before any store is opened (the client would too)."""
    problem = None if instance_id is None else instance_id_problem(instance_id)
    if problem is not None:
        raise ValueError(f"--instance-id: {problem}")


_store_url_option = click.option(
    "--store",
    "store_url",
    envvar=STORE_ENV_VAR,
    default=DEFAULT_STORE,
    show_default=True,
    metavar="URL",
    help=(
        "State store: sqlite:///path.db, postgresql://user@host/db?schema=name or memory:// "
        f"(env: {STORE_ENV_VAR})."
    ),
)

_HUB_KEY = "asynkron_durable.task_hub"


def _remember_hub(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    ctx.meta[_HUB_KEY] = None if value is None else check_task_hub(value)
    return value


_task_hub_option = click.option(
    "--task-hub",
    envvar=TASK_HUB_ENV_VAR,
    default=None,
    metavar="NAME",
    expose_value=False,
    callback=_remember_hub,
    help=f"Task hub (env: {TASK_HUB_ENV_VAR}; default: the app's, else 'default').",
)


def store_option(command: _F) -> _F:
    """`--store URL` and `--task-hub NAME` (the hub reaches `chosen_task_hub`, not the command)."""
    return _store_url_option(_task_hub_option(command))


def chosen_task_hub() -> str | None:
    """The `--task-hub` of the command running (or its environment variable), if given."""
    hub: str | None = click.get_current_context().meta.get(_HUB_KEY)
    return hub
