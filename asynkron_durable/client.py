"""`OrchestrationClient`: start, query and steer instances. It only writes to the store; runtimes act."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from asynkron_durable.engine import failed_inside_critical_section, outstanding_locks
from asynkron_durable.entities.document import EntityDocument, entity_message, unlock_messages
from asynkron_durable.entities.ids import EntityId, is_entity_instance
from asynkron_durable.entities.views import EntityMetadata, EntityPage, EntityStateResponse
from asynkron_durable.errors import (
    InstanceNotFound,
    InvalidOperation,
    OrchestrationTimeout,
    SerializationError,
    StoreError,
    UnknownFunction,
)
from asynkron_durable.history import (
    ENTITY_ID_PREFIX,
    EntityOperation,
    EventRaised,
    ExecutionResumed,
    ExecutionRewound,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    FailureDetails,
    HistoryEvent,
    InstanceRecord,
    RuntimeStatus,
    utc_now,
)
from asynkron_durable.instance_ids import check_instance_id
from asynkron_durable.registry import Registry
from asynkron_durable.serialization import coerce, from_json, to_json
from asynkron_durable.starting import StartBatcher
from asynkron_durable.stores import as_store
from asynkron_durable.stores.base import (
    DeadLetter,
    InstanceFilter,
    Message,
    NewInstance,
    StateStore,
    UnreadableInstance,
)
from asynkron_durable.waiting import CompletionWatcher

_LIVE_WITHIN = timedelta(seconds=30)
"""A worker whose last heartbeat is older than this is not counted as running (they beat each second)."""


class OrchestrationStatus(BaseModel):
    """An instance as a client sees it: payloads decoded from JSON."""

    model_config = ConfigDict(frozen=True)

    instance_id: str
    name: str
    runtime_status: RuntimeStatus
    input: Any = None
    output: Any = None
    custom_status: Any = None
    created_at: datetime
    last_updated_at: datetime
    failure: FailureDetails | None = None
    history: list[HistoryEvent] | None = None
    unreadable: str | None = None
    """Why a stored payload of the instance cannot be read (which one, and the error); that field
    is None. Every other field is as stored."""
    dead_letters: int = 0
    """How many messages to the instance could not be read and were set aside (at most 100
    counted; `OrchestrationClient.dead_letters` lists them): it may wait for what they said."""
    waiting: str | None = None
    """Why the instance cannot move on, when that is because no live worker runs it (a name not
    registered by any running worker, or no worker running at all); None otherwise."""

    @classmethod
    def from_record(
        cls,
        record: InstanceRecord,
        show_input: bool = True,
        history: list[HistoryEvent] | None = None,
    ) -> OrchestrationStatus:
        """Decode a stored record; a payload that is not JSON is reported in `unreadable`."""
        problems: list[str] = []

        def decoded(field: str, text: str | None) -> Any:
            try:
                return from_json(text)
            except SerializationError as exc:
                problems.append(f"{field}: {exc}")
                return None

        return cls(
            instance_id=record.instance_id,
            name=record.name,
            runtime_status=record.runtime_status,
            input=decoded("input", record.input) if show_input else None,
            output=decoded("output", record.output),
            custom_status=decoded("custom_status", record.custom_status),
            created_at=record.created_at,
            last_updated_at=record.last_updated_at,
            failure=record.failure,
            history=history,
            unreadable="; ".join(problems) or None,
        )


class StatusPage(BaseModel):
    """One page of `list_instances`; pass `continuation_token` back for the next."""

    instances: list[OrchestrationStatus]
    continuation_token: str | None
    unreadable: list[UnreadableInstance] = []
    """Instances on this page whose stored row cannot be read at all, with the reason."""


class OrchestrationClient:
    """Client for one store. With a `registry`, unknown orchestrator names fail at `start_new` and
    unknown entity names at `signal_entity`, unless it registers none of that kind (a runtime used
    only as a client accepts any name)."""

    def __init__(self, store: StateStore, registry: Registry | None = None) -> None:
        self.store = store
        self._registry = registry
        self._watcher: CompletionWatcher | None = None
        self._starts = StartBatcher(self.store)

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, store: StateStore | str, *, task_hub: str | None = None
    ) -> AsyncIterator[OrchestrationClient]:
        """`async with OrchestrationClient.connect(url) as client:` a client on the store (a URL, for
        `task_hub` if given, or a store object), opened for the block and closed after it."""
        opened = as_store(store, task_hub)
        await opened.open()
        try:
            yield cls(opened)
        finally:
            await opened.close()

    @property
    def registry(self) -> Registry | None:
        """The registrations names are checked against (None: any name is accepted)."""
        return self._registry

    async def start_new(
        self,
        name: str,
        input: Any = None,
        instance_id: str | None = None,
        *,
        replace: bool = False,
    ) -> str:
        """Start orchestrator `name`; returns the instance id. An id that is still running raises
        `InstanceAlreadyExists` unless `replace` is set; a finished one is reused. Concurrent
        starts of one client share transactions (`starting.py`)."""
        new = self._new_instance(name, input, instance_id)
        await self._create(new, replace)
        return new.record.instance_id

    async def start_many(self, name: str, inputs: Iterable[Any]) -> list[str]:
        """Start one instance of `name` per input, with new ids, in a few transactions; returns
        the ids in input order. Every input is checked before any instance starts; if the store
        fails part-way, the error's note names the instances that did start."""
        news = [self._new_instance(name, value, None) for value in inputs]
        outcomes = await asyncio.gather(*(self._create(new, False) for new in news), return_exceptions=True)
        started = [new.record.instance_id for new, out in zip(news, outcomes, strict=True) if out is None]
        failed = [out for out in outcomes if isinstance(out, BaseException)]
        if failed:
            failed[0].add_note(f"{len(started)} of {len(news)} instances started: {', '.join(started)}")
            raise failed[0]
        return started

    def _new_instance(self, name: str, input: Any, instance_id: str | None) -> NewInstance:
        """The instance `start_new` stores, or the error that says why it cannot."""
        known = self._registry.orchestrators if self._registry is not None else {}
        if known and name not in known:
            raise UnknownFunction("orchestrator", name, list(known))
        if instance_id is not None and not instance_id.strip():
            raise ValueError("instance_id must not be empty")
        if instance_id is not None and is_entity_instance(instance_id):
            raise ValueError(
                f"instance_id {instance_id!r} starts with {ENTITY_ID_PREFIX!r}, which marks entity ids"
            )
        if instance_id is not None:
            check_instance_id(instance_id)
        return _start_of(name, to_json(input, f"input of orchestrator {name!r}"), instance_id)

    async def _create(self, new: NewInstance, replace: bool) -> None:
        if not replace and await self._starts.create(new):
            return
        if replace:
            existing = await self.store.get_instance(new.record.instance_id)
            if existing is not None and not existing.runtime_status.is_terminal:
                await self._give_back_locks(existing)
        await self.store.create_instance(new, replace=replace)

    async def get_status(
        self, instance_id: str, show_history: bool = False, show_input: bool = True
    ) -> OrchestrationStatus | None:
        """The instance's status, or None if there is no such instance."""
        record = await self.store.get_instance(instance_id)
        if record is None:
            return None
        history = await self.store.get_history(instance_id) if show_history else None
        status = OrchestrationStatus.from_record(record, show_input, history)
        dead = len(await self.store.dead_letters(instance_id))
        waiting = await self._why_waiting(record)
        if dead or waiting:
            status = status.model_copy(update={"dead_letters": dead, "waiting": waiting})
        return status

    async def _why_waiting(self, record: InstanceRecord) -> str | None:
        """Why no worker runs the instance, if none does (see `OrchestrationStatus.waiting`)."""
        if record.runtime_status.is_terminal:
            return None
        now = utc_now()
        live = [w for w in await self.store.workers.registered() if now - w.heartbeat_at <= _LIVE_WITHIN]
        if not live:
            if record.runtime_status is not RuntimeStatus.PENDING:
                return None  # it may only be waiting for an event; nothing to say yet
            return "no worker is running: start one (asynkron-durable worker APP) on this store"
        if any(record.name in worker.instance_names for worker in live):
            return None
        kind = "entity" if is_entity_instance(record.instance_id) else "orchestrator"
        offered = ", ".join(sorted(set().union(*(worker.instance_names for worker in live)))) or "nothing"
        return f"no live worker registers {kind} {record.name!r}; live workers register: {offered}"

    async def dead_letters(self, instance_id: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Messages that could not be read and were set aside, newest first: to `instance_id`, or
        to any instance."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        return await self.store.dead_letters(instance_id, limit)

    async def list_instances(
        self,
        filter: InstanceFilter | None = None,
        page_size: int = 100,
        continuation_token: str | None = None,
    ) -> StatusPage:
        """Instances matching `filter` (status, created range, id prefix), one page at a time."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        page = await self.store.query_instances(_orchestrations(filter), page_size, continuation_token)
        return StatusPage(
            instances=[OrchestrationStatus.from_record(r) for r in page.instances],
            continuation_token=page.continuation_token,
            unreadable=page.unreadable,
        )

    async def raise_event(self, instance_id: str, event_name: str, data: Any = None) -> None:
        """Deliver external event `event_name` to a running (or pending, or suspended) instance."""
        payload = to_json(data, f"data of event {event_name!r}")
        await self._require(instance_id, "raise an event on", terminal_ok=False)
        await self._send(instance_id, EventRaised(name=event_name, input=payload))

    async def terminate(self, instance_id: str, reason: str | None = None) -> None:
        """Stop the instance; its status becomes Terminated with `reason` as output."""
        await self._require(instance_id, "terminate", terminal_ok=False)
        await self._send(instance_id, ExecutionTerminated(reason=reason))

    async def suspend(self, instance_id: str, reason: str | None = None) -> None:
        """Hold the instance: events and results queue up until `resume`."""
        await self._require(instance_id, "suspend", terminal_ok=False)
        await self._send(instance_id, ExecutionSuspended(reason=reason))

    async def resume(self, instance_id: str, reason: str | None = None) -> None:
        """Let a suspended instance go on with what queued up meanwhile."""
        await self._require(instance_id, "resume", terminal_ok=False)
        await self._send(instance_id, ExecutionResumed(reason=reason))

    async def rewind(self, instance_id: str, reason: str | None = None) -> None:
        """Retry a failed instance's failed work (activities, sub-orchestrations) from where it failed."""
        record = await self._require(instance_id, "rewind", terminal_ok=True)
        if record.runtime_status is not RuntimeStatus.FAILED:
            raise InvalidOperation(
                f"cannot rewind instance {instance_id!r}: it is {record.runtime_status}, not Failed"
            )
        if failed_inside_critical_section(await self.store.get_history(instance_id)):
            raise InvalidOperation(
                f"cannot rewind instance {instance_id!r}: it failed inside a critical section, whose "
                "locks were given back when it failed; restart it instead"
            )
        await self._send(instance_id, ExecutionRewound(reason=reason))

    async def restart(self, instance_id: str, restart_with_new_instance_id: bool = True) -> str:
        """Start the same orchestrator again with the same input; returns the new instance's id."""
        record = await self._require(instance_id, "restart", terminal_ok=True)
        new_id = uuid.uuid4().hex if restart_with_new_instance_id else instance_id
        await self._create(_start_of(record.name, record.input, new_id), not restart_with_new_instance_id)
        return new_id

    async def purge(self, target: str | InstanceFilter) -> int:
        """Delete one instance (by id) or every instance matching a filter; returns how many.
        A filter leaves entities alone unless it sets `entities=True` (see `purge_entities`)."""
        if isinstance(target, str):
            if is_entity_instance(target):
                raise InvalidOperation(
                    f"{target!r} is an entity: delete its state with its 'delete' operation (or "
                    "delete_state), then purge_entities()"
                )
            record = await self.store.get_instance(target)
            if record is not None and not record.runtime_status.is_terminal:
                await self._give_back_locks(record)
            return 1 if await self.store.purge_instance(target) else 0
        query = _orchestrations(target)
        if not query.entities:
            await self._give_back_running_locks(query)
        return await self.store.purge_instances(query)

    async def _give_back_running_locks(self, query: InstanceFilter) -> None:
        """Unlock what the still-running instances a bulk purge will delete hold or wait for."""
        statuses = query.runtime_status if query.runtime_status is not None else frozenset(RuntimeStatus)
        running = frozenset(s for s in statuses if not s.is_terminal)
        if not running:
            return
        token: str | None = None
        while True:
            page = await self.store.query_instances(
                dataclasses.replace(query, runtime_status=running), 500, token
            )
            for record in page.instances:
                await self._give_back_locks(record)
            token = page.continuation_token
            if token is None:
                return

    async def _give_back_locks(self, record: InstanceRecord) -> None:
        """An instance about to be purged or replaced while running never ends by itself: unlock
        the critical sections it holds or waits for, or their entities would stay locked."""
        history = await self.store.get_history(record.instance_id)
        now = utc_now()
        unlocks = [
            unlock
            for seq, entity_ids in outstanding_locks(history)
            for unlock in unlock_messages(record.instance_id, record.execution_id, seq, entity_ids, now)
        ]
        if unlocks:
            await self.store.send_messages(unlocks)

    # ----- entities -----------------------------------------------------------------------------

    async def signal_entity(
        self,
        entity_id: EntityId | str,
        operation: str,
        input: Any = None,
        *,
        scheduled_time: datetime | None = None,
    ) -> None:
        """Send `operation` to an entity (created by its first signal), delivered no earlier than
        `scheduled_time` when given. One way: nothing comes back."""
        target = EntityId.parse(entity_id)
        entities = self._registry.entities if self._registry is not None else {}
        if entities and target.name not in entities:
            raise UnknownFunction("entity", target.name, list(entities))
        payload = to_json(input, f"input of operation {operation!r} on entity {target}")
        if scheduled_time is not None and scheduled_time.tzinfo is None:
            scheduled_time = scheduled_time.replace(tzinfo=UTC)
        now = utc_now()
        event = EntityOperation(timestamp=now, operation=operation, input=payload)
        await self.store.send_messages([entity_message(target, event, now, scheduled_time)])

    async def read_entity_state(self, entity_id: EntityId | str, type: Any = None) -> EntityStateResponse:
        """The entity's current state (validated into `type` when given); `exists` is False for an
        entity that was never created or whose state was deleted."""
        target = EntityId.parse(entity_id)
        record = await self.store.get_instance(target.instance_id)
        document = EntityDocument() if record is None else EntityDocument.from_record(record)
        if not document.exists:
            return EntityStateResponse(exists=False)
        state = coerce(from_json(document.state), type, f"state of entity {target}")
        return EntityStateResponse(exists=True, state=state)

    async def list_entities(
        self,
        name_prefix: str | None = None,
        page_size: int = 100,
        continuation_token: str | None = None,
        *,
        include_state: bool = False,
        include_deleted: bool = False,
    ) -> EntityPage:
        """Entities whose name starts with `name_prefix`, one page at a time. Entities without
        state are left out unless `include_deleted` (a page may then hold fewer than `page_size`);
        unreadable ones are always listed, with their `error`."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        prefix = ENTITY_ID_PREFIX + (name_prefix or "").lower()
        query = InstanceFilter(instance_id_prefix=prefix, entities=True)
        page = await self.store.query_instances(query, page_size, continuation_token)
        entities = [EntityMetadata.from_record(r, include_state) for r in page.instances]
        if not include_deleted:
            entities = [e for e in entities if e.exists or e.error is not None]
        return EntityPage(entities=entities, continuation_token=page.continuation_token)

    async def purge_entities(self) -> int:
        """Delete the stored rows of entities left empty: no state, no lock, nothing queued or on
        its way. Returns how many were removed; an entity that receives a message meanwhile stays."""
        purged = 0
        token: str | None = None
        while True:
            page = await self.store.query_instances(InstanceFilter(entities=True), 500, token)
            for record in page.instances:
                if _is_idle_entity(record) and await self.store.purge_instance(
                    record.instance_id, expected_version=record.version
                ):
                    purged += 1
            token = page.continuation_token
            if token is None:
                return purged

    async def wait_for_completion(
        self, instance_id: str, timeout: float = 60.0, poll_interval: float = 0.05
    ) -> OrchestrationStatus:
        """Wait until the instance is Completed, Failed or Terminated; `OrchestrationTimeout` after
        `timeout` seconds. All of a client's waits share one reader (`waiting.py`): an ending in
        this process is seen at once, one in another process within `poll_interval` seconds."""
        if self._watcher is None:
            self._watcher = CompletionWatcher(self.store)
        limit = None if timeout == float("inf") else timeout
        try:
            ended = await asyncio.wait_for(self._watcher.wait(instance_id, poll_interval), limit)
        except TimeoutError:
            record = await self.store.get_instance(instance_id)
            if record is None:
                raise InstanceNotFound(instance_id) from None
            raise OrchestrationTimeout(
                f"instance {instance_id!r} still {record.runtime_status} after {timeout:g}s"
            ) from None
        record, any_dead_letters = ended
        if record is None:
            raise InstanceNotFound(instance_id)
        if any_dead_letters:  # rare: read the whole status, with this instance's count
            status = await self.get_status(instance_id)
            if status is None:
                raise InstanceNotFound(instance_id)
            return status
        return OrchestrationStatus.from_record(record)  # what get_status says of a finished one

    async def _require(self, instance_id: str, verb: str, *, terminal_ok: bool) -> InstanceRecord:
        if is_entity_instance(instance_id):
            raise InvalidOperation(
                f"cannot {verb} {instance_id!r}: it is an entity, not an orchestration instance; "
                "send it operations with signal_entity"
            )
        record = await self.store.get_instance(instance_id)
        if record is None:
            raise InstanceNotFound(instance_id)
        if not terminal_ok and record.runtime_status.is_terminal:
            raise InvalidOperation(
                f"cannot {verb} instance {instance_id!r}: it already finished ({record.runtime_status})"
            )
        return record

    async def _send(self, instance_id: str, event: HistoryEvent) -> None:
        await self.store.send_messages([Message(instance_id, event)])


def _start_of(name: str, payload: str | None, instance_id: str | None) -> NewInstance:
    """A new Pending instance of orchestrator `name` with its start event (a new id if None)."""
    now = utc_now()
    execution_id = uuid.uuid4().hex
    record = InstanceRecord(
        instance_id=instance_id or uuid.uuid4().hex,
        name=name,
        execution_id=execution_id,
        runtime_status=RuntimeStatus.PENDING,
        input=payload,
        created_at=now,
        last_updated_at=now,
    )
    start = ExecutionStarted(timestamp=now, name=name, input=payload, execution_id=execution_id)
    return NewInstance(record, start)


def _is_idle_entity(record: InstanceRecord) -> bool:
    """Whether an entity row may be purged; an unreadable one is kept for inspection."""
    try:
        return EntityDocument.from_record(record).is_idle
    except StoreError:
        return False


def _orchestrations(query: InstanceFilter | None) -> InstanceFilter:
    """Instance queries and bulk purges are about orchestrations unless they ask for entities."""
    query = query or InstanceFilter()
    return dataclasses.replace(query, entities=False) if query.entities is None else query
