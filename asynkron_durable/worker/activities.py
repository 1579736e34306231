"""Running one activity: decode and validate its input, call it, encode the outcome as a message."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from asynkron_durable.history import FailureDetails, TaskCompleted, TaskFailed
from asynkron_durable.registry import ActivityContext, Registry
from asynkron_durable.serialization import coerce, from_json, to_json
from asynkron_durable.stores.base import ActivityResult, ActivityWorkItem, Message
from asynkron_durable.worker.threads import ActivityThreads


async def run_activity(
    registry: Registry, item: ActivityWorkItem, threads: ActivityThreads
) -> ActivityResult:
    """Execute the activity; any exception (unknown name, bad input, user error) becomes TaskFailed."""
    task = item.task
    try:
        definition = registry.activity(task.name)
        args: list[Any] = []
        if definition.passes_context:
            args.append(ActivityContext(task.instance_id, task.name, task.task_id, item.attempt))
        if definition.takes_input:
            what = f"input of activity {task.name!r}"
            args.append(coerce(from_json(task.input), definition.input_type, what))
        if definition.is_async:
            value = await definition.fn(*args)
        else:
            value = await threads.run(functools.partial(definition.fn, *args))
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
