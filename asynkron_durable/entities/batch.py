"""Process one batch of requests for one entity: operations one at a time, in arrival order, locks
granted and released, all ending in one new document and the messages to send.

An unlock may overtake its lock request (an orchestration that ends, or is purged, while still
waiting for a lock gives the request up at once): a waiting request is then dropped, and one not
here yet is remembered (`EntityDocument.withdrawn`) and dropped when it arrives.

No I/O: the runtime claims the entity, calls `run_entity_batch` and commits what comes out.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from asynkron_durable.entities.classes import EntityFunction
from asynkron_durable.entities.context import EntityContext, running
from asynkron_durable.entities.document import EntityDocument, EntityLockHolder, entity_message
from asynkron_durable.entities.ids import EntityId
from asynkron_durable.errors import DurableError
from asynkron_durable.history import (
    EntityCallCompleted,
    EntityCallFailed,
    EntityLockGranted,
    EntityLockRequest,
    EntityOperation,
    EntityUnlock,
    FailureDetails,
    HistoryEvent,
)
from asynkron_durable.serialization import to_json
from asynkron_durable.stores.base import Message

log = logging.getLogger("asynkron_durable.entities")


@dataclass(slots=True)
class EntityBatchResult:
    """The entity's new document and everything its operations and locks send out."""

    document: EntityDocument
    messages: list[Message] = field(default_factory=list)


@dataclass(slots=True)
class _Batch:
    entity_id: EntityId
    function: EntityFunction | Exception
    now: datetime
    exists: bool
    state: str | None
    lock: EntityLockHolder | None
    messages: list[Message] = field(default_factory=list)

    def admits(self, request: HistoryEvent) -> bool:
        """Whether `request` may run now: always when unlocked, else only the lock owner's."""
        lock = self.lock
        if lock is None or isinstance(request, EntityUnlock):
            return True
        match request:
            case EntityOperation(source_instance_id=owner, source_execution_id=execution):
                return owner == lock.owner_instance_id and execution == lock.owner_execution_id
        return False

    def take_lock(self, request: EntityLockRequest) -> None:
        self.lock = _holder(request)
        following = request.position + 1
        if following < len(request.entity_ids):
            target = EntityId.from_instance_id(request.entity_ids[following])
            self.messages.append(
                entity_message(target, request.model_copy(update={"position": following}), self.now)
            )
            return
        granted = EntityLockGranted(
            timestamp=self.now, task_scheduled_id=request.task_id, entity_ids=request.entity_ids
        )
        self.messages.append(
            Message(request.owner_instance_id, granted, execution_id=request.owner_execution_id)
        )

    def release(self, request: EntityUnlock) -> bool:
        """Release the lock if `request` is its owner's; False for a stale or stray unlock."""
        if _holder(request) != self.lock:
            return False
        self.lock = None
        return True

    def operate(self, request: EntityOperation) -> None:
        context = EntityContext(
            self.entity_id, request.operation, request.input, self.state, self.exists, self.now
        )
        try:
            if isinstance(self.function, Exception):
                raise self.function
            with running(context):
                returned = self.function(context)
            if inspect.isawaitable(returned):
                close = getattr(returned, "close", None)
                if callable(close):
                    close()
                raise DurableError(
                    f"entity {self.entity_id.name!r} returned an awaitable: entity operations run "
                    "synchronously; do I/O in an activity"
                )
            result = context._result
            if not context._result_set and request.task_id is not None:  # signals have no reader
                result = to_json(returned, f"result of operation {request.operation!r}")
        except Exception as exc:
            self._respond_failure(request, exc)
            return
        self.exists, self.state = context._exists, context._state
        for signal in context._signals:
            operation = EntityOperation(
                timestamp=self.now,
                operation=signal.operation,
                input=signal.input,
                source_instance_id=self.entity_id.instance_id,
            )
            self.messages.append(entity_message(signal.entity_id, operation, self.now, signal.scheduled_time))
        if request.task_id is not None and request.source_instance_id is not None:
            completed = EntityCallCompleted(
                timestamp=self.now, task_scheduled_id=request.task_id, result=result
            )
            self.messages.append(
                Message(request.source_instance_id, completed, execution_id=request.source_execution_id)
            )

    def _respond_failure(self, request: EntityOperation, exc: Exception) -> None:
        if request.task_id is None or request.source_instance_id is None:
            log.warning(
                "signalled operation %r on entity %s failed: %s: %s",
                request.operation,
                self.entity_id,
                type(exc).__name__,
                exc,
            )
            return
        failed = EntityCallFailed(
            timestamp=self.now,
            task_scheduled_id=request.task_id,
            failure=FailureDetails.from_exception(exc),
        )
        self.messages.append(
            Message(request.source_instance_id, failed, execution_id=request.source_execution_id)
        )


def _holder(request: EntityLockRequest | EntityUnlock) -> EntityLockHolder:
    return EntityLockHolder(
        owner_instance_id=request.owner_instance_id,
        owner_execution_id=request.owner_execution_id,
        task_id=request.task_id,
    )


def run_entity_batch(
    entity_id: EntityId,
    document: EntityDocument,
    requests: Sequence[HistoryEvent],
    function: EntityFunction | Exception,
    now: datetime,
    on_operation: Callable[[], None] | None = None,
) -> EntityBatchResult:
    """Apply the deferred requests, then `requests`, in order. `function` is the entity's code, or
    the error every operation fails with when there is none (an unknown entity name).
    `on_operation` is called before each operation runs (a caller timing each one)."""
    batch = _Batch(entity_id, function, now, document.exists, document.state, document.lock)
    pending: deque[HistoryEvent] = deque([*document.queue, *requests])
    deferred: list[HistoryEvent] = []
    withdrawn = list(document.withdrawn)
    while pending:
        request = pending.popleft()
        if isinstance(request, EntityLockRequest) and _holder(request) in withdrawn:
            withdrawn.remove(_holder(request))  # its owner gave it up before it got here
            continue
        if not batch.admits(request):
            deferred.append(request)
            continue
        match request:
            case EntityOperation():
                if on_operation is not None:
                    on_operation()
                batch.operate(request)
            case EntityLockRequest():
                batch.take_lock(request)
            case EntityUnlock() if batch.release(request):
                pending.extendleft(reversed(deferred))  # the waiting ones go first, in order
                deferred = []
            case EntityUnlock():
                if not _withdraw(deferred, _holder(request)):
                    withdrawn = [*withdrawn, _holder(request)][-WITHDRAWN_KEPT:]
            case _:
                log.error(
                    "entity %s received %s, which is not an entity request; dropped", entity_id, request.kind
                )
    document = EntityDocument(
        exists=batch.exists, state=batch.state, lock=batch.lock, queue=deferred, withdrawn=withdrawn
    )
    return EntityBatchResult(document, batch.messages)


WITHDRAWN_KEPT = 64
"""How many unlocks that came before their lock request an entity remembers (oldest forgotten)."""


def _withdraw(deferred: list[HistoryEvent], holder: EntityLockHolder) -> bool:
    """Drop the waiting lock request of `holder` (its orchestration ended or was purged first)."""
    for position, request in enumerate(deferred):
        if isinstance(request, EntityLockRequest) and _holder(request) == holder:
            del deferred[position]
            return True
    return False
