"""Retries, activity failures and replay-safe logging, on every store backend."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from support.orchestrations import completed, run

from asynkron_durable import (
    DurableFunctionRuntime,
    OrchestrationContext,
    RetryOptions,
    RuntimeStatus,
    TaskFailedError,
)

STYLES = ["generator", "async"]


# ----- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
async def test_call_activity_with_retry_succeeds_on_the_third_attempt_after_durable_backoff(
    runtime: DurableFunctionRuntime, style: str
) -> None:
    attempts = {"n": 0}

    @runtime.activity()
    def flaky(x: int) -> int:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ValueError(f"flake {attempts['n']}")
        return x * 100

    options = RetryOptions(
        first_retry_interval=timedelta(seconds=0.05),
        max_number_of_attempts=5,
        backoff_coefficient=2.0,
        handle=lambda exc: isinstance(exc, TaskFailedError) and exc.error_type == "ValueError",
    )

    if style == "generator":

        def retrying(ctx: OrchestrationContext) -> Any:
            result = yield ctx.call_activity_with_retry(flaky, options, 7)
            return result

    else:

        async def retrying(ctx: OrchestrationContext) -> Any:
            return await ctx.call_activity_with_retry("flaky", options, 7)

    runtime.register_orchestrator(retrying, "retrying")
    async with runtime:
        instance_id = await runtime.client.start_new("retrying")
        await runtime.client.wait_for_completion(instance_id, timeout=10)
        status = await runtime.client.get_status(instance_id, show_history=True)
    assert status is not None and status.history is not None
    assert completed(status) == 700
    assert attempts["n"] == 3
    scheduling = [e for e in status.history if e.kind in ("TaskScheduled", "TimerCreated")]
    assert [e.kind for e in scheduling] == [
        "TaskScheduled",
        "TimerCreated",
        "TaskScheduled",
        "TimerCreated",
        "TaskScheduled",
    ]
    waits = [e.fire_at - e.timestamp for e in scheduling if e.kind == "TimerCreated"]
    assert waits == [timedelta(seconds=0.05), timedelta(seconds=0.1)]
    assert sum(e.kind == "TimerFired" for e in status.history) == 2


async def test_exhausted_retries_fail_the_instance_with_the_remote_error(
    runtime: DurableFunctionRuntime,
) -> None:
    attempts = {"n": 0}

    @runtime.activity()
    def always_fails() -> None:
        attempts["n"] += 1
        raise ValueError(f"nope #{attempts['n']}")

    def give_up(ctx: OrchestrationContext) -> Any:
        options = RetryOptions(timedelta(seconds=0.02), max_number_of_attempts=3)
        yield ctx.call_activity_with_retry(always_fails, options)

    runtime.register_orchestrator(give_up)
    async with runtime:
        status = await run(runtime, "give_up")
    assert status.runtime_status is RuntimeStatus.FAILED
    assert attempts["n"] == 3
    assert status.failure is not None
    assert "ValueError" in status.failure.message
    assert "nope #3" in status.failure.message
    assert "always_fails" in status.failure.message
    assert "always_fails" in status.failure.details  # the remote traceback came along


async def test_retry_handle_returning_false_stops_retrying_at_once(
    runtime: DurableFunctionRuntime,
) -> None:
    attempts = {"n": 0}
    handled: list[str] = []

    class PermanentError(Exception):
        pass

    @runtime.activity()
    def permanent() -> None:
        attempts["n"] += 1
        raise PermanentError("do not retry me")

    def handle(exc: BaseException) -> bool:
        assert isinstance(exc, TaskFailedError)
        handled.append(exc.error_type)
        return exc.error_type != "PermanentError"

    def no_retry(ctx: OrchestrationContext) -> Any:
        options = RetryOptions(timedelta(seconds=0.02), max_number_of_attempts=5, handle=handle)
        try:
            yield ctx.call_activity_with_retry(permanent, options)
        except TaskFailedError as exc:
            return exc.error_type
        return "no failure"

    runtime.register_orchestrator(no_retry)
    async with runtime:
        instance_id = await runtime.client.start_new("no_retry")
        status = await runtime.client.wait_for_completion(instance_id, timeout=10)
        history = await runtime.store.get_history(instance_id)
    assert completed(status) == "PermanentError"
    assert attempts["n"] == 1
    assert "PermanentError" in handled
    assert not any(e.kind == "TimerCreated" for e in history)


# ----- activity failures ------------------------------------------------------------------------


def explode_in_activity(x: int) -> int:
    raise ValueError(f"bad value {x}")


@pytest.mark.parametrize("style", STYLES)
async def test_activity_failure_is_a_task_failed_error_with_remote_details(
    runtime: DurableFunctionRuntime, style: str
) -> None:
    runtime.register_function("explode_in_activity", explode_in_activity)

    def describe(exc: TaskFailedError) -> dict[str, Any]:
        return {
            "type": exc.error_type,
            "message": exc.error_message,
            "fn_in_traceback": "explode_in_activity" in exc.details,
            "task": exc.task_name,
        }

    if style == "generator":

        def catcher(ctx: OrchestrationContext) -> Any:
            try:
                yield ctx.call_activity(explode_in_activity, 7)
            except TaskFailedError as exc:
                return describe(exc)
            return None

    else:

        async def catcher(ctx: OrchestrationContext) -> Any:
            try:
                await ctx.call_activity(explode_in_activity, 7)
            except TaskFailedError as exc:
                return describe(exc)
            return None

    runtime.register_orchestrator(catcher, "catcher")
    async with runtime:
        output = completed(await run(runtime, "catcher"))
    assert output["type"] == "ValueError"
    assert output["message"] == "bad value 7"
    assert output["fn_in_traceback"] is True
    assert "explode_in_activity" in output["task"]


async def test_uncaught_activity_failure_fails_the_instance_with_remote_details(
    runtime: DurableFunctionRuntime,
) -> None:
    runtime.register_function("explode_in_activity", explode_in_activity)

    def no_catch(ctx: OrchestrationContext) -> Any:
        yield ctx.call_activity(explode_in_activity, 9)
        return "unreachable"

    runtime.register_orchestrator(no_catch)
    async with runtime:
        status = await run(runtime, "no_catch")
    assert status.runtime_status is RuntimeStatus.FAILED
    failure = status.failure
    assert failure is not None
    assert failure.error_type == "TaskFailedError"
    assert "ValueError" in failure.message and "bad value 9" in failure.message
    assert "explode_in_activity" in failure.details  # the activity's own traceback
    assert "no_catch" in failure.details  # and where the orchestrator received it
    assert status.output is None


# ----- replay-safe logging ----------------------------------------------------------------------


async def test_replay_safe_logger_emits_each_line_once(
    runtime: DurableFunctionRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    @runtime.activity()
    def tick(i: int) -> int:
        return i

    def chatty(ctx: OrchestrationContext) -> Any:
        ctx.logger.info("starting %s", ctx.instance_id)
        for i in range(3):
            yield ctx.call_activity(tick, i)
            ctx.logger.info("after step %d", i)
        ctx.logger.warning("finished")
        return "done"

    runtime.register_orchestrator(chatty)
    caplog.set_level(logging.INFO, logger="asynkron_durable.orchestration")
    async with runtime:
        instance_id = await runtime.client.start_new("chatty")
        assert completed(await runtime.client.wait_for_completion(instance_id, timeout=10)) == "done"
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("asynkron_durable.orchestration")]
    assert lines == [
        f"starting {instance_id}",
        "after step 0",
        "after step 1",
        "after step 2",
        "finished",
    ]
