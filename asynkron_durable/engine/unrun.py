"""Episodes worked out without running the orchestrator: termination, and suspension.

A terminate or suspend request must land even when the orchestrator's code cannot run (it loops
forever, it is broken, it was removed): neither needs the code. A termination ends the execution
with the reason as its output, giving back every critical section it asked for; a suspension only
records the events, which the code sees when a later episode replays them after the resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from asynkron_durable.engine.critical_section import outstanding_locks
from asynkron_durable.engine.results import EpisodeResult
from asynkron_durable.history import (
    ExecutionResumed,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    RuntimeStatus,
)
from asynkron_durable.serialization import to_json


def episode_without_code(
    history: Sequence[HistoryEvent],
    events: Sequence[HistoryEvent],
    status: RuntimeStatus,
    custom_status: str | None,
    now: datetime,
) -> EpisodeResult | None:
    """The episode applying `events` to an execution in `status` with `history` behind it, when
    they terminate it or leave it suspended; None when they need the orchestrator's code."""
    terminated = next((e for e in events if isinstance(e, ExecutionTerminated)), None)
    if terminated is not None:
        return EpisodeResult(
            new_history=_recorded(events, now),
            actions=[],
            status=RuntimeStatus.TERMINATED,
            custom_status=custom_status,
            output=to_json(terminated.reason),
            released_locks=outstanding_locks([*history, *events]),
        )
    if _suspended_after(events, status is RuntimeStatus.SUSPENDED):
        return EpisodeResult(_recorded(events, now), [], RuntimeStatus.SUSPENDED, custom_status)
    return None


def _recorded(events: Sequence[HistoryEvent], now: datetime) -> list[HistoryEvent]:
    """The history an episode without code appends: the events inside its start and end marks."""
    return [OrchestratorStarted(timestamp=now), *events, OrchestratorCompleted(timestamp=now)]


def _suspended_after(events: Sequence[HistoryEvent], suspended: bool) -> bool:
    for event in events:
        if isinstance(event, ExecutionSuspended):
            suspended = True
        elif isinstance(event, ExecutionResumed):
            suspended = False
    return suspended
