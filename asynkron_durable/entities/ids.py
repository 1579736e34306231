"""`EntityId`: how an entity is addressed, and the instance id its state is stored under."""

from __future__ import annotations

from dataclasses import dataclass

from asynkron_durable.history import ENTITY_ID_PREFIX


@dataclass(frozen=True, slots=True)
class EntityId:
    """An entity: the entity function's `name` (case-insensitive, kept lower-case) and a `key`.

    Stored as the instance `@name@key`, the form Durable Functions uses, so ids read the same in
    both worlds. Names may not contain `@`; keys may hold anything but must be strings.
    """

    name: str
    key: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "@" in self.name:
            raise ValueError(f"entity name must be a non-empty string without '@', got {self.name!r}")
        if not isinstance(self.key, str):
            raise TypeError(f"entity key must be a string, got {type(self.key).__name__} {self.key!r}")
        object.__setattr__(self, "name", self.name.lower())

    @property
    def instance_id(self) -> str:
        """The id of the instance that holds this entity's state and inbox."""
        return f"{ENTITY_ID_PREFIX}{self.name}@{self.key}"

    @classmethod
    def from_instance_id(cls, instance_id: str) -> EntityId:
        """Parse `@name@key`; raises `ValueError` for anything else."""
        name, sep, key = instance_id.removeprefix(ENTITY_ID_PREFIX).partition("@")
        if not instance_id.startswith(ENTITY_ID_PREFIX) or not sep:
            raise ValueError(f"{instance_id!r} is not an entity instance id (expected '@name@key')")
        return cls(name, key)

    @classmethod
    def parse(cls, value: EntityId | str) -> EntityId:
        """An `EntityId` as given, or parsed from `@name@key`."""
        return value if isinstance(value, EntityId) else cls.from_instance_id(value)

    def __str__(self) -> str:
        return self.instance_id


def is_entity_instance(instance_id: str) -> bool:
    """True for the instance id of an entity (as opposed to an orchestration)."""
    return instance_id.startswith(ENTITY_ID_PREFIX)
