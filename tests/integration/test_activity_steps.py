"""Activity steps: a worker that keeps an orchestration in memory writes its next episode together
with the activity result, and runs the activities its commits schedule without claiming them.

A counting store wrapper shows which path the work took; the outcomes must be the same either way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Generator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support.orchestrations import eventually, wait_for_history
from support.store_wrapper import StoreWrapper

from asynkron_durable import (
    DurableFunctionRuntime,
    OrchestrationContext,
    RuntimeStatus,
    SqliteStateStore,
    StateStore,
)
from asynkron_durable.stores import (
    ActivityClaim,
    ActivityResult,
    ActivityStep,
    ActivityWorkItem,
    Committed,
    Completion,
    EpisodeCommit,
)
from asynkron_durable.stores.base import OrchestrationWorkItem


class _Counting(StoreWrapper):
    """A store wrapper counting claimed orchestrations and activities and applied steps."""

    def __init__(self, inner: StateStore) -> None:
        super().__init__(inner)
        self.orchestrations_claimed = 0
        self.activities_claimed = 0
        self.steps_applied = 0
        self.steps_refused = 0
        self.completions = 0
        self.leased_by_steps = 0
        self.given_back = 0
        self.lease_on_commit = True
        """When cleared, episode commits lease nothing, so every activity goes through a claim."""
        self.hold_orchestrations = False
        """While set, orchestration claims find nothing (as if this worker were slow to look)."""
        self.stall_activity_claims: asyncio.Event | None = None
        """Until it fires, a claim that found activities waits for it before returning."""
        self.claim_stalled = asyncio.Event()
        self.offered: list[int] = []
        """How many leases each commit and each completion offered to take, in order."""

    async def claim_orchestrations(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        names: frozenset[str] | None = None,
    ) -> list[OrchestrationWorkItem]:
        if self.hold_orchestrations:
            return []
        items = await self._inner.claim_orchestrations(owner, now, lease_until, limit, names)
        self.orchestrations_claimed += len(items)
        return items

    async def commit_episodes(
        self, owner: str, now: datetime, commits: Sequence[EpisodeCommit], claim: ActivityClaim | None = None
    ) -> Committed:
        self.offered.append(0 if claim is None else claim.limit)
        return await self._inner.commit_episodes(owner, now, commits, claim if self.lease_on_commit else None)

    async def claim_activities(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        names: frozenset[str] | None = None,
    ) -> list[ActivityWorkItem]:
        items = await self._inner.claim_activities(owner, now, lease_until, limit, names)
        self.activities_claimed += len(items)
        stall = self.stall_activity_claims
        if items and stall is not None and not stall.is_set():
            self.claim_stalled.set()
            await stall.wait()
        return items

    async def release_leases(
        self, owner: str, instance_ids: Sequence[str], activity_ids: Sequence[int]
    ) -> None:
        await self._inner.release_leases(owner, instance_ids, activity_ids)
        self.given_back += len(activity_ids)

    async def complete_activities(
        self,
        owner: str,
        now: datetime,
        results: Sequence[ActivityResult],
        steps: Sequence[ActivityStep] = (),
        claim: ActivityClaim | None = None,
    ) -> Completion:
        self.offered.append(0 if claim is None else claim.limit)
        done = await self._inner.complete_activities(owner, now, results, steps, claim)
        self.steps_applied += len(done.applied)
        self.steps_refused += len(steps) - len(done.applied)
        self.completions += 1
        self.leased_by_steps += len(done.claimed)
        return done


def _runtime(tmp_path: Path, **options: Any) -> tuple[DurableFunctionRuntime, _Counting]:
    store = _Counting(SqliteStateStore(tmp_path / "steps.db"))
    runtime = DurableFunctionRuntime(store, max_poll_interval=0.05, **options)
    return runtime, store


async def _until(holds: Callable[[], bool], what: str) -> None:
    async def nothing() -> None:
        return None

    await eventually(nothing, lambda _: holds(), what)


def _register_chain(runtime: DurableFunctionRuntime) -> None:
    @runtime.activity()
    def add(value: int) -> int:
        return value + 1

    @runtime.orchestrator()
    def chain(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        value: int = ctx.get_input()
        for _ in range(5):
            value = yield ctx.call_activity(add, value)
        return value


async def test_a_kept_chain_runs_as_steps_and_never_claims_an_activity(tmp_path: Path) -> None:
    runtime, store = _runtime(tmp_path)
    _register_chain(runtime)

    async with runtime:
        instance_id = await runtime.client.start_new("chain", 10)
        status = await runtime.client.wait_for_completion(instance_id, timeout=30)
        history = await store.get_history(instance_id)

    assert status.runtime_status is RuntimeStatus.COMPLETED and status.output == 15
    assert store.orchestrations_claimed == 1  # the start; every result after it came as a step
    assert store.activities_claimed == 0  # the first came leased with the start's commit, the rest with steps
    assert store.steps_applied == 5
    kinds = [event.kind for event in history]
    assert kinds.count("TaskScheduled") == kinds.count("TaskCompleted") == 5


async def test_without_the_episode_cache_results_go_through_the_inbox(tmp_path: Path) -> None:
    runtime, store = _runtime(tmp_path, episode_cache_size=0)
    _register_chain(runtime)

    async with runtime:
        instance_id = await runtime.client.start_new("chain", 0)
        status = await runtime.client.wait_for_completion(instance_id, timeout=30)

    assert status.output == 5
    assert store.steps_applied == store.steps_refused == 0
    assert store.orchestrations_claimed == 6  # the start and each result, through the inbox
    assert store.activities_claimed == 0  # each episode's commit leased its activity to the worker


def _register_event_race(runtime: DurableFunctionRuntime) -> tuple[threading.Event, threading.Event]:
    """An orchestrator that waits for an activity or an event, whichever comes first, then the
    other; returns (the activity is running, let the activity finish)."""
    running = threading.Event()
    release = threading.Event()

    @runtime.activity()
    def slow(value: int) -> int:
        running.set()
        release.wait(30)
        return value * 2

    @runtime.orchestrator()
    def both(ctx: OrchestrationContext) -> Generator[Any, Any, list[Any]]:
        work = ctx.call_activity(slow, 21)
        event = ctx.wait_for_external_event("poke")
        first = yield ctx.task_any([work, event])
        second = yield (event if first is work else work)
        return [first.result, second]

    return running, release


async def test_a_step_is_refused_while_an_event_waits_in_the_inbox(tmp_path: Path) -> None:
    runtime, store = _runtime(tmp_path)
    running, release = _register_event_race(runtime)

    async with runtime:
        instance_id = await runtime.client.start_new("both")
        assert await asyncio.to_thread(running.wait, 30)
        store.hold_orchestrations = True  # the event stays in the inbox until the step was tried
        await runtime.client.raise_event(instance_id, "poke", "hello")
        release.set()
        await _until(lambda: store.completions >= 1, "the activity's result to be recorded")
        store.hold_orchestrations = False
        status = await runtime.client.wait_for_completion(instance_id, timeout=30)

    assert (store.steps_refused, store.steps_applied) == (1, 0)
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert status.output == ["hello", 42]  # the event came first, though the result was recorded first


async def test_a_step_after_a_delivered_event_applies_in_order(tmp_path: Path) -> None:
    runtime, store = _runtime(tmp_path)
    running, release = _register_event_race(runtime)

    async with runtime:
        instance_id = await runtime.client.start_new("both")
        assert await asyncio.to_thread(running.wait, 30)
        await runtime.client.raise_event(instance_id, "poke", "hello")
        await wait_for_history(runtime.client, instance_id, "EventRaised")
        release.set()
        status = await runtime.client.wait_for_completion(instance_id, timeout=30)

    assert (store.steps_refused, store.steps_applied) == (0, 1)
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert status.output == ["hello", 42]


async def test_a_commit_reserves_only_the_slots_its_activities_take(tmp_path: Path) -> None:
    """The slots a commit may lease are held back from the activity loop while it is in flight,
    so it must not hold more than it schedules (here one activity per episode, none at the end)."""
    runtime, store = _runtime(tmp_path, max_concurrent_activities=10)
    _register_chain(runtime)
    async with runtime:
        instance_id = await runtime.client.start_new("chain", 0)
        status = await runtime.client.wait_for_completion(instance_id, timeout=30)
    assert status.output == 5
    assert store.offered == [1, 1, 1, 1, 1, 0]


@pytest.mark.parametrize("limit", [1, 3])
async def test_leased_activities_respect_the_activity_limit(tmp_path: Path, limit: int) -> None:
    runtime, store = _runtime(tmp_path, max_concurrent_activities=limit)
    running = 0
    peak = 0

    @runtime.activity()
    async def tracked(value: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)  # stays running while others start, if the limit allowed them
        running -= 1
        return value

    @runtime.orchestrator()
    def fan(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        total = 0
        for round_ in range(3):
            values = yield ctx.task_all([ctx.call_activity(tracked, round_) for _ in range(6)])
            total += sum(values)
        return total

    async with runtime:
        instance_id = await runtime.client.start_new("fan")
        status = await runtime.client.wait_for_completion(instance_id, timeout=30)

    assert status.output == 6 * (0 + 1 + 2)
    assert peak <= limit
    assert store.steps_applied >= 1


async def test_a_claim_and_a_step_in_flight_together_never_run_more_than_the_limit(tmp_path: Path) -> None:
    limit = 3
    runtime, store = _runtime(tmp_path, max_concurrent_activities=limit)
    store.lease_on_commit = False  # second's activities come through the stalled claim
    hold = threading.Event()
    holding = threading.Event()
    finish = asyncio.Event()
    running = 0
    peak = 0

    @runtime.activity()
    def held(_: None) -> None:
        holding.set()
        hold.wait(30)

    @runtime.activity()
    async def tracked(value: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.wait_for(finish.wait(), 30)
        running -= 1
        return value

    @runtime.orchestrator()
    def first(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        yield ctx.call_activity(held)
        values = yield ctx.task_all([ctx.call_activity(tracked, n) for n in range(limit)])
        return sum(values)

    @runtime.orchestrator()
    def second(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        values = yield ctx.task_all([ctx.call_activity(tracked, n) for n in range(limit - 1)])
        return sum(values)

    async with runtime:
        first_id = await runtime.client.start_new("first")
        assert await asyncio.to_thread(holding.wait, 30)
        store.stall_activity_claims = asyncio.Event()
        second_id = await runtime.client.start_new("second")
        await asyncio.wait_for(store.claim_stalled.wait(), 30)  # second's two, claimed, not yet running
        hold.set()
        await _until(lambda: store.leased_by_steps == limit, "first's step to lease its three")
        store.stall_activity_claims.set()  # the claim returns two activities with no slot left
        await _until(lambda: store.given_back == limit - 1, "the claim's two to be given back")
        assert running == limit
        finish.set()
        outputs = [
            (await runtime.client.wait_for_completion(i, timeout=30)).output for i in (first_id, second_id)
        ]

    assert outputs == [0 + 1 + 2, 0 + 1]
    assert peak == limit
