"""Worker-level robustness: one bad instance or activity never holds up the others."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import pytest
from support.orchestrations import eventually
from support.store_wrapper import StoreWrapper

from asynkron_durable import (
    DurableFunctionRuntime,
    InMemoryStateStore,
    OrchestrationContext,
    RuntimeStatus,
    StoreError,
    TaskFailedError,
)
from asynkron_durable.history import EventRaised
from asynkron_durable.stores import Committed, Message, StateStore


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


async def test_an_instance_that_cannot_be_reported_does_not_block_its_batch(store: StateStore) -> None:
    runtime = DurableFunctionRuntime(store, lease_duration=timedelta(seconds=60), max_poll_interval=0.01)

    @runtime.activity()
    def echo(value: int) -> int:
        return value

    @runtime.orchestrator()
    def bad(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        yield ctx.call_activity(echo, 0)
        raise Unprintable

    @runtime.orchestrator()
    def good(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        return (yield ctx.call_activity(echo, 1))

    async with runtime:
        await runtime.client.start_new("bad", instance_id="bad")
        ids = [await runtime.client.start_new("good") for _ in range(5)]
        statuses = [await runtime.client.wait_for_completion(i, timeout=20) for i in ids]
        failed = await runtime.client.wait_for_completion("bad", timeout=20)
    assert all(s.runtime_status is RuntimeStatus.COMPLETED for s in statuses)
    assert failed.runtime_status is RuntimeStatus.FAILED
    assert failed.failure is not None and failed.failure.error_type == "Unprintable"


async def test_an_activity_raising_cancelled_error_fails_its_task_not_the_worker(store: StateStore) -> None:
    runtime = DurableFunctionRuntime(store, max_poll_interval=0.01)

    @runtime.activity()
    async def cancels() -> None:
        raise asyncio.CancelledError("inside the activity")

    @runtime.orchestrator()
    def caller(ctx: OrchestrationContext) -> Generator[Any, Any, str]:
        try:
            yield ctx.call_activity(cancels)
        except TaskFailedError as exc:
            return exc.error_type
        return "no error"

    async with runtime:
        first = await runtime.client.start_new("caller")
        second = await runtime.client.start_new("caller")
        outputs = [(await runtime.client.wait_for_completion(i, timeout=20)).output for i in (first, second)]
    assert outputs == ["CancelledError", "CancelledError"]


async def test_rewind_receives_results_of_children_that_finished_after_the_failure(
    store: StateStore,
) -> None:
    runtime = DurableFunctionRuntime(store, max_poll_interval=0.01)
    failing = {"on": True}
    release_siblings = asyncio.Event()

    @runtime.activity()
    async def work(n: int) -> int:
        if n == 0 and failing["on"]:
            raise RuntimeError("transient")
        if n:
            await release_siblings.wait()  # the siblings finish only after the parent failed
        return n * 10

    @runtime.orchestrator()
    def child(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        return (yield ctx.call_activity(work, ctx.get_input()))

    @runtime.orchestrator()
    def parent(ctx: OrchestrationContext) -> Generator[Any, Any, list[int]]:
        return (yield ctx.task_all([ctx.call_sub_orchestrator(child, n) for n in range(3)]))

    async with runtime:
        client = runtime.client
        await client.start_new("parent", instance_id="p")
        assert (await client.wait_for_completion("p", timeout=20)).runtime_status is RuntimeStatus.FAILED
        release_siblings.set()
        for sibling in ("p:1", "p:2"):
            done = await client.wait_for_completion(sibling, timeout=20)
            assert done.runtime_status is RuntimeStatus.COMPLETED
        history = await client.get_status("p", show_history=True)
        assert history is not None and history.history is not None
        # wait until the late results are recorded on the failed parent
        deadline = asyncio.get_running_loop().time() + 20
        while sum(e.kind == "SubOrchestrationCompleted" for e in history.history) < 2:
            assert asyncio.get_running_loop().time() < deadline, "late results never recorded"
            await asyncio.sleep(0.02)
            history = await client.get_status("p", show_history=True)
            assert history is not None and history.history is not None
        failing["on"] = False
        await client.rewind("p")
        deadline = asyncio.get_running_loop().time() + 20
        while (await client.get_status("p")).runtime_status is RuntimeStatus.FAILED:  # type: ignore[union-attr]
            assert asyncio.get_running_loop().time() < deadline, "rewind never picked up"
            await asyncio.sleep(0.02)
        final = await client.wait_for_completion("p", timeout=20)
    assert final.runtime_status is RuntimeStatus.COMPLETED
    assert final.output == [0, 10, 20]


async def test_error_text_any_store_cannot_encode_is_escaped_not_fatal(store: StateStore) -> None:
    runtime = DurableFunctionRuntime(store, max_concurrent_activities=2, max_poll_interval=0.01)
    undecodable = "report-\udcff.csv"  # a lone surrogate, as os.listdir gives for non-UTF-8 names

    @runtime.activity()
    def read(name: str) -> str:
        if name == "bad":
            raise ValueError(f"cannot read {undecodable}")
        return name

    @runtime.orchestrator()
    def reader(ctx: OrchestrationContext) -> Generator[Any, Any, str]:
        name = ctx.get_input()
        if name == "crash":
            raise ValueError(f"orchestrator saw {undecodable}")
        try:
            return str((yield ctx.call_activity(read, name)))
        except TaskFailedError as exc:
            return exc.error_message

    async with runtime:
        ids = {
            name: await runtime.client.start_new("reader", name) for name in ("bad", "crash", "ok", "fine")
        }
        statuses = {n: await runtime.client.wait_for_completion(i, timeout=20) for n, i in ids.items()}
    assert statuses["ok"].output == "ok" and statuses["fine"].output == "fine"
    assert statuses["bad"].output == "cannot read report-\\udcff.csv"
    crashed = statuses["crash"]
    assert crashed.runtime_status is RuntimeStatus.FAILED
    assert crashed.failure is not None and "report-\\udcff.csv" in crashed.failure.message


def _register_stuck(runtime: DurableFunctionRuntime) -> asyncio.Event:
    """Register `stuck`, an orchestration whose one activity never ends; the event fires once it runs."""
    started = asyncio.Event()

    @runtime.activity()
    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    @runtime.orchestrator()
    def stuck(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        yield ctx.call_activity(forever)

    return started


class _BrokenRelease(InMemoryStateStore):
    async def release_leases(self, owner: str, instance_ids: Any, activity_ids: Any) -> None:
        raise StoreError("database went away")


async def test_shutdown_finishes_and_closes_the_store_even_when_the_store_fails() -> None:
    store = _BrokenRelease()
    runtime = DurableFunctionRuntime(store, shutdown_timeout=0.1, max_poll_interval=0.01)
    started = _register_stuck(runtime)

    async with runtime:
        await runtime.client.start_new("stuck")
        await asyncio.wait_for(started.wait(), timeout=20)
    leftovers = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("durable-")]
    assert leftovers == []
    with pytest.raises(StoreError, match="not open"):
        await store.get_instance("anything")


class _FailingCommits(StoreWrapper):
    """A store wrapper whose episode commits always fail, counting the attempts."""

    def __init__(self, inner: StateStore) -> None:
        super().__init__(inner)
        self.attempts = 0

    async def commit_episodes(self, *args: Any, **kwargs: Any) -> Committed:
        self.attempts += 1
        raise StoreError("the commit cannot be written")


@pytest.mark.parametrize("runtimes", [1, 2])
async def test_a_commit_that_keeps_failing_is_retried_with_back_off(store: StateStore, runtimes: int) -> None:
    """The failed batch's leases are given back, which announces the work like new work to every
    runtime on the store, the failing one included; each must still back off instead of claiming
    it again at once (two runtimes must not wake each other round after round)."""
    failing = _FailingCommits(store)
    workers = [
        DurableFunctionRuntime(failing, max_poll_interval=0.2)  # type: ignore[arg-type]
        for _ in range(runtimes)
    ]
    for runtime in workers:
        runtime.orchestrator(name="quick")(lambda ctx: None)

    async def attempts() -> int:
        return failing.attempts

    async with contextlib.AsyncExitStack() as stack:
        for runtime in workers:
            await stack.enter_async_context(runtime)
        await workers[0].client.start_new("quick")
        await eventually(attempts, lambda n: n >= 1, "a first commit attempt")
        await asyncio.sleep(1.0)  # a window to count retries in: backing off from 2 ms to 0.2 s
    # makes about 10 per runtime; retrying at once would make hundreds
    assert failing.attempts <= 20 * runtimes, f"{failing.attempts} commit attempts in a second"


class _NoLeaseOnCommit(StoreWrapper):
    """A store wrapper whose commits lease nothing, so every activity goes through a claim."""

    async def commit_episodes(self, owner: str, now: Any, commits: Any, claim: Any = None) -> Committed:
        return await self._inner.commit_episodes(owner, now, commits)


async def test_shutdown_does_not_wait_out_the_poll_interval_when_every_slot_is_busy(
    store: StateStore,
) -> None:
    # The activity loop claims the one activity itself and, with no slot left, goes straight on to
    # wait for one (no await in between), so it waits there before the activity even starts.
    runtime = DurableFunctionRuntime(
        _NoLeaseOnCommit(store),  # type: ignore[arg-type]
        max_concurrent_activities=1,
        max_poll_interval=60.0,
        shutdown_timeout=0.1,
    )
    started = _register_stuck(runtime)
    await runtime.__aenter__()
    try:
        await runtime.client.start_new("stuck")
        await asyncio.wait_for(started.wait(), timeout=20)
    finally:
        # the activity loop waits for a free slot; the stop must reach it long before 60 s
        await asyncio.wait_for(runtime.__aexit__(None, None, None), timeout=20)


class _FailingCompletions(StoreWrapper):
    """A store wrapper whose first `failures` result batches fail (all of them with None)."""

    def __init__(self, inner: StateStore, failures: int | None) -> None:
        super().__init__(inner)
        self._left = failures
        self.attempts = 0

    async def complete_activities(self, *args: Any, **kwargs: Any) -> Any:
        self.attempts += 1
        if self._left is None or self._left > 0:
            if self._left is not None:
                self._left -= 1
            raise StoreError("the results cannot be written")
        return await self._inner.complete_activities(*args, **kwargs)


def _register_echo(runtime: DurableFunctionRuntime) -> None:
    @runtime.activity()
    def echo(value: int) -> int:
        return value

    @runtime.orchestrator()
    def once(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        return (yield ctx.call_activity(echo, 7))


async def test_a_result_batch_that_failed_once_is_retried_soon_not_after_the_poll_interval(
    store: StateStore,
) -> None:
    failing = _FailingCompletions(store, failures=1)
    runtime = DurableFunctionRuntime(failing, max_poll_interval=60.0)  # type: ignore[arg-type]
    _register_echo(runtime)
    async with runtime:
        instance_id = await runtime.client.start_new("once")
        status = await runtime.client.wait_for_completion(instance_id, timeout=20)
    assert status.runtime_status is RuntimeStatus.COMPLETED and status.output == 7
    assert failing.attempts == 2


async def test_shutdown_is_not_held_up_by_result_batches_that_keep_failing(store: StateStore) -> None:
    failing = _FailingCompletions(store, failures=None)
    runtime = DurableFunctionRuntime(failing, max_poll_interval=60.0, shutdown_timeout=0.1)  # type: ignore[arg-type]
    _register_echo(runtime)

    async def attempts() -> int:
        return failing.attempts

    await runtime.__aenter__()
    try:
        await runtime.client.start_new("once")
        # ten failures in about a second: the back-off (2 ms, doubling) now waits a second or more
        await eventually(attempts, lambda n: n >= 10, "ten attempts to record the result")
    finally:
        before_stop = failing.attempts
        stopping = asyncio.get_running_loop().time()
        # The stop cuts the pending wait short; once drained, three more tries at most 0.5 s apart.
        # Waiting out the back-off instead (1 s, then 2 s, then 4 s...) takes 7 s or more.
        await asyncio.wait_for(runtime.__aexit__(None, None, None), timeout=20)
        stopped_after = asyncio.get_running_loop().time() - stopping
    assert failing.attempts - before_stop >= 3
    assert stopped_after < 4.0, f"shutdown took {stopped_after:.1f} s"


async def test_each_failed_instance_is_logged_once_with_its_id_name_and_reason(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = DurableFunctionRuntime(store, max_poll_interval=0.01)

    @runtime.orchestrator()
    def doomed(ctx: OrchestrationContext) -> Generator[Any, Any, None]:
        yield ctx.wait_for_external_event("go")
        raise ValueError("the order has no lines")

    async def version() -> int:
        record = await store.get_instance("d-1")
        assert record is not None
        return record.version

    with caplog.at_level(logging.WARNING, logger="asynkron_durable.runtime"):
        async with runtime:
            await runtime.client.start_new("doomed", instance_id="d-1")
            await runtime.client.raise_event("d-1", "go")
            await runtime.client.wait_for_completion("d-1", timeout=20)
            failed_at = await version()
            # a message that reaches the failed instance (a late result, say): no news
            await store.send_messages([Message("d-1", EventRaised(name="late"))])
            await eventually(version, lambda v: v > failed_at, "the late event consumed")
    lines = [r.getMessage() for r in caplog.records if "failed:" in r.getMessage()]
    assert lines == ["instance d-1 (doomed) failed: ValueError: the order has no lines"]


class _FlakyRelease(StoreWrapper):
    """The first commit fails, and so does the first attempt to give its leases back."""

    def __init__(self, inner: StateStore) -> None:
        super().__init__(inner)
        self.commits_failed = 0
        self.releases: list[list[str]] = []

    async def commit_episodes(self, *args: Any, **kwargs: Any) -> Committed:
        if not self.commits_failed:
            self.commits_failed += 1
            raise StoreError("the connection dropped")
        return await self._inner.commit_episodes(*args, **kwargs)

    async def release_leases(self, owner: str, instance_ids: Any, activity_ids: Any) -> None:
        if instance_ids:
            self.releases.append(list(instance_ids))
            if len(self.releases) == 1:
                raise StoreError("the connection is still down")
        await self._inner.release_leases(owner, instance_ids, activity_ids)


async def test_leases_that_could_not_be_given_back_are_given_back_next_round(store: StateStore) -> None:
    flaky = _FlakyRelease(store)
    runtime = DurableFunctionRuntime(
        flaky,  # type: ignore[arg-type]
        lease_duration=timedelta(minutes=10),  # waiting it out would fail the test
        max_poll_interval=0.02,
    )
    runtime.orchestrator(name="quick")(lambda ctx: "done")
    async with runtime:
        await runtime.client.start_new("quick", instance_id="q")
        status = await runtime.client.wait_for_completion("q", timeout=20)
    assert status.output == "done"
    assert flaky.releases[:2] == [["q"], ["q"]]  # refused once, given back on the next round
