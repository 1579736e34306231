"""`context.call_http` as a durable activity: a real HTTP request, with Azure's 202 polling.

The host runs durable HTTP calls as the built-in activity `BuiltIn::HttpActivity`, whose result is
`{"statusCode", "headers", "content"}`. We register an activity of that name: it sends the request
and, while the answer is 202 Accepted with a `Location` header, waits `Retry-After` seconds (or
the default) and GETs that location, as the host does. The polling runs inside the one activity,
so a crash mid-poll starts the call again (at least once, like every activity).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from azure.durable_functions.constants import HTTP_ACTION_NAME
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_POLL_SECONDS = 1.0
"""Wait between polls of a 202 answer that gives no `Retry-After`."""

HTTP_ACTIVITY_NAME: str = HTTP_ACTION_NAME


class DurableHttpRequest(BaseModel):
    """The request as the SDK's CallHttp action carries it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    method: str
    uri: str
    content: str | None = None
    headers: dict[str, str] | None = None
    token_source: dict[str, Any] | None = Field(default=None, alias="tokenSource")


async def http_activity(request: dict[str, Any]) -> dict[str, Any]:
    """Send the request, follow 202 + Location polling, return the final response."""
    call = DurableHttpRequest.model_validate(request)
    if call.token_source is not None:
        raise ValueError(
            "call_http with a token_source needs Azure managed identity, which is not available "
            "outside Azure: pass an Authorization header instead"
        )
    async with httpx.AsyncClient(timeout=httpx.Timeout(90.0)) as client:
        response = await client.request(
            call.method.upper(), call.uri, content=call.content, headers=call.headers or {}
        )
        while response.status_code == 202 and "location" in response.headers:
            await asyncio.sleep(_retry_after(response))
            location = response.url.join(response.headers["location"])
            response = await client.get(location, headers=call.headers or {})
    return {
        "statusCode": response.status_code,
        "headers": dict(response.headers.items()),
        "content": response.text,
    }


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return DEFAULT_POLL_SECONDS
