"""Azure-style entity functions on the core's entities.

`AzureEntityContext` is the public API of the SDK's `DurableEntityContext` over one operation's core
`EntityContext`; `core_entity` turns a user entity function into a core one. The core keeps the
state between the operations of a batch and rolls back an operation that raises; values cross as
the SDK encodes them (`df_dumps`/`df_loads`, so classes with `to_json`/`from_json` work), carried by
the core as the plain JSON of that encoding.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from azure.functions.decorators.function_app import FunctionBuilder

from asynkron_durable import EntityContext
from asynkron_durable.errors import DurableError, SerializationError
from asynkron_durable_azure.payloads import from_plain, to_plain

UserEntity = Callable[["AzureEntityContext"], Any]


class AzureEntityContext:
    """What an Azure-style entity function receives as `context`, for one operation.

    As in the SDK, `get_state` hands out the live state object: changing it in place changes the
    state even without `set_state` (it is written back when the operation returns), and
    `set_result` makes the entity exist, with a null state if it had none.
    """

    def __init__(self, core: EntityContext) -> None:
        self._core = core
        self._exists = core.has_state
        self._state: Any = None
        self._state_is_live = False  # `_state` is the state (decoded, set or destructed), not the core's
        self._result: Any = None

    @property
    def entity_name(self) -> str:
        """The entity's name (lower-case, as Azure's entity ids have it)."""
        return self._core.entity_name

    @property
    def entity_key(self) -> str:
        """The entity's key."""
        return self._core.entity_key

    @property
    def operation_name(self) -> str:
        """The operation being run."""
        return self._core.operation_name

    @property
    def is_newly_constructed(self) -> bool:
        """Always False: the SDK never sets it (its semantics are unspecified there)."""
        return False

    def get_state(
        self, initializer: Callable[[], Any] | None = None, expected_type: type | None = None
    ) -> Any:
        """The state, decoded the SDK's way on first use (into `expected_type` when given); without
        state (or with a null one), `initializer()`, which is not stored."""
        if not self._state_is_live and self._core.has_state:
            self._state = _decoded(
                self._core.get_state(), expected_type, f"state of entity {self._core.entity_id}"
            )
            self._state_is_live = True
        if self._state is not None:
            return self._state
        if not initializer:
            return None
        if not callable(initializer):
            raise TypeError("initializer argument needs to be a callable function")
        return initializer()

    def get_input(self, expected_type: type | None = None) -> Any:
        """The operation's input, decoded the SDK's way (into `expected_type` when given)."""
        what = f"input of operation {self.operation_name!r} on entity {self._core.entity_id}"
        return _decoded(self._core.get_input(), expected_type, what)

    def set_state(self, state: Any) -> None:
        """Replace the state (encoded when the operation returns, so later changes to it count)."""
        self._exists = True
        self._state = state
        self._state_is_live = True

    def set_result(self, result: Any) -> None:
        """The operation's result for a caller; like the SDK, this makes the entity exist."""
        self._exists = True
        self._result = result

    def destruct_on_exit(self) -> None:
        """Delete the entity's state when the operation returns (unless it sets state again)."""
        self._exists = False
        self._state = None
        self._state_is_live = True

    def _finish(self) -> None:
        """Hand the operation's state and result to the core, encoded the SDK's way."""
        core = self._core
        if not self._exists:
            if core.has_state:
                core.delete_state()
        elif self._state_is_live or not core.has_state:
            core.set_state(_encoded(self._state, f"state of entity {core.entity_id}"))
        what = f"result of operation {core.operation_name!r} on entity {core.entity_id}"
        core.set_result(_encoded(self._result, what))


def _decoded(plain: Any, expected_type: type | None, what: str) -> Any:
    try:
        return from_plain(plain, expected_type)
    except (TypeError, ValueError, AttributeError) as exc:  # a class not loaded, or without from_json
        raise SerializationError(f"{what} cannot be decoded: {exc}") from exc


def _encoded(value: Any, what: str) -> Any:
    try:
        return to_plain(value)
    except (TypeError, ValueError) as exc:  # no to_json, or a value JSON cannot hold
        raise SerializationError(f"{what} is not JSON-serialisable: {exc}") from exc


def user_entity(entity: Callable[..., Any]) -> UserEntity:
    """The user's function behind `entity`: itself, the handle `df.Entity.create(fn)` returns, or
    what `@app.entity_trigger` leaves under the function's name (a `FunctionBuilder`)."""
    if isinstance(entity, FunctionBuilder):
        handle = entity._function.get_user_function()
        declared: object = getattr(handle, "entity_function", None)
        if not callable(declared):
            name = getattr(handle, "__name__", repr(handle))
            raise TypeError(f"{name!r} is not an entity function (@app.entity_trigger)")
        return declared
    if not callable(entity):
        raise TypeError(f"an entity function must be callable, got {entity!r}")
    inner: object = getattr(entity, "entity_function", None)
    return inner if callable(inner) else entity


def core_entity(user_fn: Callable[..., Any]) -> Callable[[EntityContext], Any]:
    """A core entity function running the Azure-style entity function `user_fn` (or its handle).
    Generator and `async` functions are refused: operations run synchronously, one at a time."""
    fn = user_entity(user_fn)
    name = getattr(fn, "__name__", type(fn).__name__)
    if inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise DurableError(
            f"entity function {name!r} is a generator or async function: an entity function is a "
            "plain function of its context, run once per operation; do I/O in an activity"
        )

    def run(context: EntityContext) -> None:
        azure = AzureEntityContext(context)
        returned = fn(azure)
        if inspect.isgenerator(returned) or inspect.isawaitable(returned):
            close = getattr(returned, "close", None)
            if callable(close):
                close()
            raise DurableError(
                f"entity function {name!r} returned {type(returned).__name__}: an entity function runs "
                "synchronously, to the end, once per operation; do I/O in an activity"
            )
        azure._finish()

    run.__name__ = name
    run.__qualname__ = getattr(fn, "__qualname__", name)
    return run
