"""Errors to HTTP answers, in one place: every answer the API gives for a problem is JSON
`{"error": message, "ExceptionMessage": message}` (the second is where Azure's SDK client reads
a failed start's reason)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from asynkron_durable.errors import (
    InstanceAlreadyExists,
    InstanceNotFound,
    InvalidOperation,
    SerializationError,
    StoreError,
    UnknownFunction,
)


class BadRequest(Exception):
    """A malformed request: a bad body, query parameter or path segment."""


STATUS_OF: dict[type[Exception], int] = {
    BadRequest: 400,
    SerializationError: 400,
    UnknownFunction: 400,
    ValueError: 400,
    InstanceNotFound: 404,
    InstanceAlreadyExists: 409,
    InvalidOperation: 410,
    StoreError: 503,
}
"""The status code for each error a handler may raise (the most specific class wins)."""


def error_body(message: str) -> dict[str, str]:
    return {"error": message, "ExceptionMessage": message}


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(error_body(message), status, headers=dict(headers or {}))


def _handler(status: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        return error_response(status, str(exc))

    return handle


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), exc.headers)


def error_handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    """Starlette exception handlers: our errors by status, and Starlette's own (404, 405) as JSON."""
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        error: _handler(status) for error, status in STATUS_OF.items()
    }
    handlers[HTTPException] = _http_exception
    return handlers
