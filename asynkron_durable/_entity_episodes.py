"""Turn one claimed entity into one store commit: run its batch, store its new document.

The entity counterpart of `_episodes.py`: no I/O here, and the same commit (compare-and-swap on
the version, under the lease) makes entity processing safe across workers.
"""

from __future__ import annotations

import logging
from datetime import datetime

from asynkron_durable.entities.batch import run_entity_batch
from asynkron_durable.entities.classes import EntityFunction
from asynkron_durable.entities.document import EntityDocument, unlock_messages
from asynkron_durable.entities.ids import EntityId
from asynkron_durable.errors import StoreError
from asynkron_durable.history import (
    EntityCallFailed,
    EntityLockFailed,
    EntityLockRequest,
    EntityOperation,
    FailureDetails,
    RuntimeStatus,
)
from asynkron_durable.stores.base import EpisodeCommit, Message, OrchestrationWorkItem

log = logging.getLogger("asynkron_durable.entities")


def build_entity_commit(
    item: OrchestrationWorkItem, function: EntityFunction | Exception, now: datetime
) -> EpisodeCommit:
    """Process every message claimed for the entity, in order, as one batch and one commit."""
    record = item.record
    ack = [m.message_id for m in item.messages]
    try:
        document = EntityDocument.from_record(record)
    except StoreError as exc:
        return _unreadable(item, exc, now)
    entity_id = EntityId.from_instance_id(record.instance_id)
    result = run_entity_batch(entity_id, document, [m.event for m in item.messages], function, now)
    updated = record.model_copy(
        update={
            "output": result.document.model_dump_json(),
            "last_updated_at": now,
            "version": record.version + 1,
        }
    )
    return EpisodeCommit(updated, record.version, [], ack, messages=result.messages)


def _unreadable(item: OrchestrationWorkItem, error: StoreError, now: datetime) -> EpisodeCommit:
    """A corrupt document is kept for inspection and the entity marked Failed. Nobody is left
    waiting: callers get the error, lock requests fail (the entities locked before this one are
    released), signals and unlocks are logged and dropped."""
    record = item.record
    log.error("%s; failing its %d requests", error, len(item.messages))
    failure = FailureDetails.from_exception(error)
    replies: list[Message] = []
    for message in item.messages:
        match message.event:
            case EntityOperation(task_id=int(task_id), source_instance_id=str(source)):
                failed = EntityCallFailed(timestamp=now, task_scheduled_id=task_id, failure=failure)
                replies.append(Message(source, failed, execution_id=message.event.source_execution_id))
            case EntityLockRequest() as request:
                refused = EntityLockFailed(timestamp=now, task_scheduled_id=request.task_id, failure=failure)
                replies.append(
                    Message(request.owner_instance_id, refused, execution_id=request.owner_execution_id)
                )
                replies.extend(
                    unlock_messages(
                        request.owner_instance_id,
                        request.owner_execution_id,
                        request.task_id,
                        request.entity_ids[: request.position],
                        now,
                    )
                )
    failed_record = record.model_copy(
        update={
            "runtime_status": RuntimeStatus.FAILED,
            "failure": failure,
            "last_updated_at": now,
            "version": record.version + 1,
        }
    )
    return EpisodeCommit(
        failed_record, record.version, [], [m.message_id for m in item.messages], messages=replies
    )
