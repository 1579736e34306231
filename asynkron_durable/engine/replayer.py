"""Check recorded histories against current code: the tool for safe deployments and golden tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from asynkron_durable.engine.actions import Action
from asynkron_durable.engine.executor import OrchestrationExecutor, Orchestrator
from asynkron_durable.errors import NonDeterminismError
from asynkron_durable.history import (
    EXECUTION_ENDED,
    HistoryEvent,
    RuntimeStatus,
)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """Every action the code asked for, in order, and where the replay left the execution."""

    actions: list[Action]
    status: RuntimeStatus


def replay_history(
    orchestrator: Orchestrator, instance_id: str, history: Sequence[HistoryEvent]
) -> ReplayResult:
    """Replay `history` through `orchestrator`; raise `NonDeterminismError` if the code no longer
    asks for what the history recorded (including asking for more after the history ended)."""
    executor = OrchestrationExecutor(orchestrator, instance_id)
    executor.replay(history)
    if executor.nondeterminism is not None:
        raise executor.nondeterminism
    pending = list(executor.context._pending_actions.values())
    ended = bool(history) and isinstance(history[-1], EXECUTION_ENDED)
    if ended and pending:
        raise NonDeterminismError(
            f"non-deterministic orchestrator {executor.context.name!r} (instance {instance_id!r}): "
            f"the history ends with {history[-1].kind} but the code asked for "
            f"{pending[0].describe()} (sequence {pending[0].sequence})"
        )
    if ended and not executor.is_finished:
        raise NonDeterminismError(
            f"non-deterministic orchestrator {executor.context.name!r} (instance {instance_id!r}): "
            f"the history ends with {history[-1].kind} but the code has not finished"
        )
    return ReplayResult(list(executor.context._all_actions), executor.status)
