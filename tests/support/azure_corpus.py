"""Azure-style orchestrators for the parity oracle: each is run on our runtime, then every prefix
of its recorded history is fed to the real SDK and to our `execute_orchestrator`.

A case names the orchestrator, its input, the activities it needs (plain core activities: the
orchestrator side is what is compared), and optionally what the test does while it runs (raise an
event). `expected` is the output our runtime must reach.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
from asynkron_durable_azure.http_activity import HTTP_ACTIVITY_NAME

from asynkron_durable import DurableFunctionRuntime, EntityContext

Drive = Callable[[DurableFunctionRuntime, str], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    name: str
    orchestrator: Callable[..., Any]
    input: Any = None
    expected: Any = None
    children: dict[str, Callable[..., Any]] = field(default_factory=dict)
    drive: Drive | None = None


def hello(name: str) -> str:
    return f"Hello {name}!"


def double(n: int) -> int:
    return n * 2


def boom(message: str) -> None:
    raise ValueError(message)


_attempts: dict[str, int] = {}


def flaky(key: str) -> str:
    """Fails the first two calls per key (the corpus runs in one process)."""
    _attempts[key] = _attempts.get(key, 0) + 1
    if _attempts[key] < 3:
        raise RuntimeError(f"attempt {_attempts[key]} of {key} failed")
    return f"{key} after {_attempts[key]}"


def http_stub(request: dict[str, Any]) -> dict[str, Any]:
    """Stands in for the built-in HTTP activity: the orchestrator side is what is compared."""
    return {"statusCode": 200, "headers": {}, "content": f"{request['method']} {request['uri']}"}


TALLY: list[int] = []


def tally(n: int) -> int:
    TALLY.append(n)
    return n


ACTIVITIES: dict[str, Callable[..., Any]] = {
    HTTP_ACTIVITY_NAME: http_stub,
    "hello": hello,
    "double": double,
    "boom": boom,
    "flaky": flaky,
    "tally": tally,
}


def counter(ctx: EntityContext) -> None:
    value = ctx.get_state(lambda: 0)
    if ctx.operation_name == "explode":
        raise ValueError("no such operation")
    if ctx.operation_name == "add":
        ctx.set_state(value + ctx.get_input())
    elif ctx.operation_name == "get":
        ctx.set_result(value)


ENTITIES: dict[str, Callable[..., Any]] = {"counter": counter}


def chaining(context: df.DurableOrchestrationContext) -> Any:
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield context.call_activity("hello", city)))
    return results


def fan_out(context: df.DurableOrchestrationContext) -> Any:
    first = context.call_activity("double", 1)
    second = context.call_activity("double", 2)
    pair = yield context.task_all([second, first])  # yielded out of creation order
    rest = yield context.task_all([context.call_activity("double", n) for n in range(3, 8)])
    return sum(pair) + sum(rest)


def race(context: df.DurableOrchestrationContext) -> Any:
    deadline = context.current_utc_datetime + timedelta(seconds=context.get_input())
    approval = context.wait_for_external_event("Approval")
    timer = context.create_timer(deadline)
    winner = yield context.task_any([approval, timer])
    if winner == approval:
        timer.cancel()
        return f"approved: {approval.result}"
    return "timed out"


async def approve(runtime: DurableFunctionRuntime, instance_id: str) -> None:
    await runtime.client.raise_event(instance_id, "Approval", {"by": "ada"})


def failing_caught(context: df.DurableOrchestrationContext) -> Any:
    try:
        yield context.call_activity("boom", "no luck")
    except Exception as exc:
        return f"caught: {str(exc).splitlines()[0].strip()}"
    return "not reached"


def failing(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("hello", "first")
    yield context.call_activity("boom", "uncaught")
    return "not reached"


def retried(context: df.DurableOrchestrationContext) -> Any:
    options = df.RetryOptions(first_retry_interval_in_milliseconds=50, max_number_of_attempts=3)
    return (yield context.call_activity_with_retry("flaky", options, context.instance_id))


def retried_out(context: df.DurableOrchestrationContext) -> Any:
    options = df.RetryOptions(first_retry_interval_in_milliseconds=50, max_number_of_attempts=2)
    try:
        yield context.call_activity_with_retry("boom", options, "always")
    except Exception as exc:
        return f"gave up: {str(exc).splitlines()[0].strip()}"
    return "not reached"


def child(context: df.DurableOrchestrationContext) -> Any:
    n = context.get_input()
    return (yield context.call_activity("double", n)) + 1


def parent(context: df.DurableOrchestrationContext) -> Any:
    named = context.call_sub_orchestrator("child", 5, f"{context.instance_id}-named")
    default = context.call_sub_orchestrator("child", 7)
    return (yield context.task_all([named, default]))


def status_steps(context: df.DurableOrchestrationContext) -> Any:
    context.set_custom_status({"step": 1})
    yield context.call_activity("hello", "one")
    context.set_custom_status({"step": 2})
    yield context.call_activity("hello", "two")
    context.set_custom_status("done")
    return context.custom_status


def countdown(context: df.DurableOrchestrationContext) -> Any:
    n = context.get_input()
    yield context.call_activity("double", n)
    if n > 0:
        context.continue_as_new(n - 1)
        return None
    return "liftoff"


def entity_user(context: df.DurableOrchestrationContext) -> Any:
    counter_id = df.EntityId("counter", context.instance_id)
    context.signal_entity(counter_id, "add", 2)
    yield context.call_entity(counter_id, "add", 3)
    return (yield context.call_entity(counter_id, "get"))


def identities(context: df.DurableOrchestrationContext) -> Any:
    first = context.new_uuid()
    yield context.call_activity("hello", "clock")
    return {
        "uuids": [first, context.new_uuid()],
        "guid": str(context.new_guid()),
        "now": context.current_utc_datetime.isoformat(),
    }


def same_task_twice(context: df.DurableOrchestrationContext) -> Any:
    task = context.call_activity("double", 21)
    first = yield task
    again = yield task
    return first + again


def http_call(context: df.DurableOrchestrationContext) -> Any:
    response = yield context.call_http("GET", "http://example.invalid/status", headers={"X-A": "1"})
    return [response["statusCode"], response["content"]]


def unknown_activity(context: df.DurableOrchestrationContext) -> Any:
    return (yield context.call_activity("no_such_activity", 1))


def entity_failure(context: df.DurableOrchestrationContext) -> Any:
    try:
        yield context.call_entity(df.EntityId("counter", context.instance_id), "explode")
    except Exception as exc:
        return str(exc)
    return "not reached"


def empty_combinators(context: df.DurableOrchestrationContext) -> Any:
    everything = yield context.task_all([])
    first = yield context.task_any([])
    return [everything, first]


def continue_then_yield(context: df.DurableOrchestrationContext) -> Any:
    n = context.get_input()
    yield context.call_activity("tally", n)
    if n > 0:
        context.continue_as_new(n - 1)
        yield context.call_activity("tally", 100 + n)  # the SDK schedules nothing after continue_as_new
    return n


def plain_function(context: df.DurableOrchestrationContext) -> Any:
    return {"input": context.get_input(), "id_length": len(context.instance_id)}


def yields_a_number(context: df.DurableOrchestrationContext) -> Any:
    yield 5


CASES = [
    Case("chaining", chaining, expected=["Hello Tokyo!", "Hello Seattle!", "Hello London!"]),
    Case("fan_out", fan_out, expected=2 * (1 + 2) + 2 * sum(range(3, 8))),
    Case("race_timeout", race, input=0.2, expected="timed out"),
    Case("race_approved", race, input=30, expected="approved: {'by': 'ada'}", drive=approve),
    Case("failing_caught", failing_caught, expected="caught: no luck"),
    Case("retried", retried),
    Case("retried_out", retried_out, expected="gave up: always"),
    Case("parent", parent, expected=[11, 15], children={"child": child}),
    Case("status_steps", status_steps, expected="done"),
    Case("countdown", countdown, input=2, expected="liftoff"),
    Case("entity_user", entity_user, expected=5),
    Case("identities", identities),
    Case("same_task_twice", same_task_twice, expected=84),
    Case("plain_function", plain_function, input={"a": 1}),
    Case("http_call", http_call, expected=[200, "GET http://example.invalid/status"]),
    Case("entity_failure", entity_failure, expected="no such operation"),
    Case("empty_combinators", empty_combinators, expected=[None, None]),
    Case("continue_then_yield", continue_then_yield, input=2, expected=0),
]
"""Cases that complete; `failing`, `unknown_activity` and `yields_a_number` fail on purpose and are
tested apart."""
