"""What an entity instance stores: its state, its lock and the requests waiting for the lock.

Kept as JSON in the entity instance's `output` column; entities have no history, so one row is
all an entity costs, however many operations it has processed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from asynkron_durable.entities.ids import EntityId
from asynkron_durable.errors import StoreError
from asynkron_durable.history import EntityUnlock, HistoryEvent, InstanceRecord, RuntimeStatus
from asynkron_durable.stores.base import Message


class EntityLockHolder(BaseModel):
    """The orchestration (and its lock request) an entity is locked for."""

    model_config = ConfigDict(frozen=True)

    owner_instance_id: str
    owner_execution_id: str
    task_id: int


class EntityDocument(BaseModel):
    """An entity's stored document. `queue` holds requests deferred while another owner held the
    lock, in arrival order; they run as soon as the lock is released. `withdrawn` holds lock
    requests given up before they arrived (their unlock came first)."""

    model_config = ConfigDict(frozen=True)

    exists: bool = False
    state: str | None = None
    lock: EntityLockHolder | None = None
    queue: list[HistoryEvent] = []
    withdrawn: list[EntityLockHolder] = []

    @classmethod
    def from_record(cls, record: InstanceRecord) -> EntityDocument:
        """Read the document from an entity instance's record; `StoreError` if it is corrupt."""
        if record.output is None:
            return cls()
        try:
            return cls.model_validate_json(record.output)
        except ValueError as exc:
            raise StoreError(f"entity {record.instance_id!r} holds an unreadable document: {exc}") from exc

    @property
    def is_idle(self) -> bool:
        """No state, no lock, nothing waiting or withdrawn: the entity can be purged."""
        return not self.exists and self.lock is None and not self.queue and not self.withdrawn


def new_entity_record(entity_id: EntityId, now: datetime) -> InstanceRecord:
    """The record an entity instance starts as, created by the first message sent to it."""
    return InstanceRecord(
        instance_id=entity_id.instance_id,
        name=entity_id.name,
        execution_id="",
        runtime_status=RuntimeStatus.RUNNING,
        created_at=now,
        last_updated_at=now,
    )


def unlock_messages(
    instance_id: str, execution_id: str, lock_sequence: int, entity_ids: Sequence[str], now: datetime
) -> list[Message]:
    """Give back the critical section `lock_sequence` of an orchestration execution: one unlock per
    entity, which releases the lock, or drops the request if it is still waiting or on its way."""
    return [
        Message(
            entity_id,
            EntityUnlock(
                timestamp=now,
                owner_instance_id=instance_id,
                owner_execution_id=execution_id,
                task_id=lock_sequence,
            ),
        )
        for entity_id in entity_ids
    ]


def entity_message(
    entity_id: EntityId, event: HistoryEvent, now: datetime, visible_at: datetime | None = None
) -> Message:
    """A message to an entity that creates the entity instance if it does not exist yet."""
    return Message(
        entity_id.instance_id, event, visible_at=visible_at, creates=new_entity_record(entity_id, now)
    )
