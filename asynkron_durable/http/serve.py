"""`asynkron-durable serve`: an app's workers, the management API and the app's HTTP triggers in
one process.

The management API (`management_app`) is served by uvicorn on a socket bound here (so `--port 0`
works and the printed address is the real one). HTTP triggers come from installed plugins, entry
point group `asynkron_durable.http_routes`: functions `(spec, location) -> list[BaseRoute] | None`
(None: "not my kind of app"); the core imports no plugin by name. The workers run in-process
unless `workers=0`, then separate `asynkron-durable worker` processes do the work.

A store that cannot be reached at start (a database not up yet) is waited for, with a log line a
second at most, before anything is served; connections made meanwhile wait in the socket's backlog.
A client gets `body_timeout` seconds for its request's headers (else the connection is closed) and
as long again for its body (else 408).

SIGINT and SIGTERM stop the server gracefully: uvicorn finishes the open requests, the workers
drain (in-flight activities get the runtime's `shutdown_timeout`), the store is closed, and the
process exits 0. While the server still waits for its store, they stop it at once.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import ipaddress
import logging
import signal
import socket
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.routing import BaseRoute

from asynkron_durable.app_loader import AppLoadError, describe_exception, load_registry
from asynkron_durable.http.guards import DEFAULT_BODY_TIMEOUT
from asynkron_durable.http.head_timeout import head_timeout_protocol
from asynkron_durable.http.management import DEFAULT_BODY_LIMIT, management_app
from asynkron_durable.http.urls import ApiLocation
from asynkron_durable.store_opening import open_when_reachable
from asynkron_durable.stores import StateStore, check_task_hub, store_from_url
from asynkron_durable.stores.hubs import DEFAULT_TASK_HUB
from asynkron_durable.worker import DurableFunctionRuntime

GRACEFUL_SHUTDOWN_SECONDS = 30
"""At shutdown, requests still open after this long (a client that never sends its body) are cut."""

MAX_CONNECTIONS = 500
"""Open connections and requests `serve` takes at once; beyond, requests get 503 instead of the
process running out of file descriptors."""

__all__ = [
    "API_KEY_ENV_VAR",
    "HTTP_ROUTES_GROUP",
    "InsecureBinding",
    "ServeOptions",
    "check_binding",
    "http_routes",
    "is_loopback",
    "serve",
]

HTTP_ROUTES_GROUP = "asynkron_durable.http_routes"
"""Entry point group of functions `(spec: str, location: ApiLocation) -> list[BaseRoute] | None`."""

API_KEY_ENV_VAR = "ASYNKRON_DURABLE_API_KEY"

log = logging.getLogger("asynkron_durable.http.serve")


class InsecureBinding(ValueError):
    """Serving beyond this machine without an API key, and without `--insecure`."""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    app: str
    store_url: str
    host: str = "127.0.0.1"
    port: int = 7071
    workers: int = 1
    api_key: str | None = None
    insecure: bool = False
    body_limit: int = DEFAULT_BODY_LIMIT
    task_hub: str | None = None
    """The task hub to serve (None: the app's, else `default`)."""
    body_timeout: float = DEFAULT_BODY_TIMEOUT


def is_loopback(host: str) -> bool:
    """Whether `host` only reaches this machine (`localhost`, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_binding(host: str, api_key: str | None, insecure: bool) -> None:
    """Refuse to serve the API unguarded beyond loopback, unless told to."""
    if api_key or insecure or is_loopback(host):
        return
    raise InsecureBinding(
        f"refusing to serve on non-loopback host {host!r} without an API key; "
        f"set {API_KEY_ENV_VAR} or --api-key-file, or pass --insecure"
    )


def http_routes(spec: str, location: ApiLocation) -> list[BaseRoute]:
    """The HTTP trigger routes every installed plugin makes of the app `spec`."""
    routes: list[BaseRoute] = []
    for entry_point in importlib.metadata.entry_points(group=HTTP_ROUTES_GROUP):
        try:
            make: Callable[[str, ApiLocation], list[BaseRoute] | None] = entry_point.load()
        except Exception as exc:
            raise AppLoadError(
                f"http routes plugin {entry_point.name!r} ({entry_point.value}) failed to import: "
                f"{describe_exception(exc)}"
            ) from None
        made = make(spec, location)
        if made is None:
            continue
        if not isinstance(made, list) or not all(isinstance(route, BaseRoute) for route in made):
            raise AppLoadError(f"http routes plugin {entry_point.name!r} returned no list of routes")
        routes += made
    return routes


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one); OSError if that is taken."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def _origin(sock: socket.socket) -> str:
    """The origin this process reaches itself at: an unspecified address (0.0.0.0, ::) becomes
    the loopback address of its family."""
    host, port = sock.getsockname()[:2]
    address = ipaddress.ip_address(host)
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """uvicorn, but a signal only asks it to stop: it is not raised again once the server is down
    (uvicorn does that, which would kill the process before the workers drain)."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            self.force_exit = self.should_exit  # a second signal: stop waiting for connections
            self.should_exit = True

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop)
        try:
            yield
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


def serve(options: ServeOptions, announce: Callable[[str], None]) -> None:
    """Load the app, bind, serve until SIGINT/SIGTERM, shut down gracefully. `announce` gets the
    one line saying where the server listens."""
    check_binding(options.host, options.api_key, options.insecure)
    if options.workers < 0:
        raise ValueError("--workers must be 0 or more")
    registry = load_registry(options.app)
    hub = check_task_hub(options.task_hub or registry.task_hub or DEFAULT_TASK_HUB)
    store = store_from_url(options.store_url, hub)
    sock = _bind(options.host, options.port)
    try:
        location = ApiLocation(_origin(sock), hub, options.api_key)
        routes = http_routes(options.app, location)
        runtimes = [DurableFunctionRuntime(store) for _ in range(options.workers)]
        for runtime in runtimes:
            runtime.registry.merge(registry)
        # The API's client checks orchestrator names against the app, workers or not.
        client_runtime = runtimes[0] if runtimes else DurableFunctionRuntime(store)
        if not runtimes:
            client_runtime.registry.merge(registry)
        asgi = management_app(
            client_runtime.client,
            location,
            body_limit=options.body_limit,
            body_timeout=options.body_timeout,
            extra_routes=routes,
        )
        config = uvicorn.Config(
            asgi,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            limit_concurrency=MAX_CONNECTIONS,
            http=head_timeout_protocol(options.body_timeout),
        )
        server = _Server(config)
        workers = f"{options.workers} worker(s)" if options.workers else "no workers (API only)"
        keyed = "API key required" if options.api_key else "no API key"
        triggers = f", {len(routes)} HTTP trigger route(s) under /api/" if routes else ""
        announce(f"serving {options.app} on {location.origin} ({workers}, {keyed}{triggers}); Ctrl-C to stop")
        asyncio.run(_run(server, sock, runtimes, store))
    finally:
        sock.close()


async def _run(
    server: uvicorn.Server,
    sock: socket.socket,
    runtimes: list[DurableFunctionRuntime],
    store: StateStore,
) -> None:
    if not await _opened(store):
        return
    stop = asyncio.Event()
    workers = [
        asyncio.create_task(runtime.run_and_poll(stop), name=f"durable-workers-{runtime.worker_id}")
        for runtime in runtimes
    ]

    def stop_serving(task: asyncio.Task[None]) -> None:
        """Workers that fail (stuck user code) take the server down, for a supervisor to restart."""
        if not stop.is_set() and not task.cancelled() and task.exception() is not None:
            server.should_exit = True

    for task in workers:
        task.add_done_callback(stop_serving)
    try:
        await server.serve(sockets=[sock])
    finally:
        stop.set()
        try:  # every runtime finishes its shutdown before the store closes; then a failure is told
            outcomes = await asyncio.gather(*workers, return_exceptions=True)
        finally:
            await store.close()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
    if not server.started:
        raise OSError("the HTTP server failed to start")


async def _opened(store: StateStore) -> bool:
    """Open the store, waiting while it cannot be reached (connections wait in the socket's
    backlog meanwhile); False if SIGINT or SIGTERM came first. Once it is open, the signal
    handlers stay until uvicorn's replace them, so no signal falls between the two."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    opened = False
    try:
        opened = await open_when_reachable(store, stop, log)
        if opened and stop.is_set():  # the signal came while the store was opening
            opened = False
            await store.close()
    finally:
        if not opened:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    return opened
