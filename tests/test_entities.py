"""Durable entities end to end through a runtime, on every store backend.

Signals and calls from orchestrations and the client, failed operations rolling back, critical
sections (locks) over several entities, scheduled signals, entity-to-entity signals, deleting and
purging entities, listing them, and how entities stay out of the orchestration API. The same
counter under real worker processes is in multiprocess/test_entity_workers.py.

Nothing here sleeps to synchronise: waits poll a condition until a deadline. Where a test needs
to know every earlier message to an entity was processed, it calls the entity from an
orchestration: an entity handles its inbox in arrival order, so the call's answer comes after them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import pytest
from pydantic import BaseModel
from support.orchestrations import completed, eventually, wait_for_status

from asynkron_durable import (
    DurableFunctionRuntime,
    EntityContext,
    EntityId,
    InstanceFilter,
    InvalidOperation,
    OrchestrationContext,
    RuntimeStatus,
    SqliteStateStore,
    TaskFailedError,
    UnknownFunction,
    current_entity,
)
from asynkron_durable.history import utc_now
from asynkron_durable.stores import InMemoryStateStore, PostgresStateStore, StateStore

T = TypeVar("T")

DEADLINE = 15.0
"""Seconds any single wait may take before the test fails."""

# ----- entities -------------------------------------------------------------------------------


def counter(ctx: EntityContext) -> Any:
    """A function entity: a running total and how many amounts went into it."""
    state = ctx.get_state(lambda: {"total": 0, "count": 0})
    match ctx.operation_name:
        case "add":
            state["total"] += ctx.get_input(int)
            state["count"] += 1
            ctx.set_state(state)
            return state["total"]
        case "get":
            return ctx.get_state()
        case "boom":
            # Changes the state and sends a signal, then raises: neither may survive.
            ctx.set_state({"total": -999, "count": -999})
            ctx.signal_entity(EntityId("counter", f"{ctx.entity_key}-witness"), "add", 1)
            raise ValueError("boom!")
        case "delete":
            ctx.delete_state()
            return None
    raise ValueError(f"counter has no operation {ctx.operation_name!r}")


def relay(ctx: EntityContext) -> Any:
    """Passes an amount along a path of relays to a counter, one entity-to-entity signal a hop."""
    hop = ctx.get_input()
    ctx.set_state(ctx.get_state(0) + 1)
    if hop["path"]:
        ctx.signal_entity(EntityId("relay", hop["path"][0]), "pass", {**hop, "path": hop["path"][1:]})
    else:
        ctx.signal_entity(EntityId("counter", hop["target"]), "add", hop["amount"])


def clock(ctx: EntityContext) -> None:
    """Records, per operation, its input, the batch's time and the wall clock when it ran."""
    stamps = ctx.get_state(list)
    stamps.append(
        {
            "tag": ctx.get_input(),
            "batch": ctx.current_utc_datetime.isoformat(),
            "wall": datetime.now(UTC).isoformat(),
        }
    )
    ctx.set_state(stamps)


class Account:
    """A class entity. `withdraw` does not check the balance: callers must (in a critical
    section); `lowest` remembers the lowest balance ever reached, so an overdraft shows."""

    def __init__(self) -> None:
        self.balance = 0
        self.lowest = 0

    def deposit(self, amount: int) -> int:
        self.balance += amount
        return self.balance

    def withdraw(self, amount: int) -> int:
        self.balance -= amount
        self.lowest = min(self.lowest, self.balance)
        return self.balance

    def withdraw_checked(self, amount: int) -> int:
        if amount > self.balance:
            self.balance = -1  # must be rolled back with the failed operation
            raise ValueError(f"insufficient funds: {self.balance + 1} < {amount}")
        return self.withdraw(amount)

    def get(self) -> int:
        return self.balance

    def whoami(self) -> str:
        return f"{current_entity().entity_name}/{current_entity().entity_key}"


class Deposit(BaseModel):
    amount: int
    memo: str


class Ledger:
    """A class entity with a typed (pydantic) operation input."""

    def __init__(self) -> None:
        self.memos: list[str] = []
        self.total = 0

    def book(self, deposit: Deposit) -> int:
        if not isinstance(deposit, Deposit):
            raise TypeError(f"expected a Deposit, got {type(deposit).__name__}")
        self.memos.append(deposit.memo)
        self.total += deposit.amount
        return self.total


class Wallet(BaseModel):
    """A pydantic-model class entity: stored through its fields."""

    coins: int = 0
    owner: str = ""

    def add(self, coins: int) -> int:
        self.coins += coins
        self.owner = current_entity().entity_key
        return self.coins


# ----- orchestrators --------------------------------------------------------------------------


def send_adds(ctx: OrchestrationContext) -> Any:
    """Signal `add` for every amount, in chunks; between chunks, call `get` and record the count
    seen (the entity must already have applied everything this orchestration signalled)."""
    job = ctx.get_input()
    target = EntityId("counter", job["key"])
    amounts: list[int] = job["amounts"]
    seen = []
    for first in range(0, len(amounts), job["chunk"]):
        for amount in amounts[first : first + job["chunk"]]:
            ctx.signal_entity(target, "add", amount)
        state = yield ctx.call_entity(target, "get")
        seen.append(state["count"])
    return seen


def try_call(ctx: OrchestrationContext) -> Any:
    """Call operations one after the other: each step's result or its error."""
    outcomes = []
    for entity_id, operation, payload in ctx.get_input():
        try:
            outcomes.append({"ok": (yield ctx.call_entity(entity_id, operation, payload))})
        except TaskFailedError as exc:
            outcomes.append({"error": str(exc), "type": exc.error_type})
    return outcomes


def transfer(ctx: OrchestrationContext) -> Any:
    job = ctx.get_input()
    source, target = EntityId("account", job["from"]), EntityId("account", job["to"])
    with (yield ctx.lock([source, target])):
        balance = yield ctx.call_entity(source, "get")
        if balance >= job["amount"]:
            yield ctx.call_entity(source, "withdraw", job["amount"])
            yield ctx.call_entity(target, "deposit", job["amount"])
            outcome = "done"
        else:
            outcome = "insufficient"
    return outcome


async def transfer_async(ctx: OrchestrationContext) -> Any:
    job = ctx.get_input()
    source, target = EntityId("account", job["from"]), EntityId("account", job["to"])
    async with ctx.lock([target, source]):
        if await ctx.call_entity(source, "get") < job["amount"]:
            return "insufficient"  # leaving the section by returning releases it too
        await ctx.call_entity(source, "withdraw", job["amount"])
        await ctx.call_entity(target, "deposit", job["amount"])
    return "done"


def hold(ctx: OrchestrationContext) -> Any:
    """Lock the entities, say so in the custom status, wait for "release" inside the section."""
    ids = [EntityId.parse(e) for e in ctx.get_input()]
    with (yield ctx.lock(ids)):
        ctx.set_custom_status("holding")
        yield ctx.wait_for_external_event("release")
    ctx.set_custom_status("released")
    return "released"


async def hold_async(ctx: OrchestrationContext) -> Any:
    """`hold` as an `async def` with `async with`."""
    async with ctx.lock([EntityId.parse(e) for e in ctx.get_input()]):
        ctx.set_custom_status("holding")
        await ctx.wait_for_external_event("release")
    ctx.set_custom_status("released")
    return "released"


def fail_inside(ctx: OrchestrationContext) -> Any:
    """Fail with an error raised inside a critical section."""
    entity = EntityId.parse(ctx.get_input())
    with (yield ctx.lock([entity])):
        balance = yield ctx.call_entity(entity, "get")
        raise RuntimeError(f"giving up with {balance} in the section")


def schedule_stamp(ctx: OrchestrationContext) -> Any:
    due = ctx.current_utc_datetime + timedelta(seconds=ctx.get_input())
    ctx.signal_entity(EntityId("clock", "c"), "stamp", "orchestration", scheduled_time=due)
    return due.isoformat()


def fail_holding(ctx: OrchestrationContext) -> Any:
    """`fail_inside` without a `with` block: the failure ends the execution still holding the lock."""
    entity = EntityId.parse(ctx.get_input())
    yield ctx.lock([entity])
    balance = yield ctx.call_entity(entity, "get")
    raise RuntimeError(f"giving up with {balance} in the section")


def withdraw_or_fail(ctx: OrchestrationContext) -> Any:
    """A refused withdrawal it catches, a signal to an audit counter, then a withdrawal that fails
    the instance while the balance is short (a rewind sends it again)."""
    job = ctx.get_input()
    account = EntityId("account", job["account"])
    with contextlib.suppress(TaskFailedError):
        yield ctx.call_entity(account, "withdraw_checked", 10**6)
    ctx.signal_entity(EntityId("counter", job["audit"]), "add", 1)
    return (yield ctx.call_entity(account, "withdraw_checked", job["amount"]))


def start_child(ctx: OrchestrationContext) -> Any:
    return (yield ctx.call_sub_orchestrator("try_call", [], instance_id=ctx.get_input()))


def install(runtime: DurableFunctionRuntime) -> None:
    """Register every entity and orchestrator of this module."""
    for entity in (counter, relay, clock, Account, Ledger, Wallet):
        runtime.register_entity(entity)
    orchestrators = (
        send_adds,
        try_call,
        transfer,
        transfer_async,
        hold,
        hold_async,
        fail_inside,
        fail_holding,
        withdraw_or_fail,
        start_child,
        schedule_stamp,
    )
    for orchestrator in orchestrators:
        runtime.register_orchestrator(orchestrator)


# ----- helpers --------------------------------------------------------------------------------


async def run(runtime: DurableFunctionRuntime, name: str, input: Any = None) -> Any:
    """Run orchestrator `name` to completion; its output."""
    instance_id = await runtime.client.start_new(name, input)
    return completed(await runtime.client.wait_for_completion(instance_id, timeout=DEADLINE))


async def call(
    runtime: DurableFunctionRuntime, entity_id: EntityId, operation: str, input: Any = None
) -> Any:
    """Call one operation from an orchestration; its result (every earlier message to the entity
    has been processed when it returns)."""
    [outcome] = await run(runtime, "try_call", [[entity_id.instance_id, operation, input]])
    assert "ok" in outcome, outcome
    return outcome["ok"]


async def state_of(runtime: DurableFunctionRuntime, entity_id: EntityId) -> Any:
    response = await runtime.client.read_entity_state(entity_id)
    return response.state if response.exists else None


async def metadata(runtime: DurableFunctionRuntime, entity_id: EntityId) -> Any:
    page = await runtime.client.list_entities(entity_id.name, page_size=1000, include_deleted=True)
    return next((e for e in page.entities if e.entity_id == entity_id), None)


async def holding(runtime: DurableFunctionRuntime, entity_ids: list[EntityId], name: str = "hold") -> str:
    """Start `hold` (or `hold_async`) over `entity_ids`; wait until it is inside its section."""
    client = runtime.client
    instance_id = await client.start_new(name, [e.instance_id for e in entity_ids])
    await eventually(
        lambda: client.get_status(instance_id),
        lambda s: s is not None and s.custom_status == "holding",
        f"{instance_id} to hold the lock",
    )
    return instance_id


async def released(runtime: DurableFunctionRuntime, entity_id: EntityId) -> Any:
    """Wait until nobody holds `entity_id` and nothing waits for it; its metadata."""
    return await eventually(
        lambda: metadata(runtime, entity_id),
        lambda m: m is not None and m.locked_by is None and m.backlog == 0,
        f"{entity_id} to be unlocked with nothing waiting",
    )


CORRUPT_DOCUMENT = "{not json"


async def corrupt(store: StateStore, instance_id: str) -> None:
    """Overwrite an entity's stored document with garbage, behind the store's back."""
    if isinstance(store, InMemoryStateStore):
        instance = store._instances[instance_id]
        instance.record = instance.record.model_copy(update={"output": CORRUPT_DOCUMENT})
    elif isinstance(store, SqliteStateStore):
        with contextlib.closing(sqlite3.connect(store.path)) as conn:
            conn.execute(
                "UPDATE instances SET output = ? WHERE instance_id = ?", (CORRUPT_DOCUMENT, instance_id)
            )
            conn.commit()
    else:
        assert isinstance(store, PostgresStateStore)
        conn = await asyncpg.connect(os.environ["ASYNKRON_DURABLE_PG_DSN"])
        try:
            await conn.execute(
                f'UPDATE "{store.schema}".instances SET output = $1 WHERE instance_id = $2',
                CORRUPT_DOCUMENT,
                instance_id,
            )
        finally:
            await conn.close()


# ----- signals from many orchestrations ---------------------------------------------------------


async def test_a_counter_sums_1000_signals_from_10_concurrent_orchestrations_exactly(
    runtime: DurableFunctionRuntime,
) -> None:
    install(runtime)
    rng = random.Random(20261125)
    jobs = [
        {"key": "total", "chunk": 25, "amounts": [rng.randint(1, 1000) for _ in range(100)]}
        for _ in range(10)
    ]
    expected = sum(sum(job["amounts"]) for job in jobs)
    async with runtime:
        client = runtime.client
        ids = await asyncio.gather(*(client.start_new("send_adds", job) for job in jobs))
        statuses = await asyncio.gather(*(client.wait_for_completion(i, timeout=DEADLINE) for i in ids))
        # Each orchestration saw all of its own earlier signals applied when its `get` returned.
        for status in statuses:
            seen = completed(status)
            assert len(seen) == 4
            assert all(count >= 25 * (n + 1) for n, count in enumerate(seen)), seen
        # Every signal was enqueued before this call: its answer is the final state.
        final = await call(runtime, EntityId("counter", "total"), "get")
        assert final == {"total": expected, "count": 1000}
        assert await state_of(runtime, EntityId("counter", "total")) == final


# ----- calls and failing operations -------------------------------------------------------------


async def test_call_entity_returns_results_and_a_failing_operation_raises_and_changes_nothing(
    runtime: DurableFunctionRuntime,
) -> None:
    install(runtime)
    entity = EntityId("counter", "calc")
    async with runtime:
        assert await run(
            runtime, "try_call", [[entity.instance_id, "add", 5], [entity.instance_id, "add", 7]]
        ) == [
            {"ok": 5},
            {"ok": 12},
        ]
        before = await runtime.client.read_entity_state(entity)
        assert before.exists and before.state == {"total": 12, "count": 2}

        witness = EntityId("counter", "calc-witness")
        outcomes = await run(
            runtime,
            "try_call",
            [
                [entity.instance_id, "boom", None],
                [entity.instance_id, "get", None],
                [witness.instance_id, "get", None],  # after the failed op's (unsent) signal
                [entity.instance_id, "add", 1],
            ],
        )
        after_failure = await runtime.client.read_entity_state(entity)

    failed, state_after, witnessed, added = outcomes
    assert failed["type"] == "ValueError"
    assert "'@counter@calc'" in failed["error"], failed  # names the entity ...
    assert "'boom'" in failed["error"], failed  # ... and the operation
    assert "boom!" in failed["error"]
    assert state_after == {"ok": {"total": 12, "count": 2}}, "the failed operation's state change stuck"
    assert witnessed == {"ok": None}, "the failed operation's signal was sent"
    assert added == {"ok": 13}, "the entity must go on working after a failed operation"
    assert after_failure.state == {"total": 13, "count": 3}


async def test_calling_an_unregistered_entity_fails_the_call_naming_it(
    impatient_runtime: DurableFunctionRuntime,
) -> None:
    runtime = impatient_runtime  # the call waits for a worker of 'ghost' for 0.2 s, then fails
    install(runtime)
    async with runtime:
        [outcome] = await run(runtime, "try_call", [["@ghost@k1", "poke", None]])
        # The entity's instance exists now (a message created it) but it has no state.
        assert not (await runtime.client.read_entity_state(EntityId("ghost", "k1"))).exists
    assert outcome["type"] == "UnknownFunction"
    assert "'@ghost@k1'" in outcome["error"] and "'poke'" in outcome["error"]
    assert "unknown entity 'ghost'" in outcome["error"]


async def test_client_signal_to_an_unregistered_entity_raises_unknown_function(
    runtime: DurableFunctionRuntime,
) -> None:
    install(runtime)
    async with runtime:
        with pytest.raises(UnknownFunction, match="ghost"):
            await runtime.client.signal_entity(EntityId("ghost", "k"), "poke")
        assert await runtime.client.get_status("@ghost@k") is None
        # Names are case-insensitive: this one is registered.
        await runtime.client.signal_entity(EntityId("Counter", "k"), "add", 3)
        assert await call(runtime, EntityId("counter", "k"), "get") == {"total": 3, "count": 1}


async def test_start_new_with_an_entity_style_id_raises_value_error(runtime: DurableFunctionRuntime) -> None:
    install(runtime)
    async with runtime:
        with pytest.raises(ValueError, match="@"):
            await runtime.client.start_new("try_call", [], instance_id="@counter@x")
        assert await runtime.client.get_status("@counter@x") is None


async def test_orchestration_management_calls_refuse_entity_ids(runtime: DurableFunctionRuntime) -> None:
    install(runtime)
    entity = EntityId("counter", "managed")
    target = entity.instance_id
    async with runtime:
        client = runtime.client
        assert await call(runtime, entity, "add", 2) == 2
        attempts: dict[str, Callable[[], Awaitable[Any]]] = {
            "raise_event": lambda: client.raise_event(target, "add", 1),
            "terminate": lambda: client.terminate(target),
            "suspend": lambda: client.suspend(target),
            "resume": lambda: client.resume(target),
            "rewind": lambda: client.rewind(target),
            "restart": lambda: client.restart(target),
            "restart in place": lambda: client.restart(target, restart_with_new_instance_id=False),
            "purge": lambda: client.purge(target),
        }
        for what, attempt in attempts.items():
            with pytest.raises(InvalidOperation, match="entity"):
                await attempt()
                pytest.fail(f"{what} accepted an entity id")
        assert await call(runtime, entity, "add", 1) == 3  # untouched, still working
        assert await state_of(runtime, entity) == {"total": 3, "count": 2}


async def test_a_sub_orchestration_with_an_entity_id_fails_the_parent(
    runtime: DurableFunctionRuntime,
) -> None:
    install(runtime)
    async with runtime:
        client = runtime.client
        parent = await client.start_new("start_child", "@counter@q")
        status = await client.wait_for_completion(parent, timeout=DEADLINE)
        assert status.runtime_status is RuntimeStatus.FAILED
        assert status.failure is not None and status.failure.error_type == "ValueError"
        assert "'@counter@q' is an entity id" in status.failure.message
        assert await client.get_status("@counter@q") is None


# ----- class-based entities ---------------------------------------------------------------------


async def test_class_entity_operations_state_rollback_context_and_delete(
    runtime: DurableFunctionRuntime,
) -> None:
    install(runtime)
    account = EntityId("Account", "alice")
    ledger = EntityId("ledger", "book")
    async with runtime:
        a = account.instance_id
        outcomes = await run(
            runtime,
            "try_call",
            [
                [a, "deposit", 30],
                [a, "withdraw_checked", 50],
                [a, "withdraw_checked", 20],
                [a, "whoami", None],
                [a, "no_such_operation", None],
                [ledger.instance_id, "book", {"amount": 5, "memo": "first"}],
                [ledger.instance_id, "book", Deposit(amount=7, memo="second").model_dump()],
                ["@wallet@bob", "add", 3],
                ["@wallet@bob", "add", 4],
                ["@wallet@bob", "model_dump", None],  # a BaseModel method, not an operation
            ],
        )
        assert outcomes[0] == {"ok": 30}
        assert outcomes[1]["type"] == "ValueError" and "insufficient funds" in outcomes[1]["error"]
        assert "'withdraw_checked'" in outcomes[1]["error"] and "'@account@alice'" in outcomes[1]["error"]
        assert outcomes[2] == {"ok": 10}, "the failed withdrawal must not have changed the balance"
        assert outcomes[3] == {"ok": "account/alice"}
        assert outcomes[4]["type"] == "UnknownFunction" and "no_such_operation" in outcomes[4]["error"]
        assert outcomes[5:9] == [{"ok": 5}, {"ok": 12}, {"ok": 3}, {"ok": 7}]
        assert outcomes[9]["type"] == "UnknownFunction" and "model_dump" in outcomes[9]["error"]
        assert await state_of(runtime, EntityId("wallet", "bob")) == {"coins": 7, "owner": "bob"}
        assert await state_of(runtime, account) == {"balance": 10, "lowest": 0}
        assert await state_of(runtime, ledger) == {"memos": ["first", "second"], "total": 12}

        assert await call(runtime, account, "delete") is None  # implicit for class entities
        assert not (await runtime.client.read_entity_state(account)).exists
        assert await call(runtime, account, "deposit", 1) == 1  # __init__ runs again


# ----- critical sections ----------------------------------------------------------------------


async def test_transfers_in_critical_sections_keep_the_total_and_never_overdraw(
    runtime: DurableFunctionRuntime,
) -> None:
    install(runtime)
    names = ["a", "b", "c", "d"]
    rng = random.Random(4242)
    jobs = []
    for n in range(50):
        source, target = rng.sample(names, 2)
        # Some amounts are small (likely to go through), most may exceed the balance.
        amount = rng.randint(1, 20) if n % 5 == 0 else rng.randint(30, 160)
        jobs.append({"from": source, "to": target, "amount": amount})
    async with runtime:
        client = runtime.client
        for name in names:
            await client.signal_entity(EntityId("account", name), "deposit", 100)
        ids = await asyncio.gather(
            *(client.start_new("transfer" if n % 2 else "transfer_async", job) for n, job in enumerate(jobs))
        )
        outcomes = [
            completed(s)
            for s in await asyncio.gather(*(client.wait_for_completion(i, timeout=30) for i in ids))
        ]
        states = {name: await call(runtime, EntityId("account", name), "get") for name in names}
        full = {name: await state_of(runtime, EntityId("account", name)) for name in names}
        listed = (await client.list_entities("account")).entities

    assert set(outcomes) == {"done", "insufficient"}, outcomes
    assert sum(states.values()) == 400, states
    assert all(s["lowest"] >= 0 for s in full.values()), f"an account was overdrawn: {full}"
    assert all(e.locked_by is None and e.backlog == 0 for e in listed), listed


async def test_a_critical_section_holds_off_client_signals_until_it_ends(
    runtime: DurableFunctionRuntime,
) -> None:
    install(runtime)
    vault, spare = EntityId("account", "vault"), EntityId("account", "spare")
    async with runtime:
        client = runtime.client
        assert await call(runtime, vault, "deposit", 10) == 10
        holder = await holding(runtime, [vault, spare])

        await client.signal_entity(vault, "deposit", 5)
        locked = await eventually(
            lambda: metadata(runtime, vault),
            lambda m: m is not None and m.backlog == 1,
            "the deferred signal",
        )
        assert locked.locked_by == holder
        spare_meta = await metadata(runtime, spare)
        assert spare_meta is not None and spare_meta.locked_by == holder
        # The signal reached the entity and was deferred, not applied.
        assert await state_of(runtime, vault) == {"balance": 10, "lowest": 0}

        await client.raise_event(holder, "release")
        assert completed(await client.wait_for_completion(holder, timeout=DEADLINE)) == "released"
        await eventually(
            lambda: state_of(runtime, vault), lambda s: s["balance"] == 15, "the signal after the section"
        )
        unlocked = await eventually(
            lambda: metadata(runtime, vault),
            lambda m: m.locked_by is None and m.backlog == 0,
            "the vault to be unlocked",
        )
        assert unlocked.exists


async def test_a_holder_failed_by_a_worker_without_its_orchestrator_releases_its_entities(
    store: StateStore,
) -> None:
    """Another app's worker on the store fails the holder as UnknownFunction: the lock requests in
    its history are still given back, or the entity would stay locked for good."""
    own_app = DurableFunctionRuntime(store, max_poll_interval=0.02, shutdown_timeout=5.0)
    install(own_app)
    other_app = DurableFunctionRuntime(
        store, max_poll_interval=0.02, shutdown_timeout=5.0, unserved_timeout=0.2
    )
    other_app.register_entity(Account)
    vault = EntityId("account", "vault")

    stop = asyncio.Event()
    running = asyncio.create_task(own_app.run_and_poll(stop))
    try:
        holder = await holding(own_app, [vault])
    finally:
        stop.set()
        await running
    assert (await metadata(own_app, vault)).locked_by == holder

    stop = asyncio.Event()
    running = asyncio.create_task(other_app.run_and_poll(stop))
    try:
        await other_app.client.raise_event(holder, "release")
        status = await other_app.client.wait_for_completion(holder, timeout=DEADLINE)
        assert status.failure is not None and status.failure.error_type == "UnknownFunction"
        assert "unknown orchestrator 'hold'" in status.failure.message
        await eventually(lambda: metadata(other_app, vault), lambda m: m.locked_by is None, "the unlock")
    finally:
        stop.set()
        await running


@pytest.mark.parametrize("kept", [True, False], ids=["kept-in-memory", "from-history"])
@pytest.mark.parametrize("holder_name", ["hold", "hold_async"])
async def test_terminating_an_orchestration_inside_a_critical_section_releases_its_entities(
    runtime: DurableFunctionRuntime, holder_name: str, kept: bool
) -> None:
    install(runtime)
    if not kept:  # the termination is then worked out from history, without the holder's code
        runtime.episode_cache_size = 0
    p, q = EntityId("account", "p"), EntityId("account", "q")
    async with runtime:
        client = runtime.client
        assert await call(runtime, p, "deposit", 50) == 50
        holder = await holding(runtime, [p, q], holder_name)
        waiting = await client.start_new("transfer", {"from": "p", "to": "q", "amount": 20})
        await wait_for_status(client, waiting, RuntimeStatus.RUNNING)

        await client.terminate(holder, "abandon the section")
        terminated = await client.wait_for_completion(holder, timeout=DEADLINE)
        assert terminated.runtime_status is RuntimeStatus.TERMINATED

        # The terminated holder's locks are released (the queued transfer may take them next).
        for entity in (p, q):
            await eventually(
                lambda e=entity: metadata(runtime, e),
                lambda m: m.locked_by != holder,
                f"{entity} to be released by the terminated {holder}",
                timeout=5.0,
            )
        # The transfer that queued for the lock, and a later one, both go through.
        assert completed(await client.wait_for_completion(waiting, timeout=DEADLINE)) == "done"
        assert await run(runtime, "transfer_async", {"from": "q", "to": "p", "amount": 5}) == "done"
        assert await state_of(runtime, p) == {"balance": 35, "lowest": 0}
        assert await state_of(runtime, q) == {"balance": 15, "lowest": 0}
        for entity in (p, q):
            meta = await eventually(
                lambda e=entity: metadata(runtime, e), lambda m: m.locked_by is None, f"{entity} unlocked"
            )
            assert meta.backlog == 0


async def test_an_orchestration_failing_inside_a_critical_section_releases_its_entities(
    runtime: DurableFunctionRuntime,
) -> None:
    install(runtime)
    entity = EntityId("account", "f")
    async with runtime:
        client = runtime.client
        assert await call(runtime, entity, "deposit", 9) == 9
        failing = await client.start_new("fail_inside", entity.instance_id)
        status = await client.wait_for_completion(failing, timeout=DEADLINE)
        assert status.runtime_status is RuntimeStatus.FAILED
        assert status.failure is not None and "giving up with 9" in status.failure.message
        await client.signal_entity(entity, "deposit", 1)  # applied once the lock is gone
        assert await call(runtime, entity, "get") == 10
        meta = await metadata(runtime, entity)
        assert meta.locked_by is None and meta.backlog == 0


@pytest.mark.parametrize("how", ["terminate", "purge", "terminate-then-purge"])
async def test_an_orchestration_given_up_while_waiting_for_a_lock_leaves_no_lock_behind(
    runtime: DurableFunctionRuntime, how: str
) -> None:
    install(runtime)
    p, q = EntityId("account", "wp"), EntityId("account", "wq")
    async with runtime:
        client = runtime.client
        assert await call(runtime, p, "deposit", 10) == 10
        assert await call(runtime, q, "deposit", 1) == 1
        holder = await holding(runtime, [p])
        waiter = await client.start_new("hold", [p.instance_id, q.instance_id])
        await eventually(
            lambda: metadata(runtime, p), lambda m: m.backlog == 1, "the waiter's lock request to queue"
        )

        if how.startswith("terminate"):
            await client.terminate(waiter, "give up")
            await wait_for_status(client, waiter, RuntimeStatus.TERMINATED)
        if how.endswith("purge"):
            assert await client.purge(waiter) == 1
            assert await client.get_status(waiter) is None
        # The request is withdrawn from the queue while the holder still holds the entity ...
        await eventually(
            lambda: metadata(runtime, p), lambda m: m.backlog == 0, "the waiter's request to be withdrawn"
        )
        assert (await metadata(runtime, p)).locked_by == holder

        # ... so when the holder leaves, nobody is left holding it.
        await client.raise_event(holder, "release")
        assert completed(await client.wait_for_completion(holder, timeout=DEADLINE)) == "released"
        for entity in (p, q):
            await released(runtime, entity)
        assert await run(runtime, "transfer", {"from": "wp", "to": "wq", "amount": 3}) == "done"
        assert await state_of(runtime, p) == {"balance": 7, "lowest": 0}
        assert await state_of(runtime, q) == {"balance": 4, "lowest": 0}


@pytest.mark.parametrize("how", ["purge", "purge-filter", "restart-in-place", "replace"])
async def test_purging_or_replacing_a_running_holder_releases_its_entities(
    runtime: DurableFunctionRuntime, how: str
) -> None:
    install(runtime)
    p, q = EntityId("account", "rp"), EntityId("account", "rq")
    async with runtime:
        client = runtime.client
        assert await call(runtime, p, "deposit", 10) == 10
        holder = await holding(runtime, [p, q])
        waiter = await client.start_new("transfer", {"from": "rp", "to": "rq", "amount": 4})
        await eventually(lambda: metadata(runtime, p), lambda m: m.backlog == 1, "the transfer to queue")

        if how == "purge":
            assert await client.purge(holder) == 1
        elif how == "purge-filter":
            assert await client.purge(InstanceFilter(name="hold")) == 1
        elif how == "replace":
            await client.start_new("try_call", [[p.instance_id, "get", None]], holder, replace=True)
            replaced = completed(await client.wait_for_completion(holder, timeout=DEADLINE))
            assert replaced == [{"ok": 6}]  # read after the queued transfer
        else:
            assert await client.restart(holder, restart_with_new_instance_id=False) == holder

        # The queued transfer gets the entities the old execution held.
        assert completed(await client.wait_for_completion(waiter, timeout=DEADLINE)) == "done"
        if how == "restart-in-place":  # the new execution of the holder takes them in turn
            await eventually(
                lambda: client.get_status(holder),
                lambda s: s is not None and s.custom_status == "holding",
                "the restarted holder to hold the lock",
            )
            await client.raise_event(holder, "release")
            assert completed(await client.wait_for_completion(holder, timeout=DEADLINE)) == "released"
        for entity in (p, q):
            await released(runtime, entity)
        assert await run(runtime, "transfer_async", {"from": "rq", "to": "rp", "amount": 1}) == "done"
        assert await state_of(runtime, p) == {"balance": 7, "lowest": 0}
        assert await state_of(runtime, q) == {"balance": 3, "lowest": 0}


async def test_rewind_sends_a_failed_entity_call_again(runtime: DurableFunctionRuntime) -> None:
    install(runtime)
    account, audit = EntityId("account", "rw"), EntityId("counter", "rw-audit")
    async with runtime:
        client = runtime.client
        instance = await client.start_new(
            "withdraw_or_fail", {"account": "rw", "audit": "rw-audit", "amount": 4}
        )
        failed = await client.wait_for_completion(instance, timeout=DEADLINE)
        assert failed.runtime_status is RuntimeStatus.FAILED
        assert failed.failure is not None and "insufficient funds: 0 < 4" in failed.failure.message

        await client.signal_entity(account, "deposit", 10)  # now the withdrawal can go through
        await eventually(lambda: state_of(runtime, account), lambda s: s is not None, "the deposit")
        await client.rewind(instance)
        assert completed(await wait_for_status(client, instance, RuntimeStatus.COMPLETED)) == 6

        assert await call(runtime, account, "get") == 6
        # The signal before the failed call was not sent again.
        assert await call(runtime, audit, "get") == {"total": 1, "count": 1}


@pytest.mark.parametrize("name", ["fail_inside", "fail_holding"], ids=["with-block", "no-with-block"])
async def test_rewind_is_refused_after_failing_inside_a_critical_section(
    runtime: DurableFunctionRuntime, name: str
) -> None:
    install(runtime)
    entity = EntityId("account", f"rr-{name}")
    async with runtime:
        client = runtime.client
        assert await call(runtime, entity, "deposit", 9) == 9
        failing = await client.start_new(name, entity.instance_id)
        status = await client.wait_for_completion(failing, timeout=DEADLINE)
        assert status.runtime_status is RuntimeStatus.FAILED
        assert status.failure is not None and "giving up with 9" in status.failure.message

        with pytest.raises(InvalidOperation, match="failed inside a critical section"):
            await client.rewind(failing)
        assert (await client.get_status(failing)).runtime_status is RuntimeStatus.FAILED
        await released(runtime, entity)
        assert await call(runtime, entity, "deposit", 1) == 10


async def test_a_corrupt_entity_fails_a_lock_over_it_and_is_listed_with_its_error(
    runtime: DurableFunctionRuntime, store: StateStore
) -> None:
    install(runtime)
    healthy, broken = EntityId("account", "h"), EntityId("account", "z")
    idle, other = EntityId("account", "idle"), EntityId("account", "k")
    async with runtime:
        client = runtime.client
        assert await call(runtime, healthy, "deposit", 5) == 5
        assert await call(runtime, broken, "deposit", 1) == 1
        assert await call(runtime, idle, "deposit", 1) == 1
        assert await call(runtime, idle, "delete") is None
        await corrupt(store, broken.instance_id)

        # hold over [h, z]: h is locked first, then z refuses
        locker = await client.start_new("hold", [healthy.instance_id, broken.instance_id])
        status = await client.wait_for_completion(locker, timeout=DEADLINE)
        assert status.runtime_status is RuntimeStatus.FAILED
        assert status.failure is not None and status.failure.error_type == "TaskFailedError"
        assert "lock of @account@h, @account@z failed: StoreError" in status.failure.message
        assert "'@account@z' holds an unreadable document" in status.failure.message

        # The healthy entity was given back: a later section over it completes.
        await released(runtime, healthy)
        assert await run(runtime, "transfer", {"from": "h", "to": "k", "amount": 2}) == "done"
        assert await state_of(runtime, healthy) == {"balance": 3, "lowest": 0}

        listed = {e.entity_id: e for e in (await client.list_entities("account")).entities}
        assert set(listed) == {healthy, broken, other}  # the corrupt one is listed, with its error
        assert listed[broken].error is not None and "unreadable document" in listed[broken].error
        assert not listed[broken].exists
        assert listed[healthy].error is None and listed[healthy].exists
        assert await client.purge_entities() == 1  # the idle one; the corrupt one is kept
        assert await store.get_instance(broken.instance_id) is not None
        assert await store.get_instance(idle.instance_id) is None
        everything = (await client.list_entities("account", include_deleted=True)).entities
        assert {e.entity_id for e in everything} == {healthy, broken, other}


# ----- scheduled signals ----------------------------------------------------------------------


async def test_scheduled_signals_are_not_delivered_before_their_time(runtime: DurableFunctionRuntime) -> None:
    install(runtime)
    entity = EntityId("clock", "c")
    delay = 1.5
    async with runtime:
        client = runtime.client
        due = utc_now() + timedelta(seconds=delay)
        await client.signal_entity(entity, "stamp", "client", scheduled_time=due)
        orchestration_due = datetime.fromisoformat(await run(runtime, "schedule_stamp", delay))
        await client.signal_entity(entity, "stamp", "immediate")

        # The unscheduled signal is applied; the scheduled ones, due later, are not.
        early = await eventually(
            lambda: state_of(runtime, entity), lambda s: s is not None, "the immediate signal"
        )
        read_at = utc_now()
        assert read_at < due and read_at < orchestration_due, "too slow to observe the early state"
        assert [s["tag"] for s in early] == ["immediate"]

        stamps = await eventually(
            lambda: state_of(runtime, entity), lambda s: len(s) == 3, "both scheduled signals"
        )
    by_tag = {s["tag"]: s for s in stamps}
    assert set(by_tag) == {"immediate", "client", "orchestration"}
    for tag, scheduled in (("client", due), ("orchestration", orchestration_due)):
        for clock_name in ("batch", "wall"):
            ran = datetime.fromisoformat(by_tag[tag][clock_name])
            assert ran >= scheduled, f"{tag} signal ran at {ran} ({clock_name}), due {scheduled}"


# ----- entity-to-entity signals -----------------------------------------------------------------


async def test_entities_signal_other_entities(runtime: DurableFunctionRuntime) -> None:
    install(runtime)
    async with runtime:
        await runtime.client.signal_entity(
            EntityId("relay", "r1"), "pass", {"path": ["r2", "r3"], "target": "end", "amount": 42}
        )
        final = await eventually(
            lambda: state_of(runtime, EntityId("counter", "end")),
            lambda s: s is not None,
            "the amount to arrive through three relays",
        )
        relays = [await state_of(runtime, EntityId("relay", key)) for key in ("r1", "r2", "r3")]
    assert final == {"total": 42, "count": 1}
    assert relays == [1, 1, 1]


# ----- deleting, purging, listing -----------------------------------------------------------------


async def test_delete_state_makes_the_entity_not_exist(runtime: DurableFunctionRuntime) -> None:
    install(runtime)
    entity = EntityId("counter", "temp")
    async with runtime:
        client = runtime.client
        assert await call(runtime, entity, "add", 4) == 4
        assert (await client.read_entity_state(entity)).exists
        assert await call(runtime, entity, "delete") is None
        response = await client.read_entity_state(entity)
        assert response.exists is False and response.state is None
        assert (await client.list_entities("counter")).entities == []
        [listed] = (await client.list_entities("counter", include_deleted=True)).entities
        assert listed.entity_id == entity and not listed.exists
        assert await call(runtime, entity, "add", 1) == 1  # starts over from nothing
        assert not (await client.read_entity_state(EntityId("counter", "never"))).exists


async def test_purge_entities_removes_only_idle_entities(runtime: DurableFunctionRuntime) -> None:
    install(runtime)
    keep, gone = EntityId("counter", "keep"), EntityId("counter", "gone")
    held, pending = EntityId("counter", "held"), EntityId("counter", "pending")
    async with runtime:
        client = runtime.client
        await call(runtime, keep, "add", 1)
        await call(runtime, gone, "add", 1)
        await call(runtime, gone, "delete")
        holder = await holding(runtime, [held])  # locked, no state
        # No state yet, but a signal on its way (due in a minute): not idle either.
        await client.signal_entity(pending, "add", 1, scheduled_time=utc_now() + timedelta(seconds=60))

        assert await client.purge_entities() == 1
        listed = (await client.list_entities(include_deleted=True)).entities
        assert {e.entity_id for e in listed} == {keep, held, pending}
        assert await client.get_status(gone.instance_id) is None
        assert await state_of(runtime, keep) == {"total": 1, "count": 1}

        await client.raise_event(holder, "release")
        completed(await client.wait_for_completion(holder, timeout=DEADLINE))
        await eventually(lambda: metadata(runtime, held), lambda m: m.locked_by is None, "the held unlock")
        assert await client.purge_entities() == 1
        listed = (await client.list_entities(include_deleted=True)).entities
        assert {e.entity_id for e in listed} == {keep, pending}


async def test_list_entities_filters_by_name_prefix_and_pages(runtime: DurableFunctionRuntime) -> None:
    for name in ("ledgerline", "leaf", "tally"):
        runtime.register_entity(counter, name)
    install(runtime)
    expected = {
        *(EntityId("ledgerline", k) for k in "abcde"),
        *(EntityId("leaf", k) for k in "xy"),
        EntityId("tally", "t"),
    }
    async with runtime:
        client = runtime.client
        for entity in sorted(expected, key=str):
            await client.signal_entity(entity, "add", len(entity.key))
        for entity in expected:
            await eventually(lambda e=entity: state_of(runtime, e), lambda s: s is not None, f"{entity}")

        pages: list[list[EntityId]] = []
        token: str | None = None
        while True:
            page = await client.list_entities("le", page_size=2, continuation_token=token, include_state=True)
            assert len(page.entities) <= 2
            assert all(e.state == {"total": 1, "count": 1} for e in page.entities)
            pages.append([e.entity_id for e in page.entities])
            token = page.continuation_token
            if token is None:
                break
        seen = [e for page_ids in pages for e in page_ids]
        assert len(seen) == len(set(seen)) == 7, pages
        assert set(seen) == {e for e in expected if e.name.startswith("le")}
        assert len(pages) >= 4

        assert {e.entity_id for e in (await client.list_entities("LEDGER")).entities} == {
            e for e in expected if e.name == "ledgerline"
        }
        assert [e.entity_id for e in (await client.list_entities("tally")).entities] == [
            EntityId("tally", "t")
        ]
        assert {e.entity_id for e in (await client.list_entities()).entities} == expected
        assert (await client.list_entities("tally")).entities[0].state is None  # not asked for


async def test_orchestration_listing_and_bulk_purge_leave_entities_out(
    runtime: DurableFunctionRuntime,
) -> None:
    install(runtime)
    entities = [EntityId("counter", k) for k in ("one", "two")]
    async with runtime:
        client = runtime.client
        orchestrations = {await client.start_new("try_call", [[e.instance_id, "add", 1]]) for e in entities}
        for instance_id in orchestrations:
            completed(await client.wait_for_completion(instance_id, timeout=DEADLINE))

        listed = (await client.list_instances()).instances
        assert {s.instance_id for s in listed} == orchestrations
        assert {
            s.instance_id for s in (await client.list_instances(InstanceFilter())).instances
        } == orchestrations
        asked = (await client.list_instances(InstanceFilter(entities=True))).instances
        assert {s.instance_id for s in asked} == {e.instance_id for e in entities}

        assert await client.purge(InstanceFilter()) == 2
        assert (await client.list_instances()).instances == []
        assert [await state_of(runtime, e) for e in entities] == [{"total": 1, "count": 1}] * 2
        assert {e.entity_id for e in (await client.list_entities()).entities} == set(entities)
        assert await call(runtime, entities[0], "add", 1) == 2


# ----- persistence ----------------------------------------------------------------------------


async def test_entities_survive_a_runtime_restart_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "entities.db"
    first = DurableFunctionRuntime(SqliteStateStore(path), max_poll_interval=0.02, shutdown_timeout=5.0)
    install(first)
    async with first:
        await call(first, EntityId("counter", "kept"), "add", 40)
        await first.client.signal_entity(EntityId("account", "kept"), "deposit", 70)
        assert await call(first, EntityId("account", "kept"), "get") == 70

    second = DurableFunctionRuntime(SqliteStateStore(path), max_poll_interval=0.02, shutdown_timeout=5.0)
    install(second)
    async with second:
        assert await state_of(second, EntityId("counter", "kept")) == {"total": 40, "count": 1}
        assert await state_of(second, EntityId("account", "kept")) == {"balance": 70, "lowest": 0}
        assert await call(second, EntityId("counter", "kept"), "add", 2) == 42
        await call(second, EntityId("account", "other"), "deposit", 1)
        assert await run(second, "transfer", {"from": "kept", "to": "other", "amount": 30}) == "done"
        assert await state_of(second, EntityId("account", "kept")) == {"balance": 40, "lowest": 0}
        assert await state_of(second, EntityId("account", "other")) == {"balance": 31, "lowest": 0}
