"""What clients see of entities: state reads and listings, decoded from the stored documents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from asynkron_durable.entities.document import EntityDocument
from asynkron_durable.entities.ids import EntityId
from asynkron_durable.errors import StoreError
from asynkron_durable.history import InstanceRecord
from asynkron_durable.serialization import from_json


class EntityStateResponse(BaseModel):
    """`read_entity_state`'s answer: whether the entity has state, and the state (decoded JSON)."""

    model_config = ConfigDict(frozen=True)

    exists: bool
    state: Any = None


class EntityMetadata(BaseModel):
    """One entity in a listing: its id, whether it has state, who holds its lock, how many
    requests wait for that lock, when it last changed, and why its stored document cannot be read
    (`error`, None for a healthy entity)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    entity_id: EntityId
    exists: bool
    state: Any = None
    locked_by: str | None = None
    backlog: int = 0
    last_modified: datetime
    error: str | None = None

    @classmethod
    def from_record(cls, record: InstanceRecord, include_state: bool) -> EntityMetadata:
        """Decode a stored entity instance; an unreadable one is listed with its `error`."""
        try:
            document = EntityDocument.from_record(record)
        except StoreError as exc:
            return cls(
                entity_id=EntityId.from_instance_id(record.instance_id),
                exists=False,
                last_modified=record.last_updated_at,
                error=str(exc),
            )
        return cls(
            entity_id=EntityId.from_instance_id(record.instance_id),
            exists=document.exists,
            state=from_json(document.state) if include_state else None,
            locked_by=document.lock.owner_instance_id if document.lock else None,
            backlog=len(document.queue),
            last_modified=record.last_updated_at,
        )


class EntityPage(BaseModel):
    """One page of `list_entities`; pass `continuation_token` back for the next."""

    entities: list[EntityMetadata]
    continuation_token: str | None
