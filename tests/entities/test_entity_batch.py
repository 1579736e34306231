"""`run_entity_batch`, driven with hand-built requests: no store, no runtime, no clock."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asynkron_durable.entities import EntityContext, EntityId
from asynkron_durable.entities.batch import WITHDRAWN_KEPT, EntityBatchResult, run_entity_batch
from asynkron_durable.entities.document import EntityDocument, EntityLockHolder
from asynkron_durable.errors import UnknownFunction
from asynkron_durable.history import (
    EntityCallCompleted,
    EntityCallFailed,
    EntityLockFailed,
    EntityLockGranted,
    EntityLockRequest,
    EntityOperation,
    EntityUnlock,
    EventRaised,
    HistoryEvent,
    InstanceRecord,
    RuntimeStatus,
)
from asynkron_durable.stores.base import InboxMessage, Message, OrchestrationWorkItem
from asynkron_durable.worker.episodes import build_entity_commit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)

LIST = EntityId("list", "l1")
OTHER = EntityId("list", "other")
A = EntityId("list", "a")
B = EntityId("list", "b")

OWNER = "orch-owner"
STRANGER = "orch-stranger"


def list_entity(ctx: EntityContext) -> Any:
    """State: a list of ints. Every operation name here exercises one feature."""
    items: list[int] = ctx.get_state(list)
    match ctx.operation_name:
        case "append":
            ctx.set_state([*items, ctx.get_input(int)])
        case "get":
            return items
        case "reset":
            ctx.delete_state()
        case "explicit":
            ctx.set_result("from set_result")
            return "from return"
        case "explicit_none":
            ctx.set_result(None)
            return "from return"
        case "forward":
            ctx.signal_entity(OTHER, "append", 1)
            ctx.signal_entity(OTHER.instance_id, "append", 2, scheduled_time=LATER)
            ctx.signal_entity(OTHER, "append", 3, scheduled_time=LATER.replace(tzinfo=None))
            ctx.set_state([*items, -1])
        case "explode":
            ctx.set_state([999])
            ctx.signal_entity(OTHER, "append", 666)
            raise ValueError("boom in explode")
        case "now":
            return ctx.current_utc_datetime.isoformat()
        case "who":
            return [ctx.entity_name, ctx.entity_key, ctx.has_state]
    return None


def call(
    operation: str,
    input: str | None = None,
    *,
    task_id: int = 0,
    source: str = STRANGER,
    execution: str = "e1",
) -> EntityOperation:
    return EntityOperation(
        timestamp=T0,
        operation=operation,
        input=input,
        source_instance_id=source,
        source_execution_id=execution,
        task_id=task_id,
    )


def signal(operation: str, input: str | None = None, *, source: str | None = None) -> EntityOperation:
    return EntityOperation(timestamp=T0, operation=operation, input=input, source_instance_id=source)


def lock_request(
    owner: str, ids: tuple[EntityId, ...], position: int = 0, *, task_id: int = 0, execution: str = "e1"
) -> EntityLockRequest:
    return EntityLockRequest(
        timestamp=T0,
        owner_instance_id=owner,
        owner_execution_id=execution,
        task_id=task_id,
        entity_ids=tuple(e.instance_id for e in ids),
        position=position,
    )


def unlock(owner: str, *, task_id: int = 0, execution: str = "e1") -> EntityUnlock:
    return EntityUnlock(owner_instance_id=owner, owner_execution_id=execution, task_id=task_id)


def held_by(owner: str, *, task_id: int = 0, execution: str = "e1") -> EntityLockHolder:
    return EntityLockHolder(owner_instance_id=owner, owner_execution_id=execution, task_id=task_id)


def state(items: list[int] | None) -> EntityDocument:
    if items is None:
        return EntityDocument()
    return EntityDocument(exists=True, state=json.dumps(items, separators=(",", ":")))


def run(
    requests: list[HistoryEvent],
    document: EntityDocument | None = None,
    function: Any = list_entity,
    entity: EntityId = LIST,
) -> EntityBatchResult:
    return run_entity_batch(entity, document or EntityDocument(), requests, function, T0)


def replies_to(result: EntityBatchResult, instance_id: str) -> dict[int, HistoryEvent]:
    """Call responses sent to `instance_id`, by task id."""
    out: dict[int, HistoryEvent] = {}
    for m in result.messages:
        if m.instance_id == instance_id and isinstance(m.event, EntityCallCompleted | EntityCallFailed):
            out[m.event.task_scheduled_id] = m.event
    return out


def result_of(result: EntityBatchResult, task_id: int, source: str = STRANGER) -> str | None:
    reply = replies_to(result, source)[task_id]
    assert isinstance(reply, EntityCallCompleted), reply
    return reply.result


def failure_of(result: EntityBatchResult, task_id: int, source: str = STRANGER) -> EntityCallFailed:
    reply = replies_to(result, source)[task_id]
    assert isinstance(reply, EntityCallFailed), reply
    return reply


def to(result: EntityBatchResult, instance_id: str) -> list[Message]:
    return [m for m in result.messages if m.instance_id == instance_id]


# ----- operations -------------------------------------------------------------------------------


def test_operations_apply_in_arrival_order_in_one_batch() -> None:
    result = run(
        [
            signal("append", "1"),
            call("append", "2", task_id=1),
            call("get", task_id=2),
            signal("append", "3"),
            call("get", task_id=3),
        ]
    )
    assert result.document.exists
    assert result.document.state == "[1,2,3]"
    # each call saw exactly the operations that arrived before it
    assert result_of(result, 1) == "null"
    assert result_of(result, 2) == "[1,2]"
    assert result_of(result, 3) == "[1,2,3]"


def test_replies_are_pinned_to_the_callers_execution() -> None:
    result = run([call("get", task_id=4, source="orch-x", execution="exec-9")])
    [reply] = result.messages
    assert reply.instance_id == "orch-x"
    assert reply.execution_id == "exec-9"
    assert reply.creates is None
    assert isinstance(reply.event, EntityCallCompleted)
    assert reply.event.task_scheduled_id == 4


def test_a_raising_operation_rolls_back_only_its_own_state_and_signals() -> None:
    result = run(
        [
            call("forward", task_id=1),  # succeeds: its signals go out
            call("explode", task_id=2),  # sets [999] and signals 666, then raises
            call("append", "7", task_id=3),  # still applies, on top of the state before explode
            call("get", task_id=4),
        ],
        document=state([5]),
    )
    assert result.document.state == "[5,-1,7]"
    assert result_of(result, 4) == "[5,-1,7]"
    sent = [m.event.input for m in to(result, OTHER.instance_id) if isinstance(m.event, EntityOperation)]
    assert sent == ["1", "2", "3"]  # forward's three signals; none of explode's

    failed = failure_of(result, 2)
    assert failed.failure.error_type == "ValueError"
    assert failed.failure.message == "boom in explode"
    assert "explode" in failed.failure.details  # the traceback
    assert result_of(result, 3) == "null"


def test_a_raising_signalled_operation_changes_nothing_and_replies_to_no_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="asynkron_durable.entities"):
        result = run([signal("explode"), signal("append", "1")], document=state([5]))
    assert result.document.state == "[5,1]"
    assert result.messages == []
    assert "explode" in caplog.text and "boom in explode" in caplog.text


def test_set_result_wins_over_the_return_value() -> None:
    result = run([call("explicit", task_id=1), call("explicit_none", task_id=2), call("get", task_id=3)])
    assert result_of(result, 1) == '"from set_result"'
    assert result_of(result, 2) == "null"  # an explicit None result, not the returned value
    assert result_of(result, 3) == "[]"  # without set_result: the return value


def test_delete_state_makes_the_entity_not_exist() -> None:
    result = run([call("reset", task_id=1)], document=state([1, 2]))
    assert not result.document.exists
    assert result.document.state is None
    assert result.document.is_idle

    # within the same batch, the next operation sees no state (the initializer again)
    again = run([call("reset", task_id=1), call("who", task_id=2)], document=state([1]))
    assert result_of(again, 2) == '["list","l1",false]'


def test_context_sees_identity_state_presence_and_batch_time() -> None:
    result = run([call("who", task_id=1), call("now", task_id=2)], document=state([1]))
    assert result_of(result, 1) == '["list","l1",true]'
    assert result_of(result, 2) == f'"{T0.isoformat()}"'


def test_signals_to_other_entities_become_messages_that_create_them() -> None:
    result = run([call("forward", task_id=1)])
    signals = to(result, OTHER.instance_id)
    assert len(signals) == 3
    for m in signals:
        assert isinstance(m.event, EntityOperation)
        assert m.event.operation == "append"
        assert m.event.task_id is None  # a signal: no reply expected
        assert m.event.source_instance_id == LIST.instance_id
        assert m.execution_id is None
        assert m.creates is not None
        assert m.creates.instance_id == OTHER.instance_id
        assert m.creates.name == "list"
        assert m.creates.runtime_status is RuntimeStatus.RUNNING
    assert [m.visible_at for m in signals] == [None, LATER, LATER]  # a naive time is taken as UTC
    assert signals[2].visible_at is not None and signals[2].visible_at.tzinfo is not None


def test_an_unknown_entity_fails_every_call_and_keeps_no_state() -> None:
    missing = UnknownFunction("entity", "list", ["counter", "account"])
    result = run(
        [call("append", "1", task_id=1), signal("append", "2"), call("get", task_id=2)], function=missing
    )
    for task_id in (1, 2):
        failed = failure_of(result, task_id)
        assert failed.failure.error_type == "UnknownFunction"
        assert "unknown entity 'list'" in failed.failure.message
        assert "account, counter" in failed.failure.message
    assert not result.document.exists
    assert result.document.state is None


def test_an_entity_returning_an_awaitable_fails_the_operation_clearly() -> None:
    async def sneaky(ctx: EntityContext) -> int:
        ctx.set_state(123)
        return 1

    result = run([call("anything", task_id=1)], function=sneaky)
    failed = failure_of(result, 1)
    assert failed.failure.error_type == "DurableError"
    assert "returned an awaitable" in failed.failure.message
    assert "activity" in failed.failure.message
    assert not result.document.exists  # nothing it did counts


def test_an_unserialisable_result_fails_only_that_operation() -> None:
    def entity(ctx: EntityContext) -> Any:
        ctx.set_state(ctx.get_state(lambda: 0) + 1)
        return object() if ctx.operation_name == "bad" else "ok"

    result = run([call("bad", task_id=1), call("good", task_id=2)], function=entity)
    assert failure_of(result, 1).failure.error_type == "SerializationError"
    assert result_of(result, 2) == '"ok"'
    assert result.document.state == "1"  # the bad operation's increment rolled back


def test_non_entity_requests_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="asynkron_durable.entities"):
        result = run([EventRaised(name="x"), call("append", "1", task_id=1)])
    assert result.document.state == "[1]"
    assert "EventRaised" in caplog.text


# ----- locks ------------------------------------------------------------------------------------


def test_a_lock_request_locks_and_forwards_to_the_next_entity() -> None:
    request = lock_request(OWNER, (A, B), position=0, task_id=3, execution="e7")
    result = run([request], entity=A)
    assert result.document.lock == held_by(OWNER, task_id=3, execution="e7")
    [forward] = result.messages
    assert forward.instance_id == B.instance_id
    assert forward.creates is not None and forward.creates.instance_id == B.instance_id
    assert isinstance(forward.event, EntityLockRequest)
    assert forward.event.position == 1
    assert forward.event.entity_ids == (A.instance_id, B.instance_id)
    assert forward.event.owner_instance_id == OWNER
    assert forward.event.owner_execution_id == "e7"
    assert forward.event.task_id == 3


def test_the_last_entity_grants_the_lock_to_the_owner_execution() -> None:
    request = lock_request(OWNER, (A, B), position=1, task_id=3, execution="e7")
    result = run([request], entity=B)
    assert result.document.lock == held_by(OWNER, task_id=3, execution="e7")
    [grant] = result.messages
    assert grant.instance_id == OWNER
    assert grant.execution_id == "e7"
    assert grant.creates is None
    assert isinstance(grant.event, EntityLockGranted)
    assert grant.event.task_scheduled_id == 3
    assert grant.event.entity_ids == (A.instance_id, B.instance_id)


def test_while_locked_others_are_deferred_in_order_and_the_owner_passes() -> None:
    locked = EntityDocument(exists=True, state="[0]", lock=held_by(OWNER))
    deferred_requests: list[HistoryEvent] = [
        signal("append", "1"),
        call("append", "2", task_id=1),  # another orchestration
        call("append", "3", task_id=2, source=OWNER, execution="old-execution"),  # an older execution
        signal("append", "4", source=LIST.instance_id),  # an entity's signal
        lock_request(STRANGER, (LIST,), task_id=5),
    ]
    owner_ops = [call("append", "10", task_id=8, source=OWNER), call("get", task_id=9, source=OWNER)]
    result = run([deferred_requests[0], owner_ops[0], *deferred_requests[1:], owner_ops[1]], document=locked)
    assert result.document.queue == deferred_requests
    assert result.document.lock == held_by(OWNER)
    assert result.document.state == "[0,10]"
    assert result_of(result, 9, OWNER) == "[0,10]"
    assert replies_to(result, STRANGER) == {}  # nobody else heard back yet


def test_the_owners_unlock_runs_the_deferred_requests_in_order_in_the_same_batch() -> None:
    locked = EntityDocument(
        exists=True,
        state="[0]",
        lock=held_by(OWNER),
        queue=[signal("append", "1"), call("append", "2", task_id=1)],
    )
    result = run(
        [
            signal("append", "3"),  # deferred too, after the stored queue
            call("append", "9", task_id=7, source=OWNER),
            unlock(OWNER),
            signal("append", "4"),  # arrived after the unlock: runs after the waiting ones
            call("get", task_id=2),
        ],
        document=locked,
    )
    assert result.document.lock is None
    assert result.document.queue == []
    assert result.document.state == "[0,9,1,2,3,4]"
    assert result_of(result, 2) == "[0,9,1,2,3,4]"
    assert result_of(result, 1) == "null"


@pytest.mark.parametrize(
    "stray",
    [
        unlock(OWNER, task_id=1),  # another lock request of the owner
        unlock(OWNER, execution="e0"),  # an older execution of the owner
        unlock(STRANGER),  # someone else
    ],
    ids=["wrong-task", "wrong-execution", "wrong-owner"],
)
def test_a_stale_or_stray_unlock_is_ignored(stray: EntityUnlock) -> None:
    locked = EntityDocument(lock=held_by(OWNER), queue=[signal("append", "1")])
    result = run([stray, signal("append", "2")], document=locked)
    assert result.document.lock == held_by(OWNER)
    assert result.document.queue == [signal("append", "1"), signal("append", "2")]
    assert not result.document.exists


def test_an_unlock_of_an_unlocked_entity_is_harmless() -> None:
    result = run([unlock(OWNER), call("append", "1", task_id=1)])
    assert result.document.lock is None
    assert result.document.state == "[1]"


def test_a_queued_lock_request_of_another_owner_is_granted_after_the_unlock() -> None:
    locked = EntityDocument(lock=held_by(OWNER))
    result = run(
        [
            lock_request(STRANGER, (LIST,), task_id=4, execution="s1"),
            call("append", "1", task_id=5, source=STRANGER, execution="s1"),  # waits for its own lock
            signal("append", "2"),  # anyone else: waits for the stranger's section now
            unlock(OWNER),
        ],
        document=locked,
    )
    assert result.document.lock == held_by(STRANGER, task_id=4, execution="s1")
    grants = [m for m in to(result, STRANGER) if isinstance(m.event, EntityLockGranted)]
    assert len(grants) == 1
    assert grants[0].execution_id == "s1"
    assert grants[0].event.task_scheduled_id == 4
    # the stranger's call ran under its own lock; the plain signal waits again
    assert result_of(result, 5, STRANGER) == "null"
    assert result.document.state == "[1]"
    assert result.document.queue == [signal("append", "2")]


def test_the_same_lock_request_again_waits_like_any_other() -> None:
    request = lock_request(OWNER, (LIST,), task_id=2)
    result = run([request], document=EntityDocument(lock=held_by(OWNER, task_id=2)))
    assert result.document.lock == held_by(OWNER, task_id=2)
    assert result.messages == []  # not granted a second time
    assert result.document.queue == [request]

    # a later lock request of the holder (another section) waits too
    later = lock_request(OWNER, (LIST,), task_id=5)
    again = run([later], document=EntityDocument(lock=held_by(OWNER, task_id=2)))
    assert again.messages == []
    assert again.document.queue == [later]


def test_two_lock_requests_in_one_batch_are_granted_one_after_the_other() -> None:
    first = lock_request(OWNER, (LIST,), task_id=1)
    second = lock_request(STRANGER, (LIST,), task_id=2)
    result = run([first, second])
    assert result.document.lock == held_by(OWNER, task_id=1)
    assert result.document.queue == [second]
    assert [m.instance_id for m in result.messages] == [OWNER]

    after = run([unlock(OWNER, task_id=1)], document=result.document)
    assert after.document.lock == held_by(STRANGER, task_id=2)
    assert after.document.queue == []
    assert [m.instance_id for m in after.messages] == [STRANGER]


# ----- unlocks that overtake their lock request ------------------------------------------------


def test_an_unlock_withdraws_the_waiting_lock_request_of_its_holder() -> None:
    gave_up = lock_request(STRANGER, (LIST,), task_id=4, execution="s1")
    other_section = lock_request(STRANGER, (LIST,), task_id=6, execution="s1")
    locked = EntityDocument(
        lock=held_by(OWNER), queue=[signal("append", "1"), gave_up, other_section, call("get", task_id=2)]
    )
    result = run([unlock(STRANGER, task_id=4, execution="s1")], document=locked)
    assert result.document.lock == held_by(OWNER)
    assert result.document.queue == [signal("append", "1"), other_section, call("get", task_id=2)]
    assert result.document.withdrawn == []  # dropped from the queue: nothing to remember
    assert result.messages == []

    after = run([unlock(OWNER)], document=result.document)
    assert after.document.lock == held_by(STRANGER, task_id=6, execution="s1")  # the remaining one
    grants = [m for m in to(after, STRANGER) if isinstance(m.event, EntityLockGranted)]
    assert [g.event.task_scheduled_id for g in grants] == [6]


@pytest.mark.parametrize("same_batch", [True, False], ids=["same-batch", "later-batch"])
def test_an_unlock_before_its_lock_request_drops_the_request_when_it_arrives(same_batch: bool) -> None:
    withdrawal = unlock(STRANGER, task_id=4, execution="s1")
    request = lock_request(STRANGER, (A, LIST, B), position=1, task_id=4, execution="s1")
    if same_batch:
        result = run([withdrawal, request, call("append", "1", task_id=1)])
    else:
        first = run([withdrawal])
        assert first.document.withdrawn == [held_by(STRANGER, task_id=4, execution="s1")]
        assert first.document.lock is None and first.messages == []
        assert not first.document.is_idle  # it still waits for the request to drop
        result = run([request, call("append", "1", task_id=1)], document=first.document)
    assert result.document.lock is None
    assert result.document.withdrawn == []
    assert result.document.queue == []
    assert to(result, B.instance_id) == [] and to(result, STRANGER)[0].event.kind == "EntityCallCompleted"
    assert result.document.state == "[1]"  # nobody holds the entity: others go on


def test_a_withdrawal_drops_only_the_request_it_names() -> None:
    withdrawn = EntityDocument(withdrawn=[held_by(STRANGER, task_id=4, execution="s1")])
    for request in (
        lock_request(STRANGER, (LIST,), task_id=5, execution="s1"),  # another section
        lock_request(STRANGER, (LIST,), task_id=4, execution="s2"),  # another execution
        lock_request(OWNER, (LIST,), task_id=4, execution="s1"),  # another owner
    ):
        result = run([request], document=withdrawn)
        assert result.document.lock is not None, request
        assert [m.event.kind for m in result.messages] == ["EntityLockGranted"]
        assert result.document.withdrawn == withdrawn.withdrawn


def test_an_unlock_of_the_holder_releases_and_is_not_remembered() -> None:
    result = run([unlock(OWNER, task_id=3)], document=EntityDocument(lock=held_by(OWNER, task_id=3)))
    assert result.document.lock is None
    assert result.document.withdrawn == []
    assert result.document.is_idle


def test_withdrawals_are_remembered_up_to_a_bound_oldest_forgotten_first() -> None:
    extra = 6
    result = run([unlock(STRANGER, task_id=n) for n in range(WITHDRAWN_KEPT + extra)])
    assert len(result.document.withdrawn) == WITHDRAWN_KEPT
    assert result.document.withdrawn[0] == held_by(STRANGER, task_id=extra)
    assert result.document.withdrawn[-1] == held_by(STRANGER, task_id=WITHDRAWN_KEPT + extra - 1)

    # a forgotten one is granted when its request finally arrives; a remembered one is dropped
    forgotten = run([lock_request(STRANGER, (LIST,), task_id=0)], document=result.document)
    assert forgotten.document.lock == held_by(STRANGER, task_id=0)
    remembered = run([lock_request(STRANGER, (LIST,), task_id=extra)], document=result.document)
    assert remembered.document.lock is None and remembered.messages == []
    assert len(remembered.document.withdrawn) == WITHDRAWN_KEPT - 1


def test_a_signalled_operation_is_not_rolled_back_for_a_return_value_nobody_reads() -> None:
    def entity(ctx: EntityContext) -> Any:
        ctx.set_state(ctx.get_state(lambda: 0) + 1)
        return object()  # not JSON

    result = run([signal("bump"), call("bump", task_id=1), signal("bump")], function=entity)
    assert result.document.state == "2"  # both signals count; the call rolled back
    failed = failure_of(result, 1)
    assert failed.failure.error_type == "SerializationError"
    assert "result of operation 'bump'" in failed.failure.message
    assert len(result.messages) == 1


# ----- the document and the commit --------------------------------------------------------------


def test_the_document_round_trips_through_the_entity_record() -> None:
    document = EntityDocument(
        exists=True,
        state='{"n":1}',
        lock=held_by(OWNER, task_id=3),
        queue=[signal("append", "1"), lock_request(STRANGER, (A, B), 1), unlock(OWNER)],
        withdrawn=[held_by(STRANGER, task_id=9, execution="s1")],
    )
    record = InstanceRecord(
        instance_id=LIST.instance_id,
        name="list",
        execution_id="",
        runtime_status=RuntimeStatus.RUNNING,
        output=document.model_dump_json(),
        created_at=T0,
        last_updated_at=T0,
    )
    assert EntityDocument.from_record(record) == document
    assert EntityDocument.from_record(record.model_copy(update={"output": None})) == EntityDocument()


def _entity_item(output: str | None, events: list[HistoryEvent]) -> OrchestrationWorkItem:
    record = InstanceRecord(
        instance_id=LIST.instance_id,
        name="list",
        execution_id="",
        runtime_status=RuntimeStatus.RUNNING,
        output=output,
        created_at=T0,
        last_updated_at=T0,
        version=4,
    )
    return OrchestrationWorkItem(record, [InboxMessage(10 + i, e, None) for i, e in enumerate(events)])


def test_build_entity_commit_stores_the_new_document_and_acknowledges_the_batch() -> None:
    item = _entity_item(None, [signal("append", "1"), call("get", task_id=1)])
    commit = build_entity_commit(item, list_entity, T0)
    assert commit.expected_version == 4
    assert commit.record.version == 5
    assert commit.acknowledged_message_ids == [10, 11]
    assert commit.new_history == []
    assert EntityDocument.from_record(commit.record).state == "[1]"
    [reply] = commit.messages
    assert isinstance(reply.event, EntityCallCompleted) and reply.event.result == "[1]"


def test_build_entity_commit_fails_callers_of_an_unreadable_entity() -> None:
    item = _entity_item("{not json", [call("get", task_id=1), signal("append", "1")])
    commit = build_entity_commit(item, list_entity, T0)
    assert commit.record.runtime_status is RuntimeStatus.FAILED
    assert commit.record.output == "{not json"  # kept for inspection
    assert commit.acknowledged_message_ids == [10, 11]
    [reply] = commit.messages
    assert reply.instance_id == STRANGER and reply.execution_id == "e1"
    assert isinstance(reply.event, EntityCallFailed)
    assert reply.event.failure.error_type == "StoreError"


def test_build_entity_commit_refuses_lock_requests_of_an_unreadable_entity() -> None:
    # LIST is third of A, B, LIST: A and B are locked for the owner already and must be released.
    refused = lock_request(OWNER, (A, B, LIST), position=2, task_id=3, execution="e7")
    first = lock_request(STRANGER, (LIST, OTHER), position=0, task_id=8, execution="s1")
    item = _entity_item(
        "{not json", [refused, unlock(OWNER, task_id=1), signal("append", "1"), first, call("get", task_id=1)]
    )
    commit = build_entity_commit(item, list_entity, T0)
    assert commit.record.runtime_status is RuntimeStatus.FAILED
    assert commit.record.output == "{not json"
    assert commit.acknowledged_message_ids == [10, 11, 12, 13, 14]

    failures = [m for m in commit.messages if isinstance(m.event, EntityLockFailed)]
    assert [(m.instance_id, m.execution_id, m.event.task_scheduled_id) for m in failures] == [
        (OWNER, "e7", 3),
        (STRANGER, "s1", 8),
    ]
    assert all(m.event.failure.error_type == "StoreError" for m in failures)
    assert all("'@list@l1' holds an unreadable document" in m.event.failure.message for m in failures)
    unlocks = [m for m in commit.messages if isinstance(m.event, EntityUnlock)]
    assert [m.instance_id for m in unlocks] == [A.instance_id, B.instance_id]  # only those before it
    for m in unlocks:
        assert isinstance(m.event, EntityUnlock)
        assert (m.event.owner_instance_id, m.event.owner_execution_id, m.event.task_id) == (OWNER, "e7", 3)
    assert [m.instance_id for m in commit.messages if isinstance(m.event, EntityCallFailed)] == [STRANGER]
    assert len(commit.messages) == 5  # the unlock and the signal are dropped
