"""The exception hierarchy: one root, subclasses that name the problem."""

from __future__ import annotations

import threading
from typing import ClassVar


class DurableError(Exception):
    """Root of every error this library raises on purpose."""


class InstanceNotFound(DurableError):
    """No orchestration instance has the given id."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(f"orchestration instance {instance_id!r} not found")
        self.instance_id = instance_id


class InstanceAlreadyExists(DurableError):
    """An instance with this id is still running and replacing it was not asked for."""

    def __init__(self, instance_id: str, status: str) -> None:
        super().__init__(
            f"orchestration instance {instance_id!r} already exists with status {status}; "
            "pass replace=True (or wait for it to finish) to reuse the id"
        )
        self.instance_id = instance_id
        self.status = status


class UnknownFunction(DurableError):
    """An orchestrator, activity or entity name that nothing registered."""

    def __init__(self, kind: str, name: str, known: list[str] | None = None, *, of: str = "") -> None:
        plural = "activities" if kind == "activity" else f"{kind}s"
        owner = f" of {of}" if of else ""
        hint = f"; registered {plural}: {', '.join(sorted(known))}" if known else ""
        super().__init__(f"unknown {kind} {name!r}{owner}{hint}")
        self.kind = kind
        self.name = name


class SerializationError(DurableError):
    """A value that cannot be turned into JSON, or JSON that does not fit the expected type."""


class InvalidOperation(DurableError):
    """The request does not fit the instance's current state (e.g. rewinding a running one)."""


class NonDeterminismError(DurableError):
    """Replayed orchestrator code asked for something other than what its history recorded."""


class StoreError(DurableError):
    """The state store failed, or holds data it cannot read (a corrupt row)."""


class LeaseLost(StoreError):
    """This worker's lease (or the version it read) is no longer current: another worker owns the work."""


class OrchestrationTimeout(DurableError, TimeoutError):
    """`wait_for_completion` gave up before the instance finished."""


class EventTimeoutError(DurableError, TimeoutError):
    """`wait_for_external_event(name, timeout=...)` expired before the event arrived."""

    def __init__(self, event_name: str, timeout_seconds: float) -> None:
        super().__init__(f"external event {event_name!r} did not arrive within {timeout_seconds:g} seconds")
        self.event_name = event_name


class TaskFailedError(DurableError):
    """An activity or sub-orchestration failed; carries the remote error's type, message and traceback."""

    def __init__(self, task_name: str, error_type: str, message: str, details: str = "") -> None:
        super().__init__(f"{task_name} failed: {error_type}: {message}")
        self.task_name = task_name
        self.error_type = error_type
        self.error_message = message
        self.details = details


class OrchestratorDeadlock(DurableError):
    """Orchestrator or entity code ran past its deadline without yielding: an endless loop, a
    blocking call. The instance fails with this error; the message names where the code was.

    The worker raises it inside the stuck code from another thread, and Python builds such an
    exception without arguments, so the message it should carry waits in `_pending` (by thread)."""

    _pending: ClassVar[dict[int, str]] = {}

    def __init__(self, message: str | None = None) -> None:
        if message is None:
            message = self._pending.pop(threading.get_ident(), "code ran past its deadline")
        super().__init__(message)


class WorkerStuck(DurableError):
    """User code holds this worker's episode thread and cannot be interrupted (it is blocked
    outside Python, in a C call): the worker stops so that a supervisor can restart it."""


class ActivityTimeout(DurableError, TimeoutError):
    """An activity ran past its `timeout`: its task fails with this (retryable like any failure);
    a sync activity's thread is left to finish on its own and its slot is given back."""


class ActivityCrashed(DurableError):
    """An activity's worker died while running it (killed, crashed, lost its lease) too many times,
    the last of them with the activity running alone: it is not started again, so one poisonous call
    cannot crash-loop a fleet."""
