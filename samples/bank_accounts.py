"""Durable entities: two bank accounts, transfers between them kept consistent by critical sections.

    asynkron-durable run samples/bank_accounts.py bank_demo

prints {"alice": 65, "bob": 135, "total": 200, "refused": 1}: four transfers run at once, each
inside a critical section over both accounts, so no transfer can read a balance that another is
about to change; the one asking for more than the balance holds is refused. Then inspect them:

    asynkron-durable entity account alice       # {"exists": true, "state": {"balance": 65}}
    asynkron-durable signal-entity account alice deposit --input 10
    asynkron-durable worker samples/bank_accounts.py   # applies the deposit
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from asynkron_durable import DurableApp, EntityId, OrchestrationContext

app = DurableApp()


@app.entity()
class Account:
    """An entity class: public methods are operations, attributes are the durable state."""

    def __init__(self) -> None:
        self.balance = 0

    def deposit(self, amount: int) -> int:
        self.balance += amount
        return self.balance

    def withdraw(self, amount: int) -> int:
        if amount > self.balance:
            raise ValueError(f"cannot withdraw {amount}: the balance is {self.balance}")
        self.balance -= amount
        return self.balance

    def get(self) -> int:
        return self.balance


@app.orchestrator()
def transfer(ctx: OrchestrationContext) -> Generator[Any, Any, bool]:
    """Move money if the source holds enough; nobody else touches either account meanwhile."""
    source, target, amount = ctx.get_input()
    source_id, target_id = EntityId("account", source), EntityId("account", target)
    with (yield ctx.lock([source_id, target_id])):
        balance = yield ctx.call_entity(source_id, "get")
        if balance < amount:
            return False
        yield ctx.call_entity(source_id, "withdraw", amount)
        yield ctx.call_entity(target_id, "deposit", amount)
    return True


@app.orchestrator()
def bank_demo(ctx: OrchestrationContext) -> Generator[Any, Any, dict[str, int]]:
    """Open both accounts afresh, run the transfers concurrently, report the balances."""
    alice, bob = EntityId("account", "alice"), EntityId("account", "bob")
    for account, opening in ((alice, 120), (bob, 80)):
        yield ctx.call_entity(account, "delete")  # start from nothing, however often this runs
        yield ctx.call_entity(account, "deposit", opening)
    transfers = [("alice", "bob", 40), ("bob", "alice", 10), ("alice", "bob", 25), ("bob", "alice", 1000)]
    made = yield ctx.task_all([ctx.call_sub_orchestrator(transfer, t) for t in transfers])
    balances = yield ctx.task_all([ctx.call_entity(alice, "get"), ctx.call_entity(bob, "get")])
    return {
        "alice": balances[0],
        "bob": balances[1],
        "total": sum(balances),
        "refused": made.count(False),
    }
