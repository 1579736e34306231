"""The `asynkron-durable` command: run an app's orchestrations, host workers, steer instances.

Data goes to stdout (`run` prints the output as JSON on its last line, `status` and `list` print
JSON, `start` the instance id); progress and errors go to stderr, so scripts can pipe the results.
Expected failures print one `error: ...` line and exit 2 (bad input) or 1 (the orchestration
failed, was terminated or did not finish in time), never a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import click
from rich.logging import RichHandler

from asynkron_durable.app_loader import load_registry
from asynkron_durable.cli_entities import entities, entity, purge_entities, signal_entity
from asynkron_durable.cli_operator import dead_letters, history, workers
from asynkron_durable.cli_options import (
    Failed,
    ReportingGroup,
    api_key_from,
    api_key_options,
    check_instance_id_option,
    chosen_task_hub,
    json_option,
    opened_client,
    parse_json_option,
    stderr,
    store_identity,
    store_option,
)
from asynkron_durable.cli_tables import console, instances_table, json_flag, status_table
from asynkron_durable.client import OrchestrationClient, OrchestrationStatus, StatusPage
from asynkron_durable.errors import InstanceNotFound
from asynkron_durable.history import RuntimeStatus
from asynkron_durable.http.guards import DEFAULT_BODY_TIMEOUT
from asynkron_durable.http.management import DEFAULT_BODY_LIMIT
from asynkron_durable.http.serve import API_KEY_ENV_VAR, ServeOptions
from asynkron_durable.http.serve import serve as serve_http
from asynkron_durable.http.urls import ApiLocation, client_binding
from asynkron_durable.store_opening import open_when_reachable
from asynkron_durable.stores import InstanceFilter, check_task_hub
from asynkron_durable.stores.hubs import DEFAULT_TASK_HUB
from asynkron_durable.worker import DurableFunctionRuntime

log = logging.getLogger("asynkron_durable.cli")


def _runtime(app: str, store_url: str) -> tuple[DurableFunctionRuntime, str]:
    """A runtime on `store_url` with the orchestrators and activities of `app`, and the task hub
    it serves: the one `--task-hub` names, else the app's, else `default`."""
    registry = load_registry(app)
    hub = check_task_hub(chosen_task_hub() or registry.task_hub or DEFAULT_TASK_HUB)
    runtime = DurableFunctionRuntime(store_url, task_hub=hub)
    runtime.registry.merge(registry)
    return runtime, hub


def _status_json(status: OrchestrationStatus, show_history: bool = False) -> dict[str, Any]:
    """Leave `history` out unless asked for: it is long, and `null` would read as "no history";
    `unreadable` only where a stored payload cannot be read."""
    left_out = set() if show_history else {"history"}
    if status.unreadable is None:
        left_out.add("unreadable")
    if not status.dead_letters:
        left_out.add("dead_letters")
    if status.waiting is None:
        left_out.add("waiting")
    return status.model_dump(mode="json", exclude=left_out)


@click.group(cls=ReportingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="asynkron-durable", prog_name="asynkron-durable")
@click.option("-v", "--verbose", is_flag=True, help="Log what the workers do.")
def cli(verbose: bool) -> None:
    """Self-hosted durable functions: run orchestrations and manage their instances."""
    level = logging.INFO if verbose else logging.WARNING
    if stderr.is_terminal:
        logging.basicConfig(
            level=level, format="%(message)s", handlers=[RichHandler(console=stderr, show_path=False)]
        )
    else:  # a file or a pipe: one record a line, unwrapped, so logs stay greppable
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.command()
@click.argument("app")
@click.argument("orchestrator")
@json_option("--input", "Orchestration input.")
@store_option
@click.option("--instance-id", default=None, help="Instance id (default: a new UUID).")
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS", help="Give up (exit 1)."
)
def run(
    app: str,
    orchestrator: str,
    payload: str | None,
    store_url: str,
    instance_id: str | None,
    timeout: float | None,
) -> None:
    """Run ORCHESTRATOR of APP to completion in this process; print its output as JSON.

    APP is path/to/file.py[:ATTR] or package.module[:ATTR], naming a DurableApp or a
    DurableFunctionRuntime (default ATTR: app, then runtime), or, with asynkron-durable-azure
    installed, an Azure Functions app folder (or its function_app.py).
    """
    input = parse_json_option(payload, "--input")
    check_instance_id_option(instance_id)
    runtime, hub = _runtime(app, store_url)
    runtime.registry.orchestrator(orchestrator)  # unknown names fail before the store is touched
    stderr.print(f"store: {store_identity(runtime.store, store_url)} (task hub {hub})")
    started, begun = time.monotonic(), _Begun()
    try:
        status = asyncio.run(_run_to_completion(runtime, orchestrator, input, instance_id, timeout, begun))
    except KeyboardInterrupt:
        if begun.instance_id is None:
            raise
        stderr.print(
            f"interrupted: instance {begun.instance_id} is still running in the store and goes on from "
            f"where it stopped once a worker serves it (asynkron-durable worker {app}); "
            f"asynkron-durable status {begun.instance_id} shows where it is"
        )
        sys.exit(130)
    elapsed = time.monotonic() - started
    if status.runtime_status is RuntimeStatus.FAILED:
        failure = status.failure
        reason = f"{failure.error_type}: {failure.message}" if failure else "no details"
        raise Failed(f"instance {status.instance_id} failed: {reason}")
    if status.runtime_status is RuntimeStatus.TERMINATED:
        reason = status.output or "no reason given"
        raise Failed(f"instance {status.instance_id} was terminated: {reason}")
    stderr.print(f"instance {status.instance_id} {status.runtime_status} in {elapsed:.2f}s")
    click.echo(json.dumps(status.output))


@dataclasses.dataclass
class _Begun:
    """The instance `run` started, once it has: an interrupted run names it."""

    instance_id: str | None = None


async def _run_to_completion(
    runtime: DurableFunctionRuntime,
    orchestrator: str,
    input: Any,
    instance_id: str | None,
    timeout: float | None,
    begun: _Begun,
) -> OrchestrationStatus:
    """Start the instance on an in-process runtime and wait for it: one command, no worker."""
    async with runtime:
        instance_id = begun.instance_id = await runtime.client.start_new(orchestrator, input, instance_id)
        stderr.print(f"started {orchestrator} as instance {instance_id}")
        waiting = asyncio.ensure_future(
            runtime.client.wait_for_completion(
                instance_id, timeout=float("inf") if timeout is None else timeout
            )
        )
        workers = runtime.workers
        assert workers is not None
        await asyncio.wait({waiting, workers}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():  # the workers stopped (stuck code): their error says why
            waiting.cancel()
            await workers
        return await waiting


@cli.command()
@click.argument("app")
@store_option
def worker(app: str, store_url: str) -> None:
    """Run the workers of APP against the store until SIGINT or SIGTERM, then stop gracefully."""
    asyncio.run(_work(*_runtime(app, store_url), store_url))


async def _work(runtime: DurableFunctionRuntime, hub: str, store_url: str) -> None:
    """Signals only set the stop event, so in-flight work finishes or is handed back cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stderr.print(
        f"worker {runtime.worker_id} serving {store_identity(runtime.store, store_url)} (task hub {hub}); "
        "Ctrl-C to stop"
    )
    try:
        if await open_when_reachable(runtime.store, stop, log):
            await runtime.run_and_poll(stop)
    finally:
        await runtime.store.close()
    stderr.print("worker stopped")


@cli.command()
@click.argument("orchestrator")
@json_option("--input", "Orchestration input.")
@store_option
@click.option("--instance-id", default=None, help="Instance id (default: a new UUID).")
def start(orchestrator: str, payload: str | None, store_url: str, instance_id: str | None) -> None:
    """Start ORCHESTRATOR and print the instance id; a worker runs it."""
    input = parse_json_option(payload, "--input")
    check_instance_id_option(instance_id)

    async def go() -> str:
        async with opened_client(store_url) as client:
            return await client.start_new(orchestrator, input, instance_id)

    click.echo(asyncio.run(go()))


@cli.command()
@click.argument("instance_id")
@click.option("--show-history", is_flag=True, help="Include the history events.")
@json_flag
@store_option
def status(instance_id: str, show_history: bool, as_json: bool, store_url: str) -> None:
    """Show the status of INSTANCE_ID (a table, or JSON with --json)."""

    async def go() -> OrchestrationStatus | None:
        async with opened_client(store_url) as client:
            return await client.get_status(instance_id, show_history=show_history)

    found = asyncio.run(go())
    if found is None:
        raise InstanceNotFound(instance_id)
    if found.waiting is not None:
        stderr.print(f"waiting: {found.waiting}")
    if found.dead_letters:
        stderr.print(
            f"warning: {found.dead_letters} message(s) to {instance_id} could not be read and were set "
            f"aside; see: asynkron-durable dead-letters --instance {instance_id}"
        )
    if as_json:
        click.echo(json.dumps(_status_json(found, show_history), indent=2))
    else:
        console().print(status_table(found))


@cli.command(name="list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in RuntimeStatus], case_sensitive=False),
    help="Only instances with this status (repeatable).",
)
@click.option("--prefix", default=None, help="Only instance ids starting with this.")
@click.option("--top", type=click.IntRange(min=1), default=100, show_default=True, help="At most N.")
@json_flag
@store_option
def list_instances(
    statuses: tuple[str, ...], prefix: str | None, top: int, as_json: bool, store_url: str
) -> None:
    """Show the instances, oldest first (a table, or a JSON list with --json)."""
    filter = InstanceFilter(
        runtime_status=frozenset(RuntimeStatus(s) for s in statuses) or None,
        instance_id_prefix=prefix,
    )

    async def go() -> StatusPage:
        async with opened_client(store_url) as client:
            return await client.list_instances(filter, page_size=top)

    page = asyncio.run(go())
    for unreadable in page.unreadable:
        stderr.print(f"warning: {unreadable.reason}")
    if as_json:
        click.echo(json.dumps([_status_json(s) for s in page.instances], indent=2))
    else:
        console().print(instances_table(page.instances))


@cli.command(name="raise-event")
@click.argument("instance_id")
@click.argument("name")
@json_option("--data", "Event payload.")
@store_option
def raise_event(instance_id: str, name: str, payload: str | None, store_url: str) -> None:
    """Send external event NAME to INSTANCE_ID."""
    data = parse_json_option(payload, "--data")

    async def go() -> None:
        async with opened_client(store_url) as client:
            await client.raise_event(instance_id, name, data)

    asyncio.run(go())
    stderr.print(f"raised {name} on {instance_id}")


_Steer = Callable[[OrchestrationClient, str, str | None], Awaitable[None]]


def _steering_command(verb: str, noun: str, steer: _Steer) -> None:
    """Register `terminate`, `suspend`, `resume` or `rewind`: same arguments, one client call each. Each
    queues a request that a worker applies on its next pass, and says so."""

    @cli.command(name=verb, help=steer.__doc__)
    @click.argument("instance_id")
    @click.option("--reason", default=None, help="Recorded with the instance.")
    @store_option
    def command(instance_id: str, reason: str | None, store_url: str) -> None:
        async def go() -> None:
            async with opened_client(store_url) as client:
                await steer(client, instance_id, reason)

        asyncio.run(go())
        stderr.print(f"{noun} of {instance_id} requested; a worker applies it")


_steering_command("terminate", "termination", OrchestrationClient.terminate)
_steering_command("suspend", "suspension", OrchestrationClient.suspend)
_steering_command("resume", "resumption", OrchestrationClient.resume)
_steering_command("rewind", "rewind", OrchestrationClient.rewind)


@cli.command()
@click.argument("instance_id")
@click.option("--same-id", is_flag=True, help="Run it again under its own id (it must have finished).")
@store_option
def restart(instance_id: str, same_id: bool, store_url: str) -> None:
    """Start INSTANCE_ID's orchestrator again with the same input; print the new instance's id."""

    async def go() -> str:
        async with opened_client(store_url) as client:
            return await client.restart(instance_id, restart_with_new_instance_id=not same_id)

    click.echo(asyncio.run(go()))


@cli.command()
@click.argument("instance_id")
@store_option
def purge(instance_id: str, store_url: str) -> None:
    """Delete INSTANCE_ID with its history."""

    async def go() -> int:
        async with opened_client(store_url) as client:
            return await client.purge(instance_id)

    if not asyncio.run(go()):
        raise InstanceNotFound(instance_id)
    stderr.print(f"purged {instance_id}")


@cli.command()
@click.argument("app")
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=7071, show_default=True, help="Port (0: any free)."
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="In-process worker loops; 0: API only, separate `worker` processes do the work.",
)
@api_key_options(API_KEY_ENV_VAR, "Require a key on the management API.")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without an API key.")
@click.option(
    "--max-body-size",
    type=click.IntRange(min=1),
    default=DEFAULT_BODY_LIMIT,
    show_default=True,
    metavar="BYTES",
    help="Refuse larger request bodies (413).",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_BODY_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help=(
        "Close a connection whose request headers are not in within this long; "
        "answer 408 to a request whose body is not."
    ),
)
def serve(
    app: str,
    store_url: str,
    host: str,
    port: int,
    workers: int,
    api_key: str | None,
    api_key_file: str | None,
    insecure: bool,
    max_body_size: int,
    body_timeout: float,
) -> None:
    """Serve APP over HTTP: the Durable Functions management API, APP's HTTP triggers under /api/
    (with a plugin such as asynkron-durable-azure), and its workers, until SIGINT or SIGTERM."""
    key = api_key_from(click.get_current_context(), api_key, api_key_file)
    options = ServeOptions(
        app, store_url, host, port, workers, key, insecure, max_body_size, chosen_task_hub(), body_timeout
    )
    serve_http(options, announce=stderr.print)
    stderr.print("server stopped")


@cli.command()
@click.option("--url", required=True, metavar="URL", help="The server's origin: http://127.0.0.1:7071.")
@api_key_options(API_KEY_ENV_VAR, "The server's key.")
@click.option("--task-hub", default="default", show_default=True, help="Task hub name.")
def binding(url: str, api_key: str | None, api_key_file: str | None, task_hub: str) -> None:
    """Print the durable client binding JSON for a server at URL:
    `df.DurableOrchestrationClient(binding_json)` from the Azure SDK then talks to it."""
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"--url must be an http(s) origin such as http://127.0.0.1:7071, not {url!r}")
    origin = f"{parsed.scheme}://{parsed.netloc}"
    key = api_key_from(click.get_current_context(), api_key, api_key_file)
    click.echo(json.dumps(client_binding(ApiLocation(origin, task_hub, key)), indent=2))


for command in (workers, dead_letters, history, signal_entity, entity, entities, purge_entities):
    cli.add_command(command)


def main() -> None:
    """Entry point of the `asynkron-durable` console script."""
    cli(prog_name="asynkron-durable")


if __name__ == "__main__":
    main()
