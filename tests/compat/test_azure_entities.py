"""Azure-style entity functions on our core's entities.

The parity oracle: for entity functions written against `df.DurableEntityContext` and batches of
several operations, `execute_entity_batch` (our core's batch machinery running the function through
`AzureEntityContext`) answers what the real SDK handle `df.Entity.create(fn)` answers. Then the
differences we keep on purpose, each shown against the SDK; then the same functions registered with
`core_entity` on a runtime (in-memory and SQLite stores; PostgreSQL when configured), signalled from
the client and called from orchestrations; then the refusals.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any, TypeVar

import azure.durable_functions as df
import azure.functions as func
import pytest
from asynkron_durable_azure.entities import AzureEntityContext, core_entity
from asynkron_durable_azure.entity_protocol import execute_entity_batch
from asynkron_durable_azure.orchestration import core_orchestrator
from azure.durable_functions.models.utils.df_serialization import df_dumps
from support.orchestrations import completed, eventually

from asynkron_durable import (
    DurableError,
    DurableFunctionRuntime,
    EntityId,
    OrchestrationContext,
    TaskFailedError,
)
from asynkron_durable.registry import Registry

T = TypeVar("T")

# The SDK's codec advises once per process to pass an expected type: not what these tests are about.
pytestmark = [
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called without:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:azure.functions Durable JSON codec reconstructed:DeprecationWarning"),
]

DEADLINE = 15.0
"""Seconds any single wait may take before the test fails."""

# ----- Azure-style entity functions ----------------------------------------------------------------


def counter(context: df.DurableEntityContext) -> None:
    """The counter of Azure's documentation."""
    value = context.get_state(lambda: 0)
    match context.operation_name:
        case "add":
            value += context.get_input()
        case "reset":
            value = 0
        case "get":
            context.set_result(value)
    context.set_state(value)


def strict(context: df.DurableEntityContext) -> None:
    """Refuses unknown operations before touching the state; `spoil` changes it, then raises."""
    log = context.get_state(list)
    match context.operation_name:
        case "push":
            context.set_state([*log, context.get_input()])
            context.set_result(len(log) + 1)
        case "spoil":
            context.set_state(["spoilt"])
            raise RuntimeError("spoilt, then failed")
        case other:
            raise ValueError(f"no operation {other!r}")


class Point:
    """A custom class the SDK's codec carries through `to_json`/`from_json`."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    @staticmethod
    def to_json(point: Point) -> dict[str, int]:
        return {"x": point.x, "y": point.y}

    @staticmethod
    def from_json(data: dict[str, int]) -> Point:
        return Point(data["x"], data["y"])


def path(context: df.DurableEntityContext) -> None:
    """State: a list of Points. `move` takes a Point and answers the new last Point."""
    points = context.get_state(lambda: [Point(0, 0)])
    if not all(isinstance(p, Point) for p in points):
        raise TypeError(f"state was not decoded into Points: {points!r}")
    match context.operation_name:
        case "move":
            step = context.get_input()
            if not isinstance(step, Point):
                raise TypeError(f"input was not decoded into a Point: {step!r}")
            last = points[-1]
            points.append(Point(last.x + step.x, last.y + step.y))
            context.set_state(points)
            context.set_result(points[-1])
        case "length":
            context.set_result(len(points))


def disposable(context: df.DurableEntityContext) -> None:
    """Deletes itself on `delete`; `delete_then_answer` deletes it and then sets a result."""
    match context.operation_name:
        case "set":
            context.set_state(context.get_input())
        case "delete":
            context.destruct_on_exit()
        case "delete_then_answer":
            context.destruct_on_exit()
            context.set_result("gone")
        case "get":
            context.set_result(context.get_state(lambda: "initial"))


def inputs(context: df.DurableEntityContext) -> None:
    """Answers what it was given (`get_input` also without input), and who and what it is."""
    context.set_result(
        {
            "input": context.get_input(),
            "entity": [context.entity_name, context.entity_key, context.operation_name],
            "new": context.is_newly_constructed,
        }
    )


def in_place(context: df.DurableEntityContext) -> None:
    """Changes the state it got without calling `set_state` (the SDK keeps that change when
    there was state to get), and reads with a bad initializer on `bad_initializer`."""
    if context.operation_name == "bad_initializer":
        context.get_state("not callable")
    elif context.operation_name == "seed":
        context.set_state({"seen": []})
    else:
        state = context.get_state(lambda: {"seen": []})
        state["seen"].append(context.operation_name)


# ----- the protocol's JSON ---------------------------------------------------------------------------


def host_input(value: Any) -> str:
    """An operation input as the host hands it over for a Python caller: the JSON text of the
    caller's `df_dumps` text (so `get_input` decodes twice)."""
    return json.dumps(df_dumps(value))


def batch(
    name: str, operations: list[tuple[str, Any]], state: Any = None, exists: bool = False, key: str = "k1"
) -> str:
    """A host request: `operations` as (name, input) pairs; `state` given as a value, or absent."""
    return json.dumps(
        {
            "self": {"name": name, "key": key},
            "state": df_dumps(state) if exists else None,
            "exists": exists,
            "batch": [{"name": op, "input": host_input(value), "signal": False} for op, value in operations],
        }
    )


def raw_batch(name: str, items: list[dict[str, Any]]) -> str:
    """A host request for a fresh entity with operation items as given (to vary their `input`)."""
    return json.dumps({"self": {"name": name, "key": "k1"}, "state": None, "exists": False, "batch": items})


def sdk(fn: Callable[..., Any], request_json: str) -> dict[str, Any]:
    """What the real SDK's handle answers."""
    return dict(json.loads(df.Entity.create(fn)(SimpleNamespace(body=request_json))))


def ours(fn: Callable[..., Any], request_json: str) -> dict[str, Any]:
    return dict(json.loads(execute_entity_batch(fn, request_json)))


def comparable(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer with its JSON texts decoded (the two sides space their JSON differently) and
    without `duration` and `startTime`: those are clock readings, different on every run."""
    assert set(answer) == {"entityExists", "entityState", "results", "signals"}, answer
    results = []
    for result in answer["results"]:
        assert set(result) == {"isError", "duration", "startTime", "result"}, result
        assert isinstance(result["duration"], int) and isinstance(result["startTime"], int)
        results.append({"isError": result["isError"], "result": json.loads(result["result"])})
    return {
        "entityExists": answer["entityExists"],
        "entityState": json.loads(answer["entityState"]),
        "results": results,
        "signals": answer["signals"],
    }


# ----- parity with the SDK ---------------------------------------------------------------------------

PARITY: list[tuple[str, Callable[..., Any], str]] = [
    ("counter, fresh", counter, batch("counter", [("add", 5), ("add", -2), ("get", None)])),
    ("counter, existing", counter, batch("counter", [("get", None), ("get", None)], state=40, exists=True)),
    ("counter, reset", counter, batch("counter", [("add", 1), ("reset", None), ("add", 7), ("get", None)])),
    (
        "raises on a bad op",
        strict,
        batch("strict", [("push", "a"), ("pop", None), ("push", "b"), ("nope", 1)], state=["z"], exists=True),
    ),
    (
        "custom class state",
        path,
        batch("path", [("move", Point(1, 2)), ("move", Point(3, -1)), ("length", None)]),
    ),
    (
        "custom class, existing state",
        path,
        batch("path", [("length", None), ("move", Point(1, 1))], state=[Point(5, 5)], exists=True),
    ),
    (
        "destruct_on_exit",
        disposable,
        batch("disposable", [("set", 9), ("delete", None)], state={"a": 1}, exists=True),
    ),
    ("destruct, then set again", disposable, batch("disposable", [("delete", None), ("set", 3)], 1, True)),
    ("result after destruct", disposable, batch("disposable", [("set", 2), ("delete_then_answer", None)])),
    ("get on a fresh entity", disposable, batch("disposable", [("get", None)])),
    (
        "get_input, no input",
        inputs,
        batch("inputs", [("none", None), ("number", 3), ("text", "hi")], key="the key"),
    ),
    ("state changed in place", in_place, batch("in_place", [("seed", None), ("a", None), ("b", None)])),
    ("in place without state", in_place, batch("in_place", [("a", None)])),
    ("untouched state", inputs, batch("inputs", [("x", None)], state={"kept": [1, 2]}, exists=True)),
    ("bad initializer", in_place, batch("in_place", [("bad_initializer", None)])),
]


@pytest.mark.parametrize(("fn", "request_json"), [case[1:] for case in PARITY], ids=[c[0] for c in PARITY])
def test_batches_answer_as_the_sdk_does(fn: Callable[..., Any], request_json: str) -> None:
    assert comparable(ours(fn, request_json)) == comparable(sdk(fn, request_json))


def test_parity_cases_are_not_trivial() -> None:
    """The oracle compares real work: spot-check answers the cases above must produce."""
    counted = comparable(ours(counter, PARITY[0][2]))
    assert counted["entityState"] == 3 and counted["results"][2] == {"isError": False, "result": 3}
    refused = comparable(ours(strict, PARITY[3][2]))
    assert refused["entityState"] == ["z", "a", "b"]
    assert refused["results"][1] == {"isError": True, "result": "no operation 'pop'"}
    moved = comparable(ours(path, PARITY[4][2]))
    assert moved["entityState"][-1] == {
        "__class__": "Point",
        "__module__": __name__,
        "__data__": {"x": 4, "y": 1},
    }
    assert moved["results"][2]["result"] == 3
    deleted = comparable(ours(disposable, PARITY[6][2]))
    assert deleted["entityExists"] is False and deleted["entityState"] is None
    answered = comparable(ours(disposable, PARITY[8][2]))
    assert answered["entityExists"] is True and answered["entityState"] is None
    described = comparable(ours(inputs, PARITY[10][2]))["results"]
    assert [r["result"]["input"] for r in described] == [None, 3, "hi"]
    assert described[0]["result"]["entity"] == ["inputs", "the key", "none"]
    seen = comparable(ours(in_place, PARITY[11][2]))
    assert seen["entityState"] == {"seen": ["a", "b"]}
    bad = comparable(ours(in_place, PARITY[14][2]))["results"][0]
    assert bad == {"isError": True, "result": "initializer argument needs to be a callable function"}


def test_timings_are_milliseconds_per_operation() -> None:
    before = int(time.time() * 1000)
    answer = ours(counter, batch("counter", [("add", 1), ("get", None)]))
    after = int(time.time() * 1000)
    for result in answer["results"]:
        assert before <= result["startTime"] <= after
        assert 0 <= result["duration"] <= after - before


# ----- differences kept on purpose ---------------------------------------------------------------------


def test_a_failed_operation_rolls_back_its_own_state_change() -> None:
    """The SDK keeps what a failing operation set before it raised; the core rolls it back."""
    request_json = batch("strict", [("push", "a"), ("spoil", None), ("push", "b")])
    expected_error = {"isError": True, "result": "spoilt, then failed"}
    assert comparable(ours(strict, request_json))["entityState"] == ["a", "b"]
    assert comparable(ours(strict, request_json))["results"][1] == expected_error
    assert comparable(sdk(strict, request_json))["entityState"] == ["spoilt", "b"]


def test_an_operation_without_a_result_answers_null() -> None:
    """The SDK never clears the result between operations: an `add` after a `get` in the same batch
    answers the `get`'s value again. Here it answers null."""
    request_json = batch("counter", [("get", None), ("add", 2)], state=10, exists=True)
    assert [r["result"] for r in comparable(ours(counter, request_json))["results"]] == [10, None]
    assert [r["result"] for r in comparable(sdk(counter, request_json))["results"]] == [10, 10]


@pytest.mark.parametrize("item", [{"name": "none", "input": None}, {"name": "none"}], ids=["null", "absent"])
def test_an_operation_without_any_input_reads_none(item: dict[str, Any]) -> None:
    """A client signal without input reaches the SDK with no input text, and `get_input` crashes
    on it (TypeError or KeyError); here it is None."""
    request_json = raw_batch("inputs", [item])
    assert comparable(ours(inputs, request_json))["results"][0]["result"]["input"] is None
    assert comparable(sdk(inputs, request_json))["results"][0]["isError"] is True


def test_an_input_posted_as_application_json_is_read() -> None:
    """An HTTP signal posted as application/json reaches the entity decoded once; the SDK fails on
    it (Azure/azure-functions-durable-python#346), we take it as the input."""
    request_json = raw_batch("inputs", [{"name": "posted", "input": json.dumps({"amount": 2})}])
    assert comparable(ours(inputs, request_json))["results"][0]["result"]["input"] == {"amount": 2}
    assert comparable(sdk(inputs, request_json))["results"][0]["isError"] is True


class Opaque:
    """Has no `to_json`: the SDK's codec cannot encode it."""


def test_an_unserialisable_state_fails_its_operation_only() -> None:
    """The SDK encodes the state after the batch, so the whole batch crashes; here the operation
    that set it fails and is rolled back."""

    def keeps(context: df.DurableEntityContext) -> None:
        context.set_state(Opaque() if context.get_input() == "opaque" else context.get_input())

    request_json = batch("keeps", [("set", 1), ("set", "opaque")])
    answer = comparable(ours(keeps, request_json))
    assert answer["entityState"] == 1
    assert answer["results"][0] == {"isError": False, "result": None}
    assert answer["results"][1]["isError"] is True
    assert "state of entity @keeps@k1 is not JSON-serialisable" in answer["results"][1]["result"]
    with pytest.raises(TypeError, match="does not expose a `to_json`"):
        sdk(keeps, request_json)


# ----- shapes of entity functions -------------------------------------------------------------------


def test_a_df_entity_create_handle_runs_its_function() -> None:
    request_json = batch("counter", [("add", 4), ("get", None)])
    handle = df.Entity.create(counter)
    assert comparable(ours(handle, request_json)) == comparable(ours(counter, request_json))
    assert core_entity(handle).__name__ == "counter"


def test_what_entity_trigger_leaves_behind_runs_its_function() -> None:
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.entity_trigger(context_name="context", entity_name="Tally")
    def tally(context: df.DurableEntityContext) -> None:
        context.set_result(context.get_state(lambda: 0) + 1)
        context.set_state(context.get_state(lambda: 0) + 1)

    answer = comparable(ours(tally, batch("tally", [("bump", None), ("bump", None)])))
    assert answer["entityState"] == 2
    assert [r["result"] for r in answer["results"]] == [1, 2]

    @app.orchestration_trigger(context_name="context")
    def not_an_entity(context: df.DurableOrchestrationContext) -> None:
        return None

    with pytest.raises(TypeError, match="is not an entity function"):
        core_entity(not_an_entity)


def test_the_context_has_the_sdk_context_public_api() -> None:
    """Every public member of the SDK's entity context, except the host-protocol factory
    `from_json` (the batch JSON is `execute_entity_batch`'s business)."""
    sdk_members = {m for m in dir(df.DurableEntityContext) if not m.startswith("_")}
    ours_members = {m for m in dir(AzureEntityContext) if not m.startswith("_")}
    assert sdk_members - ours_members == {"from_json"}
    assert ours_members - sdk_members == set()


# ----- refusals --------------------------------------------------------------------------------------


def generator_entity(context: df.DurableEntityContext) -> Iterator[None]:
    yield None


async def async_entity(context: df.DurableEntityContext) -> None:
    context.set_result(1)


async def async_generator_entity(context: df.DurableEntityContext) -> Any:
    yield None


@pytest.mark.parametrize("fn", [generator_entity, async_entity, async_generator_entity])
def test_generator_and_async_entity_functions_are_refused(fn: Callable[..., Any]) -> None:
    message = rf"entity function '{fn.__name__}' is a generator or async function: .* do I/O in an activity"
    with pytest.raises(DurableError, match=message):
        core_entity(fn)
    with pytest.raises(DurableError, match=message):
        core_entity(df.Entity.create(fn))
    with pytest.raises(DurableError, match=message):
        execute_entity_batch(fn, batch("x", [("op", None)]))


class AwaitingEntity:
    """A callable object whose `__call__` is async: only its result gives it away."""

    async def __call__(self, context: df.DurableEntityContext) -> None:
        context.set_state("never")


def test_an_entity_returning_an_awaitable_fails_its_operation() -> None:
    answer = comparable(ours(AwaitingEntity(), batch("awaiting", [("op", None)], state=1, exists=True)))
    assert answer["entityState"] == 1
    [result] = answer["results"]
    assert result["isError"] is True
    assert "returned coroutine: an entity function runs synchronously" in result["result"]


def test_what_is_not_callable_is_refused() -> None:
    with pytest.raises(TypeError, match="an entity function must be callable, got 42"):
        core_entity(42)  # type: ignore[arg-type]


def test_the_registry_takes_core_entity_under_the_function_name() -> None:
    registry = Registry()
    assert registry.add_entity(core_entity(df.Entity.create(counter))) == "counter"
    with pytest.raises(DurableError, match="is a generator or async function"):
        registry.add_entity(core_entity(generator_entity))


# ----- on our runtime ----------------------------------------------------------------------------------


def try_call(ctx: OrchestrationContext) -> Any:
    """Call operations one after the other: each step's result or its error."""
    outcomes = []
    for entity_id, operation, payload in ctx.get_input():
        try:
            outcomes.append({"ok": (yield ctx.call_entity(EntityId.parse(entity_id), operation, payload))})
        except TaskFailedError as exc:
            outcomes.append({"error": str(exc), "type": exc.error_type})
    return outcomes


def azure_walker(context: df.DurableOrchestrationContext) -> Any:
    """An Azure-style orchestrator: signals and calls the path entity with Points."""
    target = df.EntityId("path", context.get_input())
    context.signal_entity(target, "move", Point(1, 0))
    last = yield context.call_entity(target, "move", Point(0, 2))
    length = yield context.call_entity(target, "length")
    try:
        yield context.call_entity(target, "move", "not a point")
    except Exception as exc:
        failure = str(exc)
    return {"last": [type(last).__name__, last.x, last.y], "length": length, "failure": failure}


@pytest.fixture
def azure_runtime(runtime: DurableFunctionRuntime) -> DurableFunctionRuntime:
    for fn in (counter, strict, path, disposable):
        runtime.register_entity(core_entity(fn))
    runtime.register_entity(core_entity(df.Entity.create(inputs)), "inputs")
    runtime.register_orchestrator(try_call)
    runtime.register_orchestrator(core_orchestrator(azure_walker), "azure_walker")
    return runtime


async def calls(runtime: DurableFunctionRuntime, steps: list[list[Any]]) -> list[dict[str, Any]]:
    """Run `try_call` over `steps` ([entity instance id, operation, input]); its outcomes. An entity
    handles its inbox in order, so every earlier message to it has been processed by then."""
    instance_id = await runtime.client.start_new("try_call", steps)
    outcomes: list[dict[str, Any]] = completed(
        await runtime.client.wait_for_completion(instance_id, timeout=DEADLINE)
    )
    return outcomes


async def test_client_signals_and_orchestration_calls(azure_runtime: DurableFunctionRuntime) -> None:
    runtime, client = azure_runtime, azure_runtime.client
    votes = EntityId("counter", "votes")
    async with runtime:
        for amount in (5, 10, -3):
            await client.signal_entity(votes, "add", amount)
        state = await eventually(lambda: client.read_entity_state(votes), lambda s: s.state == 12, "12 votes")
        assert state.exists
        outcomes = await calls(
            runtime,
            [
                [votes.instance_id, "get", None],
                [votes.instance_id, "add", 8],
                [votes.instance_id, "get", None],
            ],
        )
        assert outcomes == [{"ok": 12}, {"ok": None}, {"ok": 20}]
        assert (await client.read_entity_state(votes)).state == 20


async def test_a_raising_operation_reaches_the_caller_and_changes_nothing(
    azure_runtime: DurableFunctionRuntime,
) -> None:
    runtime, client = azure_runtime, azure_runtime.client
    log = EntityId("strict", "log").instance_id
    async with runtime:
        outcomes = await calls(
            runtime, [[log, "push", "a"], [log, "spoil", None], [log, "pop", None], [log, "push", "b"]]
        )
        assert outcomes[0] == {"ok": 1}
        assert outcomes[1]["type"] == "RuntimeError"
        assert (
            "operation 'spoil' on entity '@strict@log' failed: RuntimeError: spoilt, then failed"
            in (outcomes[1]["error"])
        )
        assert outcomes[2]["type"] == "ValueError" and "no operation 'pop'" in outcomes[2]["error"]
        assert outcomes[3] == {"ok": 2}
        assert (await client.read_entity_state(EntityId("strict", "log"))).state == ["a", "b"]
        # A signalled operation that raises is dropped the same way.
        await client.signal_entity(EntityId("strict", "log"), "spoil")
        assert await calls(runtime, [[log, "push", "c"]]) == [{"ok": 3}]
        assert (await client.read_entity_state(EntityId("strict", "log"))).state == ["a", "b", "c"]


async def test_custom_classes_from_an_azure_orchestrator(azure_runtime: DurableFunctionRuntime) -> None:
    runtime, client = azure_runtime, azure_runtime.client
    async with runtime:
        instance_id = await client.start_new("azure_walker", "walk")
        output = completed(await client.wait_for_completion(instance_id, timeout=DEADLINE))
        assert output["last"] == ["Point", 1, 2]
        assert output["length"] == 3
        assert "input was not decoded into a Point: 'not a point'" in output["failure"]
        stored = (await client.read_entity_state(EntityId("path", "walk"))).state
        assert [p["__data__"] for p in stored] == [{"x": 0, "y": 0}, {"x": 1, "y": 0}, {"x": 1, "y": 2}]
        assert {(p["__class__"], p["__module__"]) for p in stored} == {("Point", __name__)}


async def test_destruct_on_exit_deletes_the_entity(azure_runtime: DurableFunctionRuntime) -> None:
    runtime, client = azure_runtime, azure_runtime.client
    gone = EntityId("disposable", "gone")
    async with runtime:
        await client.signal_entity(gone, "set", {"a": 1})
        await eventually(lambda: client.read_entity_state(gone), lambda s: s.exists, "the entity to exist")
        outcomes = await calls(runtime, [[gone.instance_id, "delete", None], [gone.instance_id, "get", None]])
        assert outcomes == [{"ok": None}, {"ok": "initial"}]
        # `get` set a result, which (as in the SDK) makes the entity exist, with a null state.
        state = await client.read_entity_state(gone)
        assert state.exists and state.state is None
        await calls(runtime, [[gone.instance_id, "delete", None]])
        assert not (await client.read_entity_state(gone)).exists


async def test_inputs_from_the_client_and_orchestrations(azure_runtime: DurableFunctionRuntime) -> None:
    runtime = azure_runtime
    who = EntityId("inputs", "Key 1").instance_id
    async with runtime:
        outcomes = await calls(runtime, [[who, "none", None], [who, "some", {"n": [1, 2]}]])
        assert outcomes == [
            {"ok": {"input": None, "entity": ["inputs", "Key 1", "none"], "new": False}},
            {"ok": {"input": {"n": [1, 2]}, "entity": ["inputs", "Key 1", "some"], "new": False}},
        ]
        # `inputs` sets a result only: the entity exists, with a null state.
        state = await runtime.client.read_entity_state(EntityId("inputs", "Key 1"))
        assert state.exists and state.state is None
