"""Durable entities: small addressable objects with durable state, one operation at a time."""

from asynkron_durable.entities.classes import EntityFunction, class_entity
from asynkron_durable.entities.context import EntityContext, current_entity
from asynkron_durable.entities.ids import EntityId, is_entity_instance
from asynkron_durable.entities.views import EntityMetadata, EntityPage, EntityStateResponse

__all__ = [
    "EntityContext",
    "EntityFunction",
    "EntityId",
    "EntityMetadata",
    "EntityPage",
    "EntityStateResponse",
    "class_entity",
    "current_entity",
    "is_entity_instance",
]
