"""The episode cache: a runtime keeps running orchestrations in memory between episodes, so the next
episode applies only the new events; anything that moved the instance elsewhere means a replay.

Rounds are driven by hand (`_orchestration_round`) so each test decides which runtime takes which
step. "Starts" counts how often an orchestrator function was entered: once per fresh executor, i.e.
once per replay from history. No timing assertions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from support.store_wrapper import StoreWrapper

from asynkron_durable import (
    DurableFunctionRuntime,
    OrchestrationClient,
    OrchestrationContext,
    RuntimeStatus,
    SqliteStateStore,
    StateStore,
)
from asynkron_durable.history import HistoryEvent
from asynkron_durable.stores import ActivityClaim, Committed


class _HistorySpy(StoreWrapper):
    """A store wrapper recording which instances had their history loaded."""

    def __init__(self, inner: StateStore) -> None:
        super().__init__(inner)
        self.loaded: list[str] = []

    async def load_histories(self, instance_ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        self.loaded.extend(instance_ids)
        return await self._inner.load_histories(instance_ids)


def _register(runtime: DurableFunctionRuntime, starts: list[Any], flags: dict[str, bool]) -> None:
    @runtime.activity()
    def step(value: int) -> int:
        return value + 1

    @runtime.orchestrator()
    def chain(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        starts.append(ctx.instance_id)
        value = 0
        for _ in range(5):
            value = yield ctx.call_activity(step, value)
        return value

    @runtime.orchestrator()
    def waiter(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        starts.append(ctx.instance_id)
        total = 0
        for _ in range(3):
            total += yield ctx.wait_for_external_event("go")
            if flags.get("fail"):
                raise RuntimeError("failing on purpose")
        return total

    @runtime.orchestrator()
    def changing(ctx: OrchestrationContext) -> Generator[Any, Any, str]:
        starts.append(ctx.instance_id)
        if flags.get("changed"):  # a code change: a timer where history has an activity call
            ctx.create_timer(ctx.current_utc_datetime)
        else:
            ctx.call_activity(step, 1)
        yield ctx.wait_for_external_event("go")
        return "done"

    @runtime.orchestrator()
    def again(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
        n: int = ctx.get_input()
        starts.append((ctx.instance_id, n))
        yield ctx.wait_for_external_event("go")
        if n < 2:
            ctx.continue_as_new(n + 1)
        return n


@asynccontextmanager
async def _runtime(
    store: StateStore, starts: list[Any], flags: dict[str, bool], **options: Any
) -> AsyncIterator[DurableFunctionRuntime]:
    runtime = DurableFunctionRuntime(store, **options)
    _register(runtime, starts, flags)
    await runtime.store.open()
    try:
        yield runtime
    finally:
        await runtime.store.close()


async def _rounds(runtime: DurableFunctionRuntime) -> None:
    """Run orchestration episodes until nothing is claimable (activities are not run here)."""
    while await runtime._orchestration_round():
        pass


async def test_a_kept_orchestration_applies_only_new_events(store: StateStore) -> None:
    spy = _HistorySpy(store)
    starts: list[Any] = []
    runtime = DurableFunctionRuntime(spy, max_poll_interval=0.02, shutdown_timeout=5.0)
    _register(runtime, starts, {})
    client = OrchestrationClient(store)
    async with runtime:
        instance_id = await client.start_new("chain")
        status = await client.wait_for_completion(instance_id, timeout=30)
        assert status.output == 5
        assert starts == [instance_id], "the orchestrator was replayed although it was kept"
        # nor for its first episode: a record never committed (version 0) has no history yet
        assert spy.loaded.count(instance_id) == 0, "history was loaded for a kept orchestration"
        assert instance_id not in runtime._episode_cache, "a completed orchestration stays cached"


async def test_without_the_cache_every_episode_replays(store: StateStore) -> None:
    starts: list[Any] = []
    runtime = DurableFunctionRuntime(store, max_poll_interval=0.02, episode_cache_size=0)
    _register(runtime, starts, {})
    client = OrchestrationClient(store)
    async with runtime:
        instance_id = await client.start_new("chain")
        status = await client.wait_for_completion(instance_id, timeout=30)
        assert status.output == 5
    assert starts == [instance_id] * 6  # the start plus one episode per activity result


async def test_a_step_taken_by_another_worker_makes_the_kept_one_replay(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    starts: list[Any] = []
    async with (
        _runtime(SqliteStateStore(path), starts, {}) as first,
        _runtime(SqliteStateStore(path), starts, {}) as second,
    ):
        client = OrchestrationClient(first.store)
        instance_id = await client.start_new("waiter")
        await _rounds(first)
        await client.raise_event(instance_id, "go", 1)
        await _rounds(first)
        assert starts == [instance_id], "the first worker's own steps use its kept executor"
        await client.raise_event(instance_id, "go", 10)
        await _rounds(second)  # the other worker replays, and moves the version on
        assert len(starts) == 2
        await client.raise_event(instance_id, "go", 100)
        await _rounds(first)  # the kept executor is stale now: replay, never apply on top of it
        assert len(starts) == 3
        status = await client.get_status(instance_id)
        assert status is not None
        assert status.runtime_status is RuntimeStatus.COMPLETED
        assert status.output == 111


async def test_eviction_falls_back_to_replay(tmp_path: Path) -> None:
    starts: list[Any] = []
    async with _runtime(SqliteStateStore(tmp_path / "lru.db"), starts, {}, episode_cache_size=1) as runtime:
        client = OrchestrationClient(runtime.store)
        one = await client.start_new("waiter", instance_id="one")
        await _rounds(runtime)
        two = await client.start_new("waiter", instance_id="two")
        await _rounds(runtime)  # keeping "two" evicts "one"
        assert list(runtime._episode_cache) == [two]
        await client.raise_event(one, "go", 1)
        await _rounds(runtime)
        assert starts == [one, two, one]
        await client.raise_event(two, "go", 2)
        await _rounds(runtime)
        assert starts == [one, two, one, two]
        await client.raise_event(two, "go", 2)
        await _rounds(runtime)
        assert starts == [one, two, one, two], "the most recent one is still kept"


async def test_determinism_is_still_checked_on_replay(tmp_path: Path) -> None:
    starts: list[Any] = []
    flags: dict[str, bool] = {}
    async with _runtime(SqliteStateStore(tmp_path / "nd.db"), starts, flags, episode_cache_size=1) as runtime:
        client = OrchestrationClient(runtime.store)
        changing = await client.start_new("changing")
        await _rounds(runtime)
        await client.start_new("waiter")
        await _rounds(runtime)  # evicts "changing"
        flags["changed"] = True
        await client.raise_event(changing, "go", 2)
        await _rounds(runtime)
        status = await client.get_status(changing)
        assert status is not None
        assert status.runtime_status is RuntimeStatus.FAILED
        assert status.failure is not None and status.failure.error_type == "NonDeterminismError"


async def test_terminate_and_restart_drop_the_kept_executor(tmp_path: Path) -> None:
    starts: list[Any] = []
    async with _runtime(SqliteStateStore(tmp_path / "t.db"), starts, {}) as runtime:
        client = OrchestrationClient(runtime.store)
        instance_id = await client.start_new("waiter")
        await client.raise_event(instance_id, "go", 1)
        await _rounds(runtime)
        assert instance_id in runtime._episode_cache
        await client.terminate(instance_id, "enough")
        await _rounds(runtime)
        assert instance_id not in runtime._episode_cache
        status = await client.get_status(instance_id)
        assert status is not None and status.runtime_status is RuntimeStatus.TERMINATED

        # Restarting in place while a kept executor exists: a new execution, replayed afresh.
        await client.restart(instance_id, restart_with_new_instance_id=False)
        await client.raise_event(instance_id, "go", 5)
        await _rounds(runtime)
        kept = runtime._episode_cache[instance_id]
        await client.restart(instance_id, restart_with_new_instance_id=False)  # while running
        await _rounds(runtime)
        assert runtime._episode_cache[instance_id] is not kept
        assert runtime._episode_cache[instance_id].record.execution_id != kept.record.execution_id
        for value in (1, 2, 3):
            await client.raise_event(instance_id, "go", value)
            await _rounds(runtime)
        status = await client.get_status(instance_id)
        assert status is not None
        assert status.runtime_status is RuntimeStatus.COMPLETED
        assert status.output == 6, "events of the replaced execution leaked into the new one"
        assert starts == [instance_id] * 3  # one fresh executor per execution, none replayed


async def test_continue_as_new_starts_a_fresh_executor(tmp_path: Path) -> None:
    starts: list[Any] = []
    async with _runtime(SqliteStateStore(tmp_path / "can.db"), starts, {}) as runtime:
        client = OrchestrationClient(runtime.store)
        instance_id = await client.start_new("again", 0)
        for _ in range(3):
            await _rounds(runtime)
            await client.raise_event(instance_id, "go", None)
        await _rounds(runtime)
        status = await client.get_status(instance_id)
        assert status is not None
        assert status.runtime_status is RuntimeStatus.COMPLETED
        assert status.output == 2
        assert starts == [(instance_id, 0), (instance_id, 1), (instance_id, 2)]


async def test_rewind_replays_from_history(tmp_path: Path) -> None:
    starts: list[Any] = []
    flags = {"fail": True}
    async with _runtime(SqliteStateStore(tmp_path / "rw.db"), starts, flags) as runtime:
        client = OrchestrationClient(runtime.store)
        instance_id = await client.start_new("waiter")
        await client.raise_event(instance_id, "go", 1)
        await _rounds(runtime)
        status = await client.get_status(instance_id)
        assert status is not None and status.runtime_status is RuntimeStatus.FAILED
        assert instance_id not in runtime._episode_cache
        flags["fail"] = False
        await client.rewind(instance_id)
        await _rounds(runtime)
        for value in (2, 3):
            await client.raise_event(instance_id, "go", value)
            await _rounds(runtime)
        status = await client.get_status(instance_id)
        assert status is not None
        assert status.runtime_status is RuntimeStatus.COMPLETED
        assert status.output == 6
        # the first run, the rewind, and one replay from history after it; kept from then on
        assert starts == [instance_id] * 3


@pytest.mark.parametrize("size", [-1])
def test_a_negative_cache_size_is_refused(size: int) -> None:
    with pytest.raises(ValueError):
        DurableFunctionRuntime("memory://", episode_cache_size=size)


class _LostCommits(StoreWrapper):
    """A store wrapper that reports every commit as rejected (as when the lease was lost)."""

    async def commit_episodes(
        self, owner: str, now: Any, commits: Sequence[Any], claim: ActivityClaim | None = None
    ) -> Committed:
        committed = await self._inner.commit_episodes(owner, now, commits, claim)
        return Committed({commit.record.instance_id for commit in commits}, committed.claimed)


async def test_a_rejected_commit_drops_the_kept_executor(tmp_path: Path) -> None:
    starts: list[Any] = []
    store = SqliteStateStore(tmp_path / "lost.db")
    async with _runtime(_LostCommits(store), starts, {}) as runtime:
        client = OrchestrationClient(store)
        instance_id = await client.start_new("waiter")
        await _rounds(runtime)
        assert instance_id not in runtime._episode_cache
        await client.raise_event(instance_id, "go", 1)
        await _rounds(runtime)
        assert starts == [instance_id, instance_id]
