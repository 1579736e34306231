"""The orchestration context: the deterministic API orchestrator code is written against.

Every call that schedules work takes the next sequence number and records an action; the executor
matches those actions against history on replay and completes the tasks from history events.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, overload

from asynkron_durable.engine.actions import (
    Action,
    CallEntity,
    CreateTimer,
    LockEntities,
    ScheduleActivity,
    ScheduleSubOrchestration,
    SendEvent,
    SignalEntity,
    UnlockEntities,
)
from asynkron_durable.engine.critical_section import CriticalSection, LockTask
from asynkron_durable.engine.retry import RetryOptions
from asynkron_durable.engine.tasks import (
    ExternalEventTask,
    ScheduledTask,
    Task,
    TimerTask,
    WhenAllTask,
    WhenAnyTask,
)
from asynkron_durable.entities.ids import EntityId, is_entity_instance
from asynkron_durable.errors import EventTimeoutError, InvalidOperation
from asynkron_durable.instance_ids import check_instance_id
from asynkron_durable.serialization import coerce, from_json, to_json

T = TypeVar("T")

_UUID_NAMESPACE = uuid.UUID("9e952958-5e33-4daf-827f-2fa12937b875")


def function_name(fn_or_name: str | Callable[..., Any]) -> str:
    """The registered name of a function: a string as given, else its `__durable_name__` or `__name__`."""
    if isinstance(fn_or_name, str):
        return fn_or_name
    name = getattr(fn_or_name, "__durable_name__", None) or getattr(fn_or_name, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"expected a function name or a registered function, got {fn_or_name!r}")
    return name


def _check_orchestration_id(instance_id: str) -> None:
    if is_entity_instance(instance_id):
        raise ValueError(
            f"{instance_id!r} is an entity id ('@name@key'), not an orchestration instance id; "
            "use call_entity or signal_entity"
        )


class ReplaySafeLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger that stays silent while the orchestrator is replaying, so each line appears once."""

    def __init__(self, logger: logging.Logger, context: OrchestrationContext) -> None:
        super().__init__(logger, {"instance_id": context.instance_id})
        self._context = context

    def isEnabledFor(self, level: int) -> bool:
        return not self._context.is_replaying and self.logger.isEnabledFor(level)


class _RetryTask(Task):
    """Runs attempts until one succeeds or the policy gives up; waits between them are durable timers."""

    def __init__(
        self,
        context: OrchestrationContext,
        start_attempt: Callable[[], Task],
        options: RetryOptions,
    ) -> None:
        super().__init__()
        self._context = context
        self._start_attempt = start_attempt
        self._options = options
        self._first_attempt_at = context.current_utc_datetime
        self._failures = 0
        self._start_attempt()._on_done(self._attempt_done)

    def _attempt_done(self, attempt: Task) -> None:
        if attempt.exception is None:
            self._complete(attempt._result)
            return
        self._failures += 1
        now = self._context.current_utc_datetime
        try:
            retry = self._options.should_retry(
                self._failures, attempt.exception, now - self._first_attempt_at
            )
        except Exception as exc:  # a failing `handle` predicate must not break the engine
            retry = False
            attempt.exception.add_note(f"retry handle raised {type(exc).__name__}: {exc}")
        if not retry:
            self._fail(attempt.exception)
            return
        timer = self._context.create_timer(now + self._options.delay_before_retry(self._failures))
        timer._on_done(lambda _: self._start_attempt()._on_done(self._attempt_done))


class OrchestrationContext:
    """What an orchestrator function receives. All of it is deterministic under replay."""

    def __init__(
        self,
        instance_id: str,
        name: str = "",
        input: str | None = None,
        parent_instance_id: str | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.name = name
        self.parent_instance_id = parent_instance_id
        self.is_replaying = False
        self.current_utc_datetime = datetime.fromtimestamp(0, UTC)
        self._input = input
        self._sequence = 0
        self._uuid_counter = 0
        self._custom_status: str | None = None
        self._continue_as_new: tuple[str | None, bool] | None = None
        self._pending_actions: dict[int, Action] = {}
        self._all_actions: list[Action] = []
        self._open_tasks: dict[int, ScheduledTask] = {}
        self._event_waiters: dict[str, deque[ExternalEventTask]] = {}
        self._event_buffer: dict[str, deque[tuple[int, str | None]]] = {}
        self._arrivals = 0
        self._critical_section: CriticalSection | None = None
        self.logger = ReplaySafeLogger(
            logger or logging.getLogger(f"asynkron_durable.orchestration.{name or 'anonymous'}"),
            self,
        )

    # ----- inputs, status, identity ---------------------------------------------------------

    @overload
    def get_input(self, type: None = None) -> Any: ...
    @overload
    def get_input(self, type: type[T]) -> T: ...
    def get_input(self, type: Any = None) -> Any:
        """The orchestration's input, decoded from JSON and validated into `type` when given."""
        return coerce(from_json(self._input), type, "orchestration input")

    def set_custom_status(self, value: Any) -> None:
        """Publish a JSON-serialisable status that clients can read while the instance runs."""
        self._custom_status = to_json(value, "custom status")

    @property
    def custom_status(self) -> Any:
        """The last value passed to `set_custom_status`."""
        return from_json(self._custom_status)

    def new_uuid(self) -> uuid.UUID:
        """A UUID that is the same on every replay (derived from the instance, time and a counter)."""
        seed = f"{self.instance_id}_{self.current_utc_datetime.isoformat()}_{self._uuid_counter}"
        self._uuid_counter += 1
        return uuid.uuid5(_UUID_NAMESPACE, seed)

    # ----- scheduling ---------------------------------------------------------------------------

    def call_activity(self, name: str | Callable[..., Any], input: Any = None) -> Task:
        """Run an activity; the task's result is its return value."""
        activity = function_name(name)
        payload = to_json(input, f"input of activity {activity!r}")
        return self._schedule(lambda seq: ScheduleActivity(seq, activity, payload), f"activity {activity!r}")

    def call_activity_with_retry(
        self, name: str | Callable[..., Any], retry_options: RetryOptions, input: Any = None
    ) -> Task:
        """Like `call_activity`, retrying failures as `retry_options` says."""
        return _RetryTask(self, lambda: self.call_activity(name, input), retry_options)

    def call_sub_orchestrator(
        self, name: str | Callable[..., Any], input: Any = None, instance_id: str | None = None
    ) -> Task:
        """Start a child orchestration and wait for its output. The default child id is derived
        from this instance's id and the call's sequence number, so it is stable across replays."""
        orchestrator = function_name(name)
        if self._critical_section is not None:
            raise InvalidOperation(
                f"cannot start sub-orchestration {orchestrator!r} inside a critical section: a child "
                "calling a locked entity would wait for its own parent"
            )
        if instance_id is not None:
            _check_orchestration_id(instance_id)
            check_instance_id(instance_id)
        payload = to_json(input, f"input of sub-orchestration {orchestrator!r}")
        return self._schedule(
            lambda seq: ScheduleSubOrchestration(
                seq, orchestrator, instance_id or f"{self.instance_id}:{seq}", payload
            ),
            f"sub-orchestration {orchestrator!r}",
        )

    def call_sub_orchestrator_with_retry(
        self,
        name: str | Callable[..., Any],
        retry_options: RetryOptions,
        input: Any = None,
        instance_id: str | None = None,
    ) -> Task:
        """Like `call_sub_orchestrator`, retrying failures as `retry_options` says."""
        return _RetryTask(
            self,
            lambda: self.call_sub_orchestrator(name, input, instance_id),
            retry_options,
        )

    def create_timer(self, fire_at: datetime | timedelta) -> TimerTask:
        """A durable timer completing at `fire_at` (or after a `timedelta` from now). Cancellable."""
        if isinstance(fire_at, timedelta):
            fire_at = self.current_utc_datetime + fire_at
        elif fire_at.tzinfo is None:
            fire_at = fire_at.replace(tzinfo=UTC)
        seq = self._next_sequence()
        task = TimerTask(seq, "timer")
        self._record(CreateTimer(seq, fire_at), task)
        return task

    def wait_for_external_event(self, name: str, timeout: timedelta | None = None) -> Task:
        """Wait for the next event `name`. Events that arrived earlier are buffered (FIFO per name,
        each delivered once). With `timeout`, the task fails with `EventTimeoutError` when it expires."""
        event_task = ExternalEventTask(name)
        buffered = self._event_buffer.get(name)
        if buffered:
            event_task._complete(from_json(buffered.popleft()[1]))
            return event_task
        self._event_waiters.setdefault(name, deque()).append(event_task)
        if timeout is None:
            return event_task
        timer = self.create_timer(self.current_utc_datetime + timeout)
        result = Task()

        def on_event(task: Task) -> None:
            timer.cancel()
            result._complete(task._result)

        def on_timeout(_: Task) -> None:
            waiters = self._event_waiters.get(name)
            if waiters and event_task in waiters:
                waiters.remove(event_task)
            result._fail(EventTimeoutError(name, timeout.total_seconds()))

        event_task._on_done(on_event)
        timer._on_done(on_timeout)
        return result

    def send_event(self, instance_id: str, name: str, data: Any = None) -> None:
        """Raise event `name` on another instance (fire and forget)."""
        _check_orchestration_id(instance_id)
        payload = to_json(data, f"data of event {name!r}")
        seq = self._next_sequence()
        self._record(SendEvent(seq, instance_id, name, payload), None)

    # ----- entities -----------------------------------------------------------------------------

    def call_entity(self, entity_id: EntityId | str, operation: str, input: Any = None) -> Task:
        """Run `operation` on an entity and wait for its result; an operation that raises fails the
        task with `TaskFailedError` naming the entity and the operation."""
        target = EntityId.parse(entity_id).instance_id
        section = self._critical_section
        if section is not None and target not in section.entity_ids:
            raise InvalidOperation(
                f"cannot call entity {target!r} inside a critical section over "
                f"{', '.join(section.entity_ids)}: only the locked entities may be called there"
            )
        payload = to_json(input, f"input of operation {operation!r} on entity {target!r}")
        return self._schedule(
            lambda seq: CallEntity(seq, target, operation, payload),
            f"operation {operation!r} on entity {target!r}",
        )

    def signal_entity(
        self,
        entity_id: EntityId | str,
        operation: str,
        input: Any = None,
        scheduled_time: datetime | None = None,
    ) -> None:
        """Send `operation` to an entity without waiting (delivered no earlier than `scheduled_time`)."""
        target = EntityId.parse(entity_id).instance_id
        payload = to_json(input, f"input of operation {operation!r} on entity {target!r}")
        if scheduled_time is not None and scheduled_time.tzinfo is None:
            scheduled_time = scheduled_time.replace(tzinfo=UTC)
        seq = self._next_sequence()
        self._record(SignalEntity(seq, target, operation, payload, scheduled_time), None)

    def lock(self, entity_ids: Sequence[EntityId | str]) -> LockTask:
        """Lock entities for a critical section: `with (yield ctx.lock([a, b])):` in a generator,
        `async with ctx.lock([a, b]):` in an `async def`. Inside it, only this orchestration's
        operations reach those entities; others queue until it leaves. Locks are taken in sorted
        order, so sections over overlapping entities cannot deadlock. Sections do not nest."""
        if self._critical_section is not None:
            raise InvalidOperation(
                f"orchestration {self.instance_id!r} is already inside (or waiting for) a critical "
                f"section over {', '.join(self._critical_section.entity_ids)}; sections do not nest"
            )
        ids = tuple(sorted({EntityId.parse(e).instance_id for e in entity_ids}))
        if not ids:
            raise ValueError("lock needs at least one entity")
        seq = self._next_sequence()
        section = CriticalSection(seq, ids, lambda: self._leave_critical_section(section))
        task = LockTask(seq, section)
        self._critical_section = section
        self._record(LockEntities(seq, ids), task)
        return task

    def _leave_critical_section(self, section: CriticalSection) -> None:
        if self._critical_section is not section:
            return
        self._critical_section = None
        seq = self._next_sequence()
        self._record(UnlockEntities(seq, section.entity_ids, section.lock_sequence), None)

    # ----- combinators --------------------------------------------------------------------------

    def task_all(self, tasks: Sequence[Task]) -> Task:
        """Completes with every task's result, in order; fails as soon as one fails."""
        return WhenAllTask(tasks)

    def task_any(self, tasks: Sequence[Task]) -> Task:
        """Completes with the first task to finish (the task itself, not its result)."""
        return WhenAnyTask(tasks)

    def continue_as_new(self, input: Any, preserve_unprocessed_events: bool = False) -> None:
        """Finish this execution and start a fresh one (empty history) with `input`. Events not
        yet consumed are carried over only with `preserve_unprocessed_events`."""
        self._continue_as_new = (to_json(input, "continue-as-new input"), preserve_unprocessed_events)

    # ----- executor-facing ----------------------------------------------------------------------

    def _next_sequence(self) -> int:
        seq = self._sequence
        self._sequence += 1
        return seq

    def _schedule(self, make: Callable[[int], Action], description: str) -> ScheduledTask:
        seq = self._next_sequence()
        task = ScheduledTask(seq, description)
        self._record(make(seq), task)
        return task

    def _record(self, action: Action, task: ScheduledTask | None) -> None:
        self._pending_actions[action.sequence] = action
        self._all_actions.append(action)
        if task is not None:
            self._open_tasks[action.sequence] = task

    def _deliver_event(self, name: str, payload: str | None) -> None:
        waiters = self._event_waiters.get(name)
        if waiters:
            waiters.popleft()._complete(from_json(payload))
        else:
            self._event_buffer.setdefault(name, deque()).append((self._arrivals, payload))
            self._arrivals += 1

    def _unprocessed_events(self) -> list[tuple[str, str | None]]:
        """Buffered events in the order they arrived (across names), for continue-as-new."""
        pending = [(n, name, p) for name, queue in self._event_buffer.items() for n, p in queue]
        return [(name, payload) for _, name, payload in sorted(pending, key=lambda e: e[0])]
