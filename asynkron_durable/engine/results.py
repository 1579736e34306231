"""What one episode hands back: plain data, the input of the worker's actions-to-commit step.

Our executor produces it; an executor that is not ours (an SDK replaying orchestrations in another
process and returning the same kinds of action) can build it too, so both reach the store the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asynkron_durable.engine.actions import Action
from asynkron_durable.history import EventRaised, FailureDetails, HistoryEvent, RuntimeStatus


@dataclass(frozen=True, slots=True)
class ContinueAsNew:
    """The execution asked to restart itself with `input`; `carried_events` go to the new one."""

    input: str | None
    preserve_events: bool
    carried_events: list[EventRaised]


@dataclass(slots=True)
class EpisodeResult:
    """What one episode produced: history to append, new actions, and the instance's state."""

    new_history: list[HistoryEvent]
    actions: list[Action]
    status: RuntimeStatus
    custom_status: str | None
    output: str | None = None
    failure: FailureDetails | None = None
    continue_as_new: ContinueAsNew | None = None
    released_locks: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    """Critical sections to unlock because the execution ended holding them (lock sequence,
    entity ids); not recorded in history, the execution being over."""
