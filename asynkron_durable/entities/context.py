"""`EntityContext`: what an entity operation sees: who it is, the operation, its input and state."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, overload

from asynkron_durable.entities.ids import EntityId
from asynkron_durable.errors import DurableError
from asynkron_durable.serialization import coerce, from_json, to_json

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EntitySignal:
    """A signal an operation sent to another entity; sent only if the operation succeeds."""

    entity_id: EntityId
    operation: str
    input: str | None
    scheduled_time: datetime | None


class EntityContext:
    """One operation on one entity. State changes count only if the operation returns normally:
    an operation that raises leaves the state as it was and sends none of its signals."""

    def __init__(
        self,
        entity_id: EntityId,
        operation_name: str,
        input: str | None,
        state: str | None,
        exists: bool,
        now: datetime,
    ) -> None:
        self.entity_id = entity_id
        self.operation_name = operation_name
        self.current_utc_datetime = now
        self._input = input
        self._state = state
        self._exists = exists
        self._deleted = False
        self._result: str | None = None
        self._result_set = False
        self._signals: list[EntitySignal] = []

    @property
    def entity_name(self) -> str:
        """The entity's (lower-case) name."""
        return self.entity_id.name

    @property
    def entity_key(self) -> str:
        """The entity's key."""
        return self.entity_id.key

    @property
    def has_state(self) -> bool:
        """True when the entity holds state (set and not deleted)."""
        return self._exists

    @overload
    def get_input(self, type: None = None) -> Any: ...
    @overload
    def get_input(self, type: type[T]) -> T: ...
    def get_input(self, type: Any = None) -> Any:
        """The operation's input, decoded from JSON and validated into `type` when given."""
        what = f"input of operation {self.operation_name!r} on entity {self.entity_id}"
        return coerce(from_json(self._input), type, what)

    def get_state(self, initializer: Callable[[], Any] | Any = None, type: Any = None) -> Any:
        """The current state (a fresh decoded copy: change it, then `set_state`). Without state,
        `initializer()` (or `initializer` itself when it is not callable)."""
        if not self._exists:
            return initializer() if callable(initializer) else initializer
        return coerce(from_json(self._state), type, f"state of entity {self.entity_id}")

    def set_state(self, state: Any) -> None:
        """Replace the state; it must be JSON-serialisable."""
        self._state = to_json(state, f"state of entity {self.entity_id}")
        self._exists = True
        self._deleted = False

    def delete_state(self) -> None:
        """Remove the state: the entity no longer exists (until an operation sets state again)."""
        self._state = None
        self._exists = False
        self._deleted = True

    destruct_on_exit = delete_state

    def set_result(self, result: Any) -> None:
        """The value a caller's `call_entity` returns (else the operation's return value)."""
        self._result = to_json(result, f"result of operation {self.operation_name!r} on {self.entity_id}")
        self._result_set = True

    def signal_entity(
        self,
        entity_id: EntityId | str,
        operation: str,
        input: Any = None,
        scheduled_time: datetime | None = None,
    ) -> None:
        """Send `operation` to another entity (or this one), once this operation succeeds."""
        target = EntityId.parse(entity_id)
        payload = to_json(input, f"input of operation {operation!r} on entity {target}")
        if scheduled_time is not None and scheduled_time.tzinfo is None:
            scheduled_time = scheduled_time.replace(tzinfo=UTC)
        self._signals.append(EntitySignal(target, operation, payload, scheduled_time))


_CURRENT: contextvars.ContextVar[EntityContext] = contextvars.ContextVar("asynkron_durable_entity")


def current_entity() -> EntityContext:
    """The context of the entity operation running now (for class-based entities' methods)."""
    try:
        return _CURRENT.get()
    except LookupError:
        raise DurableError("current_entity() is only available inside an entity operation") from None


@contextmanager
def running(context: EntityContext) -> Iterator[None]:
    """Make `context` what `current_entity()` returns while an operation runs."""
    token = _CURRENT.set(context)
    try:
        yield
    finally:
        _CURRENT.reset(token)
