"""The actions-to-commit step: what an episode produced becomes one store commit.

This is the one place that knows how actions become history, an outbox (messages, activities, new
instances) and the next instance record; `next_record` is the only place outside the stores'
compare-and-swap that moves a record's version. It takes plain data, `EpisodeResult` and the
action kinds of `asynkron_durable.engine.actions`, so any executor that returns them feeds it the
same way: our engine, or an SDK replaying orchestrations in another process. No I/O, no user code.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from asynkron_durable.engine.actions import (
    CallEntity,
    CreateTimer,
    LockEntities,
    ScheduleActivity,
    ScheduleSubOrchestration,
    SendEvent,
    SignalEntity,
    UnlockEntities,
)
from asynkron_durable.engine.results import EpisodeResult
from asynkron_durable.engine.rewind import RewindPlan
from asynkron_durable.entities.document import entity_message, unlock_messages
from asynkron_durable.entities.ids import EntityId
from asynkron_durable.errors import InstanceAlreadyExists, StoreError
from asynkron_durable.history import (
    EntityCallFailed,
    EntityLockFailed,
    EntityLockGranted,
    EntityLockRequest,
    EntityOperation,
    EntityUnlock,
    EventRaised,
    ExecutionRewound,
    ExecutionStarted,
    FailureDetails,
    HistoryEvent,
    InstanceRecord,
    RuntimeStatus,
    SubOrchestrationCompleted,
    SubOrchestrationFailed,
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

entity_log = logging.getLogger("asynkron_durable.entities")


def new_execution_id() -> str:
    """A fresh execution id (each start, restart and continue-as-new gets one)."""
    return uuid.uuid4().hex


def next_record(record: InstanceRecord, now: datetime, **changes: Any) -> InstanceRecord:
    """`record` as a commit writes it: `changes` applied, updated `now`, its version moved on by
    one (the store accepts the commit only while the stored version is still `record.version`)."""
    return record.model_copy(update={**changes, "last_updated_at": now, "version": record.version + 1})


def failed_commit(
    record: InstanceRecord, error: BaseException, now: datetime, acknowledged: Sequence[int] = ()
) -> EpisodeCommit:
    """Fail an instance whose episode could not be run at all (or never came back), consuming the
    `acknowledged` messages."""
    failed = next_record(
        record, now, runtime_status=RuntimeStatus.FAILED, failure=FailureDetails.from_exception(error)
    )
    return EpisodeCommit(failed, record.version, [], list(acknowledged))


def episode_commit(
    record: InstanceRecord,
    result: EpisodeResult,
    started: ExecutionStarted | None,
    now: datetime,
    ack: list[int],
    new_history: list[HistoryEvent],
    *,
    reset_history: bool = False,
) -> EpisodeCommit:
    """The commit of one episode of `record`'s execution: `new_history` appended (or replacing the
    history with `reset_history`), the messages in `ack` consumed, and the outbox of `result`'s
    actions. `started` is the execution's ExecutionStarted (for continue-as-new and the parent)."""
    instance_id, execution_id = record.instance_id, record.execution_id
    activities: list[ActivityTask] = []
    messages: list[Message] = []
    children: list[NewInstance] = []
    for action in result.actions:
        match action:
            case ScheduleActivity(sequence=seq, name=name, input=payload):
                activities.append(ActivityTask(instance_id, execution_id, seq, name, payload))
            case CreateTimer(sequence=seq, fire_at=fire_at, cancelled=False):
                messages.append(_timer(record, seq, fire_at))
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

    changes: dict[str, Any] = {
        "runtime_status": result.status,
        "custom_status": result.custom_status,
        "output": result.output,
        "failure": result.failure,
    }
    if result.continue_as_new is not None:
        again = result.continue_as_new
        reset_history = True
        new_history = [new_history[-1]]  # the ContinuedAsNew marker opens the next execution
        execution_id = new_execution_id()
        changes |= {"execution_id": execution_id, "input": again.input, "output": None}
        messages = [m for m in messages if not isinstance(m.event, TimerFired)]
        messages.insert(0, _restart_message(instance_id, started, again.input, execution_id, now))
        messages.extend(Message(instance_id, e) for e in again.carried_events)
    elif result.status.is_terminal and started is not None and started.parent_instance_id:
        messages.append(_notify_parent(started, result, now))

    return EpisodeCommit(
        record=next_record(record, now, **changes),
        expected_version=record.version,
        new_history=new_history,
        acknowledged_message_ids=ack,
        reset_history=reset_history,
        messages=messages,
        activities=activities,
        new_instances=children,
    )


def rewind_commit(
    record: InstanceRecord,
    plan: RewindPlan,
    result: EpisodeResult,
    started: ExecutionStarted | None,
    now: datetime,
    ack: list[int],
) -> EpisodeCommit:
    """The commit of a rewind: the failed execution's history rewritten by `plan`, the episode
    that ran over it, and the work that had no outcome sent again."""
    commit = episode_commit(
        record.model_copy(update={"failure": None, "output": None}),
        result,
        started,
        now,
        ack,
        [*plan.history, *result.new_history],
        reset_history=True,
    )
    commit.activities.extend(
        ActivityTask(record.instance_id, record.execution_id, e.event_id, e.name, e.input)
        for e in plan.activities
    )
    commit.messages.extend(_timer(record, e.event_id, e.fire_at) for e in plan.timers)
    commit.messages.extend(
        Message(child.instance_id, ExecutionRewound(timestamp=now, reason="parent rewound"))
        for child in plan.children
    )
    commit.messages.extend(
        _entity_operation(record, CallEntity(call.event_id, call.entity_id, call.operation, call.input), now)
        for call in plan.entity_calls
    )
    return commit


def late_grants(messages: Sequence[InboxMessage], record: InstanceRecord, now: datetime) -> list[Message]:
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


def ended_commit(
    record: InstanceRecord, late: list[HistoryEvent], ack: list[int], messages: list[Message]
) -> EpisodeCommit:
    """The commit of messages that reached an instance whose execution has ended: `late` outcomes
    kept in its history (a failed instance keeps them for a rewind), `messages` sent on."""
    return EpisodeCommit(record, record.version, late, ack, messages=messages)


def entity_commit(
    record: InstanceRecord, document: str, ack: list[int], messages: list[Message], now: datetime
) -> EpisodeCommit:
    """The commit of an entity's batch: its new state `document`, the replies and releases it sends."""
    return EpisodeCommit(
        next_record(record, now, output=document), record.version, [], ack, messages=messages
    )


def unreadable_entity_commit(item: OrchestrationWorkItem, error: StoreError, now: datetime) -> EpisodeCommit:
    """A corrupt document is kept for inspection and the entity marked Failed. Nobody is left
    waiting: callers get the error, lock requests fail (the entities locked before this one are
    released), signals and unlocks are logged and dropped."""
    record = item.record
    entity_log.error("%s; failing its %d requests", error, len(item.messages))
    failure = FailureDetails.from_exception(error)
    failed_record = next_record(record, now, runtime_status=RuntimeStatus.FAILED, failure=failure)
    return EpisodeCommit(
        failed_record,
        record.version,
        [],
        [m.message_id for m in item.messages],
        messages=_refusals(item.messages, failure, now),
    )


def stuck_entity_commit(item: OrchestrationWorkItem, error: BaseException, now: datetime) -> EpisodeCommit:
    """An entity batch that never came back: the entity's state stays as it was, every call and
    lock request of the batch fails (nobody is left waiting), signals are dropped, and unlocks stay
    in the inbox for the next batch (dropping one would leave the entity locked for good)."""
    record = item.record
    entity_log.error("%s; failing its calls and lock requests", error)
    refused = [m for m in item.messages if not isinstance(m.event, EntityUnlock)]
    failure = FailureDetails.from_exception(error)
    return EpisodeCommit(
        next_record(record, now),
        record.version,
        [],
        [m.message_id for m in refused],
        messages=_refusals(refused, failure, now),
    )


def _refusals(messages: Sequence[InboxMessage], failure: FailureDetails, now: datetime) -> list[Message]:
    """The answers to an entity's requests it will not serve: calls fail, lock requests are
    refused (and the entities locked before this one in the request released)."""
    replies: list[Message] = []
    for message in messages:
        match message.event:
            case EntityOperation(task_id=int(task_id), source_instance_id=str(source)):
                failed = EntityCallFailed(timestamp=now, task_scheduled_id=task_id, failure=failure)
                replies.append(Message(source, failed, execution_id=message.event.source_execution_id))
            case EntityLockRequest() as request:
                refused = EntityLockFailed(timestamp=now, task_scheduled_id=request.task_id, failure=failure)
                replies.append(
                    Message(request.owner_instance_id, refused, execution_id=request.owner_execution_id)
                )
                replies.extend(
                    unlock_messages(
                        request.owner_instance_id,
                        request.owner_execution_id,
                        request.task_id,
                        request.entity_ids[: request.position],
                        now,
                    )
                )
    return replies


def _timer(record: InstanceRecord, timer_id: int, fire_at: datetime) -> Message:
    return Message(
        record.instance_id,
        TimerFired(timer_id=timer_id, fire_at=fire_at),
        visible_at=fire_at,
        execution_id=record.execution_id,
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
