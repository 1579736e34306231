"""Function registration: orchestrators and activities by name, with the types their JSON maps to."""

from __future__ import annotations

import contextlib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from asynkron_durable.engine import Orchestrator
from asynkron_durable.entities.classes import EntityFunction, class_entity
from asynkron_durable.errors import DurableError, UnknownFunction

F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E", bound=Callable[..., Any] | type)

Duration = timedelta | float
"""A span of time: a `timedelta`, or seconds."""


def seconds(duration: Duration, what: str) -> float:
    """`duration` in seconds; a `ValueError` naming `what` unless it is positive and finite."""
    value = duration.total_seconds() if isinstance(duration, timedelta) else duration
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ValueError(f"{what} must be a positive number of seconds or a timedelta, got {duration!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class ActivityContext:
    """What an activity may know about the call it serves."""

    instance_id: str
    name: str
    task_id: int
    attempt: int


@dataclass(frozen=True, slots=True)
class ActivityDefinition:
    """A registered activity and how to call it.

    `passes_context`: the function takes `(ActivityContext, input)` (Asynkron.DurableFunctions' JSON
    functions).
    `takes_input`: False for a function of no arguments. `input_type` validates the decoded input.
    `timeout`: seconds a call may run, or None for the runtime's `activity_timeout`.
    """

    name: str
    fn: Callable[..., Any]
    is_async: bool
    passes_context: bool
    takes_input: bool
    input_type: Any
    timeout: float | None = None


def _activity_definition(
    name: str, fn: Callable[..., Any], passes_context: bool, timeout: Duration | None
) -> ActivityDefinition:
    params = list(inspect.signature(fn).parameters.values())
    expected = 2 if passes_context else 1
    if len(params) > expected:
        raise DurableError(
            f"activity {name!r} takes {len(params)} parameters; an activity takes one input "
            "(JSON functions in the style of Asynkron.DurableFunctions take (context, input))"
        )
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    input_param = params[expected - 1] if len(params) == expected else None
    input_type = hints.get(input_param.name, Any) if input_param is not None else Any
    return ActivityDefinition(
        name=name,
        fn=fn,
        is_async=inspect.iscoroutinefunction(fn),
        passes_context=passes_context,
        takes_input=input_param is not None,
        input_type=input_type,
        timeout=None if timeout is None else seconds(timeout, f"timeout of activity {name!r}"),
    )


def _entity_function(name: str, fn_or_class: Callable[..., Any] | type) -> EntityFunction:
    if "@" in name or not name:
        raise DurableError(f"entity name must be non-empty and without '@', got {name!r}")
    if inspect.isclass(fn_or_class):
        return class_entity(fn_or_class)
    if inspect.iscoroutinefunction(fn_or_class) or inspect.isgeneratorfunction(fn_or_class):
        raise DurableError(
            f"entity {name!r} must be a plain function of its context: entity operations run "
            "synchronously, one at a time; do I/O in an activity"
        )
    return fn_or_class


class Registry:
    """Orchestrators, activities and entities by name. Re-registering a name replaces the function.
    Entity names are case-insensitive (kept lower-case, as `EntityId` does)."""

    def __init__(self) -> None:
        self.orchestrators: dict[str, Orchestrator] = {}
        self.deadlines: dict[str, float] = {}
        """Seconds an episode of the orchestrator may run without yielding, where it has its own."""
        self.activities: dict[str, ActivityDefinition] = {}
        self.entities: dict[str, EntityFunction] = {}
        self.task_hub: str | None = None
        """The task hub the app's workers serve, where the app names one (None: `default`)."""

    def instance_names(self) -> frozenset[str]:
        """The orchestrators and entities registered: the instances a worker of this registry
        claims (an entity instance's name is its entity's)."""
        return frozenset(self.orchestrators) | frozenset(self.entities)

    def activity_names(self) -> frozenset[str]:
        """The activities registered: the ones a worker of this registry claims."""
        return frozenset(self.activities)

    def add_orchestrator(
        self, fn: Orchestrator, name: str | None = None, *, deadline: Duration | None = None
    ) -> str:
        """Register an orchestrator (generator function, `async def` or plain function); with a
        `deadline`, its episodes may run that long instead of the runtime's default."""
        key = name or fn.__name__
        self.orchestrators[key] = fn
        self.deadlines.pop(key, None)
        if deadline is not None:
            self.deadlines[key] = seconds(deadline, f"deadline of orchestrator {key!r}")
        _tag(fn, key)
        return key

    def add_activity(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        *,
        passes_context: bool = False,
        timeout: Duration | None = None,
    ) -> str:
        """Register an activity (sync functions run in a thread pool, `async def` on the loop); with
        a `timeout`, a call running longer fails with `ActivityTimeout`."""
        key = name or fn.__name__
        self.activities[key] = _activity_definition(key, fn, passes_context, timeout)
        _tag(fn, key)
        return key

    def add_entity(self, fn_or_class: Callable[..., Any] | type, name: str | None = None) -> str:
        """Register an entity: a function of an `EntityContext`, or a class whose public methods
        are its operations."""
        key = (name or fn_or_class.__name__).lower()
        self.entities[key] = _entity_function(key, fn_or_class)
        _tag(fn_or_class, key)
        return key

    def merge(self, other: Registry) -> None:
        """Add every registration of `other` (later ones win)."""
        self.orchestrators.update(other.orchestrators)
        for name in other.orchestrators:
            self.deadlines.pop(name, None)
        self.deadlines.update(other.deadlines)
        self.activities.update(other.activities)
        self.entities.update(other.entities)
        self.task_hub = other.task_hub or self.task_hub

    def orchestrator(self, name: str) -> Orchestrator:
        """The orchestrator `name`, or `UnknownFunction` listing what is registered."""
        try:
            return self.orchestrators[name]
        except KeyError:
            raise UnknownFunction("orchestrator", name, list(self.orchestrators)) from None

    def activity(self, name: str) -> ActivityDefinition:
        """The activity `name`, or `UnknownFunction` listing what is registered."""
        try:
            return self.activities[name]
        except KeyError:
            raise UnknownFunction("activity", name, list(self.activities)) from None

    def entity(self, name: str) -> EntityFunction:
        """The entity `name` (any case), or `UnknownFunction` listing what is registered."""
        try:
            return self.entities[name.lower()]
        except KeyError:
            raise UnknownFunction("entity", name, list(self.entities)) from None


def _tag(fn: Callable[..., Any], name: str) -> None:
    """Remember the registered name so `ctx.call_activity(fn)` works with the function itself."""
    with contextlib.suppress(AttributeError, TypeError):
        fn.__durable_name__ = name  # type: ignore[attr-defined]


class Registrations:
    """The decorators shared by `DurableApp` and `DurableFunctionRuntime`."""

    registry: Registry

    def orchestrator(self, name: str | None = None, *, deadline: Duration | None = None) -> Callable[[F], F]:
        """Decorator: register an orchestrator, under `name` or the function's own name. `deadline`
        (seconds or a timedelta) replaces the runtime's `orchestrator_deadline` for its episodes."""

        def register(fn: F) -> F:
            self.registry.add_orchestrator(fn, name, deadline=deadline)
            return fn

        return register

    def activity(self, name: str | None = None, *, timeout: Duration | None = None) -> Callable[[F], F]:
        """Decorator: register an activity, under `name` or the function's own name. `timeout`
        (seconds or a timedelta) replaces the runtime's `activity_timeout` for its calls."""

        def register(fn: F) -> F:
            self.registry.add_activity(fn, name, timeout=timeout)
            return fn

        return register

    def entity(self, name: str | None = None) -> Callable[[E], E]:
        """Decorator: register an entity function or class, under `name` or its own name."""

        def register(fn_or_class: E) -> E:
            self.registry.add_entity(fn_or_class, name)
            return fn_or_class

        return register

    def register_entity(self, fn_or_class: Callable[..., Any] | type, name: str | None = None) -> str:
        """Register an entity function or class by call; returns its (lower-case) name."""
        return self.registry.add_entity(fn_or_class, name)

    def register_orchestrator(
        self, fn: Orchestrator, name: str | None = None, *, deadline: Duration | None = None
    ) -> str:
        """Register an orchestrator by call; returns its name."""
        return self.registry.add_orchestrator(fn, name, deadline=deadline)

    def register_function(self, name: str, fn: Callable[..., Any]) -> str:
        """Register an activity under `name` by call."""
        return self.registry.add_activity(fn, name)

    def register_json_function(self, name: str, fn: Callable[[ActivityContext, Any], Any]) -> str:
        """Register an activity taking `(context, input)`, input as decoded JSON (the API of
        Asynkron.DurableFunctions)."""
        return self.registry.add_activity(fn, name, passes_context=True)
