"""Class-based entities, entity registration and `EntityId`: pure, run through `run_entity_batch`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from asynkron_durable import DurableError, EntityContext, EntityId, current_entity
from asynkron_durable.entities import class_entity, is_entity_instance
from asynkron_durable.entities.batch import EntityBatchResult, run_entity_batch
from asynkron_durable.entities.document import EntityDocument
from asynkron_durable.errors import UnknownFunction
from asynkron_durable.history import EntityCallCompleted, EntityCallFailed, EntityOperation, HistoryEvent
from asynkron_durable.registry import Registry

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNT = EntityId("account", "alice")
AUDIT = EntityId("audit", "log")


class Order(BaseModel):
    amount: int
    note: str = ""


class Account:
    inits: ClassVar[list[str]] = []

    def __init__(self) -> None:
        Account.inits.append("init")
        self.balance = 0
        self.notes: list[str] = []
        self._scratch = "never stored"

    def deposit(self, amount: int) -> int:
        self.balance += amount
        return self.balance

    def pay(self, order: Order) -> dict[str, Any]:
        assert isinstance(order, Order)  # the JSON input was validated into the model
        self.balance -= order.amount
        self.notes.append(order.note)
        return {"paid": order.amount, "type": type(order).__name__}

    def overdraw(self, amount: int) -> None:
        self.balance -= amount
        current_entity().signal_entity(AUDIT, "record", amount)
        raise ValueError(f"cannot withdraw {amount}")

    def balance_of(self) -> int:
        return self.balance

    def whoami(self) -> list[Any]:
        ctx = current_entity()
        ctx.signal_entity(AUDIT, "seen", ctx.entity_key)
        return [ctx.entity_name, ctx.entity_key, ctx.operation_name]

    def close(self) -> str:
        current_entity().delete_state()
        return "closed"

    @staticmethod
    def helper() -> int:  # not an operation
        return 1

    def _private(self) -> None:  # not an operation
        pass


class Wallet(BaseModel):
    """A pydantic-model entity: stored through its fields."""

    coins: int = 0
    history: list[int] = []

    def add(self, coins: int) -> int:
        self.coins += coins
        self.history.append(coins)
        return self.coins


@dataclasses.dataclass
class Tally:
    """A dataclass entity: stored through its fields."""

    count: int = 0
    seen: list[str] = dataclasses.field(default_factory=list)

    def hit(self, who: str) -> int:
        self.count += 1
        self.seen.append(who)
        return self.count


class Bin:
    def __init__(self) -> None:
        self.contents = ["x"]
        self.deleted = False

    def delete(self) -> str:  # the class's own `delete` replaces the built-in one
        self.deleted = True
        return "soft-deleted"


@pytest.fixture(autouse=True)
def _reset_inits() -> Generator[None, None, None]:
    Account.inits.clear()
    yield
    Account.inits.clear()


def call(operation: str, input: Any = None, task_id: int = 0) -> EntityOperation:
    return EntityOperation(
        timestamp=T0,
        operation=operation,
        input=None if input is None else json.dumps(input),
        source_instance_id="orch",
        source_execution_id="e1",
        task_id=task_id,
    )


def run(
    function: Any,
    requests: list[HistoryEvent],
    document: EntityDocument | None = None,
    entity: EntityId = ACCOUNT,
) -> EntityBatchResult:
    return run_entity_batch(entity, document or EntityDocument(), requests, function, T0)


def reply(result: EntityBatchResult, task_id: int) -> HistoryEvent:
    [event] = [
        m.event
        for m in result.messages
        if isinstance(m.event, EntityCallCompleted | EntityCallFailed)
        and m.event.task_scheduled_id == task_id
    ]
    return event


def returned(result: EntityBatchResult, task_id: int) -> Any:
    event = reply(result, task_id)
    assert isinstance(event, EntityCallCompleted), event
    return json.loads(event.result) if event.result is not None else None


def failed(result: EntityBatchResult, task_id: int) -> EntityCallFailed:
    event = reply(result, task_id)
    assert isinstance(event, EntityCallFailed), event
    return event


def stored(result: EntityBatchResult) -> Any:
    assert result.document.exists
    assert result.document.state is not None
    return json.loads(result.document.state)


# ----- class entities ---------------------------------------------------------------------------


def test_methods_are_operations_and_public_attributes_are_the_state() -> None:
    account = class_entity(Account)
    result = run(account, [call("deposit", 10, 1), call("deposit", "5", 2), call("balance_of", None, 3)])
    assert returned(result, 1) == 10
    assert returned(result, 2) == 15  # "5" validated into int by the type hint
    assert returned(result, 3) == 15
    assert stored(result) == {"balance": 15, "notes": []}  # `_scratch` is not state


def test_a_pydantic_model_input_is_validated_from_json() -> None:
    result = run(class_entity(Account), [call("pay", {"amount": "7", "note": "rent"}, 1)])
    assert returned(result, 1) == {"paid": 7, "type": "Order"}
    assert stored(result) == {"balance": -7, "notes": ["rent"]}

    bad = run(class_entity(Account), [call("pay", {"note": "no amount"}, 1)])
    failure = failed(bad, 1).failure
    assert failure.error_type == "SerializationError"
    assert "'pay'" in failure.message and "Order" in failure.message
    assert not bad.document.exists


def test_init_runs_only_for_an_entity_without_state() -> None:
    account = class_entity(Account)
    first = run(account, [call("deposit", 1, 1), call("deposit", 2, 2)])
    assert Account.inits == ["init"]  # once: the second operation loaded the stored state
    second = run(account, [call("deposit", 3, 1)], document=first.document)
    assert Account.inits == ["init"]
    assert returned(second, 1) == 6


def test_a_raising_method_rolls_back_its_attribute_changes_and_signals() -> None:
    account = class_entity(Account)
    result = run(account, [call("deposit", 10, 1), call("overdraw", 50, 2), call("balance_of", None, 3)])
    failure = failed(result, 2).failure
    assert failure.error_type == "ValueError" and failure.message == "cannot withdraw 50"
    assert returned(result, 3) == 10
    assert [m for m in result.messages if m.instance_id == AUDIT.instance_id] == []


def test_the_delete_operation_deletes_the_state() -> None:
    account = class_entity(Account)
    result = run(account, [call("deposit", 10, 1), call("delete", None, 2)])
    assert returned(result, 2) is None
    assert not result.document.exists
    assert result.document.state is None
    # a later operation starts over from __init__
    again = run(account, [call("balance_of", None, 1)], document=result.document)
    assert returned(again, 1) == 0
    assert Account.inits == ["init", "init"]


def test_a_method_can_delete_the_state_through_current_entity() -> None:
    result = run(class_entity(Account), [call("deposit", 10, 1), call("close", None, 2)])
    assert returned(result, 2) == "closed"
    assert not result.document.exists


def test_a_class_defined_delete_replaces_the_built_in_one() -> None:
    result = run(class_entity(Bin), [call("delete", None, 1)])
    assert returned(result, 1) == "soft-deleted"
    assert stored(result) == {"contents": ["x"], "deleted": True}


def test_an_unknown_operation_names_the_known_ones() -> None:
    result = run(class_entity(Account), [call("withdraw", 1, 1)])
    failure = failed(result, 1).failure
    assert failure.error_type == "UnknownFunction"
    assert failure.message.startswith(
        "unknown operation 'withdraw' of entity Account; registered operations: "
    )
    for known in ("balance_of", "close", "deposit", "overdraw", "pay", "whoami"):
        assert known in failure.message
    assert "helper" not in failure.message  # static methods are not operations
    assert "_private" not in failure.message


def test_current_entity_is_the_running_operations_context() -> None:
    result = run(class_entity(Account), [call("whoami", None, 1)])
    assert returned(result, 1) == ["account", "alice", "whoami"]
    [audit] = [m for m in result.messages if m.instance_id == AUDIT.instance_id]
    assert isinstance(audit.event, EntityOperation)
    assert audit.event.operation == "seen" and audit.event.input == '"alice"'


def test_current_entity_outside_an_operation_raises() -> None:
    with pytest.raises(DurableError, match="only available inside an entity operation"):
        current_entity()
    # and is gone again once an operation has run
    run(class_entity(Account), [call("whoami", None, 1)])
    with pytest.raises(DurableError, match="only available inside an entity operation"):
        current_entity()


def test_current_entity_works_in_function_entities_too() -> None:
    def fn(ctx: EntityContext) -> bool:
        return current_entity() is ctx

    assert returned(run(fn, [call("x", None, 1)]), 1) is True


def test_a_pydantic_model_entity_round_trips_through_its_fields() -> None:
    wallet = class_entity(Wallet)
    first = run(wallet, [call("add", 2, 1), call("add", 3, 2)])
    assert returned(first, 2) == 5
    assert stored(first) == {"coins": 5, "history": [2, 3]}
    second = run(wallet, [call("add", 4, 1)], document=first.document)
    assert returned(second, 1) == 9
    assert stored(second) == {"coins": 9, "history": [2, 3, 4]}


def test_a_pydantic_model_entity_exposes_only_its_own_methods() -> None:
    result = run(class_entity(Wallet), [call("model_dump", None, 1)])
    failure = failed(result, 1).failure
    assert failure.error_type == "UnknownFunction"
    assert "add" in failure.message


def test_a_dataclass_entity_round_trips_through_its_fields() -> None:
    tally = class_entity(Tally)
    first = run(tally, [call("hit", "ann", 1)])
    assert stored(first) == {"count": 1, "seen": ["ann"]}
    second = run(tally, [call("hit", "bob", 1), call("hit", "cy", 2)], document=first.document)
    assert returned(second, 2) == 3
    assert stored(second) == {"count": 3, "seen": ["ann", "bob", "cy"]}


def test_an_operation_with_two_inputs_is_rejected() -> None:
    class TwoInputs:
        def move(self, a: int, b: int) -> None:
            pass

    with pytest.raises(DurableError, match=r"TwoInputs\.move takes 2 inputs"):
        class_entity(TwoInputs)


# ----- registration -----------------------------------------------------------------------------


def test_an_async_method_is_rejected_at_registration() -> None:
    class Remote:
        async def fetch(self) -> int:
            return 1

    with pytest.raises(DurableError, match=r"Remote\.fetch is async.*activity"):
        Registry().add_entity(Remote)


def test_async_and_generator_entity_functions_are_rejected_at_registration() -> None:
    async def async_entity(ctx: EntityContext) -> None:
        pass

    def generator_entity(ctx: EntityContext) -> Generator[None, None, None]:
        yield

    registry = Registry()
    with pytest.raises(DurableError, match=r"must be a plain function.*synchronously"):
        registry.add_entity(async_entity)
    with pytest.raises(DurableError, match="must be a plain function"):
        registry.add_entity(generator_entity)
    assert registry.entities == {}


def test_entity_names_are_case_insensitive() -> None:
    def Counter(ctx: EntityContext) -> None:
        pass

    registry = Registry()
    assert registry.add_entity(Account) == "account"
    assert registry.add_entity(Counter) == "counter"
    assert registry.add_entity(Counter, name="BigCounter") == "bigcounter"
    assert registry.entity("ACCOUNT") is registry.entity("account")
    assert registry.entity("Counter") is Counter
    assert registry.entity("BIGCOUNTER") is Counter
    with pytest.raises(UnknownFunction, match=r"unknown entity 'nope'.*account, bigcounter, counter"):
        registry.entity("nope")
    # a registered class runs as a class entity under its lower-case name
    result = run(registry.entity("Account"), [call("deposit", 4, 1)])
    assert returned(result, 1) == 4


def test_a_registered_pydantic_model_entity_runs() -> None:
    registry = Registry()
    assert registry.add_entity(Wallet) == "wallet"
    result = run(registry.entity("wallet"), [call("add", 1, 1)])
    assert returned(result, 1) == 1


def test_an_at_sign_in_an_entity_name_is_rejected() -> None:
    def fn(ctx: EntityContext) -> None:
        pass

    registry = Registry()
    with pytest.raises(DurableError, match="without '@'"):
        registry.add_entity(fn, name="bad@name")
    assert registry.entities == {}


# ----- EntityId ---------------------------------------------------------------------------------


def test_entity_id_is_stored_as_at_name_at_key() -> None:
    entity = EntityId("Counter", "Key-1")
    assert entity.name == "counter"  # names are lower-cased
    assert entity.key == "Key-1"  # keys are kept as given
    assert entity.instance_id == "@counter@Key-1"
    assert str(entity) == "@counter@Key-1"
    assert entity == EntityId("COUNTER", "Key-1")
    assert hash(entity) == hash(EntityId("counter", "Key-1"))
    assert entity != EntityId("counter", "key-1")


@pytest.mark.parametrize(
    ("instance_id", "name", "key"),
    [
        ("@counter@a", "counter", "a"),
        ("@Counter@A", "counter", "A"),
        ("@counter@a@b", "counter", "a@b"),  # keys may hold '@'
        ("@counter@", "counter", ""),
        ("@counter@with space/and:colon", "counter", "with space/and:colon"),
    ],
)
def test_entity_id_parses_and_round_trips(instance_id: str, name: str, key: str) -> None:
    entity = EntityId.from_instance_id(instance_id)
    assert (entity.name, entity.key) == (name, key)
    assert EntityId.parse(instance_id) == entity
    assert EntityId.from_instance_id(entity.instance_id) == entity
    assert is_entity_instance(entity.instance_id)


def test_entity_id_parse_passes_an_entity_id_through() -> None:
    entity = EntityId("a", "b")
    assert EntityId.parse(entity) is entity


@pytest.mark.parametrize("instance_id", ["counter@a", "@counter", "", "@", "@@key", "plain-instance"])
def test_entity_id_rejects_what_is_not_an_entity_instance_id(instance_id: str) -> None:
    with pytest.raises(ValueError):
        EntityId.from_instance_id(instance_id)


def test_entity_id_rejects_bad_names_and_keys() -> None:
    with pytest.raises(ValueError, match="without '@'"):
        EntityId("a@b", "k")
    with pytest.raises(ValueError, match="non-empty"):
        EntityId("", "k")
    with pytest.raises(TypeError, match="key must be a string"):
        EntityId("a", 5)  # type: ignore[arg-type]
    assert not is_entity_instance("orchestration-1")
