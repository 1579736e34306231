"""Class-based entities: public methods are the operations, public attributes are the state.

```python
class Account:
    def __init__(self) -> None:
        self.balance = 0

    def deposit(self, amount: int) -> int:
        self.balance += amount
        return self.balance
```
Each operation rebuilds the object from the stored state (`__init__` runs only for an entity
without state), calls the method with the operation's input and stores the attributes again.
Pydantic models and dataclasses are stored through their own fields. The operation `delete`
(unless the class defines it) deletes the state; methods reach the context via `current_entity()`.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from asynkron_durable.entities.context import EntityContext
from asynkron_durable.errors import DurableError, UnknownFunction
from asynkron_durable.serialization import coerce

EntityFunction = Callable[[EntityContext], Any]
"""An entity function: called once per operation with its context; may return the result."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Operation:
    method: Callable[..., Any]
    takes_input: bool
    input_type: Any


def _operation(cls: type, name: str, method: Callable[..., Any]) -> _Operation:
    if inspect.iscoroutinefunction(method):
        raise DurableError(
            f"entity {cls.__name__}.{name} is async: entity operations run synchronously, one at a "
            "time; do I/O in an activity and pass the result in"
        )
    params = list(inspect.signature(method).parameters.values())[1:]
    if len(params) > 1:
        raise DurableError(f"entity operation {cls.__name__}.{name} takes {len(params)} inputs; it takes one")
    try:
        hints = typing.get_type_hints(method)
    except Exception:
        hints = {}
    input_type = hints.get(params[0].name, Any) if params else Any
    return _Operation(method, bool(params), input_type)


def _load(cls: type, context: EntityContext) -> Any:
    if not context.has_state:
        return cls()
    state = context.get_state()
    if issubclass(cls, BaseModel) or dataclasses.is_dataclass(cls):
        return coerce(state, cls, f"state of entity {context.entity_id}")
    entity = cls.__new__(cls)
    entity.__dict__.update(state)
    return entity


def _dump(entity: Any) -> Any:
    if isinstance(entity, BaseModel) or dataclasses.is_dataclass(entity):
        return entity
    return {k: v for k, v in vars(entity).items() if not k.startswith("_")}


def _is_operation(cls: type, name: str) -> bool:
    """A public method the user's classes define: not a static method, not pydantic's own API."""
    owner = next(klass for klass in cls.__mro__ if name in vars(klass))
    return owner not in BaseModel.__mro__ and not isinstance(vars(owner)[name], staticmethod)


def class_entity(cls: type) -> EntityFunction:
    """The entity function that runs `cls`'s methods as operations."""
    operations = {
        name: _operation(cls, name, member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and _is_operation(cls, name)
    }

    def run(context: EntityContext) -> Any:
        operation = operations.get(context.operation_name)
        if operation is None:
            if context.operation_name == "delete":
                context.delete_state()
                return None
            raise UnknownFunction(
                "operation", context.operation_name, list(operations), of=f"entity {cls.__name__}"
            )
        entity = _load(cls, context)
        if operation.takes_input:
            what = f"input of operation {context.operation_name!r} on entity {context.entity_id}"
            result = operation.method(entity, coerce(context.get_input(), operation.input_type, what))
        else:
            result = operation.method(entity)
        if not context._deleted:
            context.set_state(_dump(entity))
        return result

    run.__name__ = cls.__name__
    return run
