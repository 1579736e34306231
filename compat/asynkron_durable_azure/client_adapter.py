"""The SDK's `DurableOrchestrationClient`, in process, on our `OrchestrationClient`.

`DurableOrchestrationClientAdapter` has the SDK client's public methods (names, parameters,
defaults, `async`-ness, result types: the SDK's own `DurableOrchestrationStatus`,
`PurgeHistoryResult`, `EntityStateResponse`, `func.HttpResponse`) and answers as the SDK does
when it talks to the Durable Functions host on Azure: the same exceptions and messages (the SDK
turns the host's status codes into them), the same quirks. Where the host would answer with a
status code the SDK has no case for, the message is the SDK's "unexpected status code" one; the
error of our own client that stands behind it is chained as the cause.

No HTTP is involved: the URLs in management payloads and check-status responses are those of our
management API at `location` (or at the origin of the request a response answers).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlparse

import azure.functions as func
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus
from azure.durable_functions.models.EntityStateResponse import EntityStateResponse
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus
from azure.durable_functions.models.PurgeHistoryResult import PurgeHistoryResult
from azure.durable_functions.models.utils.entity_utils import EntityId

from asynkron_durable.azure_history import to_azure_history
from asynkron_durable.client import OrchestrationClient
from asynkron_durable.entities.ids import EntityId as CoreEntityId
from asynkron_durable.entities.ids import is_entity_instance
from asynkron_durable.errors import (
    InstanceAlreadyExists,
    InstanceNotFound,
    InvalidOperation,
    OrchestrationTimeout,
    UnknownFunction,
)
from asynkron_durable.history import RuntimeStatus, utc_now
from asynkron_durable.http.status_json import status_json
from asynkron_durable.http.urls import ApiLocation, management_urls
from asynkron_durable.stores.base import InstanceFilter
from asynkron_durable_azure.payloads import to_plain

DEFAULT_LOCATION = ApiLocation("http://localhost:7071")
"""Where management URLs point when no location is given: the Functions host's local default."""

RETRY_AFTER_SECONDS = "10"
_PAGE_SIZE = 500
_MIN_POLL_SECONDS = 0.005


class DurableOrchestrationClientAdapter:
    """`df.DurableOrchestrationClient`'s API on our client, without the HTTP hop."""

    def __init__(self, client: OrchestrationClient, location: ApiLocation | None = None) -> None:
        self._client = client
        self._location = location or DEFAULT_LOCATION
        self.task_hub_name: str = self._location.task_hub

    # ----- starting -----------------------------------------------------------------------------

    async def start_new(
        self,
        orchestration_function_name: str,
        instance_id: str | None = None,
        client_input: Any | None = None,
        version: str | None = None,
    ) -> str:
        """Start orchestrator `orchestration_function_name`; returns the instance id. The input is
        encoded as the SDK encodes it (`to_json` classes included). An unknown orchestrator raises
        `Exception` with the host's "doesn't exist" message; an id still in use (Pending, Running,
        Suspended) raises `Exception` with the host's error body, as the SDK does for a 409.
        `version` is accepted and ignored: our instances keep no version."""
        payload = None if client_input is None else to_plain(client_input)
        try:
            # an empty id leaves the route's optional id segment empty: the host picks one
            return await self._client.start_new(orchestration_function_name, payload, instance_id or None)
        except UnknownFunction as exc:
            raise Exception(self._unknown_orchestrator_message(orchestration_function_name)) from exc
        except InstanceAlreadyExists as exc:
            body = {"Message": f"An Orchestration instance with the status {exc.status} already exists."}
            raise Exception(body) from exc
        except ValueError as exc:  # an entity-like instance id: the host's 400
            raise Exception(str(exc)) from exc

    # ----- HTTP responses and management URLs ---------------------------------------------------

    def create_check_status_response(self, request: func.HttpRequest, instance_id: str) -> func.HttpResponse:
        """202 with `Location` (the status URL) and `Retry-After: 10`; the body is the management
        payload, its URLs on the origin of `request`."""
        payload = self.get_client_response_links(request, instance_id)
        return func.HttpResponse(
            json.dumps(payload),
            status_code=202,
            headers={
                "Content-Type": "application/json",
                "Location": payload["statusQueryGetUri"],
                "Retry-After": RETRY_AFTER_SECONDS,
            },
        )

    def create_http_management_payload(self, instance_id: str) -> dict[str, str]:
        """The instance's management URLs (`id`, `statusQueryGetUri`, `sendEventPostUri`, ...)."""
        return self.get_client_response_links(None, instance_id)

    def get_client_response_links(self, request: func.HttpRequest | None, instance_id: str) -> dict[str, str]:
        """The management URLs, on the origin of `request` when one is given."""
        location = self._location
        if request is not None and request.url:
            parsed = urlparse(request.url)
            if parsed.scheme and parsed.netloc:
                location = location.with_origin(f"{parsed.scheme}://{parsed.netloc}")
        return management_urls(location, instance_id)

    async def wait_for_completion_or_create_check_status_response(
        self,
        request: func.HttpRequest,
        instance_id: str,
        timeout_in_milliseconds: int = 10000,
        retry_interval_in_milliseconds: int = 1000,
    ) -> func.HttpResponse:
        """Wait up to the timeout for the instance to finish. Completed: 200 with the output as
        the body (a string output as it is, anything else as JSON). Terminated: 200, Failed: 500,
        each with the status JSON. Still running (or unknown) at the deadline: the check-status
        response."""
        if retry_interval_in_milliseconds > timeout_in_milliseconds:
            raise Exception(
                f"Total timeout {timeout_in_milliseconds} (ms) should be bigger than "
                f"retry timeout {retry_interval_in_milliseconds} (ms)"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_in_milliseconds / 1000
        poll = max(retry_interval_in_milliseconds / 1000, _MIN_POLL_SECONDS)
        while True:
            response = _final_response(await self.get_status(instance_id))
            if response is not None:
                return response
            remaining = deadline - loop.time()
            if remaining <= 0:
                return self.create_check_status_response(request, instance_id)
            await self._wait_for_end(instance_id, remaining, poll)

    async def _wait_for_end(self, instance_id: str, timeout: float, poll: float) -> None:
        """Return when the instance finished or `timeout` passed (or, for an instance not there
        yet, after one poll interval)."""
        try:
            await self._client.wait_for_completion(instance_id, timeout=timeout, poll_interval=poll)
        except OrchestrationTimeout:
            pass
        except InstanceNotFound:
            await asyncio.sleep(min(poll, timeout))

    # ----- querying -----------------------------------------------------------------------------

    async def get_status(
        self,
        instance_id: str,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = False,
    ) -> DurableOrchestrationStatus:
        """The instance's status. An unknown instance gives what the SDK makes of the host's empty
        404: a status that is falsy, every field None. The input is always included, whatever
        `show_input` says: the SDK only sends the flag when it is true, and the host's default is
        true. With `show_history`, the events are in the attribute `historyEvents` (the SDK's
        `history` property stays None, as it does against Azure); results are left out of them
        unless `show_history_output`."""
        status = None
        if not is_entity_instance(instance_id):
            status = await self._client.get_status(instance_id, show_history=show_history, show_input=True)
        if status is None:
            return DurableOrchestrationStatus.from_json("")
        history = None
        if show_history and status.history is not None:
            history = to_azure_history(status.history, instance_id=instance_id)
            if not show_history_output:
                history = [{k: v for k, v in event.items() if k != "Result"} for event in history]
        return DurableOrchestrationStatus.from_json(status_json(status, history))

    async def get_status_all(self) -> list[DurableOrchestrationStatus]:
        """Every orchestration instance's status (entities left out)."""
        return await self._query(InstanceFilter())

    async def get_status_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: list[OrchestrationRuntimeStatus] | None = None,
        instance_id_prefix: str | None = None,
    ) -> list[DurableOrchestrationStatus]:
        """The instances created in `[created_time_from, created_time_to]` whose status is one of
        `runtime_status` and whose id starts with `instance_id_prefix` (each filter only when
        given). Times are read as the SDK sends them: the clock reading, taken as UTC."""
        return await self._query(
            InstanceFilter(
                runtime_status=_statuses(runtime_status),
                created_from=_sent_time(created_time_from),
                created_to=_sent_time(created_time_to),
                instance_id_prefix=instance_id_prefix or None,
            )
        )

    async def _query(self, query: InstanceFilter) -> list[DurableOrchestrationStatus]:
        statuses: list[DurableOrchestrationStatus] = []
        token: str | None = None
        while True:
            page = await self._client.list_instances(query, _PAGE_SIZE, token)
            statuses += [DurableOrchestrationStatus.from_json(status_json(s)) for s in page.instances]
            token = page.continuation_token
            if token is None:
                return statuses

    # ----- purging ------------------------------------------------------------------------------

    async def purge_instance_history(self, instance_id: str) -> PurgeHistoryResult:
        """Delete a finished instance: `instances_deleted` 1, or 0 for an unknown one. An instance
        that has not finished is refused as the host refuses it (412)."""
        status = await self._client.get_status(instance_id, show_input=False)
        if status is None:
            return PurgeHistoryResult(instancesDeleted=0)
        if not status.runtime_status.is_terminal:
            raise Exception(_unexpected(412))
        deleted = await self._client.purge(instance_id)
        return PurgeHistoryResult.from_json({"instancesDeleted": deleted})

    async def purge_instance_history_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: list[OrchestrationRuntimeStatus] | None = None,
    ) -> PurgeHistoryResult:
        """Delete the instances created in `[created_time_from, created_time_to]` (the end
        defaults to now) whose status is one of `runtime_status`. `created_time_from` is
        required."""
        if created_time_from is None:
            raise ValueError("created_time_from is required when purging instance history")
        query = InstanceFilter(
            runtime_status=_statuses(runtime_status),
            created_from=_sent_time(created_time_from),
            created_to=_sent_time(created_time_to) or utc_now(),
        )
        deleted = await self._client.purge(query)
        if not deleted:
            return PurgeHistoryResult(instancesDeleted=0)
        return PurgeHistoryResult.from_json({"instancesDeleted": deleted})

    # ----- steering -----------------------------------------------------------------------------

    async def raise_event(
        self,
        instance_id: str,
        event_name: str,
        event_data: Any = None,
        task_hub_name: str | None = None,
        connection_name: str | None = None,
    ) -> None:
        """Send event `event_name` to a running instance. The data must be plain JSON (the SDK
        encodes it with `json.dumps`). Unknown instance: `Exception("No instance with ID ...
        found.")`; a finished one: `Exception("Instance with ID ... is gone: either completed or
        failed")`."""
        if event_name == "":
            raise ValueError("event_name must be a non-empty string.")
        data = json.loads(json.dumps(event_data))
        try:
            self._require_orchestration(instance_id)
            await self._client.raise_event(instance_id, event_name, data)
        except InstanceNotFound as exc:
            raise Exception(f"No instance with ID {instance_id} found.") from exc
        except InvalidOperation as exc:
            raise Exception(f"Instance with ID {instance_id} is gone: either completed or failed") from exc

    async def terminate(self, instance_id: str, reason: str) -> None:
        """Terminate a running instance; a finished one is left as it is, silently."""
        try:
            self._require_orchestration(instance_id)
            await self._client.terminate(instance_id, reason)
        except InstanceNotFound as exc:
            _no_instance(instance_id, exc)
        except InvalidOperation:  # already finished: the host's 410, which the SDK accepts
            return

    async def suspend(self, instance_id: str, reason: str) -> None:
        """Suspend a running instance; a finished one is left as it is, silently."""
        try:
            self._require_orchestration(instance_id)
            await self._client.suspend(instance_id, reason)
        except InstanceNotFound as exc:
            _no_instance(instance_id, exc)
        except InvalidOperation:
            return

    async def resume(self, instance_id: str, reason: str) -> None:
        """Resume a suspended instance; a finished one is left as it is, silently."""
        try:
            self._require_orchestration(instance_id)
            await self._client.resume(instance_id, reason)
        except InstanceNotFound as exc:
            _no_instance(instance_id, exc)
        except InvalidOperation:
            return

    async def rewind(
        self,
        instance_id: str,
        reason: str,
        task_hub_name: str | None = None,
        connection_name: str | None = None,
    ) -> None:
        """Retry a failed instance's failed work. Unknown instance: `Exception("No instance with
        ID ... found.")`; one that is not Failed: the host's 412 message."""
        try:
            self._require_orchestration(instance_id)
            status = await self._client.get_status(instance_id, show_input=False)
            if status is None:
                raise InstanceNotFound(instance_id)
            if status.runtime_status is not RuntimeStatus.FAILED:
                raise Exception(
                    f"This orchestration has status {status.runtime_status.value}, but only "
                    'orchestrations in the "Failed" state can be rewound.'
                )
            await self._client.rewind(instance_id, reason)
        except InstanceNotFound as exc:
            raise Exception(f"No instance with ID {instance_id} found.") from exc
        except InvalidOperation as exc:  # e.g. it failed inside a critical section
            raise Exception(str(exc)) from exc

    async def restart(self, instance_id: str, restart_with_new_instance_id: bool = True) -> str:
        """Start the instance's orchestrator again with its input; returns the id it runs under
        (a new one unless `restart_with_new_instance_id` is False). The host refuses an unknown
        instance (400) and, under the same id, one that has not finished (409)."""
        status = None if is_entity_instance(instance_id) else await self._client.get_status(instance_id)
        if status is None:
            raise Exception(_unexpected(400)) from InstanceNotFound(instance_id)
        if not restart_with_new_instance_id and not status.runtime_status.is_terminal:
            raise Exception(_unexpected(409)) from InstanceAlreadyExists(instance_id, status.runtime_status)
        try:
            return await self._client.restart(instance_id, restart_with_new_instance_id)
        except InstanceNotFound as exc:  # purged meanwhile
            raise Exception(_unexpected(400)) from exc

    # ----- entities -----------------------------------------------------------------------------

    async def signal_entity(
        self,
        entityId: EntityId,
        operation_name: str,
        operation_input: Any | None = None,
        task_hub_name: str | None = None,
        connection_name: str | None = None,
    ) -> None:
        """Send operation `operation_name` to the entity. As the SDK does, the input is encoded
        with `json.dumps` and a falsy input (0, "", False, [], {}) is not sent at all. An entity
        name nothing registered is the host's 400."""
        data = json.loads(json.dumps(operation_input)) if operation_input else None
        try:
            await self._client.signal_entity(_core_entity(entityId), operation_name, data)
        except UnknownFunction as exc:
            raise Exception(_unexpected(400)) from exc

    async def read_entity_state(
        self,
        entityId: EntityId,
        task_hub_name: str | None = None,
        connection_name: str | None = None,
    ) -> EntityStateResponse:
        """`EntityStateResponse(entity_exists, entity_state)`, the state as plain JSON (the SDK
        does not decode it). An entity whose state is null reads as `""`, as the SDK's HTTP
        helper turns an empty answer into one. An entity name nothing registered is the host's
        400."""
        registry = self._client.registry
        if registry is not None and entityId.name.lower() not in registry.entities:
            raise Exception(_unexpected(400)) from UnknownFunction(
                "entity", entityId.name, list(registry.entities)
            )
        response = await self._client.read_entity_state(_core_entity(entityId))
        if not response.exists:
            return EntityStateResponse(False)
        return EntityStateResponse(True, "" if response.state is None else response.state)

    # ----- helpers ------------------------------------------------------------------------------

    def _unknown_orchestrator_message(self, name: str) -> str:
        """The host's message for starting an orchestrator that is not there."""
        registry = self._client.registry
        known = list(registry.orchestrators) if registry is not None else []
        message = f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function. "
        if known:
            names = "', '".join(known)
            return f"{message}Additional info: The following are the known orchestrator functions: '{names}'."
        return message + "Additional info: No orchestrator functions are currently registered!"

    @staticmethod
    def _require_orchestration(instance_id: str) -> None:
        """Entities are not orchestration instances: steering one is "no such instance"."""
        if is_entity_instance(instance_id):
            raise InstanceNotFound(instance_id)


def _final_response(status: DurableOrchestrationStatus) -> func.HttpResponse | None:
    """The SDK's answer for a finished instance (None while it runs, or is not there)."""
    if not status:
        return None
    runtime_status = status.runtime_status
    if runtime_status is OrchestrationRuntimeStatus.Completed:
        return _json_response(200, status.output)
    if runtime_status in (OrchestrationRuntimeStatus.Canceled, OrchestrationRuntimeStatus.Terminated):
        return _json_response(200, status.to_json())
    if runtime_status is OrchestrationRuntimeStatus.Failed:
        return _json_response(500, status.to_json())
    return None


def _json_response(status_code: int, body: Any) -> func.HttpResponse:
    """A string body goes out as it is; anything else as JSON (the SDK's rule)."""
    return func.HttpResponse(
        body if isinstance(body, str) else json.dumps(body),
        status_code=status_code,
        mimetype="application/json",
        headers={"Content-Type": "application/json"},
    )


def _statuses(runtime_status: Iterable[OrchestrationRuntimeStatus] | None) -> frozenset[RuntimeStatus] | None:
    """The SDK's status filter in ours; statuses we never have (Canceled) match nothing."""
    if not runtime_status:
        return None
    ours = {status.value for status in RuntimeStatus}
    return frozenset(RuntimeStatus(s.value) for s in runtime_status if s.value in ours)


def _sent_time(value: datetime | None) -> datetime | None:
    """A time as the host receives it from the SDK, which writes the clock reading with a `Z`
    whatever the time zone (`strftime`): naive and aware times alike are read as UTC."""
    return None if value is None else value.replace(tzinfo=UTC)


def _unexpected(status_code: int) -> str:
    """The SDK's message for a status code it has no case for."""
    return f"The operation failed with an unexpected status code {status_code}"


def _no_instance(instance_id: str, cause: Exception) -> NoReturn:
    """terminate/suspend/resume's message for an unknown instance (quotes included)."""
    raise Exception(f"No instance with ID '{instance_id}' found.") from cause


def _core_entity(entity_id: EntityId) -> CoreEntityId:
    return CoreEntityId(entity_id.name, entity_id.key)
