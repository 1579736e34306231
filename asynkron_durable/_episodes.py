"""Turn one claimed instance into one store commit: run the engine, map its actions to an outbox.

No I/O here: the runtime loads history and commits; this module decides what the commit holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asynkron_durable.engine import (
    CallEntity,
    CreateTimer,
    EpisodeResult,
    LockEntities,
    OrchestrationExecutor,
    Orchestrator,
    ScheduleActivity,
    ScheduleSubOrchestration,
    SendEvent,
    SignalEntity,
    UnlockEntities,
    plan_rewind,
)
from asynkron_durable.entities.document import entity_message, unlock_messages
from asynkron_durable.entities.ids import EntityId
from asynkron_durable.errors import InstanceAlreadyExists
from asynkron_durable.history import (
    EntityCallCompleted,
    EntityCallFailed,
    EntityLockGranted,
    EntityLockRequest,
    EntityOperation,
    EventRaised,
    ExecutionRewound,
    ExecutionStarted,
    FailureDetails,
    HistoryEvent,
    InstanceRecord,
    OrchestratorStarted,
    RuntimeStatus,
    SubOrchestrationCompleted,
    SubOrchestrationFailed,
    TaskCompleted,
    TaskFailed,
    TimerFired,
)
from asynkron_durable.stores.base import (
    ActivityTask,
    EpisodeCommit,
    InboxMessage,
    Message,
    NewInstance,
    OrchestrationWorkItem,
)


def new_execution_id() -> str:
    """A fresh execution id (each start, restart and continue-as-new gets one)."""
    return uuid.uuid4().hex


@dataclass(slots=True)
class CachedExecution:
    """An executor kept in memory after its episode committed, so the next episode of the same
    execution applies only the new events instead of replaying the whole history.

    It holds the orchestrator's live generator (user state), so it belongs to exactly one execution:
    `fits` accepts it only for that execution at exactly the record version its commit produced.
    Any other version means someone else wrote the instance (another worker, a restart...)."""

    executor: OrchestrationExecutor
    record: InstanceRecord
    """The record the episode's commit wrote (its version is the commit's expected_version + 1)."""
    started: ExecutionStarted | None
    """The execution's ExecutionStarted event (for continue-as-new and parent notifications)."""

    def fits(self, record: InstanceRecord) -> bool:
        """True if `record` is exactly the state this executor left behind."""
        return (
            record.version == self.record.version
            and record.execution_id == self.record.execution_id
            and not record.runtime_status.is_terminal
        )


def build_episode(
    item: OrchestrationWorkItem,
    history: Sequence[HistoryEvent],
    orchestrator: Orchestrator,
    now: datetime,
    cached: CachedExecution | None = None,
) -> tuple[EpisodeCommit, CachedExecution | None]:
    """Run one episode and describe everything it changes; also return the executor to keep for
    the next episode if the execution goes on (None when it ended, continued as new or was rewound).

    With a `cached` executor that `fits` the record, `history` is not needed (pass []): only the
    inbox events are applied. Otherwise a fresh executor replays `history` first."""
    record = item.record
    ack = [m.message_id for m in item.messages]
    current = [m for m in item.messages if m.execution_id in (None, record.execution_id)]
    events = [m.event for m in current]
    if record.runtime_status.is_terminal:
        failed = record.runtime_status is RuntimeStatus.FAILED
        if failed and any(isinstance(e, ExecutionRewound) for e in events):
            return _rewind(record, [*history, *_outcomes(events)], orchestrator, now, ack), None
        # A failed instance keeps the results that arrive late, so a rewind does not wait for
        # (or re-run) work that finished after the failure; finished instances just drop them.
        late = _outcomes(events) if failed else []
        commit = EpisodeCommit(
            record, record.version, late, ack, messages=_late_grants(item.messages, record, now)
        )
        return commit, None

    if cached is not None and cached.fits(record):
        executor, started = cached.executor, cached.started
    else:
        executor = OrchestrationExecutor(orchestrator, record.instance_id)
        executor.replay(history)
        started = _execution_started(history)
    result = executor.run_episode([OrchestratorStarted(timestamp=now), *events])
    started = started or _execution_started(events)
    commit = _commit_from_result(record, result, started, now, ack, list(result.new_history))
    stale = [m for m in item.messages if m not in current]  # for an execution that has ended
    commit.messages.extend(_late_grants(stale, record, now))
    return commit, _keep(executor, commit, started)


def build_step(
    cached: CachedExecution, outcomes: Sequence[HistoryEvent], now: datetime
) -> tuple[EpisodeCommit, CachedExecution | None]:
    """The next episode of a kept executor given only its activities' outcomes: the commit of an
    `ActivityStep`, written in place of the outcomes' inbox messages (it acknowledges none)."""
    record = cached.record
    result = cached.executor.run_episode([OrchestratorStarted(timestamp=now), *outcomes])
    commit = _commit_from_result(record, result, cached.started, now, [], list(result.new_history))
    return commit, _keep(cached.executor, commit, cached.started)


def _keep(
    executor: OrchestrationExecutor, commit: EpisodeCommit, started: ExecutionStarted | None
) -> CachedExecution | None:
    """The executor to keep after `commit`, if its execution goes on in this executor."""
    if executor.is_finished or executor.nondeterminism is not None or commit.reset_history:
        return None
    return CachedExecution(executor, commit.record, started)


def _late_grants(messages: Sequence[InboxMessage], record: InstanceRecord, now: datetime) -> list[Message]:
    """Critical sections granted to an execution that has ended: unlock them at once, or their
    entities would stay locked for good."""
    return [
        unlock
        for m in messages
        if isinstance(m.event, EntityLockGranted)
        for unlock in unlock_messages(
            record.instance_id,
            m.execution_id or record.execution_id,
            m.event.task_scheduled_id,
            m.event.entity_ids,
            now,
        )
    ]


def _rewind(
    record: InstanceRecord,
    history: Sequence[HistoryEvent],
    orchestrator: Orchestrator,
    now: datetime,
    ack: list[int],
) -> EpisodeCommit:
    plan = plan_rewind(history)
    executor = OrchestrationExecutor(orchestrator, record.instance_id)
    executor.replay(plan.history)
    result = executor.run_episode([OrchestratorStarted(timestamp=now), ExecutionRewound(timestamp=now)])
    commit = _commit_from_result(
        record.model_copy(update={"failure": None, "output": None}),
        result,
        _execution_started(plan.history),
        now,
        ack,
        [*plan.history, *result.new_history],
        reset_history=True,
    )
    commit.activities.extend(
        ActivityTask(record.instance_id, record.execution_id, e.event_id, e.name, e.input)
        for e in plan.activities
    )
    commit.messages.extend(
        Message(
            record.instance_id,
            TimerFired(timer_id=e.event_id, fire_at=e.fire_at),
            visible_at=e.fire_at,
            execution_id=record.execution_id,
        )
        for e in plan.timers
    )
    commit.messages.extend(
        Message(child.instance_id, ExecutionRewound(timestamp=now, reason="parent rewound"))
        for child in plan.children
    )
    commit.messages.extend(
        _entity_operation(record, CallEntity(call.event_id, call.entity_id, call.operation, call.input), now)
        for call in plan.entity_calls
    )
    return commit


def _commit_from_result(
    record: InstanceRecord,
    result: EpisodeResult,
    started: ExecutionStarted | None,
    now: datetime,
    ack: list[int],
    new_history: list[HistoryEvent],
    *,
    reset_history: bool = False,
) -> EpisodeCommit:
    instance_id, execution_id = record.instance_id, record.execution_id
    activities: list[ActivityTask] = []
    messages: list[Message] = []
    children: list[NewInstance] = []
    for action in result.actions:
        match action:
            case ScheduleActivity(sequence=seq, name=name, input=payload):
                activities.append(ActivityTask(instance_id, execution_id, seq, name, payload))
            case CreateTimer(sequence=seq, fire_at=fire_at, cancelled=False):
                messages.append(
                    Message(
                        instance_id,
                        TimerFired(timer_id=seq, fire_at=fire_at),
                        visible_at=fire_at,
                        execution_id=execution_id,
                    )
                )
            case ScheduleSubOrchestration():
                children.append(_child(record, action, now))
            case SendEvent(instance_id=target, name=name, input=payload):
                messages.append(Message(target, EventRaised(timestamp=now, name=name, input=payload)))
            case CallEntity() | SignalEntity():
                messages.append(_entity_operation(record, action, now))
            case LockEntities(sequence=seq, entity_ids=ids):
                request = EntityLockRequest(
                    timestamp=now,
                    owner_instance_id=instance_id,
                    owner_execution_id=execution_id,
                    task_id=seq,
                    entity_ids=ids,
                    position=0,
                )
                messages.append(entity_message(EntityId.from_instance_id(ids[0]), request, now))
            case UnlockEntities(entity_ids=ids, lock_sequence=lock_seq):
                messages.extend(unlock_messages(instance_id, execution_id, lock_seq, ids, now))
    for lock_seq, ids in result.released_locks:
        messages.extend(unlock_messages(instance_id, execution_id, lock_seq, ids, now))

    update: dict[str, object] = {
        "runtime_status": result.status,
        "custom_status": result.custom_status,
        "output": result.output,
        "failure": result.failure,
        "last_updated_at": now,
        "version": record.version + 1,
    }
    if result.continue_as_new is not None:
        again = result.continue_as_new
        reset_history = True
        new_history = [new_history[-1]]  # the ContinuedAsNew marker opens the next execution
        execution_id = new_execution_id()
        update |= {"execution_id": execution_id, "input": again.input, "output": None}
        messages = [m for m in messages if not isinstance(m.event, TimerFired)]
        messages.insert(0, _restart_message(instance_id, started, again.input, execution_id, now))
        messages.extend(Message(instance_id, e) for e in again.carried_events)
    elif result.status.is_terminal and started is not None and started.parent_instance_id:
        messages.append(_notify_parent(started, result, now))

    return EpisodeCommit(
        record=record.model_copy(update=update),
        expected_version=record.version,
        new_history=new_history,
        acknowledged_message_ids=ack,
        reset_history=reset_history,
        messages=messages,
        activities=activities,
        new_instances=children,
    )


def _entity_operation(record: InstanceRecord, action: CallEntity | SignalEntity, now: datetime) -> Message:
    is_call = isinstance(action, CallEntity)
    operation = EntityOperation(
        timestamp=now,
        operation=action.operation,
        input=action.input,
        source_instance_id=record.instance_id,
        source_execution_id=record.execution_id,
        task_id=action.sequence if is_call else None,
    )
    visible_at = None if isinstance(action, CallEntity) else action.scheduled_time
    return entity_message(EntityId.from_instance_id(action.entity_id), operation, now, visible_at)


def _child(parent: InstanceRecord, action: ScheduleSubOrchestration, now: datetime) -> NewInstance:
    execution_id = new_execution_id()
    record = InstanceRecord(
        instance_id=action.instance_id,
        name=action.name,
        execution_id=execution_id,
        runtime_status=RuntimeStatus.PENDING,
        input=action.input,
        created_at=now,
        last_updated_at=now,
        parent_instance_id=parent.instance_id,
    )
    start = ExecutionStarted(
        timestamp=now,
        name=action.name,
        input=action.input,
        execution_id=execution_id,
        parent_instance_id=parent.instance_id,
        parent_execution_id=parent.execution_id,
        parent_task_id=action.sequence,
    )
    taken = InstanceAlreadyExists(action.instance_id, "running")
    conflict = Message(
        parent.instance_id,
        SubOrchestrationFailed(
            timestamp=now,
            task_scheduled_id=action.sequence,
            failure=FailureDetails(error_type=type(taken).__name__, message=str(taken)),
        ),
        execution_id=parent.execution_id,
    )
    return NewInstance(record, start, conflict)


def _restart_message(
    instance_id: str,
    started: ExecutionStarted | None,
    payload: str | None,
    execution_id: str,
    now: datetime,
) -> Message:
    event = ExecutionStarted(
        timestamp=now,
        name=started.name if started else "",
        input=payload,
        execution_id=execution_id,
        parent_instance_id=started.parent_instance_id if started else None,
        parent_execution_id=started.parent_execution_id if started else None,
        parent_task_id=started.parent_task_id if started else None,
    )
    return Message(instance_id, event, execution_id=execution_id)


def _notify_parent(started: ExecutionStarted, result: EpisodeResult, now: datetime) -> Message:
    assert started.parent_instance_id is not None and started.parent_task_id is not None
    task_id = started.parent_task_id
    event: HistoryEvent
    if result.status is RuntimeStatus.COMPLETED:
        event = SubOrchestrationCompleted(timestamp=now, task_scheduled_id=task_id, result=result.output)
    else:
        failure = result.failure or FailureDetails(
            error_type="Terminated", message=f"sub-orchestration terminated: {result.output}"
        )
        event = SubOrchestrationFailed(timestamp=now, task_scheduled_id=task_id, failure=failure)
    return Message(started.parent_instance_id, event, execution_id=started.parent_execution_id)


_OUTCOMES = (
    TaskCompleted,
    TaskFailed,
    SubOrchestrationCompleted,
    SubOrchestrationFailed,
    TimerFired,
    EntityCallCompleted,
    EntityCallFailed,
)


def _outcomes(events: Sequence[HistoryEvent]) -> list[HistoryEvent]:
    return [e for e in events if isinstance(e, _OUTCOMES)]


def _execution_started(events: Sequence[HistoryEvent]) -> ExecutionStarted | None:
    return next((e for e in events if isinstance(e, ExecutionStarted)), None)
