"""Entities seen from the pure engine: call/signal/lock in orchestrations, driven with hand-built
histories, and how `worker.episodes.build_episode` turns the results into messages. No store, no runtime."""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from support.drive import T0, episode

from asynkron_durable import (
    EntityId,
    InvalidOperation,
    NonDeterminismError,
    OrchestrationContext,
    RuntimeStatus,
    TaskFailedError,
    replay_history,
)
from asynkron_durable.engine import (
    CallEntity,
    CriticalSection,
    EpisodeResult,
    LockEntities,
    OrchestrationExecutor,
    SignalEntity,
    UnlockEntities,
    outstanding_locks,
    plan_rewind,
)
from asynkron_durable.history import (
    EntityCallCompleted,
    EntityCallFailed,
    EntityCallScheduled,
    EntityLockFailed,
    EntityLockGranted,
    EntityLockRequest,
    EntityLockScheduled,
    EntityOperation,
    EntitySignalSent,
    EntityUnlock,
    EntityUnlockSent,
    EventRaised,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionRewound,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    FailureDetails,
    HistoryEvent,
    InstanceRecord,
    OrchestratorStarted,
    SubOrchestrationCompleted,
    TimerFired,
)
from asynkron_durable.stores.base import EpisodeCommit, InboxMessage, Message, OrchestrationWorkItem
from asynkron_durable.worker.episodes import build_episode

A = EntityId("account", "a")
B = EntityId("account", "b")
C = EntityId("account", "c")
AB = (A.instance_id, B.instance_id)

INSTANCE = "instance-1"  # what support.drive.episode names the instance


def start(input: Any = None, execution_id: str = "e1") -> ExecutionStarted:
    return ExecutionStarted(name="orchestrator", input=json.dumps(input), execution_id=execution_id)


def granted(seq: int = 0, ids: tuple[str, ...] = AB) -> EntityLockGranted:
    return EntityLockGranted(task_scheduled_id=seq, entity_ids=ids)


def completed(seq: int, result: str) -> EntityCallCompleted:
    return EntityCallCompleted(task_scheduled_id=seq, result=result)


def kinds(history: Sequence[HistoryEvent]) -> list[str]:
    return [e.kind for e in history]


# ----- orchestrators ----------------------------------------------------------------------------


def add_then_get(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
    yield ctx.call_entity(A, "add", ctx.get_input())
    total = yield ctx.call_entity(A.instance_id, "get")
    return total


def add_then_get_renamed(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
    yield ctx.call_entity(A, "deposit", ctx.get_input())
    return (yield ctx.call_entity(A, "get"))


def add_then_get_other_entity(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
    yield ctx.call_entity(B, "add", ctx.get_input())
    return (yield ctx.call_entity(A, "get"))


def transfer(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
    section = yield ctx.lock([B, A, A.instance_id])  # any order, duplicates: locked sorted, once
    with section:
        balance = yield ctx.call_entity(A, "get")
        yield ctx.call_entity(B, "add", balance)
    after = yield ctx.call_entity(C, "get")  # outside the section again: any entity
    return [balance, after]


async def transfer_async(ctx: OrchestrationContext) -> Any:
    async with ctx.lock([B, A]) as section:
        assert isinstance(section, CriticalSection)
        balance = await ctx.call_entity(A, "get")
        await ctx.call_entity(B, "add", balance)
    after = await ctx.call_entity(C, "get")
    return [balance, after]


def hold_and_return(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
    """Takes the lock without a `with` block and finishes holding it."""
    yield ctx.lock([A, B])
    value = yield ctx.call_entity(A, "get")
    if value == "fail":
        raise RuntimeError("failed while holding the lock")
    if value == "again":
        ctx.continue_as_new(None)
        return None
    if value == "wait":
        yield ctx.wait_for_external_event("never")
    return value


def hold_in_with_block(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
    with (yield ctx.lock([A, B])):
        yield ctx.call_entity(A, "get")
        yield ctx.wait_for_external_event("never")
    return "left"


def lock_then_give_up(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
    """Asks for a lock, then waits for "stop" instead of for the grant, and ends without it."""
    ctx.lock([A, B])
    yield ctx.wait_for_external_event("stop")
    return "gave up"


def run_through(
    fn: Any, events: Sequence[Sequence[HistoryEvent]], input: Any = None
) -> tuple[list[EpisodeResult], list[HistoryEvent]]:
    """Episode per entry of `events` (the first is preceded by ExecutionStarted)."""
    history: list[HistoryEvent] = []
    results = [episode(fn, history, [start(input)])]
    for i, new in enumerate(events, start=1):
        results.append(episode(fn, history, list(new), T0 + timedelta(seconds=i)))
    return results, history


# ----- call and signal --------------------------------------------------------------------------


def test_call_entity_schedules_a_call_and_returns_its_result() -> None:
    (first, second, third), history = run_through(
        add_then_get, [[completed(0, "null")], [completed(1, "12")]], 5
    )
    assert first.actions == [CallEntity(0, A.instance_id, "add", "5")]
    assert second.actions == [CallEntity(1, A.instance_id, "get", "null")]
    assert third.status is RuntimeStatus.COMPLETED
    assert third.output == "12"
    scheduled = [e for e in history if isinstance(e, EntityCallScheduled)]
    assert [(e.event_id, e.entity_id, e.operation, e.input) for e in scheduled] == [
        (0, "@account@a", "add", "5"),
        (1, "@account@a", "get", "null"),
    ]


def test_a_failed_entity_call_raises_task_failed_error_naming_operation_and_entity() -> None:
    def catches(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        try:
            yield ctx.call_entity(A, "withdraw", 100)
        except TaskFailedError as exc:
            return [str(exc), exc.error_type, exc.error_message, exc.details]
        return None

    failure = FailureDetails(error_type="ValueError", message="too low", details="Traceback: entity")
    (_, result), _ = run_through(catches, [[EntityCallFailed(task_scheduled_id=0, failure=failure)]])
    assert result.status is RuntimeStatus.COMPLETED
    assert result.output is not None
    message, error_type, error_message, details = json.loads(result.output)
    assert message == "operation 'withdraw' on entity '@account@a' failed: ValueError: too low"
    assert (error_type, error_message, details) == ("ValueError", "too low", "Traceback: entity")


def test_an_uncaught_entity_failure_fails_the_instance_naming_the_call() -> None:
    failure = FailureDetails(error_type="ValueError", message="too low", details="remote tb")
    (_, result), history = run_through(
        add_then_get, [[EntityCallFailed(task_scheduled_id=0, failure=failure)]]
    )
    assert result.status is RuntimeStatus.FAILED
    assert result.failure is not None
    assert result.failure.error_type == "TaskFailedError"
    assert "operation 'add' on entity '@account@a' failed: ValueError: too low" in result.failure.message
    assert "remote tb" in result.failure.details
    assert history[-1].kind == "ExecutionFailed"


def test_signal_entity_does_not_wait_and_is_recorded() -> None:
    later = T0 + timedelta(hours=2)

    def signals(ctx: OrchestrationContext) -> str:
        ctx.signal_entity(A, "add", 1)
        ctx.signal_entity(B.instance_id, "add", 2, scheduled_time=later.replace(tzinfo=None))
        return "sent"

    (result,), history = run_through(signals, [])
    assert result.status is RuntimeStatus.COMPLETED
    assert result.actions == [
        SignalEntity(0, A.instance_id, "add", "1", None),
        SignalEntity(1, B.instance_id, "add", "2", later),  # a naive time is taken as UTC
    ]
    sent = [e for e in history if isinstance(e, EntitySignalSent)]
    assert [(e.event_id, e.entity_id, e.scheduled_time) for e in sent] == [
        (0, A.instance_id, None),
        (1, B.instance_id, later),
    ]


def test_replaying_recorded_entity_events_is_deterministic() -> None:
    _, history = run_through(
        transfer, [[granted()], [completed(1, "7")], [completed(2, "null")], [completed(4, "3")]]
    )
    assert history[-1].kind == "ExecutionCompleted"
    replayed = replay_history(transfer, INSTANCE, history)
    assert replayed.status is RuntimeStatus.COMPLETED
    assert replayed.actions == [
        LockEntities(0, AB),
        CallEntity(1, A.instance_id, "get", "null"),
        CallEntity(2, B.instance_id, "add", "7"),
        UnlockEntities(3, AB, 0),
        CallEntity(4, C.instance_id, "get", "null"),
    ]
    # a fresh executor over the same history asks for nothing new
    executor = OrchestrationExecutor(transfer, INSTANCE)
    last = max(i for i, e in enumerate(history) if isinstance(e, OrchestratorStarted))
    assert kinds(history[last:]) == [
        "OrchestratorStarted",
        "EntityCallCompleted",
        "OrchestratorCompleted",
        "ExecutionCompleted",
    ]
    executor.replay(history[:last])  # everything before the last episode
    again = executor.run_episode([OrchestratorStarted(timestamp=T0), completed(4, "3")])
    assert again.actions == []
    assert again.output == "[7,3]"
    assert again.released_locks == []


@pytest.mark.parametrize(
    ("changed", "asked"),
    [
        (add_then_get_renamed, "call of 'deposit' on entity '@account@a'"),
        (add_then_get_other_entity, "call of 'add' on entity '@account@b'"),
    ],
    ids=["operation", "entity"],
)
def test_changing_an_entity_call_on_replay_is_non_determinism(changed: Any, asked: str) -> None:
    _, history = run_through(add_then_get, [[completed(0, "null")]], 5)
    executor = OrchestrationExecutor(changed, INSTANCE)
    executor.replay(history)
    result = executor.run_episode([OrchestratorStarted(timestamp=T0), completed(1, "5")])
    assert isinstance(executor.nondeterminism, NonDeterminismError)
    assert result.status is RuntimeStatus.FAILED
    assert result.failure is not None
    assert result.failure.error_type == "NonDeterminismError"
    assert "the history holds call of 'add' on entity '@account@a'" in result.failure.message
    assert f"the code asked for {asked}" in result.failure.message
    assert result.actions == []
    with pytest.raises(NonDeterminismError, match="call of 'add' on entity '@account@a'"):
        replay_history(changed, INSTANCE, history)


def test_changing_a_signal_or_a_lock_on_replay_is_non_determinism() -> None:
    def signal_a(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        ctx.signal_entity(A, "add", 1)
        yield ctx.create_timer(ctx.current_utc_datetime)

    def signal_b(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        ctx.signal_entity(B, "add", 1)
        yield ctx.create_timer(ctx.current_utc_datetime)

    _, history = run_through(signal_a, [])
    with pytest.raises(NonDeterminismError, match=r"signal 'add' to entity '@account@a'.*@account@b"):
        replay_history(signal_b, INSTANCE, history)

    def lock_ac(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        with (yield ctx.lock([A, C])):
            pass

    _, history = run_through(transfer, [])
    with pytest.raises(
        NonDeterminismError, match=r"lock of @account@a, @account@b.*lock of @account@a, @account@c"
    ):
        replay_history(lock_ac, INSTANCE, history)


# ----- critical sections ------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [transfer, transfer_async], ids=["generator", "async"])
def test_lock_grant_calls_then_leaving_records_the_unlock(fn: Any) -> None:
    (locking, in_section, second_call, left, done), history = run_through(
        fn, [[granted()], [completed(1, "7")], [completed(2, "null")], [completed(4, "3")]]
    )
    assert locking.actions == [LockEntities(0, AB)]
    assert locking.status is RuntimeStatus.RUNNING
    assert in_section.actions == [CallEntity(1, A.instance_id, "get", "null")]
    assert second_call.actions == [CallEntity(2, B.instance_id, "add", "7")]
    assert left.actions == [UnlockEntities(3, AB, 0), CallEntity(4, C.instance_id, "get", "null")]
    assert done.output == "[7,3]"
    assert all(r.released_locks == [] for r in (locking, in_section, second_call, left, done))

    [lock_event] = [e for e in history if isinstance(e, EntityLockScheduled)]
    assert (lock_event.event_id, lock_event.entity_ids) == (0, AB)
    [unlock_event] = [e for e in history if isinstance(e, EntityUnlockSent)]
    assert (unlock_event.event_id, unlock_event.entity_ids, unlock_event.lock_task_id) == (3, AB, 0)


def test_nothing_runs_in_the_section_before_the_grant() -> None:
    (first, second), _ = run_through(transfer, [[TimerFired(timer_id=99, fire_at=T0)]])
    assert first.actions == [LockEntities(0, AB)]
    assert second.actions == []
    assert second.status is RuntimeStatus.RUNNING


def test_calling_an_entity_outside_the_locked_set_inside_a_section_raises() -> None:
    def strays(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        with (yield ctx.lock([A, B])):
            try:
                ctx.call_entity(C, "get")
            except InvalidOperation as exc:
                return str(exc)
        return None

    (_, result), _ = run_through(strays, [[granted()]])
    assert result.status is RuntimeStatus.COMPLETED
    assert result.output is not None
    assert "cannot call entity '@account@c' inside a critical section" in result.output
    assert "@account@a, @account@b" in result.output
    assert result.actions == [UnlockEntities(1, AB, 0)]  # the stray call scheduled nothing


def test_an_uncaught_stray_call_fails_the_instance_and_still_unlocks() -> None:
    def strays(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        with (yield ctx.lock([A, B])):
            yield ctx.call_entity(C, "get")

    (_, result), _ = run_through(strays, [[granted()]])
    assert result.status is RuntimeStatus.FAILED
    assert result.failure is not None and result.failure.error_type == "InvalidOperation"
    unlocked = [a for a in result.actions if isinstance(a, UnlockEntities)] + [
        UnlockEntities(-1, ids, seq) for seq, ids in result.released_locks
    ]
    assert [(u.entity_ids, u.lock_sequence) for u in unlocked] == [(AB, 0)]


def test_sections_do_not_nest() -> None:
    def nests(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        with (yield ctx.lock([A])):
            try:
                ctx.lock([B])
            except InvalidOperation as exc:
                return str(exc)
        return None

    def nests_while_waiting(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        ctx.lock([A])
        try:
            ctx.lock([B])
        except InvalidOperation as exc:
            return str(exc)
        yield ctx.create_timer(ctx.current_utc_datetime)
        return None

    (_, inside), _ = run_through(nests, [[granted(0, (A.instance_id,))]])
    assert inside.output is not None and "sections do not nest" in inside.output
    assert "@account@a" in inside.output
    (waiting,), _ = run_through(nests_while_waiting, [])
    assert waiting.output is not None and "sections do not nest" in waiting.output


def test_locking_nothing_is_an_error() -> None:
    def empty(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        yield ctx.lock([])

    (result,), _ = run_through(empty, [])
    assert result.status is RuntimeStatus.FAILED
    assert result.failure is not None and "at least one entity" in result.failure.message


def test_a_second_section_after_leaving_the_first_is_allowed() -> None:
    def twice(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        with (yield ctx.lock([A])):
            pass
        with (yield ctx.lock([B])):
            pass
        return "ok"

    (first, second, third), _ = run_through(
        twice, [[granted(0, (A.instance_id,))], [granted(2, (B.instance_id,))]]
    )
    assert first.actions == [LockEntities(0, (A.instance_id,))]
    assert second.actions == [UnlockEntities(1, (A.instance_id,), 0), LockEntities(2, (B.instance_id,))]
    assert third.actions == [UnlockEntities(3, (B.instance_id,), 2)]
    assert third.output == '"ok"'


# ----- ending while holding a lock --------------------------------------------------------------


def _record(status: RuntimeStatus = RuntimeStatus.RUNNING, execution_id: str = "e1") -> InstanceRecord:
    return InstanceRecord(
        instance_id=INSTANCE,
        name="orchestrator",
        execution_id=execution_id,
        runtime_status=status,
        created_at=T0,
        last_updated_at=T0,
        version=3,
    )


def _commit(
    fn: Any,
    history: list[HistoryEvent],
    events: Sequence[HistoryEvent | tuple[HistoryEvent, str | None]],
    record: InstanceRecord | None = None,
) -> EpisodeCommit:
    messages = [
        InboxMessage(i, *(e if isinstance(e, tuple) else (e, None))) for i, e in enumerate(events, start=1)
    ]
    return build_episode(OrchestrationWorkItem(record or _record(), messages), history, fn, T0)[0]


def _unlocks(messages: Sequence[Message]) -> list[tuple[str, tuple[str, str, int]]]:
    """The unlock messages: (entity, (owner instance, owner execution, lock task id))."""
    out = []
    for m in messages:
        if isinstance(m.event, EntityUnlock):
            event = m.event
            out.append((m.instance_id, (event.owner_instance_id, event.owner_execution_id, event.task_id)))
    return out


def _unlock(execution_id: str = "e1", task_id: int = 0) -> tuple[str, str, int]:
    return (INSTANCE, execution_id, task_id)


def _holding(fn: Any) -> list[HistoryEvent]:
    """History of `fn` up to: lock granted, first call inside the section scheduled."""
    _, history = run_through(fn, [[granted()]])
    return history


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ('"done"', RuntimeStatus.COMPLETED),
        ('"fail"', RuntimeStatus.FAILED),
        ('"again"', RuntimeStatus.CONTINUED_AS_NEW),
    ],
)
def test_ending_while_holding_a_lock_releases_it(answer: str, status: RuntimeStatus) -> None:
    history = _holding(hold_and_return)
    result = episode(hold_and_return, list(history), [completed(1, answer)])
    assert result.status is status
    assert result.released_locks == [(0, AB)]
    assert not any(isinstance(a, UnlockEntities) for a in result.actions)

    commit = _commit(hold_and_return, history, [completed(1, answer)])
    assert commit.record.runtime_status is status
    assert _unlocks(commit.messages) == [(A.instance_id, _unlock()), (B.instance_id, _unlock())]


def test_terminated_while_holding_a_lock_releases_it() -> None:
    history = _holding(hold_and_return)
    history.extend(episode(hold_and_return, list(history), [completed(1, '"wait"')]).new_history)
    result = episode(hold_and_return, list(history), [ExecutionTerminated(reason="stop")])
    assert result.status is RuntimeStatus.TERMINATED
    assert result.released_locks == [(0, AB)]

    commit = _commit(hold_and_return, history, [ExecutionTerminated(reason="stop")])
    assert commit.record.runtime_status is RuntimeStatus.TERMINATED
    assert _unlocks(commit.messages) == [(A.instance_id, _unlock()), (B.instance_id, _unlock())]


def test_terminated_inside_a_with_block_releases_the_lock() -> None:
    # Termination closes the orchestrator, which leaves the `with` block; the unlock that records
    # must still reach the entities (as an action or as a released lock), or they stay locked.
    history = _holding(hold_in_with_block)
    history.extend(episode(hold_in_with_block, list(history), [completed(1, "0")]).new_history)
    commit = _commit(hold_in_with_block, history, [ExecutionTerminated(reason="stop")])
    assert commit.record.runtime_status is RuntimeStatus.TERMINATED
    assert _unlocks(commit.messages) == [(A.instance_id, _unlock()), (B.instance_id, _unlock())]


def test_non_determinism_inside_a_with_block_releases_the_lock() -> None:
    # The instance fails on replay while the history says it holds A and B: they must be unlocked.
    def changed(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        with (yield ctx.lock([A, B])):
            yield ctx.call_entity(A, "balance")  # was "get"
        return None

    history = _holding(hold_in_with_block)
    commit = _commit(changed, history, [completed(1, "0")])
    assert commit.record.runtime_status is RuntimeStatus.FAILED
    assert commit.record.failure is not None and commit.record.failure.error_type == "NonDeterminismError"
    assert _unlocks(commit.messages) == [(A.instance_id, _unlock()), (B.instance_id, _unlock())]


@pytest.mark.parametrize(
    ("ending", "status"),
    [
        (EventRaised(name="stop"), RuntimeStatus.COMPLETED),
        (ExecutionTerminated(reason="stop"), RuntimeStatus.TERMINATED),
    ],
    ids=["completes", "terminated"],
)
def test_a_grant_arriving_after_the_execution_ended_in_the_same_episode_is_given_back_once(
    ending: HistoryEvent, status: RuntimeStatus
) -> None:
    (_, result), _ = run_through(lock_then_give_up, [[ending, granted()]])
    assert result.status is status
    assert result.released_locks == [(0, AB)]  # the request it ended without, granted or not


def test_a_grant_for_a_section_that_ended_is_released_by_build_episode() -> None:
    _, history = run_through(lock_then_give_up, [])
    commit = _commit(lock_then_give_up, history, [EventRaised(name="stop"), granted()])
    assert commit.record.runtime_status is RuntimeStatus.COMPLETED
    assert commit.record.output == '"gave up"'
    assert _unlocks(commit.messages) == [(A.instance_id, _unlock()), (B.instance_id, _unlock())]

    # The grant arriving in a later episode goes to a finished record: unlocked all the same.
    late = _commit(lock_then_give_up, [], [(granted(), "e1")], commit.record)
    assert late.new_history == []
    assert _unlocks(late.messages) == [(A.instance_id, _unlock()), (B.instance_id, _unlock())]


def test_a_stray_grant_is_released_once_and_not_again_on_replay() -> None:
    (_, stray, later), _ = run_through(
        hold_and_return, [[granted(7, (C.instance_id,))], [TimerFired(timer_id=50, fire_at=T0)]]
    )
    assert stray.status is RuntimeStatus.RUNNING
    assert stray.released_locks == [(7, (C.instance_id,))]
    assert later.released_locks == []  # the recorded stray grant replays without a second unlock


def test_a_grant_to_an_already_terminal_record_is_unlocked() -> None:
    record = _record(RuntimeStatus.COMPLETED)
    commit = _commit(hold_and_return, [], [(granted(), "e1")], record)
    assert commit.record == record
    assert commit.new_history == []
    assert commit.acknowledged_message_ids == [1]
    assert _unlocks(commit.messages) == [(A.instance_id, _unlock()), (B.instance_id, _unlock())]
    assert all(m.execution_id is None for m in commit.messages)


def test_a_grant_pinned_to_an_older_execution_is_unlocked_for_that_execution() -> None:
    _, history = run_through(add_then_get, [], 1)  # the current execution, e1, waits on an entity call
    record = _record(RuntimeStatus.RUNNING, execution_id="e1")
    commit = _commit(add_then_get, history, [(granted(4), "e0")], record)
    assert commit.record.runtime_status is RuntimeStatus.RUNNING
    assert not any(isinstance(e, EntityLockGranted) for e in commit.new_history)  # e1 never saw it
    assert _unlocks(commit.messages) == [
        (A.instance_id, _unlock("e0", task_id=4)),
        (B.instance_id, _unlock("e0", task_id=4)),
    ]


def test_a_grant_that_fails_non_determinism_is_given_back() -> None:
    # Code changed while waiting for the lock: the instance fails, but A and B were granted.
    def lock_a_c(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        with (yield ctx.lock([A, C])):
            pass

    _, history = run_through(transfer, [])
    commit = _commit(lock_a_c, history, [granted()])
    assert commit.record.runtime_status is RuntimeStatus.FAILED
    assert _unlocks(commit.messages) == [(A.instance_id, _unlock()), (B.instance_id, _unlock())]


# ----- build_episode: entity actions as messages -------------------------------------------------


def test_build_episode_turns_entity_actions_into_messages_that_create_entities() -> None:
    later = T0 + timedelta(minutes=5)

    def everything(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        ctx.signal_entity(C, "ping", {"x": 1}, scheduled_time=later)
        yield ctx.call_entity(C, "get")
        with (yield ctx.lock([B, A])):
            pass
        return None

    commit = _commit(everything, [], [start()])
    signal_message, call_message = commit.messages
    assert signal_message.instance_id == call_message.instance_id == C.instance_id
    assert signal_message.visible_at == later and call_message.visible_at is None
    assert signal_message.creates is not None and signal_message.creates.instance_id == C.instance_id
    assert call_message.creates is not None and call_message.creates.name == "account"
    assert isinstance(signal_message.event, EntityOperation)
    assert (signal_message.event.task_id, signal_message.event.input) == (None, '{"x":1}')
    assert isinstance(call_message.event, EntityOperation)
    assert call_message.event.task_id == 1
    assert call_message.event.source_instance_id == INSTANCE
    assert call_message.event.source_execution_id == "e1"
    assert call_message.event.operation == "get"

    history = list(commit.new_history)
    lock_commit = _commit(everything, history, [completed(1, "0")])
    [lock_message] = lock_commit.messages
    assert lock_message.instance_id == A.instance_id  # the first in sorted order
    assert lock_message.creates is not None
    request = lock_message.event
    assert isinstance(request, EntityLockRequest)
    assert (request.owner_instance_id, request.owner_execution_id) == (INSTANCE, "e1")
    assert (request.task_id, request.entity_ids, request.position) == (2, AB, 0)

    history.extend(lock_commit.new_history)
    unlock_commit = _commit(everything, history, [granted(2)])
    assert unlock_commit.record.runtime_status is RuntimeStatus.COMPLETED
    assert _unlocks(unlock_commit.messages) == [
        (A.instance_id, _unlock(task_id=2)),
        (B.instance_id, _unlock(task_id=2)),
    ]


# ----- suspension -------------------------------------------------------------------------------


def test_a_suspended_instance_holds_entity_responses_until_resumed() -> None:
    history: list[HistoryEvent] = []
    episode(add_then_get, history, [start(2)])
    held = episode(add_then_get, history, [ExecutionSuspended(reason="pause"), completed(0, "null")])
    assert held.status is RuntimeStatus.SUSPENDED
    assert held.actions == []
    failure = FailureDetails(error_type="KeyError", message="k")
    resumed = episode(add_then_get, history, [ExecutionResumed()])
    assert resumed.status is RuntimeStatus.RUNNING
    assert resumed.actions == [CallEntity(1, A.instance_id, "get", "null")]
    again = episode(
        add_then_get, history, [ExecutionSuspended(), EntityCallFailed(task_scheduled_id=1, failure=failure)]
    )
    assert again.status is RuntimeStatus.SUSPENDED
    done = episode(add_then_get, history, [ExecutionResumed()])
    assert done.status is RuntimeStatus.FAILED
    assert (
        done.failure is not None and "operation 'get' on entity '@account@a' failed" in done.failure.message
    )


def test_a_suspended_instance_holds_a_lock_grant_until_resumed() -> None:
    history: list[HistoryEvent] = []
    episode(transfer, history, [start()])
    held = episode(transfer, history, [ExecutionSuspended(), granted()])
    assert held.status is RuntimeStatus.SUSPENDED
    assert held.actions == []
    assert held.released_locks == []
    resumed = episode(transfer, history, [ExecutionResumed()])
    assert resumed.actions == [CallEntity(1, A.instance_id, "get", "null")]


def test_terminating_a_suspended_instance_releases_a_held_grant() -> None:
    # The grant reached the instance (entities A and B are locked for it) but was held because the
    # instance was suspended; terminating it must give the lock back.
    history: list[HistoryEvent] = []
    episode(transfer, history, [start()])
    episode(transfer, history, [ExecutionSuspended(), granted()])
    commit = _commit(transfer, history, [ExecutionTerminated(reason="stop")])
    assert commit.record.runtime_status is RuntimeStatus.TERMINATED
    assert _unlocks(commit.messages) == [(A.instance_id, _unlock()), (B.instance_id, _unlock())]


# ----- a lock request cannot be raced -----------------------------------------------------------


def _combined(combinator: str) -> Any:
    def races(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        lock = ctx.lock([A, B])
        assert not hasattr(lock, "section")  # the section is what the grant gives, not the request
        timer = ctx.create_timer(ctx.current_utc_datetime + timedelta(minutes=1))
        yield getattr(ctx, combinator)([lock, timer])

    return races


@pytest.mark.parametrize("combinator", ["task_any", "task_all"])
def test_a_lock_request_cannot_go_into_task_any_or_task_all(combinator: str) -> None:
    (result,), _ = run_through(_combined(combinator), [])
    assert result.status is RuntimeStatus.FAILED
    assert result.failure is not None and result.failure.error_type == "InvalidOperation"
    assert result.failure.message == (
        "lock of @account@a, @account@b cannot go into task_all or task_any: wait for it on its own"
    )
    # The request went out before the mistake; the failed execution gives it back.
    assert [a for a in result.actions if isinstance(a, LockEntities)] == [LockEntities(0, AB)]
    assert result.released_locks == [(0, AB)]

    commit = _commit(_combined(combinator), [], [start()])
    assert commit.record.runtime_status is RuntimeStatus.FAILED
    kinds_sent = [(m.instance_id, m.event.kind) for m in commit.messages if m.instance_id != INSTANCE]
    assert kinds_sent == [
        (A.instance_id, "EntityLockRequest"),  # the request first, then its withdrawal
        (A.instance_id, "EntityUnlock"),
        (B.instance_id, "EntityUnlock"),
    ]


def test_other_tasks_still_combine() -> None:
    def both(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        results = yield ctx.task_all([ctx.call_entity(A, "get"), ctx.call_entity(B, "get")])
        return results

    (_, done), _ = run_through(both, [[completed(0, "1"), completed(1, "2")]])
    assert done.output == "[1,2]"


# ----- an execution gives back every lock it asked for ------------------------------------------


def _asks_then(ending: str) -> Any:
    def asks(ctx: OrchestrationContext) -> Any:
        ctx.lock([A, B])  # and never waits for it
        if ending == "fails":
            raise RuntimeError("changed my mind")
        if ending == "continues":
            ctx.continue_as_new("next")
        return "done"

    return asks


@pytest.mark.parametrize(
    ("ending", "status"),
    [
        ("completes", RuntimeStatus.COMPLETED),
        ("fails", RuntimeStatus.FAILED),
        ("continues", RuntimeStatus.CONTINUED_AS_NEW),
    ],
)
def test_ending_with_a_lock_request_on_its_way_gives_it_back(ending: str, status: RuntimeStatus) -> None:
    (result,), _ = run_through(_asks_then(ending), [])
    assert result.status is status
    assert result.actions == [LockEntities(0, AB)]
    assert result.released_locks == [(0, AB)]

    commit = _commit(_asks_then(ending), [], [start()])
    assert commit.record.runtime_status is status
    requests = [m for m in commit.messages if isinstance(m.event, EntityLockRequest)]
    assert [m.instance_id for m in requests] == [A.instance_id]
    # for the execution that asked (not the next one, after continue-as-new)
    assert _unlocks(commit.messages) == [(A.instance_id, _unlock()), (B.instance_id, _unlock())]
    kinds_sent = [m.event.kind for m in commit.messages if m.instance_id == A.instance_id]
    assert kinds_sent == ["EntityLockRequest", "EntityUnlock"]


def test_terminated_while_waiting_for_a_lock_gives_the_request_back() -> None:
    _, history = run_through(transfer, [])
    result = episode(transfer, list(history), [ExecutionTerminated(reason="stop")])
    assert result.status is RuntimeStatus.TERMINATED
    assert result.released_locks == [(0, AB)]

    commit = _commit(transfer, history, [ExecutionTerminated(reason="stop")])
    assert _unlocks(commit.messages) == [(A.instance_id, _unlock()), (B.instance_id, _unlock())]


def test_terminated_while_suspended_and_waiting_for_a_lock_gives_the_request_back() -> None:
    history: list[HistoryEvent] = []
    episode(transfer, history, [start()])
    episode(transfer, history, [ExecutionSuspended()])
    commit = _commit(transfer, history, [ExecutionTerminated(reason="stop")])
    assert commit.record.runtime_status is RuntimeStatus.TERMINATED
    assert _unlocks(commit.messages) == [(A.instance_id, _unlock()), (B.instance_id, _unlock())]


def test_non_determinism_while_waiting_for_a_lock_gives_the_request_back() -> None:
    def lock_a_c(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        with (yield ctx.lock([A, C])):
            pass

    _, history = run_through(transfer, [])
    commit = _commit(lock_a_c, history, [TimerFired(timer_id=9, fire_at=T0)])
    assert commit.record.runtime_status is RuntimeStatus.FAILED
    assert commit.record.failure is not None and commit.record.failure.error_type == "NonDeterminismError"
    assert _unlocks(commit.messages) == [(A.instance_id, _unlock()), (B.instance_id, _unlock())]
    assert not any(isinstance(m.event, EntityLockRequest) for m in commit.messages)


def test_a_section_left_before_the_end_is_not_given_back_again() -> None:
    def leaves_then_waits(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        with (yield ctx.lock([A, B])):
            pass
        yield ctx.wait_for_external_event("never")

    _, history = run_through(leaves_then_waits, [[granted()]])
    result = episode(leaves_then_waits, list(history), [ExecutionTerminated(reason="stop")])
    assert result.status is RuntimeStatus.TERMINATED
    assert result.released_locks == []


# ----- a lock that fails ------------------------------------------------------------------------

LOCK_FAILURE = FailureDetails(
    error_type="StoreError", message="entity '@account@b' holds an unreadable document", details="tb"
)


def lock_failed(seq: int = 0) -> EntityLockFailed:
    return EntityLockFailed(task_scheduled_id=seq, failure=LOCK_FAILURE)


def test_a_failed_lock_fails_the_lock_task_and_gives_nothing_back() -> None:
    (_, result), history = run_through(transfer, [[lock_failed()]])
    assert result.status is RuntimeStatus.FAILED
    assert result.failure is not None and result.failure.error_type == "TaskFailedError"
    assert result.failure.message == (
        "lock of @account@a, @account@b failed: StoreError: entity '@account@b' holds an unreadable document"
    )
    assert "tb" in result.failure.details
    assert result.released_locks == []  # the refusing entity released the ones locked before it

    commit = _commit(transfer, history[: len(history) - len(result.new_history)], [lock_failed()])
    assert commit.record.runtime_status is RuntimeStatus.FAILED
    assert _unlocks(commit.messages) == []

    replayed = replay_history(transfer, INSTANCE, history)
    assert replayed.status is RuntimeStatus.FAILED


def test_a_caught_lock_failure_leaves_no_section_behind() -> None:
    def retries_elsewhere(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        try:
            yield ctx.lock([A, B])
        except TaskFailedError as exc:
            refused = str(exc)
        other = yield ctx.call_entity(C, "get")  # outside any section now
        with (yield ctx.lock([A])):  # and a new section may start
            pass
        return [refused, other]

    (_, after_failure, relocking, done), _ = run_through(
        retries_elsewhere, [[lock_failed()], [completed(1, "5")], [granted(2, (A.instance_id,))]]
    )
    assert after_failure.actions == [CallEntity(1, C.instance_id, "get", "null")]
    assert relocking.actions == [LockEntities(2, (A.instance_id,))]
    assert done.actions == [UnlockEntities(3, (A.instance_id,), 2)]
    assert done.output is not None
    refused, other = json.loads(done.output)
    assert refused.startswith("lock of @account@a, @account@b failed: StoreError")
    assert other == 5
    assert all(r.released_locks == [] for r in (after_failure, relocking, done))


def test_a_suspended_instance_holds_a_lock_failure_until_resumed() -> None:
    history: list[HistoryEvent] = []
    episode(transfer, history, [start()])
    held = episode(transfer, history, [ExecutionSuspended(), lock_failed()])
    assert held.status is RuntimeStatus.SUSPENDED
    resumed = episode(transfer, history, [ExecutionResumed()])
    assert resumed.status is RuntimeStatus.FAILED
    assert resumed.released_locks == []


def test_outstanding_locks_are_the_sections_asked_for_and_not_given_back() -> None:
    def scheduled(seq: int, ids: tuple[str, ...] = AB) -> EntityLockScheduled:
        return EntityLockScheduled(event_id=seq, entity_ids=ids)

    def unlock_sent(seq: int, lock_seq: int) -> EntityUnlockSent:
        return EntityUnlockSent(event_id=seq, entity_ids=AB, lock_task_id=lock_seq)

    assert outstanding_locks([]) == []
    assert outstanding_locks([start(), scheduled(0)]) == [(0, AB)]  # waiting
    assert outstanding_locks([scheduled(0), granted()]) == [(0, AB)]  # held
    assert outstanding_locks([scheduled(0), granted(), unlock_sent(1, 0)]) == []  # left
    assert outstanding_locks([scheduled(0), lock_failed()]) == []  # refused
    only_c = (C.instance_id,)
    history = [scheduled(0), granted(), unlock_sent(1, 0), scheduled(2, only_c), granted(2, only_c)]
    assert outstanding_locks(history) == [(2, only_c)]
    _, holding = run_through(hold_and_return, [[granted()]])
    assert outstanding_locks(holding) == [(0, AB)]


# ----- what a section refuses -------------------------------------------------------------------


def test_calling_another_entity_is_refused_as_soon_as_the_lock_is_asked_for() -> None:
    def strays_early(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        lock = ctx.lock([A, B])
        try:
            ctx.call_entity(C, "get")
        except InvalidOperation as exc:
            refused = str(exc)
        with (yield lock):
            pass
        return refused

    (asking, done), _ = run_through(strays_early, [[granted()]])
    assert asking.actions == [LockEntities(0, AB)]  # the stray call scheduled nothing
    assert done.output is not None
    assert "cannot call entity '@account@c' inside a critical section" in done.output


@pytest.mark.parametrize("granted_yet", [False, True], ids=["waiting", "granted"])
def test_starting_a_sub_orchestration_inside_a_section_is_refused(granted_yet: bool) -> None:
    def starts_child(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        lock = ctx.lock([A])
        if granted_yet:
            yield lock
        try:
            ctx.call_sub_orchestrator("child", 1)
        except InvalidOperation as exc:
            refused = str(exc)
        with (yield lock):
            pass
        child = yield ctx.call_sub_orchestrator("child", 2)  # outside: fine
        return [refused, child]

    (_, in_section, child_started), _ = run_through(
        starts_child,
        [[granted(0, (A.instance_id,))], [SubOrchestrationCompleted(task_scheduled_id=2, result="7")]],
    )
    assert [type(a).__name__ for a in in_section.actions] == ["UnlockEntities", "ScheduleSubOrchestration"]
    assert child_started.output is not None
    refused, child = json.loads(child_started.output)
    assert refused.startswith("cannot start sub-orchestration 'child' inside a critical section")
    assert child == 7


def test_a_sub_orchestration_id_breaking_the_instance_id_rule_is_refused() -> None:
    def names_a_bad_child(ctx: OrchestrationContext) -> Any:
        refused = []
        for child_id in ("a/b", "x" * 257):
            try:
                ctx.call_sub_orchestrator("child", None, instance_id=child_id)
            except ValueError as exc:
                refused.append(str(exc))
        return refused

    (result,), _ = run_through(names_a_bad_child, [])
    assert result.status is RuntimeStatus.COMPLETED and result.output is not None
    assert json.loads(result.output) == [
        "an instance id may not contain '/'",
        "an instance id has at most 256 characters, got 257",
    ]
    assert result.actions == []


def test_entity_ids_are_refused_as_orchestration_targets() -> None:
    def targets_an_entity(ctx: OrchestrationContext) -> Any:
        refused = []
        for attempt in (
            lambda: ctx.call_sub_orchestrator("child", None, instance_id="@counter@q"),
            lambda: ctx.send_event("@counter@q", "go"),
        ):
            try:
                attempt()
            except ValueError as exc:
                refused.append(str(exc))
        ctx.send_event("plain-instance", "go")  # an orchestration id is fine
        return refused

    (result,), _ = run_through(targets_an_entity, [])
    assert result.status is RuntimeStatus.COMPLETED
    assert result.output is not None
    refused = json.loads(result.output)
    assert len(refused) == 2
    assert all("'@counter@q' is an entity id" in r for r in refused)
    assert [type(a).__name__ for a in result.actions] == ["SendEvent"]


# ----- rewinding entity calls -------------------------------------------------------------------


def test_rewind_drops_a_trailing_entity_call_failure_and_sends_the_call_again() -> None:
    failure = FailureDetails(error_type="ValueError", message="not yet")
    (_, failed), history = run_through(
        add_then_get, [[EntityCallFailed(task_scheduled_id=0, failure=failure)]], 5
    )
    assert failed.status is RuntimeStatus.FAILED

    plan = plan_rewind(history)
    assert not any(isinstance(e, EntityCallFailed | ExecutionFailed) for e in plan.history)
    assert [(c.event_id, c.entity_id, c.operation, c.input) for c in plan.entity_calls] == [
        (0, A.instance_id, "add", "5")
    ]

    rewound = _commit(add_then_get, history, [ExecutionRewound()], _record(RuntimeStatus.FAILED))
    assert rewound.record.runtime_status is RuntimeStatus.RUNNING
    assert rewound.reset_history
    [again] = rewound.messages
    assert again.instance_id == A.instance_id
    assert isinstance(again.event, EntityOperation)
    assert (again.event.operation, again.event.input, again.event.task_id) == ("add", "5", 0)
    assert (again.event.source_instance_id, again.event.source_execution_id) == (INSTANCE, "e1")

    after = _commit(add_then_get, rewound.new_history, [completed(0, "null")])
    assert [m.event.operation for m in after.messages if isinstance(m.event, EntityOperation)] == ["get"]


def test_rewind_keeps_a_caught_failure_followed_by_entity_work() -> None:
    # A failure the code caught, then a signal, then a call that fails the instance: only the
    # trailing call failure is dropped, so the rewound replay takes the same path (no
    # non-determinism) and the signal is not sent again.
    def caught_then_calls(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
        try:
            yield ctx.call_entity(A, "withdraw", 100)
        except TaskFailedError:
            ctx.signal_entity(C, "add", 1)
            return (yield ctx.call_entity(B, "withdraw", 1))
        return None

    failure = FailureDetails(error_type="ValueError", message="too low")
    (_, _, failed), history = run_through(
        caught_then_calls,
        [
            [EntityCallFailed(task_scheduled_id=0, failure=failure)],
            [EntityCallFailed(task_scheduled_id=2, failure=failure)],
        ],
    )
    assert failed.status is RuntimeStatus.FAILED
    plan = plan_rewind(history)
    assert [e.kind for e in plan.history].count("EntityCallFailed") == 1  # the caught one
    assert [(c.event_id, c.entity_id) for c in plan.entity_calls] == [(2, B.instance_id)]

    rewound = _commit(caught_then_calls, history, [ExecutionRewound()], _record(RuntimeStatus.FAILED))
    assert rewound.record.runtime_status is RuntimeStatus.RUNNING
    sent = [
        (m.instance_id, m.event.task_id) for m in rewound.messages if isinstance(m.event, EntityOperation)
    ]
    assert sent == [(B.instance_id, 2)]

    done = _commit(caught_then_calls, rewound.new_history, [completed(2, "4")])
    assert done.record.runtime_status is RuntimeStatus.COMPLETED
    assert done.record.output == "4"
