"""Wake-ups by kind of work: new messages wake a runtime's orchestration loop, not its activity loop."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from support.orchestrations import eventually
from support.store_wrapper import StoreWrapper

from asynkron_durable import DurableFunctionRuntime, OrchestrationContext
from asynkron_durable.stores import ActivityWorkItem, StateStore, Work


class _ClaimCounter(StoreWrapper):
    """A store wrapper counting activity claims."""

    def __init__(self, inner: StateStore) -> None:
        super().__init__(inner)
        self.claims = 0

    async def claim_activities(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        names: frozenset[str] | None = None,
    ) -> list[ActivityWorkItem]:
        self.claims += 1
        return await self._inner.claim_activities(owner, now, lease_until, limit, names)


async def test_new_orchestrations_do_not_wake_the_activity_loop(store: StateStore) -> None:
    counter = _ClaimCounter(store)
    runtime = DurableFunctionRuntime(counter, max_poll_interval=30.0)  # type: ignore[arg-type]

    @runtime.orchestrator()
    def quick(ctx: OrchestrationContext) -> Any:
        return ctx.get_input()

    async def claims() -> int:
        return counter.claims

    async with runtime:
        # The idle activity loop backs off from 2 ms, doubling: after 9 empty claims its next
        # polls are 1 s, then 3 s and 7 s away, so the run below has room for two at most
        # however slow the machine; woken by every new orchestration, it would claim ten times.
        before = await eventually(claims, lambda n: n >= 9, "the activity loop to back off")
        for n in range(10):
            instance_id = await runtime.client.start_new("quick", n)
            assert (await runtime.client.wait_for_completion(instance_id, timeout=20)).output == n
        woken = counter.claims - before
    assert woken <= 2, f"the activity loop claimed {woken} times while only orchestrations ran"


class _Subscriptions(StoreWrapper):
    """A store wrapper keeping the callbacks subscribed to it."""

    def __init__(self, inner: StateStore) -> None:
        super().__init__(inner)
        self.callbacks: list[Callable[..., None]] = []

    def subscribe(self, callback: Callable[..., None]) -> None:
        self.callbacks.append(callback)
        self._inner.subscribe(callback)


async def test_a_store_may_call_the_runtime_back_without_a_kind(store: StateStore) -> None:
    """Stores written before wake-ups had kinds call their subscribers bare: that must not raise
    inside their write, after it committed."""
    spy = _Subscriptions(store)
    runtime = DurableFunctionRuntime(spy, max_poll_interval=30.0)  # type: ignore[arg-type]

    async def callbacks() -> list[Callable[..., None]]:
        return spy.callbacks

    async with runtime:
        [callback] = await eventually(callbacks, bool, "the runtime to subscribe")
        callback()
        callback(Work.MESSAGES)
