"""An Azure app's HTTP-triggered functions as Starlette routes, for `asynkron-durable serve`.

Each function is served under `/api/{route}` for its declared methods, as the Functions host does.
Route templates are Azure's: `{name}`, optional `{name?}` (trailing ones; served with and without
them), constraints `{id:int}` / `{name:alpha}` / ... (checked where we know them, else ignored) and
catch-all `{*rest}`. The request becomes an `azure.functions.HttpRequest`; the durable client
binding is the JSON of `client_binding(location)`, so the SDK's client talks to this server over
HTTP: a v2 `durable_client_input` function gets a `df.DurableOrchestrationClient` made from it (as
the SDK's decorator does), a v1 function gets the string, as the host passes it. The returned
`func.HttpResponse` is sent back as it is; an exception in the user's function is a 500 (logged).

Entry point group `asynkron_durable.http_routes`: `azure_http_routes(spec, location)`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from asynkron_durable.http.errors import error_body
from asynkron_durable.http.guards import MISSING_KEY, carries_api_key
from asynkron_durable.http.urls import ApiLocation, client_binding
from asynkron_durable_azure.loading import AzureHttpFunction, entry_point_app, locate_app

__all__ = ["API_PREFIX", "azure_http_routes", "http_function_routes", "route_paths"]

API_PREFIX = "/api/"

log = logging.getLogger(__name__)

_PARAMETER = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)((?::[^{}?]+)*)(\??)\}")
# Azure (ASP.NET) route constraints we can check; the others are accepted unchecked.
_CONSTRAINTS: dict[str, re.Pattern[str]] = {
    "int": re.compile(r"-?\d+"),
    "long": re.compile(r"-?\d+"),
    "bool": re.compile(r"(?i:true|false)"),
    "alpha": re.compile(r"[A-Za-z]+"),
    "guid": re.compile(r"\{?[0-9a-fA-F]{8}-?(?:[0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\}?"),
    "double": re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"),
    "float": re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"),
    "decimal": re.compile(r"-?\d+(?:\.\d+)?"),
}

Handler = Callable[[Request], Awaitable[Response]]


def azure_http_routes(spec: str, location: ApiLocation) -> list[BaseRoute] | None:
    """The entry point: the routes of the Azure app `spec`, or None when it is no Azure app."""
    if locate_app(Path(spec)) is None:
        return None
    return http_function_routes(entry_point_app(spec).http_functions, location)


def http_function_routes(functions: list[AzureHttpFunction], location: ApiLocation) -> list[BaseRoute]:
    binding = json.dumps(client_binding(location))
    routes: list[BaseRoute] = []
    for function in functions:
        constraints = _constraints(function.route)
        handler = partial(_handle, function, binding, constraints, location.api_key)
        for path in route_paths(function.route):
            routes.append(Route(path, handler, methods=list(function.methods), name=function.name))
    return routes


def route_paths(template: str) -> list[str]:
    """Starlette paths for an Azure route template: `orders/{id:int?}` is `/api/orders/{id}` and
    `/api/orders`; `files/{*path}` is `/api/files/{path:path}`."""
    segments = [segment for segment in template.strip("/").split("/") if segment]
    optional_tail = 0
    for segment in reversed(segments):
        match = _PARAMETER.fullmatch(segment)
        if match is None or not match.group(4):
            break
        optional_tail += 1

    def convert(segment: str) -> str:
        def parameter(match: re.Match[str]) -> str:
            return f"{{{match.group(2)}:path}}" if match.group(1) else f"{{{match.group(2)}}}"

        return _PARAMETER.sub(parameter, segment)

    converted = [convert(segment) for segment in segments]
    paths = [
        API_PREFIX + "/".join(converted[: len(converted) - dropped]) for dropped in range(optional_tail + 1)
    ]
    return [path if path != API_PREFIX else API_PREFIX.rstrip("/") for path in paths]


def _constraints(template: str) -> dict[str, list[re.Pattern[str]]]:
    found: dict[str, list[re.Pattern[str]]] = {}
    for match in _PARAMETER.finditer(template):
        names = [name.split("(")[0].lower() for name in match.group(3).split(":") if name]
        checks = [_CONSTRAINTS[name] for name in names if name in _CONSTRAINTS]
        if checks:
            found[match.group(2)] = checks
    return found


async def _handle(
    function: AzureHttpFunction,
    binding: str,
    constraints: dict[str, list[re.Pattern[str]]],
    key: str | None,
    request: Request,
) -> Response:
    if key is not None and function.auth_level != "anonymous" and not carries_api_key(request.scope, key):
        return JSONResponse(error_body(MISSING_KEY), 401)
    route_params = {name: str(value) for name, value in request.path_params.items()}
    for name, checks in constraints.items():
        value = route_params.get(name)
        if value is not None and not all(check.fullmatch(value) for check in checks):
            return JSONResponse({"error": "Not Found"}, 404)
    azure_request = func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=dict(request.headers),
        params=dict(request.query_params),
        route_params=route_params,
        body=await request.body(),
    )
    _sdk_sessions.enter()
    try:
        result = await _call(function, azure_request, binding)
        return _response(result)
    except Exception:
        incident = uuid.uuid4().hex
        log.exception("HTTP function %r failed (incident %s)", function.name, incident)
        message = f"function {function.name!r} failed; the server log has the details (incident {incident})"
        return JSONResponse(error_body(message), 500)
    finally:
        await _sdk_sessions.leave()


class _SdkSessions:
    """The SDK's client shares one aiohttp session per process and never closes it (the Functions
    host just exits): close it whenever no HTTP function runs, so a server that stops leaves no
    unclosed session behind (and no warnings at exit)."""

    def __init__(self) -> None:
        self.running = 0

    def enter(self) -> None:
        self.running += 1

    async def leave(self) -> None:
        self.running -= 1
        if self.running == 0:
            from azure.durable_functions.models.utils import http_utils

            close: Callable[[], Awaitable[None]] | None = getattr(http_utils, "_close_session", None)
            if close is not None:
                await close()


_sdk_sessions = _SdkSessions()


async def _call(function: AzureHttpFunction, request: func.HttpRequest, binding: str) -> Any:
    """The user's function with its request and client parameters (a sync one on a thread)."""
    kwargs: dict[str, Any] = {function.request_name: request}
    if function.client_name is not None:
        kwargs[function.client_name] = (
            df.DurableOrchestrationClient(binding) if function.model == "v2" else binding
        )
    if inspect.iscoroutinefunction(function.fn):
        result = await function.fn(**kwargs)
    else:
        result = await asyncio.to_thread(function.fn, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def _response(result: Any) -> Response:
    """The function's return value as the host sends it: an HttpResponse as it is, text or bytes
    as a 200, nothing as a 204."""
    if isinstance(result, func.HttpResponse):
        headers = dict(result.headers)
        if not any(name.lower() == "content-type" for name in headers):
            mimetype = result.mimetype or "text/plain"
            charset = result.charset or "utf-8"
            headers["Content-Type"] = (
                f"{mimetype}; charset={charset}"
                if mimetype.startswith("text/") or mimetype.endswith("json")
                else mimetype
            )
        return Response(result.get_body(), status_code=result.status_code, headers=headers)
    if result is None:
        return Response(status_code=204)
    if isinstance(result, str | bytes):
        return Response(result, media_type="text/plain")
    raise TypeError(f"returned a {type(result).__name__}, not a func.HttpResponse")
