"""history_json: our history as the host's JSON history, and back.

Histories our runtime really recorded (in-memory store) round-trip exactly and are accepted by the
real SDK, whose orchestrator handle replays them with an equivalent Azure-style orchestrator to the
same end; host events written by hand read field by field; malformed input fails with a
`ValueError` naming the event and the problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import pytest
from support.azure_sdk import sdk_state
from support.orchestrations import wait_for_history, wait_for_status

from asynkron_durable import (
    DurableFunctionRuntime,
    EntityContext,
    EntityId,
    OrchestrationClient,
    OrchestrationContext,
    RuntimeStatus,
    TaskFailedError,
)
from asynkron_durable.azure_history import (
    UNKNOWN_ERROR_TYPE,
    entity_request_id,
    from_azure_history,
    to_azure_history,
)
from asynkron_durable.history import (
    SCHEDULING_EVENTS,
    ContinuedAsNew,
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
    EventSent,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionRewound,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    FailureDetails,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    SubOrchestrationCompleted,
    SubOrchestrationCreated,
    SubOrchestrationFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

# ----- activities, entity and orchestrators (our API) ------------------------------------------------


def hello(name: str) -> str:
    return f"Hello {name}!"


def boom(message: str) -> None:
    raise ValueError(message)


_flaky_calls: dict[str, int] = {}


def flaky(key: str) -> str:
    """Fails its first call per key, then succeeds."""
    _flaky_calls[key] = _flaky_calls.get(key, 0) + 1
    if _flaky_calls[key] == 1:
        raise RuntimeError(f"first call for {key} fails")
    return f"{key} on call {_flaky_calls[key]}"


def counter(ctx: EntityContext) -> Any:
    value = ctx.get_state(lambda: 0)
    if ctx.operation_name == "add":
        ctx.set_state(value + ctx.get_input())
        return value + ctx.get_input()
    if ctx.operation_name == "get":
        return value
    raise ValueError(f"counter has no operation {ctx.operation_name!r}")


def chain(ctx: OrchestrationContext) -> Any:
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield ctx.call_activity("hello", city)))
    return results


def caught(ctx: OrchestrationContext) -> Any:
    try:
        yield ctx.call_activity("boom", "no luck")
    except TaskFailedError as exc:
        return f"caught: {exc.error_message}"
    return "not reached"


def uncaught(ctx: OrchestrationContext) -> Any:
    yield ctx.call_activity("hello", "first")
    yield ctx.call_activity("boom", "uncaught")


def nap(ctx: OrchestrationContext) -> Any:
    yield ctx.create_timer(timedelta(milliseconds=20))
    return "woke"


def approval(ctx: OrchestrationContext) -> Any:
    return (yield ctx.wait_for_external_event("Approval"))


def child(ctx: OrchestrationContext) -> Any:
    return (yield ctx.call_activity("hello", ctx.get_input()))


def parent(ctx: OrchestrationContext) -> Any:
    return (yield ctx.call_sub_orchestrator("child", "kid", instance_id=f"{ctx.instance_id}-child"))


def countdown(ctx: OrchestrationContext) -> Any:
    n = ctx.get_input()
    yield ctx.call_activity("hello", str(n))
    if n > 0:
        ctx.continue_as_new(n - 1)
        return None
    return "liftoff"


def entity_user(ctx: OrchestrationContext) -> Any:
    entity = EntityId("counter", ctx.instance_id)
    ctx.signal_entity(entity, "add", 2)
    yield ctx.call_entity(entity, "add", 3)
    return (yield ctx.call_entity(entity, "get"))


def entity_failure(ctx: OrchestrationContext) -> Any:
    try:
        yield ctx.call_entity(EntityId("counter", ctx.instance_id), "explode")
    except TaskFailedError as exc:
        return exc.error_message
    return "not reached"


def locked(ctx: OrchestrationContext) -> Any:
    entity = EntityId("counter", ctx.instance_id)
    ctx.signal_entity(entity, "add", 1, scheduled_time=ctx.current_utc_datetime + timedelta(milliseconds=10))
    with (yield ctx.lock([entity])):
        total = yield ctx.call_entity(entity, "add", 10)
    return total


def ping_self(ctx: OrchestrationContext) -> Any:
    ctx.send_event(ctx.instance_id, "Ping", {"n": 1})
    return (yield ctx.wait_for_external_event("Ping"))


def waiter(ctx: OrchestrationContext) -> Any:
    return (yield ctx.wait_for_external_event("Go"))


def retried_by_rewind(ctx: OrchestrationContext) -> Any:
    return (yield ctx.call_activity("flaky", ctx.instance_id))


# ----- the same orchestrators, Azure style -----------------------------------------------------------


def az_chain(context: df.DurableOrchestrationContext) -> Any:
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield context.call_activity("hello", city)))
    return results


def az_caught(context: df.DurableOrchestrationContext) -> Any:
    try:
        yield context.call_activity("boom", "no luck")
    except Exception as exc:
        return f"caught: {str(exc).splitlines()[0].strip()}"
    return "not reached"


def az_uncaught(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("hello", "first")
    yield context.call_activity("boom", "uncaught")


def az_nap(context: df.DurableOrchestrationContext) -> Any:
    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=20))
    return "woke"


def az_approval(context: df.DurableOrchestrationContext) -> Any:
    return (yield context.wait_for_external_event("Approval"))


def az_parent(context: df.DurableOrchestrationContext) -> Any:
    return (yield context.call_sub_orchestrator("child", "kid", f"{context.instance_id}-child"))


def az_countdown(context: df.DurableOrchestrationContext) -> Any:
    n = context.get_input()
    yield context.call_activity("hello", str(n))
    if n > 0:
        context.continue_as_new(n - 1)
        return None
    return "liftoff"


def az_entity_user(context: df.DurableOrchestrationContext) -> Any:
    entity = df.EntityId("counter", context.instance_id)
    context.signal_entity(entity, "add", 2)
    yield context.call_entity(entity, "add", 3)
    return (yield context.call_entity(entity, "get"))


def az_entity_failure(context: df.DurableOrchestrationContext) -> Any:
    try:
        yield context.call_entity(df.EntityId("counter", context.instance_id), "explode")
    except Exception as exc:
        return str(exc)
    return "not reached"


def az_waiter(context: df.DurableOrchestrationContext) -> Any:
    return (yield context.wait_for_external_event("Go"))


def az_retried(context: df.DurableOrchestrationContext) -> Any:
    return (yield context.call_activity("flaky", context.instance_id))


# ----- drives: what a test does while the instance runs ------------------------------------------------

Drive = Callable[[OrchestrationClient, str], Awaitable[None]]


async def approve(client: OrchestrationClient, instance_id: str) -> None:
    await wait_for_status(client, instance_id, RuntimeStatus.RUNNING)
    await client.raise_event(instance_id, "Approval", {"by": "ada"})


async def terminate(client: OrchestrationClient, instance_id: str) -> None:
    await wait_for_history(client, instance_id, "ExecutionStarted")
    await client.terminate(instance_id, "enough")


async def suspend_then_resume(client: OrchestrationClient, instance_id: str) -> None:
    await wait_for_history(client, instance_id, "ExecutionStarted")
    await client.suspend(instance_id, "hold on")
    await wait_for_status(client, instance_id, RuntimeStatus.SUSPENDED)
    await client.raise_event(instance_id, "Go", "now")
    await wait_for_history(client, instance_id, "EventRaised")
    await client.resume(instance_id, "carry on")


async def rewind_after_failure(client: OrchestrationClient, instance_id: str) -> None:
    await wait_for_status(client, instance_id, RuntimeStatus.FAILED)
    await client.rewind(instance_id, "try again")
    await wait_for_status(client, instance_id, RuntimeStatus.COMPLETED)


@dataclass(frozen=True)
class Scenario:
    name: str
    orchestrator: Callable[..., Any]
    covers: frozenset[str]
    """Event kinds the recorded history must hold (so the scenario tests what it says)."""
    azure: Callable[..., Any] | None = None
    input: Any = None
    drive: Drive | None = None
    related: tuple[str, ...] = ()
    """Suffixes of other instances (`<id><suffix>`) whose histories are checked too."""


def kinds(*names: str) -> frozenset[str]:
    return frozenset(names)


SCENARIOS = [
    Scenario("chain", chain, kinds("TaskScheduled", "TaskCompleted", "ExecutionCompleted"), az_chain),
    Scenario("caught", caught, kinds("TaskFailed", "ExecutionCompleted"), az_caught),
    Scenario("uncaught", uncaught, kinds("TaskFailed", "ExecutionFailed"), az_uncaught),
    Scenario("nap", nap, kinds("TimerCreated", "TimerFired"), az_nap),
    Scenario("approval", approval, kinds("EventRaised"), az_approval, drive=approve),
    Scenario(
        "parent",
        parent,
        kinds("SubOrchestrationCreated", "SubOrchestrationCompleted"),
        az_parent,
        related=("-child",),
    ),
    Scenario("countdown", countdown, kinds("ContinuedAsNew", "ExecutionCompleted"), az_countdown, input=2),
    Scenario(
        "entity_user",
        entity_user,
        kinds("EntitySignalSent", "EntityCallScheduled", "EntityCallCompleted"),
        az_entity_user,
    ),
    Scenario("entity_failure", entity_failure, kinds("EntityCallFailed"), az_entity_failure),
    Scenario(
        "locked",
        locked,
        kinds("EntitySignalSent", "EntityLockScheduled", "EntityLockGranted", "EntityUnlockSent"),
    ),
    Scenario("ping_self", ping_self, kinds("EventSent", "EventRaised")),
    Scenario("terminated", waiter, kinds("ExecutionTerminated"), az_waiter, drive=terminate),
    Scenario(
        "suspended",
        waiter,
        kinds("ExecutionSuspended", "ExecutionResumed", "EventRaised"),
        az_waiter,
        drive=suspend_then_resume,
    ),
    Scenario(
        "rewound",
        retried_by_rewind,
        kinds("ExecutionRewound", "TaskCompleted"),
        az_retried,
        drive=rewind_after_failure,
    ),
]


@dataclass(frozen=True)
class Recording:
    instance_id: str
    status: Any
    histories: dict[str, list[HistoryEvent]]
    """Every recorded history by instance id, the scenario's own first."""


_recordings: dict[str, Recording] = {}


async def record(scenario: Scenario) -> Recording:
    """Run `scenario` on our runtime (once per test session) and keep its histories."""
    if scenario.name in _recordings:
        return _recordings[scenario.name]
    runtime = DurableFunctionRuntime("memory://", max_poll_interval=0.02)
    for name, fn in {"hello": hello, "boom": boom, "flaky": flaky}.items():
        runtime.register_function(name, fn)
    runtime.register_entity(counter, "counter")
    runtime.register_orchestrator(scenario.orchestrator, scenario.name)
    runtime.register_orchestrator(child, "child")
    async with runtime:
        client = runtime.client
        instance_id = await client.start_new(scenario.name, scenario.input, f"{scenario.name}-1")
        if scenario.drive is not None:
            await scenario.drive(client, instance_id)
        status = await client.wait_for_completion(instance_id, timeout=15)
        ids = [instance_id, *(instance_id + suffix for suffix in scenario.related)]
        histories = {i: await runtime.store.get_history(i) for i in ids}
    _recordings[scenario.name] = Recording(instance_id, status, histories)
    return _recordings[scenario.name]


def host_request(history: list[dict[str, Any]], instance_id: str, input_json: str | None) -> str:
    """The host's orchestrator request around `history`."""
    return json.dumps(
        {
            "history": history,
            "instanceId": instance_id,
            "input": input_json,
            "isReplaying": False,
            "parentInstanceId": None,
            "upperSchemaVersion": 2,
        }
    )


def execution_input(history: list[HistoryEvent]) -> str | None:
    return next(e.input for e in history if isinstance(e, ExecutionStarted))


def assert_host_shape(azure: list[dict[str, Any]], ours: list[HistoryEvent]) -> None:
    """What the host's histories always look like, checked on our JSON."""
    last_start = max(i for i, e in enumerate(azure) if e["EventType"] == 12)
    for position, event in enumerate(azure):
        assert {"EventType", "EventId", "IsPlayed", "Timestamp"} <= event.keys()
        assert event["IsPlayed"] is (position < last_start)
        assert TIMESTAMP.match(event["Timestamp"]), event["Timestamp"]
        if event["EventType"] in (1, 2) or (event["EventType"] == 16 and position > 0):
            assert azure[position + 1]["EventType"] == 13, "terminal events close their episode"
    scheduled = sorted(e.event_id for e in ours if isinstance(e, SCHEDULING_EVENTS))
    sent = sorted(e["EventId"] for e in azure if e["EventType"] in (4, 7, 10, 14))
    assert sent == scheduled == list(range(len(scheduled)))
    assert all(e["EventId"] == -1 for e in azure if e["EventType"] not in (4, 7, 10, 14))


# ----- recorded histories ------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_recorded_histories_round_trip_and_parse_in_the_sdk(scenario: Scenario) -> None:
    recording = await record(scenario)
    own = recording.histories[recording.instance_id]
    assert scenario.covers <= {e.kind for e in own}
    for instance_id, history in recording.histories.items():
        azure = to_azure_history(history, instance_id=instance_id)
        assert json.loads(json.dumps(azure)) == azure  # plain JSON values only
        assert_host_shape(azure, history)
        assert from_azure_history(azure) == history

        context = df.DurableOrchestrationContext.from_json(
            host_request(azure, instance_id, execution_input(history))
        )
        assert [int(e.event_type) for e in context.histories] == [e["EventType"] for e in azure]
        assert context.instance_id == instance_id


AZURE_SCENARIOS = [s for s in SCENARIOS if s.azure is not None]


@pytest.mark.parametrize("scenario", AZURE_SCENARIOS, ids=[s.name for s in AZURE_SCENARIOS])
async def test_the_sdk_replays_our_history_to_the_same_end(scenario: Scenario) -> None:
    assert scenario.azure is not None
    recording = await record(scenario)
    history = recording.histories[recording.instance_id]
    azure = to_azure_history(history, instance_id=recording.instance_id)
    state = sdk_state(scenario.azure, host_request(azure, recording.instance_id, execution_input(history)))
    status = recording.status
    if status.runtime_status is RuntimeStatus.COMPLETED:
        assert state["isDone"] is True
        assert state["output"] == status.output
    else:
        assert state["isDone"] is False
    if status.runtime_status is RuntimeStatus.FAILED:
        last_failure = [e for e in history if isinstance(e, TaskFailed)][-1].failure
        assert state["error"].startswith(last_failure.message)


# ----- every event kind, written by hand ------------------------------------------------------------------

T0 = datetime(2026, 11, 30, 21, 7, 10, 123456, tzinfo=UTC)
OOPS = FailureDetails(error_type="ValueError", message="oops", details="Traceback ...")


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


EVERY_KIND: list[HistoryEvent] = [
    ContinuedAsNew(timestamp=at(0), input="7"),
    OrchestratorStarted(timestamp=at(1)),
    ExecutionStarted(
        timestamp=at(1),
        name="work",
        input='{"a":1}',
        execution_id="e2",
        parent_instance_id="boss",
        parent_execution_id="e1",
        parent_task_id=4,
    ),
    TaskScheduled(event_id=0, timestamp=at(1), name="hello", input='"x"'),
    SubOrchestrationCreated(event_id=1, timestamp=at(1), name="child", instance_id="kid", input=None),
    TimerCreated(event_id=2, timestamp=at(1), fire_at=at(60)),
    EventSent(event_id=3, timestamp=at(1), instance_id="other", name="Ping", input="1"),
    EntityCallScheduled(event_id=4, timestamp=at(1), entity_id="@counter@k", operation="add", input="3"),
    EntitySignalSent(
        event_id=5, timestamp=at(1), entity_id="@counter@k", operation="add", input="2", scheduled_time=at(30)
    ),
    EntitySignalSent(event_id=6, timestamp=at(1), entity_id="@counter@k", operation="reset"),
    EntityLockScheduled(event_id=7, timestamp=at(1), entity_ids=("@a@1", "@b@2")),
    EntityLockScheduled(event_id=8, timestamp=at(1), entity_ids=("@c@3",)),
    EntityCallScheduled(event_id=9, timestamp=at(1), entity_id="@counter@k", operation="boom"),
    OrchestratorCompleted(timestamp=at(1)),
    OrchestratorStarted(timestamp=at(2)),
    TaskCompleted(timestamp=at(2), task_scheduled_id=0, result='"Hello x!"'),
    TaskFailed(timestamp=at(2), task_scheduled_id=0, failure=OOPS),
    SubOrchestrationCompleted(timestamp=at(2), task_scheduled_id=1, result=None),
    SubOrchestrationFailed(timestamp=at(2), task_scheduled_id=1, failure=OOPS),
    TimerFired(timestamp=at(2), timer_id=2, fire_at=at(60)),
    EventRaised(timestamp=at(2), name="Approval", input='{"by":"ada"}'),
    EntityCallCompleted(timestamp=at(2), task_scheduled_id=4, result="5"),
    EntityLockGranted(timestamp=at(2), task_scheduled_id=7, entity_ids=("@a@1", "@b@2")),
    EntityLockFailed(timestamp=at(2), task_scheduled_id=8, failure=OOPS),
    EntityCallFailed(timestamp=at(2), task_scheduled_id=9, failure=OOPS.model_copy(update={"details": ""})),
    ExecutionSuspended(timestamp=at(2), reason="hold"),
    ExecutionResumed(timestamp=at(2)),
    ExecutionRewound(timestamp=at(2), reason="again"),
    ExecutionTerminated(timestamp=at(2), reason="stop"),
    OrchestratorCompleted(timestamp=at(2)),
    ExecutionFailed(timestamp=at(2), failure=OOPS),
    OrchestratorStarted(timestamp=at(3)),
    EntityUnlockSent(event_id=10, timestamp=at(3), entity_ids=("@a@1", "@b@2"), lock_task_id=7),
    OrchestratorCompleted(timestamp=at(3)),
    ExecutionCompleted(timestamp=at(3), result='"done"'),
]


def test_every_event_kind_round_trips_exactly() -> None:
    azure = to_azure_history(EVERY_KIND, instance_id="me")
    assert from_azure_history(azure) == EVERY_KIND
    assert json.loads(json.dumps(azure)) == azure


def test_what_our_events_look_like_in_the_hosts_json() -> None:
    azure = to_azure_history(EVERY_KIND, instance_id="me")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for ours, theirs in zip(
        [e for e in EVERY_KIND if not isinstance(e, ExecutionCompleted | ExecutionFailed)],
        [e for e in azure if e["EventType"] not in (1, 2)],
        strict=True,
    ):
        by_kind.setdefault(ours.kind, []).append(theirs)

    def fields(event: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in event.items() if k not in ("IsPlayed", "Timestamp")}

    assert azure[0] == {
        "EventType": 16,
        "EventId": -1,
        "IsPlayed": True,
        "Timestamp": "2026-11-30T21:07:10.123456Z",
        "Input": "7",
    }
    assert fields(by_kind["ExecutionStarted"][0]) == {
        "EventType": 0,
        "EventId": -1,
        "Name": "work",
        "Version": None,
        "Input": '{"a":1}',
        "OrchestrationInstance": {"InstanceId": "me", "ExecutionId": "e2"},
        "ParentInstance": {
            "Name": None,
            "Version": None,
            "TaskScheduleId": 4,
            "OrchestrationInstance": {"InstanceId": "boss", "ExecutionId": "e1"},
        },
    }
    assert fields(by_kind["TaskScheduled"][0]) == {
        "EventType": 4,
        "EventId": 0,
        "Name": "hello",
        "Version": None,
        "Input": '"x"',
    }
    assert fields(by_kind["TaskFailed"][0]) == {
        "EventType": 6,
        "EventId": -1,
        "TaskScheduledId": 0,
        "Reason": "oops",
        "Details": "Traceback ...",
        "FailureDetails": {"ErrorType": "ValueError", "ErrorMessage": "oops", "StackTrace": "Traceback ..."},
    }
    assert fields(by_kind["SubOrchestrationCreated"][0])["InstanceId"] == "kid"
    assert by_kind["TimerCreated"][0]["FireAt"] == "2026-11-30T21:08:10.123456Z"
    assert fields(by_kind["TimerFired"][0]) == {
        "EventType": 11,
        "EventId": -1,
        "TimerId": 2,
        "FireAt": "2026-11-30T21:08:10.123456Z",
    }
    assert fields(by_kind["ExecutionRewound"][0]) == {"EventType": 17, "EventId": -1, "Data": "again"}
    assert fields(by_kind["ExecutionTerminated"][0]) == {"EventType": 3, "EventId": -1, "Input": "stop"}
    assert fields(by_kind["ExecutionSuspended"][0]) == {"EventType": 19, "EventId": -1, "Reason": "hold"}
    assert fields(by_kind["ExecutionResumed"][0]) == {"EventType": 20, "EventId": -1, "Reason": None}

    call_id = entity_request_id("me", 4)
    call = by_kind["EntityCallScheduled"][0]
    assert (call["EventType"], call["EventId"], call["InstanceId"], call["Name"]) == (
        14,
        4,
        "@counter@k",
        "op",
    )
    assert json.loads(call["Input"]) == {
        "id": call_id,
        "op": "add",
        "signal": False,
        "input": "3",
        "parent": "me",
    }
    scheduled_signal = json.loads(by_kind["EntitySignalSent"][0]["Input"])
    assert scheduled_signal["signal"] is True and scheduled_signal["due"] == "2026-11-30T21:07:40.123456Z"
    answer = by_kind["EntityCallCompleted"][0]
    assert (answer["EventType"], answer["Name"], json.loads(answer["Input"])) == (
        15,
        call_id,
        {"result": "5"},
    )
    failed = json.loads(by_kind["EntityCallFailed"][0]["Input"])
    assert (failed["result"], failed["exceptionType"]) == ('"oops"', "ValueError")
    lock = by_kind["EntityLockScheduled"][0]
    assert (lock["InstanceId"], lock["Name"]) == ("@a@1", "lock")
    assert json.loads(lock["Input"])["lockset"] == ["@a@1", "@b@2"]
    granted = by_kind["EntityLockGranted"][0]
    assert granted["Name"] == entity_request_id("me", 7)
    assert json.loads(granted["Input"]) == {"result": '["@a@1", "@b@2"]'}
    unlock = by_kind["EntityUnlockSent"][0]
    assert (unlock["EventId"], unlock["Name"]) == (10, "release")
    assert json.loads(unlock["Input"])["id"] == entity_request_id("me", 7)


def test_terminal_events_move_inside_their_episode_and_played_ends_at_the_last_start() -> None:
    azure = to_azure_history(EVERY_KIND, instance_id="me")
    types = [e["EventType"] for e in azure]
    assert types[-2:] == [1, 13]
    failed_at = types.index(2)
    assert types[failed_at + 1] == 13
    last_start = max(i for i, t in enumerate(types) if t == 12)
    assert [e["IsPlayed"] for e in azure] == [i < last_start for i in range(len(azure))]


@pytest.mark.parametrize(
    "event",
    [
        EntityOperation(operation="add"),
        EntityLockRequest(
            owner_instance_id="o", owner_execution_id="e", task_id=0, entity_ids=("@a@1",), position=0
        ),
        EntityUnlock(owner_instance_id="o", owner_execution_id="e", task_id=0),
    ],
    ids=lambda e: e.kind,
)
def test_entity_inbox_events_have_no_host_form(event: HistoryEvent) -> None:
    history = [OrchestratorStarted(timestamp=T0), event]
    with pytest.raises(ValueError, match=rf"history position 1: {event.kind} is an entity-inbox event"):
        to_azure_history(history, instance_id="me")


# ----- host JSON, written by hand ---------------------------------------------------------------------------

HOST_GUID = "8c0a2f8e-5e0b-4d47-9b9a-0d1e2f3a4b5c"
HOST_FAILED_GUID = "0f1e2d3c-4b5a-4968-8776-655443322110"


def host_history() -> list[dict[str, Any]]:
    """A host history as the extension sends it: 7-digit fractions, extra fields, nulls."""
    return [
        {"EventType": 12, "EventId": -1, "IsPlayed": True, "Timestamp": "2026-11-30T21:07:10.1234567Z"},
        {
            "EventType": 0,
            "EventId": -1,
            "IsPlayed": True,
            "Timestamp": "2026-11-30T21:07:10.1234567Z",
            "OrchestrationInstance": {"InstanceId": "abc", "ExecutionId": "f00d"},
            "ParentInstance": None,
            "Name": "chain",
            "Version": None,
            "Input": None,
            "Tags": None,
            "Correlation": None,
            "ScheduledStartTime": None,
            "Generation": 0,
        },
        {
            "EventType": 4,
            "EventId": 0,
            "IsPlayed": True,
            "Timestamp": "2026-11-30T21:07:10.2Z",
            "Name": "hello",
            "Version": "",
            "Input": '"Tokyo"',
        },
        {
            "EventType": 14,
            "EventId": 1,
            "IsPlayed": True,
            "Timestamp": "2026-11-30T21:07:10.2Z",
            "InstanceId": "@counter@k",
            "Name": "op",
            "Input": json.dumps(
                {
                    "op": "add",
                    "signal": False,
                    "input": "3",
                    "id": HOST_GUID,
                    "parent": "abc",
                    "timestamp": "2026-11-30T21:07:10.2Z",
                }
            ),
        },
        {
            "EventType": 14,
            "EventId": 2,
            "IsPlayed": True,
            "Timestamp": "2026-11-30T21:07:10.2Z",
            "InstanceId": "@counter@k",
            "Name": "op",
            "Input": json.dumps(
                {"op": "add", "signal": True, "input": "2", "id": "11111111-2222-3333-4444-555555555555"}
            ),
        },
        {
            "EventType": 14,
            "EventId": 3,
            "IsPlayed": True,
            "Timestamp": "2026-11-30T21:07:10.2Z",
            "InstanceId": "@counter@k",
            "Name": "op",
            "Input": json.dumps({"op": "boom", "id": HOST_FAILED_GUID}),
        },
        {"EventType": 13, "IsPlayed": True, "Timestamp": "2026-11-30T21:07:10.3+00:00"},
        {"EventType": 12, "EventId": -1, "IsPlayed": False, "Timestamp": "2026-11-30T22:07:11+01:00"},
        {
            "EventType": 5,
            "EventId": -1,
            "IsPlayed": False,
            "Timestamp": "2026-11-30T21:07:11",
            "TaskScheduledId": 0,
            "Result": '"Hello Tokyo!"',
        },
        {
            "EventType": 15,
            "EventId": -1,
            "IsPlayed": False,
            "Timestamp": "2026-11-30T21:07:11Z",
            "Name": HOST_GUID,
            "Input": '{"result":"5"}',
        },
        {
            "EventType": 15,
            "EventId": -1,
            "IsPlayed": False,
            "Timestamp": "2026-11-30T21:07:11Z",
            "Name": HOST_FAILED_GUID,
            "Input": json.dumps(
                {"result": '"no such op"', "exceptionType": "System.InvalidOperationException"}
            ),
        },
        {
            "EventType": 15,
            "EventId": -1,
            "IsPlayed": False,
            "Timestamp": "2026-11-30T21:07:11Z",
            "Name": "Approval",
            "Input": None,
        },
        {
            "EventType": 6,
            "EventId": -1,
            "IsPlayed": False,
            "Timestamp": "2026-11-30T21:07:11Z",
            "TaskScheduledId": 0,
            "Reason": "Activity failed",
            "Details": None,
        },
        {
            "EventType": 1,
            "EventId": -1,
            "IsPlayed": False,
            "Timestamp": "2026-11-30T21:07:12Z",
            "Result": "[]",
            "OrchestrationStatus": 1,
        },
        {"EventType": 13, "EventId": -1, "IsPlayed": False, "Timestamp": "2026-11-30T21:07:12Z"},
    ]


def test_host_json_reads_field_by_field() -> None:
    started = datetime(2026, 11, 30, 21, 7, 10, 123456, tzinfo=UTC)
    sent_at = datetime(2026, 11, 30, 21, 7, 10, 200000, tzinfo=UTC)
    answered = datetime(2026, 11, 30, 21, 7, 11, tzinfo=UTC)
    assert from_azure_history(host_history()) == [
        OrchestratorStarted(timestamp=started),
        ExecutionStarted(timestamp=started, name="chain", input=None, execution_id="f00d"),
        TaskScheduled(event_id=0, timestamp=sent_at, name="hello", input='"Tokyo"'),
        EntityCallScheduled(
            event_id=1, timestamp=sent_at, entity_id="@counter@k", operation="add", input="3"
        ),
        EntitySignalSent(event_id=2, timestamp=sent_at, entity_id="@counter@k", operation="add", input="2"),
        EntityCallScheduled(event_id=3, timestamp=sent_at, entity_id="@counter@k", operation="boom"),
        OrchestratorCompleted(timestamp=datetime(2026, 11, 30, 21, 7, 10, 300000, tzinfo=UTC)),
        OrchestratorStarted(timestamp=answered),  # 22:07:11+01:00, in UTC
        TaskCompleted(timestamp=answered, task_scheduled_id=0, result='"Hello Tokyo!"'),  # naive = UTC
        EntityCallCompleted(timestamp=answered, task_scheduled_id=1, result="5"),
        EntityCallFailed(
            timestamp=answered,
            task_scheduled_id=3,
            failure=FailureDetails(error_type="System.InvalidOperationException", message="no such op"),
        ),
        EventRaised(timestamp=answered, name="Approval", input=None),
        TaskFailed(
            timestamp=answered,
            task_scheduled_id=0,
            failure=FailureDetails(error_type=UNKNOWN_ERROR_TYPE, message="Activity failed", details=""),
        ),
        OrchestratorCompleted(timestamp=datetime(2026, 11, 30, 21, 7, 12, tzinfo=UTC)),
        ExecutionCompleted(timestamp=datetime(2026, 11, 30, 21, 7, 12, tzinfo=UTC), result="[]"),
    ]


def test_host_json_with_a_parent_reads_the_parent() -> None:
    event = {
        "EventType": 0,
        "EventId": -1,
        "Timestamp": "2026-11-30T21:07:10Z",
        "Name": "child",
        "Version": None,
        "Input": "5",
        "OrchestrationInstance": {"InstanceId": "kid", "ExecutionId": "x2"},
        "ParentInstance": {
            "Name": "parent",
            "Version": "",
            "TaskScheduleId": 3,
            "OrchestrationInstance": {"InstanceId": "boss", "ExecutionId": "x1"},
        },
    }
    [started] = from_azure_history([event])
    assert isinstance(started, ExecutionStarted)
    assert (started.parent_instance_id, started.parent_execution_id, started.parent_task_id) == (
        "boss",
        "x1",
        3,
    )
    assert (started.name, started.input, started.execution_id) == ("child", "5", "x2")


# ----- malformed input ---------------------------------------------------------------------------------


def event(event_type: Any, **fields: Any) -> dict[str, Any]:
    return {
        "EventType": event_type,
        "EventId": -1,
        "IsPlayed": False,
        "Timestamp": "2026-11-30T21:07:10Z",
        **fields,
    }


START = event(12)

MALFORMED: list[tuple[str, Any, str]] = [
    ("not a list", {"history": []}, r"a history must be a list of events, got dict"),
    ("text", "[]", r"a history must be a list of events, got str"),
    ("event not an object", [START, [12]], r"history event 1 is not an object \(got list\)"),
    ("no EventType", [START, {"EventId": -1}], r"history event 1 has no EventType"),
    ("unknown EventType", [START, event(42)], r"history event 1 has an unknown or unsupported EventType 42"),
    ("EventType as text", [event("12")], r"history event 0 has an unknown or unsupported EventType '12'"),
    ("EventType as bool", [event(True)], r"history event 0 has an unknown or unsupported EventType True"),
    ("HistoryState", [event(18)], r"history event 0 has an unknown or unsupported EventType 18"),
    ("no Timestamp", [{"EventType": 12}], r"history event 0 \(OrchestratorStarted\): missing Timestamp"),
    (
        "bad Timestamp",
        [START, {**event(13), "Timestamp": "yesterday"}],
        r"history event 1 \(OrchestratorCompleted\): Timestamp 'yesterday' is not an ISO 8601 time",
    ),
    (
        "Timestamp not text",
        [{**START, "Timestamp": 1764536830}],
        r"history event 0 \(OrchestratorStarted\): Timestamp must be text or null, got int",
    ),
    (
        "Input not text",
        [START, event(0, Name="o", Version=None, Input={"a": 1})],
        r"history event 1 \(ExecutionStarted\): Input must be text or null, got dict",
    ),
    ("no Name", [START, event(4, Input=None)], r"history event 1 \(TaskScheduled\): missing Name"),
    (
        "EventId not a number",
        [START, event(4, Name="a", EventId="0")],
        r"history event 1 \(TaskScheduled\): EventId must be an integer, got str",
    ),
    (
        "no TaskScheduledId",
        [START, event(5, Result="1")],
        r"history event 1 \(TaskCompleted\): missing TaskScheduledId",
    ),
    (
        "TaskScheduledId as text",
        [START, event(6, TaskScheduledId="0", Reason="r")],
        r"history event 1 \(TaskFailed\): TaskScheduledId must be an integer, got str",
    ),
    ("no FireAt", [START, event(10)], r"history event 1 \(TimerCreated\): missing FireAt"),
    (
        "OrchestrationInstance not an object",
        [START, event(0, Name="o", OrchestrationInstance="abc")],
        r"history event 1 \(ExecutionStarted\): OrchestrationInstance must be an object or null, got str",
    ),
    (
        "entity request not JSON",
        [START, event(14, InstanceId="@counter@k", Name="op", Input="{nope")],
        r"history event 1 \(EventSent\): Input is not JSON text",
    ),
    (
        "entity request not an object",
        [START, event(14, InstanceId="@counter@k", Name="op", Input="[]")],
        r"history event 1 \(EventSent\): Input must hold a JSON object, got list",
    ),
    (
        "entity request without op",
        [START, event(14, InstanceId="@counter@k", Name="op", Input='{"id": "g"}')],
        r"history event 1 \(EventSent\), Input: missing op",
    ),
    (
        "signal flag not a bool",
        [
            START,
            event(14, InstanceId="@counter@k", Name="op", Input='{"id": "g", "op": "a", "signal": "yes"}'),
        ],
        r"history event 1 \(EventSent\), Input: signal must be true or false, got str",
    ),
    (
        "release of an unknown lock",
        [START, event(14, InstanceId="@a@1", Name="release", Input='{"id": "g", "lockset": ["@a@1"]}')],
        r"history event 1 \(EventSent\): release of a lock request not in the history \(g\)",
    ),
    (
        "entity answer not an object",
        [
            START,
            event(14, EventId=0, InstanceId="@counter@k", Name="op", Input='{"id": "g", "op": "get"}'),
            event(15, Name="g", Input='"5"'),
        ],
        r"history event 2 \(EventRaised\): Input must hold a JSON object, got str",
    ),
    (
        "lock grant without ids",
        [
            START,
            event(14, EventId=0, InstanceId="@a@1", Name="lock", Input='{"id": "g", "lockset": ["@a@1"]}'),
            event(15, Name="g", Input='{"result": "true"}'),
        ],
        r"history event 2 \(EventRaised\), Input: result of a lock grant must hold the list of locked "
        r"entity ids",
    ),
]


@pytest.mark.parametrize(("history", "message"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_host_json_is_a_value_error_naming_the_event(history: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        from_azure_history(history)
