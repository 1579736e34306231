"""What every request passes before a handler: the API key, the task hub, and the body size limit.

Both are plain ASGI middleware so they hold for every route, including 404s under the API's
prefixes, and answer with the API's JSON error bodies.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Sequence
from urllib.parse import parse_qs, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asynkron_durable.http.errors import error_body
from asynkron_durable.http.urls import RPC_PREFIX


async def _send_error(send: Send, status: int, message: str) -> None:
    body = json.dumps(error_body(message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


MISSING_KEY = "a valid API key is required: `code` query parameter or x-functions-key header"


def _without_path_key(scope: Scope, api_key: str) -> Scope | None:
    """The request with its `/durabletask/code/KEY/` segment taken out, if it carries the right
    key there (the SDK client's RPC base URL, see `ApiLocation.rpc_base`); else None. The segment
    is cut from the raw path: a key holding `/` travels as `%2F`, which `path` has decoded."""
    raw = scope.get("raw_path") or str(scope["path"]).encode()
    path = bytes(raw).decode("latin-1")
    prefix = f"{RPC_PREFIX}code/"
    if not path.startswith(prefix):
        return None
    key, _, rest = path[len(prefix) :].partition("/")
    if not hmac.compare_digest(unquote(key).encode(), api_key.encode()):
        return None
    inner = f"{RPC_PREFIX}{rest}"
    return {**scope, "path": unquote(inner), "raw_path": inner.encode("latin-1")}


class ApiKeyGuard:
    """With a key configured, requests under `prefixes` need it as the `code` query parameter or
    the `x-functions-key` header (as Azure's function keys travel); others get 401."""

    def __init__(self, app: ASGIApp, api_key: str | None, prefixes: Sequence[str]) -> None:
        self.app = app
        self.api_key = api_key
        self.prefixes = tuple(prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.api_key or not str(scope["path"]).startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        keyed = _without_path_key(scope, self.api_key)
        if keyed is not None:
            await self.app(keyed, receive, send)
            return
        if not self._authorised(scope):
            await _send_error(send, 401, MISSING_KEY)
            return
        await self.app(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        assert self.api_key is not None
        return carries_api_key(scope, self.api_key)


def carries_api_key(scope: Scope, api_key: str) -> bool:
    """Whether the request sends `api_key` as `x-functions-key` header or `code` query parameter."""
    expected = api_key.encode()
    headers = dict(scope["headers"])
    if hmac.compare_digest(headers.get(b"x-functions-key", b""), expected):
        return True
    codes = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("code", [])
    return any(hmac.compare_digest(code.encode(), expected) for code in codes)


class TaskHubGuard:
    """Requests under `prefixes` that name a task hub (`taskHub=`, as Azure's API takes it) other
    than the one served here get 404 saying so, instead of answering from the wrong hub."""

    def __init__(self, app: ASGIApp, task_hub: str, prefixes: Sequence[str]) -> None:
        self.app = app
        self.task_hub = task_hub
        self.prefixes = tuple(prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith(self.prefixes):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            asked = [hub for hub in query.get("taskHub", []) if hub.lower() != self.task_hub.lower()]
            if asked:
                await _send_error(
                    send,
                    404,
                    f"task hub {asked[0]!r} is not served here; this server serves {self.task_hub!r}",
                )
                return
        await self.app(scope, receive, send)


DEFAULT_BODY_TIMEOUT = 30.0
"""Seconds a request's body may take to arrive: a client that sends its headers and stalls must
not hold a connection (and a file descriptor) for ever."""


class BodyLimit:
    """Request bodies over `limit` bytes get 413, whether announced by Content-Length or not; a
    body that has not arrived whole within `timeout` seconds gets 408."""

    def __init__(self, app: ASGIApp, limit: int, timeout: float = DEFAULT_BODY_TIMEOUT) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _send_error(send, 413, f"the request body is larger than {self.limit} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        break
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.limit:
                        await _send_error(send, 413, f"the request body is larger than {self.limit} bytes")
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _send_error(send, 408, f"the request body did not arrive within {self.timeout:g} s")
            return
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
