"""Durable tasks: what orchestrator code yields or awaits. Completed only by the executor, from history."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

from asynkron_durable.errors import DurableError, InvalidOperation


class Task:
    """A durable operation's future. Orchestrators `yield` it (generators) or `await` it (async def)."""

    combinable = True
    """Whether the task may go into `task_all` / `task_any`."""

    def __init__(self) -> None:
        self._done = False
        self._result: Any = None
        self._exception: BaseException | None = None
        self._listeners: list[Callable[[Task], None]] = []

    @property
    def is_completed(self) -> bool:
        """True once the task has a result or an exception."""
        return self._done

    @property
    def is_failed(self) -> bool:
        """True if the task completed with an exception."""
        return self._done and self._exception is not None

    @property
    def result(self) -> Any:
        """The task's value; raises its exception if it failed, `DurableError` if still pending."""
        if not self._done:
            raise DurableError("task has not completed yet")
        if self._exception is not None:
            raise self._exception
        return self._result

    @property
    def exception(self) -> BaseException | None:
        """The exception the task failed with, if any."""
        return self._exception

    def __await__(self) -> Generator[Task, Any, Any]:
        return (yield self)

    def _complete(self, result: Any) -> None:
        if self._done:
            return
        self._done = True
        self._result = result
        self._notify()

    def _fail(self, exception: BaseException) -> None:
        if self._done:
            return
        self._done = True
        self._exception = exception
        self._notify()

    def _notify(self) -> None:
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener(self)

    def _on_done(self, listener: Callable[[Task], None]) -> None:
        if self._done:
            listener(self)
        else:
            self._listeners.append(listener)


class ScheduledTask(Task):
    """A task backed by one scheduling action (activity, sub-orchestration, timer) with a sequence id."""

    def __init__(self, sequence: int, description: str) -> None:
        super().__init__()
        self.sequence = sequence
        self.description = description


class TimerTask(ScheduledTask):
    """A durable timer; `cancel()` makes a pending timer never complete (its firing is ignored)."""

    def __init__(self, sequence: int, description: str) -> None:
        super().__init__(sequence, description)
        self._cancelled = False

    @property
    def is_cancelled(self) -> bool:
        """True once cancelled before firing."""
        return self._cancelled

    def cancel(self) -> None:
        """Stop waiting for this timer. Has no effect once it has fired."""
        if not self._done:
            self._cancelled = True


class ExternalEventTask(Task):
    """Waits for the next external event of one name."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class WhenAllTask(Task):
    """Completes with the list of results once every child has; fails with the first child failure."""

    def __init__(self, children: Sequence[Task]) -> None:
        super().__init__()
        self.children = _combinable(children)
        self._pending = len(self.children)
        if not self.children:
            self._complete([])
        for child in self.children:
            child._on_done(self._child_done)

    def _child_done(self, child: Task) -> None:
        if self._done:
            return
        if child.exception is not None:
            self._fail(child.exception)
            return
        self._pending -= 1
        if self._pending == 0:
            self._complete([c._result for c in self.children])


class WhenAnyTask(Task):
    """Completes with the first child to finish (successfully or not): the result is that task."""

    def __init__(self, children: Sequence[Task]) -> None:
        super().__init__()
        if not children:
            raise ValueError("task_any needs at least one task")
        self.children = _combinable(children)
        for child in self.children:
            child._on_done(self._child_done)

    def _child_done(self, child: Task) -> None:
        self._complete(child)


def _combinable(children: Sequence[Task]) -> list[Task]:
    for child in children:
        if not child.combinable:
            raise InvalidOperation(
                f"{getattr(child, 'description', type(child).__name__)} cannot go into task_all or "
                "task_any: wait for it on its own"
            )
    return list(children)
