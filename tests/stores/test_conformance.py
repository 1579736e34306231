"""The contract every StateStore backend must honour, run against each one (see conftest `store`).

Times are explicit: stores have no clock, so leases and visibility are driven by the `now` passed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asynkron_durable.errors import InstanceAlreadyExists, StoreError
from asynkron_durable.history import (
    EventRaised,
    ExecutionCompleted,
    ExecutionStarted,
    FailureDetails,
    HistoryEvent,
    InstanceRecord,
    OrchestratorCompleted,
    OrchestratorStarted,
    RuntimeStatus,
    TaskCompleted,
    TaskScheduled,
)
from asynkron_durable.stores import (
    ActivityClaim,
    ActivityResult,
    ActivityStep,
    ActivityTask,
    ActivityWorkItem,
    Completion,
    EpisodeCommit,
    InstanceFilter,
    LeaseRenewal,
    Message,
    NewInstance,
    OrchestrationWorkItem,
    StateStore,
    Work,
)
from asynkron_durable.stores.base import ENTITY_ID_PREFIX

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """T0 plus `seconds`: every test time is relative to it."""
    return T0 + timedelta(seconds=seconds)


def new_instance(
    instance_id: str,
    *,
    name: str = "orch",
    created: datetime = T0,
    execution_id: str | None = None,
    conflict_message: Message | None = None,
) -> NewInstance:
    execution_id = execution_id or f"{instance_id}:1"
    record = InstanceRecord(
        instance_id=instance_id,
        name=name,
        execution_id=execution_id,
        runtime_status=RuntimeStatus.PENDING,
        input='"input"',
        created_at=created,
        last_updated_at=created,
    )
    start = ExecutionStarted(name=name, input='"input"', execution_id=execution_id, timestamp=T0)
    return NewInstance(record, start, conflict_message)


def entity_record(
    instance_id: str, *, name: str = "counter", version: int = 0, state: str | None = None
) -> InstanceRecord:
    """The record a message creates its (entity) target with."""
    return InstanceRecord(
        instance_id=instance_id,
        name=name,
        execution_id=f"{instance_id}:1",
        runtime_status=RuntimeStatus.RUNNING,
        custom_status=state,
        created_at=T0,
        last_updated_at=T0,
        version=version,
    )


def event(name: str) -> EventRaised:
    return EventRaised(name=name, input=f'"{name}"', timestamp=T0)


def episode(n: int) -> list[HistoryEvent]:
    return [
        OrchestratorStarted(timestamp=at(n)),
        TaskScheduled(event_id=n, name=f"task{n}", timestamp=at(n)),
        OrchestratorCompleted(timestamp=at(n)),
    ]


def commit_for(
    item: OrchestrationWorkItem,
    *,
    status: RuntimeStatus = RuntimeStatus.RUNNING,
    history: Sequence[HistoryEvent] | None = None,
    acknowledge: bool = True,
    **changes: Any,
) -> EpisodeCommit:
    """The commit of an episode that processed all of `item`'s messages."""
    record = item.record.model_copy(
        update={"runtime_status": status, "last_updated_at": at(1), "version": 999}
    )
    return EpisodeCommit(
        record=record,
        expected_version=item.record.version,
        new_history=list(history) if history is not None else episode(1),
        acknowledged_message_ids=[m.message_id for m in item.messages] if acknowledge else [],
        **changes,
    )


async def claim(
    store: StateStore, owner: str = "w1", now: datetime = T0, limit: int = 10
) -> dict[str, OrchestrationWorkItem]:
    items = await store.claim_orchestrations(owner, now, now + timedelta(seconds=30), limit)
    return {item.record.instance_id: item for item in items}


async def start(store: StateStore, *instance_ids: str) -> None:
    """Create the instances and run one empty episode each, so their inboxes are empty."""
    for instance_id in instance_ids:
        await store.create_instance(new_instance(instance_id), replace=False)
    items = await claim(store, "starter", limit=len(instance_ids))
    assert sorted(items) == sorted(instance_ids)
    assert (
        await store.commit_episodes("starter", T0, [commit_for(i) for i in items.values()])
    ).rejected == set()


def names(item: OrchestrationWorkItem) -> list[str]:
    return [m.event.name if isinstance(m.event, EventRaised) else m.event.kind for m in item.messages]


# --- lifecycle -----------------------------------------------------------------------------


async def test_satisfies_protocol_and_open_close_are_idempotent(store: StateStore) -> None:
    assert isinstance(store, StateStore)
    await store.open()
    await store.create_instance(new_instance("a"), replace=False)
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.get_instance("a")


async def test_cancelled_operations_are_atomic_and_leave_the_store_usable(store: StateStore) -> None:
    # Cancel after 0, 1, 2, ... event-loop steps so cancellation lands at every await inside.
    for steps in range(15):
        instance_id = f"c{steps}"
        task = asyncio.create_task(store.create_instance(new_instance(instance_id), replace=False))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

        created = await store.get_instance(instance_id) is not None
        claimed = await claim(store, f"w{steps}")
        assert sorted(claimed) == ([instance_id] if created else [])


# --- create_instance -----------------------------------------------------------------------


async def test_create_instance_stores_record_and_enqueues_start(store: StateStore) -> None:
    new = new_instance("a")
    await store.create_instance(new, replace=False)

    assert await store.get_instance("a") == new.record
    assert await store.get_history("a") == []
    item = (await claim(store))["a"]
    assert item.record == new.record
    assert [m.event for m in item.messages] == [new.start_event]
    assert item.messages[0].execution_id == "a:1"


async def test_create_instances_creates_the_free_ids_together_and_names_the_rest(store: StateStore) -> None:
    await store.create_instance(new_instance("running", name="first"), replace=False)
    news = [new_instance(i) for i in ("c", "running", "a", "b")]

    assert await store.create_instances(news) == {"running"}  # in use: left as it was
    assert await store.get_instance("running") == new_instance("running", name="first").record
    claimed = await claim(store)
    for new in (news[0], news[2], news[3]):
        assert claimed[new.record.instance_id].record == new.record
        assert [m.event for m in claimed[new.record.instance_id].messages] == [new.start_event]
    assert len(claimed["running"].messages) == 1
    assert await store.create_instances([]) == set()
    with pytest.raises(ValueError, match="distinct"):
        await store.create_instances([new_instance("d"), new_instance("d")])
    assert await store.get_instance("d") is None


async def test_create_existing_running_instance_raises(store: StateStore) -> None:
    first = new_instance("a", name="first")
    await store.create_instance(first, replace=False)

    with pytest.raises(InstanceAlreadyExists) as caught:
        await store.create_instance(new_instance("a", name="second"), replace=False)

    assert caught.value.instance_id == "a"
    assert caught.value.status == "Pending"
    assert await store.get_instance("a") == first.record
    assert len((await claim(store))["a"].messages) == 1


async def test_create_with_replace_wipes_running_instance(store: StateStore) -> None:
    await store.create_instance(new_instance("a"), replace=False)
    item = (await claim(store))["a"]
    activity = ActivityTask("a", "a:1", 1, "task1", None)
    await store.commit_episodes("w1", T0, [commit_for(item, activities=[activity])])
    await store.send_messages([Message("a", event("pending"))])

    second = new_instance("a", execution_id="a:2")
    await store.create_instance(second, replace=True)

    record = await store.get_instance("a")
    assert record is not None
    assert record.execution_id == "a:2"
    assert record.version > 1
    assert await store.get_history("a") == []
    assert await store.claim_activities("w9", at(1000), at(1030), 10) == []
    claimed = (await claim(store))["a"]
    assert [m.event for m in claimed.messages] == [second.start_event]


async def test_create_over_terminal_instance_replaces_without_flag(store: StateStore) -> None:
    await store.create_instance(new_instance("a"), replace=False)
    item = (await claim(store))["a"]
    await store.commit_episodes("w1", T0, [commit_for(item, status=RuntimeStatus.COMPLETED)])

    await store.create_instance(new_instance("a", execution_id="a:2"), replace=False)

    record = await store.get_instance("a")
    assert record is not None
    assert (record.runtime_status, record.execution_id) == (RuntimeStatus.PENDING, "a:2")
    assert await store.get_history("a") == []


async def test_stale_commit_cannot_hit_a_replacement_instance(store: StateStore) -> None:
    await store.create_instance(new_instance("a"), replace=False)
    stale = (await claim(store, "w1"))["a"]
    await store.create_instance(new_instance("a", execution_id="a:2"), replace=True)
    fresh = (await claim(store, "w1"))["a"]
    assert fresh.record.execution_id == "a:2"

    assert (await store.commit_episodes("w1", T0, [commit_for(stale)])).rejected == {"a"}
    assert await store.get_history("a") == []


# --- send_messages and claim_orchestrations ------------------------------------------------


async def test_send_messages_drops_unknown_instances_and_keeps_order(store: StateStore) -> None:
    await start(store, "a")
    await store.send_messages(
        [
            Message("a", event("one"), execution_id="a:1"),
            Message("ghost", event("lost")),
            Message("a", event("two")),
            Message("a", event("three")),
        ]
    )

    item = (await claim(store))["a"]
    assert names(item) == ["one", "two", "three"]
    assert [m.execution_id for m in item.messages] == ["a:1", None, None]
    ids = [m.message_id for m in item.messages]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert await store.get_instance("ghost") is None
    await store.create_instance(new_instance("ghost"), replace=False)
    assert names((await claim(store, "w2"))["ghost"]) == ["ExecutionStarted"]


async def test_message_creates_its_missing_target(store: StateStore) -> None:
    calls: list[Work] = []
    store.subscribe(calls.append)
    counter, late = entity_record("@counter@a"), entity_record("@counter@b", version=4)

    await store.send_messages(
        [
            Message("@counter@b", event("early")),
            Message("@counter@a", event("one"), creates=counter),
            Message("@counter@a", event("two"), execution_id="@counter@a:1"),
            Message("@counter@b", event("first"), creates=late),
            Message("@counter@b", event("delayed"), visible_at=at(10), creates=late),
            Message("ghost", event("lost")),
        ]
    )

    assert calls == [Work.MESSAGES]
    assert await store.get_instance("@counter@a") == counter
    assert await store.get_instance("@counter@b") == late
    assert await store.get_instance("ghost") is None
    assert await store.get_history("@counter@a") == []
    items = await claim(store)
    assert sorted(items) == ["@counter@a", "@counter@b"]
    assert names(items["@counter@a"]) == ["one", "two"]
    assert [m.execution_id for m in items["@counter@a"].messages] == [None, "@counter@a:1"]
    assert names(items["@counter@b"]) == ["first"]
    assert items["@counter@b"].record.version == 4
    assert (await store.commit_episodes("w1", T0, [commit_for(i) for i in items.values()])).rejected == set()
    assert names((await claim(store, now=at(10)))["@counter@b"]) == ["delayed"]


async def test_message_creating_an_existing_target_leaves_it_untouched(store: StateStore) -> None:
    await store.send_messages([Message("@counter@a", event("one"), creates=entity_record("@counter@a"))])
    item = (await claim(store))["@counter@a"]
    committed = commit_for(item, status=RuntimeStatus.COMPLETED)
    assert (await store.commit_episodes("w1", T0, [committed])).rejected == set()
    await start(store, "orch")
    before = {i: await store.get_instance(i) for i in ("@counter@a", "orch")}
    assert before["@counter@a"] == committed.record.model_copy(update={"version": 1})
    impostor = entity_record("@counter@a", name="other", version=7, state='"reset"')

    await store.send_messages(
        [
            Message("@counter@a", event("two"), creates=impostor),
            Message("orch", event("hello"), creates=entity_record("orch", name="other", version=7)),
        ]
    )

    assert {i: await store.get_instance(i) for i in ("@counter@a", "orch")} == before
    assert await store.get_history("@counter@a") == episode(1)
    items = await claim(store)
    assert names(items["@counter@a"]) == ["two"]
    assert names(items["orch"]) == ["hello"]


async def test_commit_and_activity_messages_create_their_targets(store: StateStore) -> None:
    await start(store, "busy")
    await store.create_instance(new_instance("parent"), replace=False)
    await store.create_instance(new_instance("stale"), replace=False)
    items = await claim(store)
    busy_before = await store.get_instance("busy")
    conflict = Message("@log@1", event("conflict"), creates=entity_record("@log@1", name="log"))
    commit = commit_for(
        items["parent"],
        messages=[
            Message("@counter@a", event("plain")),
            Message("@counter@a", event("one"), creates=entity_record("@counter@a")),
            Message("@counter@a", event("two")),
        ],
        new_instances=[new_instance("busy", name="other", conflict_message=conflict)],
        activities=[ActivityTask("parent", "parent:1", 1, "act", None)],
    )
    rejected = EpisodeCommit(
        record=items["stale"].record,
        expected_version=5,
        new_history=episode(1),
        acknowledged_message_ids=[],
        messages=[Message("@counter@never", event("x"), creates=entity_record("@counter@never"))],
    )

    assert (await store.commit_episodes("w1", T0, [commit, rejected])).rejected == {"stale"}

    assert await store.get_instance("@counter@a") == entity_record("@counter@a")
    assert await store.get_instance("@log@1") == entity_record("@log@1", name="log")
    assert await store.get_instance("@counter@never") is None
    assert await store.get_instance("busy") == busy_before
    await store.release_leases("w1", ["stale"], [])
    claimed = await claim(store, "w2")
    assert sorted(claimed) == ["@counter@a", "@log@1", "stale"]
    assert names(claimed["@counter@a"]) == ["one", "two"]
    assert names(claimed["@log@1"]) == ["conflict"]

    [activity] = await store.claim_activities("aw", T0, at(30), 10)
    result = Message("@counter@c", event("result"), creates=entity_record("@counter@c"))
    completion = await store.complete_activities("aw", T0, [ActivityResult(activity.activity_id, result)])
    assert completion.rejected == set()
    assert await store.get_instance("@counter@c") == entity_record("@counter@c")
    assert names((await claim(store, "w3"))["@counter@c"]) == ["result"]


async def test_claim_only_returns_visible_messages(store: StateStore) -> None:
    await start(store, "a", "b")
    await store.send_messages(
        [
            Message("a", event("now")),
            Message("a", event("later"), visible_at=at(10)),
            Message("b", event("later"), visible_at=at(10)),
        ]
    )

    items = await claim(store, now=at(5))
    assert sorted(items) == ["a"]
    assert names(items["a"]) == ["now"]
    await store.commit_episodes("w1", at(5), [commit_for(items["a"])])
    assert await claim(store, now=at(9)) == {}

    due = await claim(store, now=at(10))
    assert sorted(due) == ["a", "b"]
    assert names(due["a"]) == ["later"]


async def test_next_due_is_the_earliest_future_delayed_message(store: StateStore) -> None:
    await start(store, "a", "b", "c")
    assert await store.next_due(T0) is None
    await store.send_messages(
        [
            Message("a", event("now")),
            Message("a", event("last"), visible_at=at(20)),
            Message("b", event("later"), visible_at=at(10)),
            Message("c", event("soonest"), visible_at=at(2)),
        ]
    )
    assert await store.next_due(T0) == at(2)

    assert await store.purge_instance("c") is True
    assert await store.next_due(T0) == at(10)
    items = await claim(store, now=at(1))
    assert sorted(items) == ["a"]
    await store.commit_episodes("w1", at(1), [commit_for(items["a"])])
    assert await claim(store, now=at(1)) == {}  # finds a and b holding only delayed messages

    assert await store.next_due(at(1)) == at(10)
    assert await store.next_due(at(10)) == at(20)  # b's is visible now, no longer to come
    assert await store.next_due(at(20)) is None


async def test_claim_orders_by_oldest_visible_message_and_honours_limit(store: StateStore) -> None:
    await start(store, "x", "y", "z")
    await store.send_messages([Message("x", event("timer"), visible_at=at(100))])
    await store.send_messages([Message("y", event("y1"))])
    await store.send_messages([Message("z", event("z1"))])
    await store.send_messages([Message("x", event("x1"))])

    assert await store.claim_orchestrations("w1", at(1), at(30), 0) == []
    first = await store.claim_orchestrations("w1", at(1), at(30), 2)
    assert [i.record.instance_id for i in first] == ["y", "z"]
    rest = await store.claim_orchestrations("w1", at(1), at(30), 2)
    assert [i.record.instance_id for i in rest] == ["x"]
    assert names(rest[0]) == ["x1"]


async def test_leases_exclude_other_owners_until_expired(store: StateStore) -> None:
    await store.create_instance(new_instance("a"), replace=False)
    held = await store.claim_orchestrations("w1", T0, at(30), 10)
    assert [i.record.instance_id for i in held] == ["a"]

    assert await store.claim_orchestrations("w2", at(10), at(40), 10) == []
    assert await store.claim_orchestrations("w2", at(30), at(60), 10) == []
    taken = await store.claim_orchestrations("w2", at(31), at(61), 10)
    assert [i.record.instance_id for i in taken] == ["a"]
    assert (await store.commit_episodes("w1", at(32), [commit_for(held[0])])).rejected == {"a"}
    assert (await store.commit_episodes("w2", at(32), [commit_for(taken[0])])).rejected == set()


# --- load_histories and commit_episodes ----------------------------------------------------


async def test_commit_appends_history_updates_record_and_releases_lease(store: StateStore) -> None:
    await store.create_instance(new_instance("a"), replace=False)
    item = (await claim(store))["a"]
    failure = FailureDetails(error_type="ValueError", message="boom", details="tb")
    commit = commit_for(item, history=episode(1))
    commit = EpisodeCommit(
        record=commit.record.model_copy(update={"custom_status": '"half"', "failure": failure}),
        expected_version=commit.expected_version,
        new_history=commit.new_history,
        acknowledged_message_ids=commit.acknowledged_message_ids,
    )
    assert (await store.commit_episodes("w1", T0, [commit])).rejected == set()
    await store.send_messages([Message("a", event("next"))])

    record = await store.get_instance("a")
    assert record == commit.record.model_copy(update={"version": 1})
    again = (await claim(store, "w2", now=at(1)))["a"]
    assert again.record.version == 1
    history = [*episode(1), *episode(2)]
    assert (
        await store.commit_episodes("w2", at(1), [commit_for(again, history=episode(2))])
    ).rejected == set()
    histories = await store.load_histories(["a", "missing"])
    assert histories == {"a": history, "missing": []}
    assert await store.get_history("a") == history
    final = await store.get_instance("a")
    assert final is not None and final.version == 2


async def test_reset_history_replaces_the_log(store: StateStore) -> None:
    await store.create_instance(new_instance("a"), replace=False)
    item = (await claim(store))["a"]
    await store.commit_episodes("w1", T0, [commit_for(item, history=episode(1))])
    await store.send_messages([Message("a", event("again"))])
    item = (await claim(store))["a"]
    fresh = [ExecutionStarted(name="orch", execution_id="a:2", timestamp=at(2))]

    commit = commit_for(item, history=fresh, reset_history=True)
    assert (await store.commit_episodes("w1", T0, [commit])).rejected == set()
    assert await store.get_history("a") == fresh
    await store.send_messages([Message("a", event("more"))])
    item = (await claim(store))["a"]
    await store.commit_episodes("w1", T0, [commit_for(item, history=episode(3))])
    assert await store.get_history("a") == [*fresh, *episode(3)]


async def test_ack_keeps_messages_that_arrived_during_the_episode(store: StateStore) -> None:
    await store.create_instance(new_instance("a"), replace=False)
    item = (await claim(store))["a"]
    await store.send_messages([Message("a", event("late"))])

    assert (await store.commit_episodes("w1", T0, [commit_for(item)])).rejected == set()

    again = (await claim(store, "w2"))["a"]
    assert names(again) == ["late"]


async def test_unacknowledged_messages_are_redelivered(store: StateStore) -> None:
    await store.create_instance(new_instance("a"), replace=False)
    item = (await claim(store))["a"]
    await store.commit_episodes("w1", T0, [commit_for(item, acknowledge=False)])
    again = (await claim(store))["a"]
    assert [m.message_id for m in again.messages] == [m.message_id for m in item.messages]


async def test_commit_creates_sub_instances_and_delivers_messages_to_them(store: StateStore) -> None:
    await store.create_instance(new_instance("parent"), replace=False)
    item = (await claim(store))["parent"]
    child = new_instance("child", created=at(1))
    commit = commit_for(item, new_instances=[child], messages=[Message("child", event("hello"))])

    assert (await store.commit_episodes("w1", T0, [commit])).rejected == set()

    assert await store.get_instance("child") == child.record
    claimed = (await claim(store, "w2"))["child"]
    assert names(claimed) == ["ExecutionStarted", "hello"]
    assert claimed.messages[0].execution_id == "child:1"


async def test_commit_new_instance_conflicts(store: StateStore) -> None:
    await start(store, "parent", "busy", "quiet")
    await store.create_instance(new_instance("done"), replace=False)
    done_item = (await claim(store))["done"]
    await store.commit_episodes("w1", T0, [commit_for(done_item, status=RuntimeStatus.FAILED)])
    await store.send_messages([Message("parent", event("go"))])
    item = (await claim(store))["parent"]
    busy_before = await store.get_instance("busy")
    conflict = Message("parent", event("conflict"))
    commit = commit_for(
        item,
        new_instances=[
            new_instance("busy", name="other", conflict_message=conflict),
            new_instance("quiet", name="other"),
            new_instance("done", name="reborn", execution_id="done:2"),
        ],
    )

    assert (await store.commit_episodes("w1", T0, [commit])).rejected == set()

    assert await store.get_instance("busy") == busy_before
    quiet = await store.get_instance("quiet")
    assert quiet is not None and quiet.name == "orch"
    reborn = await store.get_instance("done")
    assert reborn is not None and (reborn.name, reborn.execution_id) == ("reborn", "done:2")
    items = await claim(store, "w2")
    assert sorted(items) == ["done", "parent"]
    assert names(items["parent"]) == ["conflict"]


async def test_commit_enqueues_activities(store: StateStore) -> None:
    await store.create_instance(new_instance("a"), replace=False)
    item = (await claim(store))["a"]
    tasks = [ActivityTask("a", "a:1", 1, "one", '"x"'), ActivityTask("a", "a:1", 2, "two", None)]

    await store.commit_episodes("w1", T0, [commit_for(item, activities=tasks)])

    claimed = await store.claim_activities("aw", T0, at(30), 10)
    assert [c.task for c in claimed] == tasks
    assert [c.attempt for c in claimed] == [1, 1]
    assert claimed[0].activity_id < claimed[1].activity_id


async def test_cas_rejects_stale_and_foreign_commits_and_applies_the_rest(store: StateStore) -> None:
    for instance_id in ("ok", "foreign", "stale"):
        await store.create_instance(new_instance(instance_id), replace=False)
    ours = await claim(store, "w1", limit=2)
    assert sorted(ours) == ["foreign", "ok"]
    await store.release_leases("w1", ["foreign"], [])
    theirs = await claim(store, "w2")
    assert sorted(theirs) == ["foreign", "stale"]
    await store.commit_episodes("w2", T0, [commit_for(theirs["stale"], acknowledge=False)])
    stale = (await claim(store, "w1"))["stale"]
    stale_commit = commit_for(stale, acknowledge=False)
    stale_commit = EpisodeCommit(
        record=stale_commit.record,
        expected_version=0,
        new_history=episode(5),
        acknowledged_message_ids=[m.message_id for m in stale.messages],
    )
    side_effects: dict[str, Any] = {
        "messages": [Message("ok", event("side"))],
        "activities": [ActivityTask("ok", "ok:1", 1, "side", None)],
        "new_instances": [new_instance("side")],
    }
    foreign_commit = commit_for(ours["foreign"], **side_effects)
    before = {i: await store.get_instance(i) for i in ("stale", "foreign")}

    rejected = (
        await store.commit_episodes("w1", T0, [stale_commit, commit_for(ours["ok"]), foreign_commit])
    ).rejected

    assert rejected == {"stale", "foreign"}
    assert {i: await store.get_instance(i) for i in ("stale", "foreign")} == before
    assert await store.get_history("foreign") == []
    assert await store.get_history("stale") == episode(1)
    assert await store.get_instance("side") is None
    assert await store.claim_activities("aw", T0, at(30), 10) == []
    assert await store.get_history("ok") == episode(1)
    ok_record = await store.get_instance("ok")
    assert ok_record is not None and ok_record.version == 1
    await store.release_leases("w1", ["stale"], [])
    await store.release_leases("w2", ["foreign"], [])
    redelivered = await claim(store, "w3")
    assert sorted(redelivered) == ["foreign", "stale"]
    assert names(redelivered["stale"]) == ["ExecutionStarted"]
    assert (await store.commit_episodes("w1", T0, [commit_for(ours["ok"])])).rejected == {"ok"}
    assert (await store.commit_episodes("w1", T0, [])).rejected == set()


async def test_commit_for_unknown_instance_is_rejected(store: StateStore) -> None:
    await store.create_instance(new_instance("a"), replace=False)
    item = (await claim(store))["a"]
    await store.purge_instance("a")
    assert (await store.commit_episodes("w1", T0, [commit_for(item)])).rejected == {"a"}
    assert await store.get_instance("a") is None


# --- activities ----------------------------------------------------------------------------


async def _with_activities(store: StateStore, count: int) -> list[ActivityTask]:
    await store.create_instance(new_instance("a"), replace=False)
    item = (await claim(store))["a"]
    tasks = [ActivityTask("a", "a:1", n, f"act{n}", None) for n in range(count)]
    await store.commit_episodes("w1", T0, [commit_for(item, activities=tasks)])
    return tasks


async def test_claim_activities_leases_limit_and_expiry(store: StateStore) -> None:
    tasks = await _with_activities(store, 3)

    assert await store.claim_activities("aw1", T0, at(30), 0) == []
    first = await store.claim_activities("aw1", T0, at(30), 2)
    assert [c.task for c in first] == tasks[:2]
    second = await store.claim_activities("aw2", at(1), at(31), 10)
    assert [c.task for c in second] == tasks[2:]
    assert await store.claim_activities("aw2", at(30), at(60), 10) == []
    retried = await store.claim_activities("aw2", at(31), at(61), 10)
    assert [(c.task, c.attempt) for c in retried] == [(tasks[0], 2), (tasks[1], 2)]


async def test_complete_activities_enqueues_result_or_rejects_lost_lease(store: StateStore) -> None:
    await _with_activities(store, 2)
    lost, won = await store.claim_activities("aw1", T0, at(30), 10)
    stolen = await store.claim_activities("aw2", at(31), at(61), 1)
    assert [c.activity_id for c in stolen] == [lost.activity_id]

    def result(activity_id: int, task_id: int) -> ActivityResult:
        completed = TaskCompleted(task_scheduled_id=task_id, result=str(task_id), timestamp=T0)
        return ActivityResult(activity_id, Message("a", completed, execution_id="a:1"))

    completion = await store.complete_activities(
        "aw1", at(40), [result(won.activity_id, 0), result(lost.activity_id, 1)]
    )

    assert completion == Completion({lost.activity_id}, set(), [])
    item = (await claim(store, now=at(40)))["a"]
    assert [m.event for m in item.messages] == [result(won.activity_id, 0).message.event]
    assert (await store.complete_activities("aw2", at(40), [result(lost.activity_id, 1)])).rejected == set()
    again = await store.complete_activities("aw2", at(40), [result(lost.activity_id, 1)])
    assert again.rejected == {lost.activity_id}
    assert await store.claim_activities("aw3", at(1000), at(1030), 10) == []


async def test_a_commit_with_a_claim_leases_what_it_schedules_up_to_the_limit(store: StateStore) -> None:
    await store.create_instance(new_instance("a"), replace=False)
    await store.create_instance(new_instance("b"), replace=False)
    items = await claim(store)
    tasks = {i: [ActivityTask(i, f"{i}:1", n, f"act{n}", None) for n in range(2)] for i in ("a", "b")}
    commits = [commit_for(items[i], activities=tasks[i]) for i in ("a", "b")]
    leasing = ActivityClaim(at(30), 3)

    committed = await store.commit_episodes("w1", T0, commits, claim=leasing)

    assert committed.rejected == set()
    assert [(c.task, c.attempt) for c in committed.claimed] == [(t, 1) for t in [*tasks["a"], tasks["b"][0]]]
    others = await store.claim_activities("aw", at(1), at(31), 10)
    assert [c.task for c in others] == [tasks["b"][1]]  # over the limit: queued for anyone
    renewal = await store.renew_leases("w1", at(60), [], [c.activity_id for c in committed.claimed])
    assert renewal.lost_activity_ids == set()
    expired = await store.claim_activities("aw", at(61), at(91), 10)
    assert [c.task for c in expired] == [*tasks["a"], *tasks["b"]]  # leases lapse; ids in schedule order


async def test_a_rejected_commit_leases_nothing(store: StateStore) -> None:
    await store.create_instance(new_instance("a"), replace=False)
    item = (await claim(store))["a"]
    task = ActivityTask("a", "a:1", 0, "act", None)
    leasing = ActivityClaim(at(30), 5)

    committed = await store.commit_episodes(
        "someone-else", T0, [commit_for(item, activities=[task])], claim=leasing
    )

    assert committed.rejected == {"a"} and committed.claimed == []
    assert await store.claim_activities("aw", at(1), at(31), 10) == []


# --- activity steps ---------------------------------------------------------------------------


async def _running_with_activity(store: StateStore) -> tuple[InstanceRecord, ActivityWorkItem]:
    """Instance "a" after an episode that scheduled one activity, and that activity claimed."""
    await _with_activities(store, 1)
    record = await store.get_instance("a")
    assert record is not None
    [activity] = await store.claim_activities("aw", T0, at(30), 1)
    return record, activity


def _step(record: InstanceRecord, activity: ActivityWorkItem, *scheduled: ActivityTask) -> ActivityStep:
    completed = TaskCompleted(task_scheduled_id=0, result="1", timestamp=at(2))
    result = ActivityResult(activity.activity_id, Message("a", completed, execution_id="a:1"))
    commit = EpisodeCommit(
        record=record.model_copy(update={"custom_status": '"stepped"', "version": record.version + 1}),
        expected_version=record.version,
        new_history=[completed, *episode(2)],
        acknowledged_message_ids=[],
        activities=list(scheduled),
    )
    return ActivityStep((result,), commit)


async def test_step_applies_its_episode_and_leases_what_it_schedules(store: StateStore) -> None:
    record, activity = await _running_with_activity(store)
    before = await store.get_history("a")
    following = [ActivityTask("a", "a:1", n, f"next{n}", None) for n in (1, 2)]
    step = _step(record, activity, *following)

    done = await store.complete_activities("aw", at(2), [], [step], ActivityClaim(at(32), 1))

    assert done.rejected == set() and done.applied == {"a"}
    assert [(c.task, c.attempt) for c in done.claimed] == [(following[0], 1)]
    stored = await store.get_instance("a")
    assert stored is not None and stored.custom_status == '"stepped"'
    assert stored.version == record.version + 1
    assert await store.get_history("a") == [*before, *step.commit.new_history]
    assert await claim(store, now=at(3)) == {}  # the result went into the history, not the inbox
    others = await store.claim_activities("aw2", at(3), at(33), 10)
    assert [c.task for c in others] == [following[1]]  # over the limit: queued for anyone
    renewal = await store.renew_leases("aw", at(60), [], [done.claimed[0].activity_id])
    assert renewal.lost_activity_ids == set()


async def test_step_waits_behind_a_visible_message(store: StateStore) -> None:
    record, activity = await _running_with_activity(store)
    await store.send_messages(
        [Message("a", event("first")), Message("a", event("later"), visible_at=at(100))]
    )
    step = _step(record, activity, ActivityTask("a", "a:1", 1, "next", None))

    done = await store.complete_activities("aw", at(2), [], [step], ActivityClaim(at(32), 5))

    assert done == Completion(set(), set(), [])
    assert (await store.get_instance("a")) == record
    item = (await claim(store, now=at(3)))["a"]
    assert names(item) == ["first", "TaskCompleted"]
    assert await store.claim_activities("aw2", at(3), at(33), 10) == []


async def test_step_applies_past_a_delayed_message(store: StateStore) -> None:
    record, activity = await _running_with_activity(store)
    await store.send_messages([Message("a", event("later"), visible_at=at(100))])

    done = await store.complete_activities("aw", at(2), [], [_step(record, activity)])

    assert done.applied == {"a"}
    assert names((await claim(store, now=at(101)))["a"]) == ["later"]


async def test_step_is_refused_while_another_worker_leases_the_instance(store: StateStore) -> None:
    record, activity = await _running_with_activity(store)
    await store.send_messages([Message("a", event("x"), visible_at=at(3))])
    item = (await claim(store, "w2", now=at(3)))["a"]

    # At at(2) the message is not yet visible: only w2's lease stands in the step's way.
    done = await store.complete_activities("aw", at(2), [], [_step(record, activity)])

    assert done == Completion(set(), set(), [])
    assert (await store.commit_episodes("w2", at(3), [commit_for(item)])).rejected == set()
    assert names((await claim(store, now=at(4)))["a"]) == ["TaskCompleted"]


async def test_step_is_refused_once_the_instance_has_moved_on(store: StateStore) -> None:
    record, activity = await _running_with_activity(store)
    await store.send_messages([Message("a", event("x"))])
    item = (await claim(store, "w2", now=at(1)))["a"]
    assert (await store.commit_episodes("w2", at(1), [commit_for(item)])).rejected == set()  # version moves

    done = await store.complete_activities("aw", at(2), [], [_step(record, activity)])

    assert done.applied == set()
    moved = await store.get_instance("a")
    assert moved is not None and moved.version == record.version + 1
    assert names((await claim(store, now=at(3)))["a"]) == ["TaskCompleted"]


async def test_step_with_a_lost_activity_lease_changes_nothing_of_it(store: StateStore) -> None:
    record, activity = await _running_with_activity(store)
    stolen = await store.claim_activities("aw2", at(31), at(61), 1)
    assert [c.activity_id for c in stolen] == [activity.activity_id]

    done = await store.complete_activities("aw", at(32), [], [_step(record, activity)])

    assert done == Completion({activity.activity_id}, set(), [])
    assert await store.get_instance("a") == record
    assert await claim(store, now=at(33)) == {}


# --- renew_leases and release_leases -------------------------------------------------------


async def test_renew_leases_extends_held_and_reports_lost(store: StateStore) -> None:
    await _with_activities(store, 2)
    await store.send_messages([Message("a", event("wake"))])
    await store.create_instance(new_instance("b"), replace=False)
    assert sorted(await claim(store, "w1")) == ["a", "b"]
    mine, theirs = await store.claim_activities("w1", T0, at(30), 10)
    await store.release_leases("w1", ["b"], [theirs.activity_id])
    assert sorted(await claim(store, "w2")) == ["b"]
    assert len(await store.claim_activities("w2", T0, at(30), 10)) == 1

    renewal = await store.renew_leases(
        "w1", at(100), ["a", "b", "ghost"], [mine.activity_id, theirs.activity_id, 999]
    )

    assert renewal.lost_instance_ids == {"b", "ghost"}
    assert renewal.lost_activity_ids == {theirs.activity_id, 999}
    assert sorted(await claim(store, "w3", now=at(50))) == ["b"]
    expired = await store.claim_activities("w3", at(50), at(80), 10)
    assert [c.activity_id for c in expired] == [theirs.activity_id]
    assert sorted(await claim(store, "w4", now=at(101))) == ["a", "b"]
    reclaimed = await store.claim_activities("w4", at(101), at(130), 10)
    assert [c.activity_id for c in reclaimed] == [mine.activity_id, theirs.activity_id]
    assert await store.renew_leases("w1", at(200), [], []) == LeaseRenewal(set(), set())


async def test_release_leases_frees_only_own_work(store: StateStore) -> None:
    await _with_activities(store, 1)
    await store.send_messages([Message("a", event("wake"))])
    assert sorted(await claim(store, "w1")) == ["a"]
    [activity] = await store.claim_activities("w1", T0, at(30), 10)

    await store.release_leases("w2", ["a"], [activity.activity_id])
    assert await claim(store, "w2") == {}
    assert await store.claim_activities("w2", T0, at(30), 10) == []

    await store.release_leases("w1", ["a"], [activity.activity_id])
    assert sorted(await claim(store, "w2")) == ["a"]
    # given back, not lost: the start does not count towards the activity's attempts
    assert [c.attempt for c in await store.claim_activities("w2", T0, at(30), 10)] == [1]


async def test_an_activity_attempt_counts_the_starts_whose_lease_lapsed(store: StateStore) -> None:
    await _with_activities(store, 1)
    [first] = await store.claim_activities("w1", T0, at(30), 10)
    [second] = await store.claim_activities("w2", at(31), at(61), 10)  # w1 died: its lease lapsed
    await store.release_leases("w2", [], [second.activity_id])  # w2 stopped and gave it back
    [third] = await store.claim_activities("w3", at(62), at(92), 10)
    [fourth] = await store.claim_activities("w4", at(93), at(123), 10)  # w3 died too
    [again] = await store.claim_activities("w4", at(124), at(154), 10)  # w4 lapsed, took it back
    assert [first.attempt, second.attempt, third.attempt, fourth.attempt, again.attempt] == [1, 2, 2, 3, 3]


async def test_get_unknown_instance(store: StateStore) -> None:
    assert await store.get_instance("nope") is None
    assert await store.get_history("nope") == []
    assert await store.load_histories([]) == {}


# --- query_instances -----------------------------------------------------------------------


async def _populate(store: StateStore) -> list[InstanceRecord]:
    specs = [
        ("order-1", "orders", 0, RuntimeStatus.PENDING),
        ("order-2", "orders", 1, RuntimeStatus.COMPLETED),
        ("order_%3", "orders", 1, RuntimeStatus.FAILED),
        ("orderX4", "billing", 2, RuntimeStatus.COMPLETED),
        ("bill-1", "billing", 2.5, RuntimeStatus.PENDING),
        ("bill-2", "billing", 3, RuntimeStatus.PENDING),
        ("zed", "orders", 3, RuntimeStatus.TERMINATED),
    ]
    for instance_id, name, created, _ in specs:
        await store.create_instance(new_instance(instance_id, name=name, created=at(created)), replace=False)
    items = await claim(store, limit=10)
    commits = [
        commit_for(items[instance_id], status=status)
        for instance_id, _, _, status in specs
        if status is not RuntimeStatus.PENDING
    ]
    assert (await store.commit_episodes("w1", T0, commits)).rejected == set()
    records = [await store.get_instance(spec[0]) for spec in specs]
    return sorted((r for r in records if r is not None), key=lambda r: (r.created_at, r.instance_id))


async def _ids(store: StateStore, query: InstanceFilter) -> list[str]:
    page = await store.query_instances(query, 100, None)
    assert page.continuation_token is None
    return [r.instance_id for r in page.instances]


async def test_query_filters(store: StateStore) -> None:
    records = await _populate(store)
    everything = [r.instance_id for r in records]
    assert everything == ["order-1", "order-2", "order_%3", "orderX4", "bill-1", "bill-2", "zed"]
    assert await _ids(store, InstanceFilter()) == everything

    done = frozenset({RuntimeStatus.COMPLETED, RuntimeStatus.TERMINATED})
    assert await _ids(store, InstanceFilter(runtime_status=done)) == ["order-2", "orderX4", "zed"]
    assert await _ids(store, InstanceFilter(runtime_status=frozenset())) == []
    window = InstanceFilter(created_from=at(1), created_to=at(2.5))
    assert await _ids(store, window) == ["order-2", "order_%3", "orderX4", "bill-1"]
    assert await _ids(store, InstanceFilter(instance_id_prefix="order")) == [
        "order-1",
        "order-2",
        "order_%3",
        "orderX4",
    ]
    assert await _ids(store, InstanceFilter(instance_id_prefix="order_")) == ["order_%3"]
    assert await _ids(store, InstanceFilter(instance_id_prefix="order_%")) == ["order_%3"]
    assert await _ids(store, InstanceFilter(instance_id_prefix="order%")) == []
    assert await _ids(store, InstanceFilter(name="billing")) == ["orderX4", "bill-1", "bill-2"]
    combined = InstanceFilter(
        runtime_status=frozenset({RuntimeStatus.PENDING}), name="billing", created_to=at(2.5)
    )
    assert await _ids(store, combined) == ["bill-1"]
    assert (await store.query_instances(InstanceFilter(), 100, None)).instances == records


async def _populate_entities(store: StateStore) -> None:
    """Ids on both sides of each end of the entity range: '?' sorts just before '@', 'A' just after."""
    assert ENTITY_ID_PREFIX == "@"
    for n, instance_id in enumerate(["?x", "@a@1", "@", "@z@2", "A", "b"]):
        await store.create_instance(new_instance(instance_id, created=at(n)), replace=False)


async def test_query_filters_entities(store: StateStore) -> None:
    await _populate_entities(store)

    assert await _ids(store, InstanceFilter()) == ["?x", "@a@1", "@", "@z@2", "A", "b"]
    assert await _ids(store, InstanceFilter(entities=None)) == ["?x", "@a@1", "@", "@z@2", "A", "b"]
    assert await _ids(store, InstanceFilter(entities=True)) == ["@a@1", "@", "@z@2"]
    assert await _ids(store, InstanceFilter(entities=False)) == ["?x", "A", "b"]
    assert await _ids(store, InstanceFilter(entities=True, instance_id_prefix="@a")) == ["@a@1"]
    assert await _ids(store, InstanceFilter(entities=True, instance_id_prefix="b")) == []
    assert await _ids(store, InstanceFilter(entities=False, instance_id_prefix="@")) == []
    assert await _ids(store, InstanceFilter(entities=False, instance_id_prefix="A")) == ["A"]
    assert await _ids(store, InstanceFilter(entities=True, created_from=at(2))) == ["@", "@z@2"]
    first = await store.query_instances(InstanceFilter(entities=False), 2, None)
    assert [r.instance_id for r in first.instances] == ["?x", "A"]
    assert first.continuation_token is not None
    rest = await store.query_instances(InstanceFilter(entities=False), 2, first.continuation_token)
    assert [r.instance_id for r in rest.instances] == ["b"]


async def test_purge_instances_filters_entities(store: StateStore) -> None:
    await _populate_entities(store)

    assert await store.purge_instances(InstanceFilter(entities=True, instance_id_prefix="@z")) == 1
    assert await store.purge_instances(InstanceFilter(entities=True)) == 2
    assert await _ids(store, InstanceFilter()) == ["?x", "A", "b"]
    assert await store.purge_instances(InstanceFilter(entities=True)) == 0
    await store.create_instance(new_instance("@c@1"), replace=False)
    assert await store.purge_instances(InstanceFilter(entities=False)) == 3
    assert await _ids(store, InstanceFilter()) == ["@c@1"]
    assert await store.purge_instances(InstanceFilter(entities=None)) == 1
    assert await _ids(store, InstanceFilter()) == []


async def test_query_pages_through_continuation_tokens(store: StateStore) -> None:
    records = await _populate(store)

    pages: list[list[InstanceRecord]] = []
    token: str | None = None
    while True:
        page = await store.query_instances(InstanceFilter(), 3, token)
        pages.append(page.instances)
        token = page.continuation_token
        if token is None:
            break

    assert [len(p) for p in pages] == [3, 3, 1]
    assert [r for p in pages for r in p] == records
    orders = InstanceFilter(name="orders")
    first = await store.query_instances(orders, 2, None)
    assert first.continuation_token is not None
    second = await store.query_instances(orders, 2, first.continuation_token)
    assert [r.instance_id for r in first.instances + second.instances] == [
        "order-1",
        "order-2",
        "order_%3",
        "zed",
    ]
    assert second.continuation_token is None


async def test_query_rejects_bad_tokens_and_page_sizes(store: StateStore) -> None:
    for token in ("garbage!", "e30=", "bm90IGpzb24="):
        with pytest.raises(ValueError, match=r"invalid continuation token .*an earlier page of this query"):
            await store.query_instances(InstanceFilter(), 10, token)
    with pytest.raises(ValueError, match="page_size"):
        await store.query_instances(InstanceFilter(), 0, None)


# --- purge ---------------------------------------------------------------------------------


async def test_purge_instance_deletes_everything(store: StateStore) -> None:
    await start(store, "b")
    await _with_activities(store, 2)
    await store.send_messages([Message("a", event("pending"))])

    assert await store.purge_instance("a") is True
    assert await store.purge_instance("a") is False

    assert await store.get_instance("a") is None
    assert await store.get_history("a") == []
    assert await store.claim_activities("aw", at(1000), at(1030), 10) == []
    assert await claim(store, now=at(1000)) == {}
    await store.create_instance(new_instance("a"), replace=False)
    assert names((await claim(store))["a"]) == ["ExecutionStarted"]
    assert await store.get_history("b") == episode(1)


async def test_purge_instance_at_expected_version_only_when_idle(store: StateStore) -> None:
    await _with_activities(store, 1)
    assert await store.get_instance("a") is not None

    assert await store.purge_instance("a", expected_version=0) is False
    assert await store.purge_instance("a", expected_version=2) is False
    assert await store.purge_instance("ghost", expected_version=0) is False
    assert await store.get_instance("a") is not None

    assert await store.purge_instance("a", expected_version=1) is True

    assert await store.get_instance("a") is None
    assert await store.get_history("a") == []
    assert await store.claim_activities("aw", at(1000), at(1030), 10) == []
    assert await store.purge_instance("a", expected_version=1) is False


async def test_purge_instance_at_expected_version_keeps_an_instance_with_messages(
    store: StateStore,
) -> None:
    await start(store, "now", "later", "leased")
    await store.send_messages([Message("leased", event("signal"))])
    leased = (await claim(store, "w1"))["leased"]
    assert leased.record.version == 1
    await store.send_messages(
        [Message("now", event("signal")), Message("later", event("timer"), visible_at=at(100))]
    )

    for instance_id in ("now", "later", "leased"):
        assert await store.purge_instance(instance_id, expected_version=1) is False
        assert await store.get_instance(instance_id) is not None

    assert (await store.commit_episodes("w1", T0, [commit_for(leased)])).rejected == set()
    assert await store.purge_instance("leased", expected_version=2) is True
    assert names((await claim(store, "w2"))["now"]) == ["signal"]
    assert names((await claim(store, "w2", now=at(100)))["later"]) == ["timer"]
    assert await store.purge_instance("later", expected_version=1) is False
    assert await store.purge_instance("later") is True
    assert await store.get_instance("later") is None


async def test_purge_instances_by_filter(store: StateStore) -> None:
    await _populate(store)
    terminal = frozenset({RuntimeStatus.COMPLETED, RuntimeStatus.FAILED})

    assert await store.purge_instances(InstanceFilter(runtime_status=terminal, name="orders")) == 2

    assert await _ids(store, InstanceFilter()) == ["order-1", "orderX4", "bill-1", "bill-2", "zed"]
    assert await store.get_history("order-2") == []
    assert await store.purge_instances(InstanceFilter(instance_id_prefix="nothing")) == 0


# --- subscribe -----------------------------------------------------------------------------


async def test_subscribers_hear_about_new_work_only_and_of_which_kind(store: StateStore) -> None:
    calls: list[Work] = []
    store.subscribe(calls.append)

    def boom(work: Work) -> None:
        raise RuntimeError("subscriber bug")

    store.subscribe(boom)

    await store.create_instance(new_instance("a"), replace=False)
    assert calls == [Work.MESSAGES]
    item = (await claim(store))["a"]
    await store.send_messages([Message("ghost", event("lost"))])
    await store.commit_episodes("w1", T0, [commit_for(item)])
    assert calls == [Work.MESSAGES]
    await store.send_messages([Message("a", event("x"))])
    assert calls == [Work.MESSAGES] * 2
    item = (await claim(store))["a"]
    tasks = [ActivityTask("a", "a:1", n, "t", None) for n in (1, 2)]
    await store.commit_episodes("w1", T0, [commit_for(item, activities=tasks)])
    assert calls == [Work.MESSAGES] * 2 + [Work.ACTIVITIES]
    [activity, _] = await store.claim_activities("aw", T0, at(30), 2)
    result = ActivityResult(activity.activity_id, Message("a", ExecutionCompleted(timestamp=T0)))
    await store.complete_activities("aw", T0, [result])
    assert calls == [Work.MESSAGES] * 2 + [Work.ACTIVITIES, Work.MESSAGES]


async def test_given_back_leases_are_announced_like_new_work(store: StateStore) -> None:
    await store.create_instance(new_instance("a"), replace=False)
    await claim(store)
    calls: list[Work] = []
    store.subscribe(calls.append)

    await store.release_leases("w2", ["a"], [])  # not the holder: nothing to announce
    assert calls == []
    await store.release_leases("w1", ["a"], [])
    assert calls == [Work.MESSAGES]

    item = (await claim(store))["a"]
    leasing = ActivityClaim(at(30), 1)
    task = ActivityTask("a", "a:1", 1, "t", None)
    committed = await store.commit_episodes("w1", T0, [commit_for(item, activities=[task])], leasing)
    assert committed.rejected == set()
    [leased] = committed.claimed
    await store.release_leases("w1", [], [leased.activity_id])
    assert calls == [Work.MESSAGES, Work.ACTIVITIES]
    assert [a.activity_id for a in await store.claim_activities("w2", T0, at(30), 5)] == [leased.activity_id]


async def test_activities_leased_by_their_commit_wake_nobody(store: StateStore) -> None:
    await store.create_instance(new_instance("a"), replace=False)
    item = (await claim(store))["a"]
    calls: list[Work] = []
    store.subscribe(calls.append)
    tasks = [ActivityTask("a", "a:1", n, "t", None) for n in (1, 2)]

    leasing = ActivityClaim(at(30), 2)
    committed = await store.commit_episodes("w1", T0, [commit_for(item, activities=tasks)], leasing)

    assert committed.rejected == set() and len(committed.claimed) == 2
    assert calls == []
    await store.send_messages([Message("a", event("x"))])
    item = (await claim(store))["a"]
    more = [ActivityTask("a", "a:1", n, "t", None) for n in (3, 4)]
    await store.commit_episodes("w1", T0, [commit_for(item, activities=more)], ActivityClaim(at(30), 1))
    assert calls == [Work.MESSAGES, Work.ACTIVITIES]  # the one beyond the claim's limit is for anyone
