"""The pure replay engine: orchestration context, durable tasks, executor and replayer."""

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
from asynkron_durable.engine.context import OrchestrationContext, function_name
from asynkron_durable.engine.critical_section import (
    CriticalSection,
    LockTask,
    failed_inside_critical_section,
    outstanding_locks,
)
from asynkron_durable.engine.executor import OrchestrationExecutor, Orchestrator
from asynkron_durable.engine.replayer import ReplayResult, replay_history
from asynkron_durable.engine.results import ContinueAsNew, EpisodeResult
from asynkron_durable.engine.retry import RetryOptions
from asynkron_durable.engine.rewind import RewindPlan, plan_rewind
from asynkron_durable.engine.tasks import Task, TimerTask

__all__ = [
    "Action",
    "CallEntity",
    "ContinueAsNew",
    "CreateTimer",
    "CriticalSection",
    "EpisodeResult",
    "LockEntities",
    "LockTask",
    "OrchestrationContext",
    "OrchestrationExecutor",
    "Orchestrator",
    "ReplayResult",
    "RetryOptions",
    "RewindPlan",
    "ScheduleActivity",
    "ScheduleSubOrchestration",
    "SendEvent",
    "SignalEntity",
    "Task",
    "TimerTask",
    "UnlockEntities",
    "failed_inside_critical_section",
    "function_name",
    "outstanding_locks",
    "plan_rewind",
    "replay_history",
]
