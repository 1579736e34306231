"""Forced races between two workers on one store: compare-and-swap and leases decide, nothing is lost
or written twice. Runs on every store backend (the `store` fixture)."""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Sequence
from datetime import timedelta
from typing import Any

from support.store_wrapper import StoreWrapper

from asynkron_durable import DurableFunctionRuntime, OrchestrationClient, OrchestrationContext, RuntimeStatus
from asynkron_durable.history import TaskCompleted, TaskScheduled, utc_now
from asynkron_durable.stores import LeaseRenewal, StateStore
from asynkron_durable.worker.episodes import build_episode


def chain(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
    value: int = ctx.get_input()
    for _ in range(2):
        value = yield ctx.call_activity("step", value)
    return value


async def test_two_workers_racing_on_one_instance_commit_each_episode_once(store: StateStore) -> None:
    client = OrchestrationClient(store)
    instance_id = await client.start_new("chain", 1)
    now = utc_now()

    # Worker A claims with a short lease and stalls; the lease runs out; worker B claims the same
    # messages. Both build the same episode from the same version: only one may land.
    (item_a,) = await store.claim_orchestrations("worker-a", now, now + timedelta(seconds=1), 10)
    later = now + timedelta(seconds=2)
    (item_b,) = await store.claim_orchestrations("worker-b", later, later + timedelta(seconds=30), 10)
    assert item_a.record.version == item_b.record.version
    history = (await store.load_histories([instance_id]))[instance_id]
    commit_a = build_episode(item_a, history, chain, now)[0]
    commit_b = build_episode(item_b, history, chain, later)[0]

    assert (await store.commit_episodes("worker-b", later, [commit_b])).rejected == set()
    assert (await store.commit_episodes("worker-a", later, [commit_a])).rejected == {instance_id}

    history = await store.get_history(instance_id)
    scheduled = [e.event_id for e in history if isinstance(e, TaskScheduled)]
    assert scheduled == [0], "the episode was committed twice"
    assert sum(e.kind == "ExecutionStarted" for e in history) == 1
    activities = await store.claim_activities("worker-c", later, later + timedelta(seconds=30), 10)
    assert [a.task.task_id for a in activities] == [0], "the losing commit enqueued work"


class _NoRenewal(StoreWrapper):
    """A store whose lease renewals never take effect, as if the worker were cut off from it."""

    async def renew_leases(
        self, owner: str, lease_until: Any, instance_ids: Sequence[str], activity_ids: Sequence[int]
    ) -> LeaseRenewal:
        return LeaseRenewal(set(instance_ids), set(activity_ids))


async def test_a_worker_whose_lease_expired_does_not_overwrite_the_new_owner(store: StateStore) -> None:
    release_stale = asyncio.Event()
    stale_started = asyncio.Event()
    runs: list[str] = []

    def build(worker: str, target: Any) -> DurableFunctionRuntime:
        runtime = DurableFunctionRuntime(
            target, worker_id=worker, lease_duration=timedelta(seconds=0.5), max_poll_interval=0.01
        )

        @runtime.activity()
        async def step(value: int) -> str:
            runs.append(worker)
            if worker == "stale":
                stale_started.set()
                await release_stale.wait()  # outlives its lease, which is never renewed
            return f"{worker}:{value}"

        @runtime.orchestrator()
        def one_step(ctx: OrchestrationContext) -> Generator[Any, Any, str]:
            return (yield ctx.call_activity(step, ctx.get_input()))

        return runtime

    stale = build("stale", _NoRenewal(store))
    stop_stale = asyncio.Event()
    stale_loop = asyncio.create_task(stale.run_and_poll(stop_stale))
    instance_id = await stale.client.start_new("one_step", 7)
    await asyncio.wait_for(stale_started.wait(), timeout=20)

    fresh = build("fresh", store)
    stop_fresh = asyncio.Event()
    fresh_loop = asyncio.create_task(fresh.run_and_poll(stop_fresh))
    try:
        status = await fresh.client.wait_for_completion(instance_id, timeout=20)
        assert status.output == "fresh:7"
        release_stale.set()  # the stale worker now finishes and tries to record its result
        stop_stale.set()
        await stale_loop
    finally:
        release_stale.set()
        stop_stale.set()
        stop_fresh.set()
        await asyncio.gather(stale_loop, fresh_loop, return_exceptions=True)

    final = await OrchestrationClient(store).get_status(instance_id, show_history=True)
    assert final is not None and final.history is not None
    assert final.runtime_status is RuntimeStatus.COMPLETED
    assert final.output == "fresh:7"
    assert runs == ["stale", "fresh"]
    completions = [e for e in final.history if isinstance(e, TaskCompleted)]
    assert [c.result for c in completions] == ['"fresh:7"'], "the stale result was recorded"
