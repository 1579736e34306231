"""The Durable Functions HTTP management API on our client, as a Starlette app.

The routes, bodies and status codes are Azure's (see docs/http-api.md), served under the webhook
prefix `/runtime/webhooks/durabletask/` and under the SDK client's RPC base `/durabletask/`.
Request problems answer 4xx with a JSON `{"error", "ExceptionMessage"}` body; errors of our own
API map to status codes in `errors.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from asynkron_durable.azure_history import to_azure_history
from asynkron_durable.client import OrchestrationClient, OrchestrationStatus
from asynkron_durable.entities.ids import EntityId, is_entity_instance
from asynkron_durable.errors import InstanceNotFound, InvalidOperation, OrchestrationTimeout, UnknownFunction
from asynkron_durable.history import RuntimeStatus, utc_now
from asynkron_durable.http.errors import BadRequest, error_handlers
from asynkron_durable.http.guards import DEFAULT_BODY_TIMEOUT, ApiKeyGuard, BodyLimit, TaskHubGuard
from asynkron_durable.http.openapi import openapi_document
from asynkron_durable.http.status_json import (
    api_time,
    dead_letter_json,
    status_json,
    unreadable_json,
    worker_json,
)
from asynkron_durable.http.urls import RPC_PREFIX, WEBHOOK_PREFIX, ApiLocation, management_urls
from asynkron_durable.instance_ids import instance_id_problem
from asynkron_durable.serialization import parse_json
from asynkron_durable.stores.base import InstanceFilter, UnreadableInstance

MAX_LONG_POLL = 300
"""Seconds the status route's `timeout=` may hold a request at most."""
DEFAULT_BODY_LIMIT = 1024 * 1024
"""Request bodies larger than this (bytes) are refused with 413."""

RETRY_AFTER_SECONDS = "10"
_RUNNING = {
    RuntimeStatus.PENDING,
    RuntimeStatus.RUNNING,
    RuntimeStatus.SUSPENDED,
    RuntimeStatus.CONTINUED_AS_NEW,
}
_PAGE = 500

Handler = Callable[[Request], Awaitable[Response]]


class ManagementApi:
    """The handlers, bound to one client and one public location (for the URLs it hands out).

    `rpc`: these are the SDK client's routes. The SDK encodes an input to JSON text and then posts
    that text as a JSON string, so a string body there is decoded once more.
    """

    def __init__(self, client: OrchestrationClient, location: ApiLocation, *, rpc: bool = False) -> None:
        self.client = client
        self.location = location
        self.rpc = rpc

    # ----- orchestrations -----------------------------------------------------------------------

    async def start(self, request: Request) -> Response:
        name = request.path_params["name"]
        instance_id = request.path_params.get("instance_id") or None  # `NAME/`: a new id, as Azure
        if instance_id is not None:
            _check_instance_id(instance_id)
        wait = _int_param(request, "timeout")
        interval = _int_param(request, "pollingInterval") or 1
        payload = await self._body(request)
        instance_id = await self.client.start_new(name, payload, instance_id)
        if wait is None:
            return self._accepted(request, instance_id)
        return await self._finished_or_accepted(request, instance_id, wait, interval)

    async def _long_poll(self, instance_id: str, wait: int) -> OrchestrationStatus | None:
        """`?timeout=S` on the status route: hold the request until the instance finishes (or is
        gone) or `wait` seconds pass, so remote clients wait without polling. The answer is then
        the status route's usual one (200 finished, 202 still running, 404 gone); the finished
        status, if it finished, so it is not read again."""
        if wait > MAX_LONG_POLL:
            raise BadRequest(f"query parameter 'timeout' must be at most {MAX_LONG_POLL} seconds, got {wait}")
        if is_entity_instance(instance_id):
            return None  # entities never finish
        with suppress(OrchestrationTimeout, InstanceNotFound):
            return await self.client.wait_for_completion(instance_id, wait)
        return None

    async def _finished_or_accepted(
        self, request: Request, instance_id: str, wait: int, interval: int
    ) -> Response:
        """The client binding's create-and-wait URL (`?timeout=S&pollingInterval=S`): the output
        (200) if the instance completes within `wait` seconds, its status (200) if it otherwise
        finishes, else the usual 202 to poll."""
        try:
            status = await self.client.wait_for_completion(instance_id, wait, poll_interval=interval)
        except OrchestrationTimeout:
            return self._accepted(request, instance_id)
        if status.runtime_status is RuntimeStatus.COMPLETED:
            return JSONResponse(status.output, 200)
        return JSONResponse(status_json(status, None), 200)

    async def status(self, request: Request) -> Response:
        instance_id = request.path_params["instance_id"]
        show_history = _flag(request, "showHistory")
        show_history_output = _flag(request, "showHistoryOutput")
        show_input = _flag(request, "showInput", default=True)
        failed_is_error = _flag(request, "returnInternalServerErrorOnFailure")
        wait = _int_param(request, "timeout")  # after every other parameter: a bad one answers at once
        status = None if wait is None else await self._long_poll(instance_id, wait)
        if status is None or show_history or not show_input:
            status = await self.client.get_status(
                instance_id, show_history=show_history, show_input=show_input
            )
        if status is None:
            return _not_found(f"No instance with ID '{instance_id}' found.")
        history = None
        if show_history and status.history is not None:
            history = to_azure_history(status.history, instance_id=instance_id)
            if not show_history_output:
                history = [_without_outputs(event) for event in history]
        body = status_json(status, history)
        if status.runtime_status in _RUNNING:
            return JSONResponse(body, 202, headers=self._poll_headers(request, instance_id))
        # As the Azure host: a Failed instance answers 200 unless the caller asks for 500.
        code = 500 if failed_is_error and status.runtime_status is RuntimeStatus.FAILED else 200
        return JSONResponse(body, code)

    async def query(self, request: Request) -> Response:
        query = _instance_filter(request)
        top = _int_param(request, "top")
        token = request.headers.get("x-ms-continuation-token") or None
        statuses: list[OrchestrationStatus] = []
        unreadable: list[UnreadableInstance] = []
        while True:
            size = min(top - len(statuses) - len(unreadable), _PAGE) if top is not None else _PAGE
            page = await self.client.list_instances(query, size, token)
            statuses += page.instances
            unreadable += page.unreadable
            token = page.continuation_token
            if token is None or (top is not None and len(statuses) + len(unreadable) >= top):
                break
        show_input = _flag(request, "showInput", default=True)
        body = [status_json(s if show_input else s.model_copy(update={"input": None})) for s in statuses]
        body += [unreadable_json(u) for u in unreadable]
        headers = {"x-ms-continuation-token": token} if token is not None else {}
        return JSONResponse(body, 200, headers=headers)

    async def dead_letters(self, request: Request) -> Response:
        """Ours, not Azure's: the messages set aside unread (`?instanceId=` for one instance's)."""
        instance_id = request.query_params.get("instanceId") or None
        if instance_id is not None:
            _check_instance_id(instance_id)
        letters = await self.client.dead_letters(instance_id, _int_param(request, "top") or 100)
        return JSONResponse([dead_letter_json(letter) for letter in letters], 200)

    async def workers(self, request: Request) -> Response:
        """Ours, not Azure's: the workers registered in the store and what they run."""
        registered, now = await self.client.store.workers.registered(), utc_now()
        return JSONResponse([worker_json(worker, now) for worker in registered], 200)

    async def purge_one(self, request: Request) -> Response:
        instance_id = request.path_params["instance_id"]
        deleted = await self.client.purge(instance_id)
        if not deleted:
            return _not_found(f"No instance with ID '{instance_id}' found.")
        return JSONResponse({"instancesDeleted": deleted}, 200)

    async def purge_many(self, request: Request) -> Response:
        deleted = await self.client.purge(_instance_filter(request))
        if not deleted:
            return _not_found("No instances matched the filter.")
        return JSONResponse({"instancesDeleted": deleted}, 200)

    async def raise_event(self, request: Request) -> Response:
        instance_id = request.path_params["instance_id"]
        data = await self._body(request)
        await self.client.raise_event(instance_id, request.path_params["event_name"], data)
        return Response(status_code=202)

    async def terminate(self, request: Request) -> Response:
        await self.client.terminate(request.path_params["instance_id"], request.query_params.get("reason"))
        return Response(status_code=202)

    async def suspend(self, request: Request) -> Response:
        await self.client.suspend(request.path_params["instance_id"], request.query_params.get("reason"))
        return Response(status_code=202)

    async def resume(self, request: Request) -> Response:
        await self.client.resume(request.path_params["instance_id"], request.query_params.get("reason"))
        return Response(status_code=202)

    async def rewind(self, request: Request) -> Response:
        await self.client.rewind(request.path_params["instance_id"], request.query_params.get("reason"))
        return Response(status_code=202)

    async def restart(self, request: Request) -> Response:
        instance_id = request.path_params["instance_id"]
        new_id = _flag(request, "restartWithNewInstanceId", default=True)
        if not new_id:
            # As Azure's RestartAsync: an instance keeps its id only once it has finished.
            current = await self.client.get_status(instance_id, show_input=False)
            if current is not None and not current.runtime_status.is_terminal:
                raise InvalidOperation(f"instance {instance_id!r} cannot be restarted while it is running")
        instance_id = await self.client.restart(instance_id, new_id)
        return self._accepted(request, instance_id)

    # ----- entities -------------------------------------------------------------------------------

    async def signal_entity(self, request: Request) -> Response:
        entity = _entity_id(request)
        operation = request.query_params.get("op", "")
        try:
            await self.client.signal_entity(entity, operation, await self._body(request))
        except UnknownFunction as exc:  # Azure: 404 when no entity function has this name
            return _not_found(str(exc))
        return Response(status_code=202)

    async def read_entity(self, request: Request) -> Response:
        entity = _entity_id(request)
        state = await self.client.read_entity_state(entity)
        if not state.exists:
            return _not_found(f"No entity with ID '{entity}' found.")
        return JSONResponse(state.state, 200)

    async def list_entities(self, request: Request) -> Response:
        name = request.path_params.get("name")
        top = min(_int_param(request, "top") or 100, _PAGE)
        token = request.headers.get("x-ms-continuation-token") or None
        include_state = _flag(request, "fetchState")
        page = await self.client.list_entities(name, top, token, include_state=include_state)
        body = [
            {
                "entityId": {"name": e.entity_id.name, "key": e.entity_id.key},
                "lastOperationTime": api_time(e.last_modified),
                **({"state": e.state} if include_state else {}),
            }
            for e in page.entities
            if name is None or e.entity_id.name == name.lower()
        ]
        headers = {"x-ms-continuation-token": page.continuation_token} if page.continuation_token else {}
        return JSONResponse(body, 200, headers=headers)

    # ----- helpers --------------------------------------------------------------------------------

    async def _body(self, request: Request) -> Any:
        payload = await _json_body(request)
        if self.rpc and isinstance(payload, str):
            return _loads(payload, "the SDK client's body must be JSON text inside a JSON string")
        return payload

    def _location_for(self, request: Request) -> ApiLocation:
        """URLs point back where the request came in (as Azure answers with the request's origin)."""
        return self.location.with_origin(f"{request.url.scheme}://{request.url.netloc}")

    def _accepted(self, request: Request, instance_id: str) -> Response:
        urls = management_urls(self._location_for(request), instance_id)
        headers = {"Location": urls["statusQueryGetUri"], "Retry-After": RETRY_AFTER_SECONDS}
        return JSONResponse(urls, 202, headers=headers)

    def _poll_headers(self, request: Request, instance_id: str) -> dict[str, str]:
        urls = management_urls(self._location_for(request), instance_id)
        return {"Location": urls["statusQueryGetUri"], "Retry-After": RETRY_AFTER_SECONDS}

    def routes(self) -> list[BaseRoute]:
        """The API's routes, relative to a prefix. One route a path (its handlers by method), so a
        wrong method's 405 names every allowed one in `Allow`."""
        instances = _by_method(GET=self.query, DELETE=self.purge_many)
        instance = _by_method(GET=self.status, DELETE=self.purge_one)
        entity = _by_method(GET=self.read_entity, POST=self.signal_entity)
        return [
            Route("/orchestrators/{name}", self.start, methods=["POST"]),
            # `:path`: an id holding an encoded `/` (`a%2Fb`) reaches `start` and is refused as a
            # bad id (400), instead of matching no route (404).
            Route("/orchestrators/{name}/{instance_id:path}", self.start, methods=["POST"]),
            Route("/instances", instances, methods=["GET", "DELETE"]),
            Route("/instances/", instances, methods=["GET", "DELETE"]),
            Route("/instances/{instance_id}", instance, methods=["GET", "DELETE"]),
            Route("/instances/{instance_id}/raiseEvent/{event_name}", self.raise_event, methods=["POST"]),
            Route("/instances/{instance_id}/terminate", self.terminate, methods=["POST"]),
            Route("/instances/{instance_id}/suspend", self.suspend, methods=["POST"]),
            Route("/instances/{instance_id}/resume", self.resume, methods=["POST"]),
            Route("/instances/{instance_id}/rewind", self.rewind, methods=["POST"]),
            Route("/instances/{instance_id}/restart", self.restart, methods=["POST"]),
            Route("/deadletters", self.dead_letters, methods=["GET"]),
            Route("/workers", self.workers, methods=["GET"]),
            Route("/entities", self.list_entities, methods=["GET"]),
            Route("/entities/{name}", self.list_entities, methods=["GET"]),
            Route("/entities/{name}/{key}", entity, methods=["GET", "POST"]),
        ]


def _by_method(**handlers: Handler) -> Handler:
    """One endpoint for several methods (HEAD answers as GET; the server drops the body)."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch


def management_app(
    client: OrchestrationClient,
    location: ApiLocation,
    *,
    body_limit: int = DEFAULT_BODY_LIMIT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    extra_routes: list[BaseRoute] | None = None,
) -> Starlette:
    """The management API as an ASGI app (plus `extra_routes`, e.g. an app's HTTP triggers).
    Bodies over `body_limit` bytes get 413, bodies not in within `body_timeout` seconds 408.
    With `location.api_key` set, every management route requires it (`code` query parameter or
    `x-functions-key` header); a `taskHub=` other than `location.task_hub` gets 404. `extra_routes`
    are not guarded."""
    api = ManagementApi(client, location)
    rpc = ManagementApi(client, location, rpc=True)
    document = openapi_document(location)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    management: list[BaseRoute] = [  # the document first: the webhook mount would take its path
        Route(f"{WEBHOOK_PREFIX}openapi.json", openapi, methods=["GET"]),
        Mount(WEBHOOK_PREFIX.rstrip("/"), routes=api.routes()),
        Mount(RPC_PREFIX.rstrip("/"), routes=rpc.routes()),
    ]
    app = Starlette(
        routes=[Route("/openapi.json", openapi, methods=["GET"]), *management, *(extra_routes or [])],
        exception_handlers=error_handlers(),
    )
    guarded = (WEBHOOK_PREFIX, RPC_PREFIX)
    app.add_middleware(BodyLimit, limit=body_limit, timeout=body_timeout)
    app.add_middleware(TaskHubGuard, task_hub=location.task_hub, prefixes=guarded)
    app.add_middleware(ApiKeyGuard, api_key=location.api_key, prefixes=guarded)  # outermost: key first
    return app


async def _json_body(request: Request) -> Any:
    """The request body as JSON (empty: None); anything else is a 400 naming the problem."""
    raw = await request.body()
    if not raw.strip():
        return None
    return _loads(raw, "the request body is not JSON")


def _loads(text: str | bytes, problem: str) -> Any:
    """Strict JSON: NaN and Infinity (which Python would accept and no JSON answer can carry),
    numbers too large for a float (`1e999` would read as infinity) and nesting too deep to parse
    are refused as a BadRequest."""
    try:
        return parse_json(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest(f"{problem}: {exc}") from None


def _check_instance_id(instance_id: str) -> None:
    """The instance id rule (`instance_id_problem`), and no U+FFFD: bytes in the URL that are not
    UTF-8 decode to it, which would silently change the id."""
    if "\ufffd" in instance_id:
        raise BadRequest("the instance id in the URL holds U+FFFD, or bytes that are not UTF-8")
    problem = instance_id_problem(instance_id)
    if problem is not None:
        raise BadRequest(problem)


def _flag(request: Request, name: str, *, default: bool = False) -> bool:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise BadRequest(f"query parameter {name!r} must be true or false, got {value!r}")


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer, got {value!r}") from None
    if number < 1:
        raise BadRequest(f"query parameter {name!r} must be at least 1, got {number}")
    return number


def _time_param(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)  # out of range for UTC (year 1 at +01:00): OverflowError
    except (ValueError, OverflowError):
        raise BadRequest(f"query parameter {name!r} is not an ISO 8601 time: {value!r}") from None


def _statuses(request: Request) -> frozenset[RuntimeStatus] | None:
    values = [v for item in request.query_params.getlist("runtimeStatus") for v in item.split(",") if v]
    if not values:
        return None
    known = {s.value.lower(): s for s in RuntimeStatus}
    unknown = [v for v in values if v.lower() not in known]
    if unknown:
        raise BadRequest(
            f"unknown runtimeStatus {unknown[0]!r}; one of {', '.join(s.value for s in RuntimeStatus)}"
        )
    return frozenset(known[v.lower()] for v in values)


def _instance_filter(request: Request) -> InstanceFilter:
    return InstanceFilter(
        runtime_status=_statuses(request),
        created_from=_time_param(request, "createdTimeFrom"),
        created_to=_time_param(request, "createdTimeTo"),
        instance_id_prefix=request.query_params.get("instanceIdPrefix") or None,
        entities=False,
    )


def _entity_id(request: Request) -> EntityId:
    try:
        return EntityId(request.path_params["name"], request.path_params["key"])
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"bad entity id: {exc}") from None


def _without_outputs(event: dict[str, Any]) -> dict[str, Any]:
    """showHistoryOutput=false leaves results out of the history, as Azure does."""
    return {k: v for k, v in event.items() if k != "Result"}


def _not_found(message: str) -> Response:
    return JSONResponse({"error": message, "ExceptionMessage": message}, 404)
