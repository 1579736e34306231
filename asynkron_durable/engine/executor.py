"""The replay executor: history in, actions out. Pure: no I/O, no clock, never raises for user errors.

Old history is replayed (`is_replaying` true) to rebuild the orchestrator's state, then the new
events are applied; the orchestrator's new scheduling requests come back as actions plus the
history events that record them. An executor may be kept between episodes: `run_episode` only
applies the new events, so a cached executor skips the replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Coroutine, Generator, Sequence
from typing import Any

from asynkron_durable.engine.actions import (
    Action,
    CreateTimer,
    LockEntities,
    UnlockEntities,
    describe_scheduling_event,
    matches,
)
from asynkron_durable.engine.context import OrchestrationContext
from asynkron_durable.engine.critical_section import LockTask
from asynkron_durable.engine.results import ContinueAsNew, EpisodeResult
from asynkron_durable.engine.tasks import Task, TimerTask
from asynkron_durable.errors import NonDeterminismError, TaskFailedError, UnknownFunction
from asynkron_durable.history import (
    EXECUTION_ENDED,
    HELD_WHILE_SUSPENDED,
    SCHEDULING_EVENTS,
    ContinuedAsNew,
    EntityCallCompleted,
    EntityCallFailed,
    EntityCallScheduled,
    EntityLockFailed,
    EntityLockGranted,
    EntityLockScheduled,
    EntitySignalSent,
    EntityUnlockSent,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionRewound,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    FailureDetails,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    RuntimeStatus,
    SubOrchestrationCompleted,
    SubOrchestrationCreated,
    SubOrchestrationFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from asynkron_durable.serialization import from_json, to_json

Orchestrator = Callable[[OrchestrationContext], Any]
"""An orchestrator function: a generator function, an `async def` or a plain function of the context."""

_Driver = Generator[Any, Any, Any] | Coroutine[Any, Any, Any]


_USER_ERRORS = (Exception, asyncio.CancelledError, GeneratorExit)
"""What user code may raise into the engine; each fails the instance (only process exits pass)."""


class _Finished(Exception):
    """Internal: the orchestration reached a terminal state; stop applying events."""


class OrchestrationExecutor:
    """Drives one orchestrator function over one execution's history."""

    def __init__(
        self, orchestrator: Orchestrator, instance_id: str, logger: logging.Logger | None = None
    ) -> None:
        self._orchestrator = orchestrator
        self._instance_id = instance_id
        self._logger = logger
        self.context = OrchestrationContext(instance_id, logger=logger)
        self._driver: _Driver | None = None
        self._waiting_on: Task | None = None
        self._suspended = False
        self._held: list[HistoryEvent] = []
        self._position = 0
        self._status = RuntimeStatus.RUNNING
        self._output: str | None = None
        self._failure: FailureDetails | None = None
        self._continue_as_new: ContinueAsNew | None = None
        self.nondeterminism: NonDeterminismError | None = None
        self._terminal_recorded = False
        self._released_locks: list[tuple[int, tuple[str, ...]]] = []
        self._lock_requests: dict[int, tuple[str, ...]] = {}
        self._unlocked: set[int] = set()
        self._code_missing = False
        """The orchestrator is not registered here: the history's scheduled work is not matched
        against code that is not there (its failure names the missing orchestrator instead)."""

    @property
    def is_finished(self) -> bool:
        """True once the execution completed, failed, was terminated or continued as new."""
        return self._status not in (RuntimeStatus.RUNNING, RuntimeStatus.SUSPENDED)

    @property
    def status(self) -> RuntimeStatus:
        """Where the execution stands after the events applied so far."""
        if self._suspended and not self.is_finished:
            return RuntimeStatus.SUSPENDED
        return self._status

    def replay(self, history: Sequence[HistoryEvent]) -> None:
        """Rebuild state from recorded history (no new actions may come out of matched ones)."""
        self.context.is_replaying = True
        self._apply_all(history)

    def run_episode(self, new_events: Sequence[HistoryEvent]) -> EpisodeResult:
        """Apply an episode's new events (starting with OrchestratorStarted) and collect the result."""
        self.context.is_replaying = False
        self._apply_all(new_events)
        now = self.context.current_utc_datetime
        new_history = list(new_events)
        actions: list[Action] = []
        if self._status is not RuntimeStatus.TERMINATED and self.nondeterminism is None:
            for action in self.context._pending_actions.values():
                if isinstance(action, CreateTimer):
                    task = self.context._open_tasks.get(action.sequence)
                    if isinstance(task, TimerTask) and task.is_cancelled:
                        action = CreateTimer(action.sequence, action.fire_at, cancelled=True)
                actions.append(action)
                new_history.append(action.to_event(now))
        self.context._pending_actions.clear()
        new_history.append(OrchestratorCompleted(timestamp=now))
        terminal = None if self._terminal_recorded else self._terminal_event()
        if terminal is not None:
            new_history.append(terminal)
        if self.is_finished:
            self._give_back_locks(actions)
        released, self._released_locks = self._released_locks, []
        # Leave the executor exactly as replaying `new_history` would: a cached executor's next
        # episode then behaves (positions in errors, lock bookkeeping) like one rebuilt from history.
        appended = new_history[len(new_events) :]
        self._track_locks(appended)
        self._position += len(appended)
        if terminal is not None:
            self._terminal_recorded = True
        return EpisodeResult(
            new_history=new_history,
            actions=actions,
            status=self.status,
            custom_status=self.context._custom_status,
            output=self._output,
            failure=self._failure,
            continue_as_new=self._continue_as_new,
            released_locks=released,
        )

    # ----- applying events ----------------------------------------------------------------------

    def _give_back_locks(self, actions: Sequence[Action]) -> None:
        """The execution is over: every critical section it asked for (in history or in this
        episode's actions) and did not leave is given back, granted or still on its way."""
        for action in actions:
            if isinstance(action, LockEntities):
                self._lock_requests[action.sequence] = action.entity_ids
            elif isinstance(action, UnlockEntities):
                self._unlocked.add(action.lock_sequence)
        for seq, entity_ids in self._lock_requests.items():
            if seq not in self._unlocked:
                self._unlocked.add(seq)
                self._released_locks.append((seq, entity_ids))

    def _track_locks(self, events: Sequence[HistoryEvent]) -> None:
        """Note lock requests and unlocks from the recorded events, whatever the code does with
        them (it may be suspended, terminated or broken), so no lock outlives the execution."""
        for event in events:
            if isinstance(event, EntityLockScheduled):
                self._lock_requests[event.event_id] = event.entity_ids
            elif isinstance(event, EntityUnlockSent):
                self._unlocked.add(event.lock_task_id)
            elif isinstance(event, EntityLockFailed):  # the refusing entity released the others
                self._unlocked.add(event.task_scheduled_id)

    def _apply_all(self, events: Sequence[HistoryEvent]) -> None:
        self._track_locks(events)
        for event in events:
            if self.nondeterminism is not None:
                return
            if isinstance(event, EXECUTION_ENDED) and (
                self._position > 0 or not isinstance(event, ContinuedAsNew)  # not the opening marker
            ):
                self._terminal_recorded = True
            if self.is_finished and (self._code_missing or not isinstance(event, SCHEDULING_EVENTS)):
                self._carry_over(event)  # lock requests among them were tracked above
                continue
            try:
                if self.is_finished:  # what the last episode scheduled must still match the code
                    self._match_scheduled(event)
                else:
                    self._apply(event)
            except _Finished:
                continue
            except NonDeterminismError as exc:
                self.nondeterminism = exc
                self._finish_failed(exc)
                return
            except Exception as exc:  # e.g. a retry policy's arithmetic: the instance fails, not the worker
                self._finish_failed(exc)
            finally:
                self._position += 1

    def _carry_over(self, event: HistoryEvent) -> None:
        """Events that arrive after continue-as-new in the same batch go to the next execution too."""
        again = self._continue_as_new
        if again is not None and again.preserve_events and isinstance(event, EventRaised):
            again.carried_events.append(event)

    def _apply(self, event: HistoryEvent) -> None:
        if self._suspended and isinstance(event, HELD_WHILE_SUSPENDED):
            self._held.append(event)
            return
        match event:
            case OrchestratorStarted(timestamp=ts):
                self.context.current_utc_datetime = ts
            case ExecutionStarted():
                self._start(event)
            case (
                TaskScheduled()
                | SubOrchestrationCreated()
                | TimerCreated()
                | EventSent()
                | EntityCallScheduled()
                | EntitySignalSent()
                | EntityLockScheduled()
                | EntityUnlockSent()
            ):
                self._match_scheduled(event)
            case (
                TaskCompleted(task_scheduled_id=seq, result=result)
                | SubOrchestrationCompleted(task_scheduled_id=seq, result=result)
                | EntityCallCompleted(task_scheduled_id=seq, result=result)
            ):
                task = self.context._open_tasks.pop(seq, None)
                if task is not None:
                    task._complete(from_json(result))
            case (
                TaskFailed(task_scheduled_id=seq, failure=f)
                | SubOrchestrationFailed(task_scheduled_id=seq, failure=f)
                | EntityCallFailed(task_scheduled_id=seq, failure=f)
            ):
                task = self.context._open_tasks.pop(seq, None)
                if task is not None:
                    task._fail(TaskFailedError(task.description, f.error_type, f.message, f.details))
            case TimerFired(timer_id=seq):
                task = self.context._open_tasks.pop(seq, None)
                if task is not None and not (isinstance(task, TimerTask) and task.is_cancelled):
                    task._complete(None)
            case EntityLockGranted(task_scheduled_id=seq, entity_ids=ids):
                self._grant_lock(seq, ids)
            case EntityLockFailed(task_scheduled_id=seq, failure=failure):
                self._refuse_lock(seq, failure)
            case EventRaised(name=name, input=payload):
                self.context._deliver_event(name, payload)
            case ExecutionSuspended():
                self._suspended = True
            case ExecutionResumed():
                self._resume_held()
            case ExecutionTerminated(reason=reason):
                self._status = RuntimeStatus.TERMINATED
                self._output = to_json(reason)
                self._close_driver()
                raise _Finished
            case (
                OrchestratorCompleted()
                | ContinuedAsNew()
                | ExecutionCompleted()
                | ExecutionFailed()
                | ExecutionRewound()
            ):
                pass
        self._advance()

    def _grant_lock(self, seq: int, entity_ids: tuple[str, ...]) -> None:
        task = self.context._open_tasks.pop(seq, None)
        if not isinstance(task, LockTask):  # a duplicate or stray grant: never keep entities locked
            if not self.context.is_replaying and seq not in self._unlocked:
                self._unlocked.add(seq)
                self._released_locks.append((seq, entity_ids))
            return
        task._complete(task._section)

    def _refuse_lock(self, seq: int, failure: FailureDetails) -> None:
        task = self.context._open_tasks.pop(seq, None)
        if isinstance(task, LockTask):
            if self.context._critical_section is task._section:
                self.context._critical_section = None
            task._fail(
                TaskFailedError(task.description, failure.error_type, failure.message, failure.details)
            )

    def _resume_held(self) -> None:
        self._suspended = False
        held, self._held = self._held, []
        for position, event in enumerate(held):
            try:
                self._apply(event)
            except _Finished:
                for rest in held[position + 1 :]:
                    self._carry_over(rest)
                raise

    def _match_scheduled(self, event: HistoryEvent) -> None:
        seq = event.event_id
        action = self.context._pending_actions.pop(seq, None)
        if action is None or not matches(action, event):
            asked = action.describe() if action is not None else "nothing"
            raise NonDeterminismError(
                f"non-deterministic orchestrator {self.context.name!r} (instance "
                f"{self._instance_id!r}): at history position {self._position} (sequence {seq}) "
                f"the history holds {describe_scheduling_event(event)} but the code asked for "
                f"{asked}"
            )

    # ----- driving user code --------------------------------------------------------------------

    def _start(self, event: ExecutionStarted) -> None:
        ctx = self.context
        ctx.name = event.name
        ctx._input = event.input
        ctx.parent_instance_id = event.parent_instance_id
        if self._logger is None:
            ctx.logger.logger = logging.getLogger(f"asynkron_durable.orchestration.{event.name}")
        try:
            returned = self._orchestrator(ctx)
        except _USER_ERRORS as exc:
            self._code_missing = isinstance(exc, UnknownFunction) and exc.kind == "orchestrator"
            self._finish_failed(exc)
            raise _Finished from None
        if inspect.isgenerator(returned) or inspect.iscoroutine(returned):
            self._driver = returned
            self._step(None, None)
        else:
            self._finish_completed(returned)

    def _advance(self) -> None:
        """Resume user code for as long as the task it waits on is done."""
        while self._waiting_on is not None and self._waiting_on.is_completed:
            task, self._waiting_on = self._waiting_on, None
            self._step(task._result, task.exception)

    def _step(self, value: Any, exception: BaseException | None) -> None:
        assert self._driver is not None
        try:
            yielded = self._driver.throw(exception) if exception is not None else self._driver.send(value)
        except StopIteration as stop:
            self._finish_completed(stop.value)
            raise _Finished from None
        except _USER_ERRORS as exc:
            self._finish_failed(exc)
            raise _Finished from None
        if self.context._continue_as_new is not None:
            self._finish_completed(None)
            raise _Finished
        if not isinstance(yielded, Task):
            self._finish_failed(
                TypeError(
                    f"orchestrator {self.context.name!r} yielded or awaited {yielded!r}; orchestrators "
                    "may only wait on durable tasks from the context (call_activity, create_timer, "
                    "wait_for_external_event, task_all...), not on asyncio or other I/O"
                )
            )
            raise _Finished
        self._waiting_on = yielded

    def _finish_completed(self, value: Any) -> None:
        pending = self.context._continue_as_new
        if pending is not None:
            payload, preserve = pending
            carried = (
                [EventRaised(name=n, input=p) for n, p in self.context._unprocessed_events()]
                if preserve
                else []
            )
            self._continue_as_new = ContinueAsNew(payload, preserve, carried)
            self._status = RuntimeStatus.CONTINUED_AS_NEW
            self._output = payload
        else:
            try:
                self._output = to_json(value, f"output of orchestrator {self.context.name!r}")
            except Exception as exc:
                self._finish_failed(exc)
                return
            self._status = RuntimeStatus.COMPLETED
        self._close_driver()

    def _finish_failed(self, exc: BaseException) -> None:
        failure = FailureDetails.from_exception(exc)
        if isinstance(exc, TaskFailedError) and exc.details:
            failure = failure.model_copy(
                update={"details": f"{failure.details}\nRemote failure:\n{exc.details}"}
            )
        self._failure = failure
        self._status = RuntimeStatus.FAILED
        self._close_driver()

    def _close_driver(self) -> None:
        driver, self._driver = self._driver, None
        self._waiting_on = None
        if driver is not None:
            # user `finally` blocks may raise while closing; the outcome stands
            with contextlib.suppress(Exception):
                driver.close()

    def _terminal_event(self) -> HistoryEvent | None:
        now = self.context.current_utc_datetime
        if self._status is RuntimeStatus.COMPLETED:
            return ExecutionCompleted(timestamp=now, result=self._output)
        if self._status is RuntimeStatus.FAILED and self._failure is not None:
            return ExecutionFailed(timestamp=now, failure=self._failure)
        if self._continue_as_new is not None:
            return ContinuedAsNew(timestamp=now, input=self._continue_as_new.input)
        return None
