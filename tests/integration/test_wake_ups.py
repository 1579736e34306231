"""Wake-ups by kind of work: new messages wake a runtime's orchestration loop, not its activity loop."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from asynkron_durable import DurableFunctionRuntime, OrchestrationContext
from asynkron_durable.stores import ActivityWorkItem, StateStore
from tests.support.orchestrations import eventually


class _ClaimCounter:
    """A store wrapper counting activity claims."""

    def __init__(self, inner: StateStore) -> None:
        self._inner = inner
        self.claims = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def claim_activities(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[ActivityWorkItem]:
        self.claims += 1
        return await self._inner.claim_activities(owner, now, lease_until, limit)


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
        # poll is a second away, so the run below has room for one poll at most.
        before = await eventually(claims, lambda n: n >= 9, "the activity loop to back off")
        for n in range(10):
            instance_id = await runtime.client.start_new("quick", n)
            assert (await runtime.client.wait_for_completion(instance_id, timeout=20)).output == n
        woken = counter.claims - before
    assert woken <= 1, f"the activity loop claimed {woken} times while only orchestrations ran"
