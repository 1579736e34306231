"""Host a `DurableFunctionRuntime` in an ASGI app: the workers as a lifespan-managed background service.

```python
runtime = DurableFunctionRuntime("sqlite:///./durable.db")
app = Starlette(routes=[...], lifespan=durable_lifespan(runtime))  # FastAPI(lifespan=...) alike


async def start(request: Request) -> Response:
    instance_id = await durable_client(request).start_new("checkout", "order-42")
    ...
```

At startup the store is opened (a store that cannot be opened fails startup, so the server exits
instead of serving without workers), the client is put on `app.state.durable_client`, the app's own
lifespan (`inner=`) is entered, and the workers start. At shutdown it all happens in reverse: the
workers stop gracefully (in-flight activities get the runtime's `shutdown_timeout` to finish, the
leases of the rest are handed back), the app's own lifespan exits, and the store is closed. So the
app's lifespan may use the client, and activities may use what the app's lifespan set up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar, overload

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from asynkron_durable.client import OrchestrationClient
from asynkron_durable.worker import DurableFunctionRuntime

__all__ = ["CLIENT_STATE_KEY", "durable_client", "durable_lifespan"]

log = logging.getLogger("asynkron_durable.http.hosting")

CLIENT_STATE_KEY = "durable_client"
"""The attribute of `app.state` that holds the runtime's `OrchestrationClient` while the app runs."""

AppT = TypeVar("AppT", bound=Starlette)

_Stateless = Callable[[AppT], AbstractAsyncContextManager[None]]
_Stateful = Callable[[AppT], AbstractAsyncContextManager[Mapping[str, Any]]]


@overload
def durable_lifespan(
    runtime: DurableFunctionRuntime, *, inner: None = None
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]: ...


@overload
def durable_lifespan(runtime: DurableFunctionRuntime, *, inner: _Stateless[AppT]) -> _Stateless[AppT]: ...


@overload
def durable_lifespan(runtime: DurableFunctionRuntime, *, inner: _Stateful[AppT]) -> _Stateful[AppT]: ...


def durable_lifespan(
    runtime: DurableFunctionRuntime,
    *,
    inner: Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]] | None = None,
) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    """A lifespan (`Starlette(lifespan=...)`, `FastAPI(lifespan=...)`) that runs `runtime`'s workers
    while the app serves.

    `inner` is the app's own lifespan, if it has one; whatever state it yields is passed on to the
    server unchanged. It runs with the store open (so it may start or query instances through
    `app.state.durable_client`), before the workers start and after they have stopped.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any] | None]:
        async with AsyncExitStack() as stack:
            await runtime.store.open()  # raises: startup fails, the server exits non-zero
            stack.push_async_callback(runtime.store.close)
            setattr(app.state, CLIENT_STATE_KEY, runtime.client)
            state = await stack.enter_async_context(inner(app)) if inner is not None else None
            await stack.enter_async_context(_workers(runtime))
            yield state

    return lifespan


@asynccontextmanager
async def _workers(runtime: DurableFunctionRuntime) -> AsyncIterator[None]:
    """Run the workers in a task for the block; at its end, stop them gracefully and wait."""
    stop = asyncio.Event()
    workers = asyncio.create_task(runtime.run_and_poll(stop), name=f"durable-workers-{runtime.worker_id}")
    workers.add_done_callback(lambda task: _report_early_exit(task, stop))
    try:
        yield
    finally:
        stop.set()
        await workers  # a failure of the workers makes the shutdown fail, loudly


def _report_early_exit(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Workers that end while the app still serves are an error worth a log line right away."""
    if stop.is_set():
        return
    error = None if task.cancelled() else task.exception()
    log.error("durable workers stopped while the app is still serving", exc_info=error)


def durable_client(connection: HTTPConnection) -> OrchestrationClient:
    """The client of the runtime that `durable_lifespan` hosts, for a request (or websocket) handler.

    Works as a FastAPI dependency as it is: `client: OrchestrationClient = Depends(durable_client)`.
    It reads `request.app.state.durable_client`; raises `RuntimeError` if the app has no such lifespan.
    """
    client = getattr(connection.app.state, CLIENT_STATE_KEY, None)
    if not isinstance(client, OrchestrationClient):
        raise RuntimeError(
            "this app hosts no durable runtime: create it with lifespan=durable_lifespan(runtime) "
            "and run its lifespan (a server does; in tests, enter app.router.lifespan_context(app))"
        )
    return client
