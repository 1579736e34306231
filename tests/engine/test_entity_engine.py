"""Entities seen from the pure engine: call/signal/lock in orchestrations, driven with hand-built
histories, and how `_episodes.build_commit` turns the results into messages. No store, no runtime."""

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
from asynkron_durable._episodes import build_commit
from asynkron_durable.engine import (
    CallEntity,
    CriticalSection,
    LockEntities,
    OrchestrationExecutor,
    SignalEntity,
    UnlockEntities,
)
from asynkron_durable.engine.executor import EpisodeResult
from asynkron_durable.history import (
    EntityCallCompleted,
    EntityCallFailed,
    EntityCallScheduled,
    EntityLockGranted,
    EntityLockRequest,
    EntityLockScheduled,
    EntityOperation,
    EntitySignalSent,
    EntityUnlock,
    EntityUnlockSent,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    FailureDetails,
    HistoryEvent,
    InstanceRecord,
    OrchestratorStarted,
    TimerFired,
)
from asynkron_durable.stores.base import EpisodeCommit, InboxMessage, Message, OrchestrationWorkItem

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


def lock_or_time_out(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
    lock = ctx.lock([A, B])
    winner = yield ctx.task_any([lock, ctx.create_timer(ctx.current_utc_datetime + timedelta(minutes=1))])
    if winner is not lock:
        return "gave up"
    with winner.result:
        return "locked"


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
    return build_commit(OrchestrationWorkItem(record or _record(), messages), history, fn, T0)


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


def test_a_grant_arriving_after_the_execution_ended_in_the_same_episode_is_given_back() -> None:
    (_, result), _ = run_through(lock_or_time_out, [[TimerFired(timer_id=1, fire_at=T0), granted()]])
    assert result.status is RuntimeStatus.COMPLETED
    assert result.output == '"gave up"'
    assert result.released_locks == [(0, AB)]


def test_a_grant_for_a_section_that_ended_is_released_by_build_commit() -> None:
    _, history = run_through(lock_or_time_out, [])
    commit = _commit(lock_or_time_out, history, [TimerFired(timer_id=1, fire_at=T0), granted()])
    assert commit.record.runtime_status is RuntimeStatus.COMPLETED
    assert _unlocks(commit.messages) == [(A.instance_id, _unlock()), (B.instance_id, _unlock())]


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


# ----- build_commit: entity actions as messages -------------------------------------------------


def test_build_commit_turns_entity_actions_into_messages_that_create_entities() -> None:
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
