"""Tasks with the shape of the SDK's (`state`, `result`, `is_completed`, `cancel()` on timers),
backed by core tasks.

The SDK gives a task its sequence number when the orchestrator first yields it, not when it is
created, and records its action at that moment; a task created and never yielded schedules
nothing. So an adapter task holds a recipe (`_start`) and is turned into a core task, which takes
the core's next sequence number, only when it is yielded: the numbering, and so the history, come
out as the SDK's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from azure.durable_functions.models.actions.WhenAllAction import WhenAllAction
from azure.durable_functions.models.actions.WhenAnyAction import WhenAnyAction
from azure.durable_functions.models.Task import TaskState

from asynkron_durable import OrchestrationContext, Task, TaskFailedError
from asynkron_durable.engine import TimerTask as CoreTimerTask
from asynkron_durable_azure.payloads import from_plain

if TYPE_CHECKING:
    from asynkron_durable_azure.context import AzureOrchestrationContext

Start = Callable[[OrchestrationContext], Task]


def sdk_exception(error: BaseException) -> Exception:
    """A core task failure as the SDK raises it in the orchestrator: `Exception("reason \\n details")`."""
    if isinstance(error, TaskFailedError):
        return Exception(f"{error.error_message} \n {error.details}")
    if isinstance(error, Exception):
        return error
    return Exception(str(error))


def sdk_entity_exception(error: BaseException) -> Exception:
    """A failed entity call as the SDK raises it: `Exception(message)`, no details."""
    if isinstance(error, TaskFailedError):
        return Exception(error.error_message)
    return sdk_exception(error)


class AzureTask:
    """The SDK's task surface over a core task that exists once the task has been yielded."""

    def __init__(self, action_repr: Any) -> None:
        self.id: int | str | None = None
        self.action_repr: Any = action_repr
        self.parent: AzureTask | None = None
        self._core: Task | None = None
        self._expected_type: type | None = None

    @property
    def _is_scheduled(self) -> bool:
        return self._core is not None

    @property
    def state(self) -> TaskState:
        """RUNNING, SUCCEEDED or FAILED, as the SDK's `TaskState`."""
        core = self._core
        if core is None or not core.is_completed:
            return TaskState.RUNNING
        return TaskState.FAILED if core.exception is not None else TaskState.SUCCEEDED

    @property
    def is_completed(self) -> bool:
        """Whether the task has a value or an error."""
        return self.state is not TaskState.RUNNING

    @property
    def result(self) -> Any:
        """The value, or the exception it failed with (not raised, as in the SDK); None while running."""
        core = self._core
        if core is None or not core.is_completed:
            return None
        if core.exception is not None:
            return self._failure(core.exception)
        return self._value(core.result)

    def _failure(self, error: BaseException) -> Exception:
        return sdk_exception(error)

    def _value(self, core_result: Any) -> Any:
        return from_plain(core_result, self._expected_type)

    def _materialize(self, ctx: OrchestrationContext) -> Task:
        raise NotImplementedError


class AtomicTask(AzureTask):
    """One activity, sub-orchestration, entity call, event wait or timer."""

    def __init__(self, action_repr: Any, start: Start) -> None:
        super().__init__(action_repr)
        self._start = start

    def _materialize(self, ctx: OrchestrationContext) -> Task:
        if self._core is None:
            self._core = self._start(ctx)
            sequence = getattr(self._core, "sequence", None)
            if sequence is not None:
                self.id = sequence
        return self._core


class EntityCallTask(AtomicTask):
    """An entity operation's result; its failure carries the operation's message only."""

    def _failure(self, error: BaseException) -> Exception:
        return sdk_entity_exception(error)


class TimerTask(AtomicTask):
    """A durable timer; `cancel()` as in the SDK (an error once it has fired)."""

    @property
    def _action(self) -> Any:
        return self.action_repr[0] if isinstance(self.action_repr, list) else self.action_repr

    @property
    def is_cancelled(self) -> bool:
        """Whether `cancel()` was called before the timer fired."""
        return bool(self._action.is_cancelled)

    def cancel(self) -> None:
        """Stop waiting for the timer; the action is reported cancelled to the host."""
        if self.is_completed:
            raise ValueError("Cannot cancel a completed task.")
        self._action.is_cancelled = True
        if isinstance(self._core, CoreTimerTask):
            self._core.cancel()


def compound_action(children: Sequence[AzureTask], v2_action: type[Any] | None) -> Any:
    """The action a `task_all` / `task_any` records: its children's actions not yet recorded,
    flat in schema V1 (a list) and wrapped in a WhenAll/WhenAny action from V2 on."""
    actions: list[Any] = []
    for child in children:
        if isinstance(child.action_repr, list):
            actions.extend(child.action_repr)
        elif not child._is_scheduled:
            actions.append(child.action_repr)
    return actions if v2_action is None else v2_action(actions)


class CompoundTask(AzureTask):
    """A task over child tasks; its children are turned into core tasks in order when it is yielded."""

    def __init__(self, children: Sequence[AzureTask], v2_action: type[Any] | None) -> None:
        super().__init__(compound_action(children, v2_action))
        self.children = list(children)
        for child in self.children:
            child.parent = self

    @property
    def _is_scheduled(self) -> bool:
        return all(child._is_scheduled for child in self.children)

    def _child_cores(self, ctx: OrchestrationContext) -> list[Task]:
        return [child._materialize(ctx) for child in self.children]


class WhenAllTask(CompoundTask):
    """`task_all`: the children's results in order; fails with the first failure."""

    def __init__(self, children: Sequence[AzureTask], v2: bool) -> None:
        super().__init__(children, WhenAllAction if v2 else None)

    def _materialize(self, ctx: OrchestrationContext) -> Task:
        if self._core is None:
            self._core = ctx.task_all(self._child_cores(ctx))
        return self._core

    def _value(self, core_result: Any) -> Any:
        if not self.children:  # the SDK completes an empty task_all with None
            return None
        return [child.result for child in self.children]


class WhenAnyTask(CompoundTask):
    """`task_any`: completes with the first child to finish, the child task itself."""

    def __init__(self, children: Sequence[AzureTask], v2: bool) -> None:
        super().__init__(children, WhenAnyAction if v2 else None)

    def _materialize(self, ctx: OrchestrationContext) -> Task:
        if self._core is None:  # an empty task_any is done at once (with None), as in the SDK
            cores = self._child_cores(ctx)
            self._core = ctx.task_any(cores) if cores else ctx.task_all([])
        return self._core

    def _value(self, core_result: Any) -> Any:
        if not self.children:
            return None
        for child in self.children:
            if child._core is core_result:
                return child
        raise LookupError("task_any completed with a task that is not one of its children")


class RetryTask(CompoundTask):
    """`*_with_retry`: attempts until one succeeds; after each failure a durable timer waits
    `first_retry_interval`, and after the last failure one more timer runs before the task fails
    (as the host's retry loop records it, so the sequence numbers match its history)."""

    def __init__(
        self,
        attempt: AtomicTask,
        first_retry_ms: int,
        max_attempts: int,
        v2: bool,
        az: AzureOrchestrationContext,
    ) -> None:
        super().__init__([attempt], WhenAllAction if v2 else None)
        self._attempt = attempt
        self._delay_ms = first_retry_ms
        self._max_attempts = max_attempts
        self._az = az

    def _materialize(self, ctx: OrchestrationContext) -> Task:
        if self._core is None:
            outcome = Task()
            self._core = outcome
            self._run_attempt(ctx, outcome, 1, self._attempt._materialize(ctx))
        return self._core

    def _run_attempt(self, ctx: OrchestrationContext, outcome: Task, number: int, attempt: Task) -> None:
        def attempt_done(done: Task) -> None:
            if done.exception is None:
                outcome._complete(done.result)
                return
            error = done.exception
            timer = ctx.create_timer(self._az._retry_fire_at(self._delay_ms))
            timer._on_done(lambda _: retry(error))

        def retry(error: BaseException) -> None:
            if number >= self._max_attempts:
                outcome._fail(error)
                return
            self._run_attempt(ctx, outcome, number + 1, self._attempt._start(ctx))

        attempt._on_done(attempt_done)

    def _value(self, core_result: Any) -> Any:
        return from_plain(core_result, self._attempt._expected_type)
