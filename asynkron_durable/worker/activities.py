"""Running one activity: decode and validate its input, call it under its timeout, encode the
outcome as a message."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from asynkron_durable.errors import ActivityCrashed, ActivityTimeout
from asynkron_durable.history import FailureDetails, TaskCompleted, TaskFailed
from asynkron_durable.registry import ActivityContext, ActivityDefinition, Duration, Registry, seconds
from asynkron_durable.serialization import coerce, from_json, to_json
from asynkron_durable.stores.base import ActivityResult, ActivityWorkItem, Message
from asynkron_durable.worker.threads import ActivityThreads, LeftBehind


@dataclass(frozen=True, slots=True)
class ActivityLimits:
    """The runtime's limits on activity calls."""

    timeout: float | None
    """Seconds a call may run when its activity names no timeout of its own (None: no limit)."""
    max_starts: int
    """Starts that ended with the worker's death (see `Isolation`) before a call fails instead."""

    def __post_init__(self) -> None:
        if self.max_starts < 1:
            raise ValueError("max_activity_starts must be at least 1")

    @classmethod
    def of(cls, timeout: Duration | None, max_starts: int) -> ActivityLimits:
        """The limits from the runtime's options, checked (`ValueError` naming a bad one)."""
        return cls(None if timeout is None else seconds(timeout, "activity_timeout"), max_starts)


async def run_activity(
    registry: Registry, item: ActivityWorkItem, threads: ActivityThreads, limits: ActivityLimits
) -> ActivityResult:
    """Execute the activity; any exception (unknown name, bad input, user error, a timeout, too
    many deaths) becomes TaskFailed."""
    task = item.task
    try:
        definition = registry.activity(task.name)
        if item.attempt > limits.max_starts:
            raise ActivityCrashed(
                f"activity {task.name!r} (instance {task.instance_id!r}) was started {item.attempt - 1} "
                "times and each time its worker stopped before it finished, the last times running it "
                "alone (it may crash or hang its process); it is not started again"
            )
        value = await _call(definition, _arguments(definition, item), threads, limits)
        event: TaskCompleted | TaskFailed = TaskCompleted(
            task_scheduled_id=task.task_id,
            result=to_json(value, f"output of activity {task.name!r}"),
        )
    except asyncio.CancelledError as exc:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the worker is shutting down: the lease is released, the activity runs again
        event = TaskFailed(task_scheduled_id=task.task_id, failure=FailureDetails.from_exception(exc))
    except Exception as exc:
        event = TaskFailed(task_scheduled_id=task.task_id, failure=FailureDetails.from_exception(exc))
    message = Message(task.instance_id, event, execution_id=task.execution_id)
    return ActivityResult(item.activity_id, message)


def _arguments(definition: ActivityDefinition, item: ActivityWorkItem) -> list[Any]:
    task = item.task
    args: list[Any] = []
    if definition.passes_context:
        args.append(ActivityContext(task.instance_id, task.name, task.task_id, item.attempt))
    if definition.takes_input:
        what = f"input of activity {task.name!r}"
        args.append(coerce(from_json(task.input), definition.input_type, what))
    return args


async def _call(
    definition: ActivityDefinition, args: list[Any], threads: ActivityThreads, limits: ActivityLimits
) -> Any:
    timeout = definition.timeout if definition.timeout is not None else limits.timeout
    if not definition.is_async:
        try:
            return await threads.run(functools.partial(definition.fn, *args), timeout)
        except LeftBehind:
            raise _timed_out(definition, timeout) from None
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            return await definition.fn(*args)
    except TimeoutError:
        if scope.expired():  # not a TimeoutError of the activity's own
            raise _timed_out(definition, timeout) from None
        raise


def _timed_out(definition: ActivityDefinition, timeout: float | None) -> ActivityTimeout:
    return ActivityTimeout(f"activity {definition.name!r} ran longer than its timeout of {timeout:g} s")
