"""Waiting for many instances costs what waiting for one does: a client's waits share one reader
that learns of endings at once when the store announces them (this process's, and on PostgreSQL
every process's) and reads every waited instance in one query only when the store may have missed
some (on SQLite: another process wrote). No per-waiter polling."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from support.chaos import poll_until
from support.store_wrapper import StoreWrapper

from asynkron_durable import (
    DurableFunctionRuntime,
    InstanceAlreadyExists,
    InstanceNotFound,
    OrchestrationClient,
    OrchestrationContext,
    OrchestrationTimeout,
    PostgresStateStore,
    RuntimeStatus,
    SqliteStateStore,
    waiting,
)
from asynkron_durable.errors import SerializationError, StoreError
from asynkron_durable.history import InstanceRecord
from asynkron_durable.stores import InstanceFilter, NewInstance, StateStore

WAITERS = 200


class _CountingReads(StoreWrapper):
    """Counts single and batch instance reads."""

    def __init__(self, inner: StateStore) -> None:
        super().__init__(inner)
        self.single_reads = 0
        self.batch_reads = 0
        self.checks = 0

    async def unheard_mark(self) -> int:
        self.checks += 1
        return await self._inner.unheard_mark()

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        self.single_reads += 1
        return await self._inner.get_instance(instance_id)

    async def get_instances(self, instance_ids: Sequence[str]) -> dict[str, InstanceRecord]:
        self.batch_reads += 1
        return await self._inner.get_instances(instance_ids)


async def test_many_waiters_share_one_reader(store: StateStore) -> None:
    gate = threading.Event()
    runtime = DurableFunctionRuntime(store, max_poll_interval=0.02)

    @runtime.activity()
    def held(n: int) -> int:
        gate.wait(30)
        return n

    @runtime.orchestrator()
    def one(ctx: OrchestrationContext) -> Any:
        value = yield ctx.call_activity(held, ctx.get_input())
        return value

    reads = _CountingReads(store)
    client = OrchestrationClient(reads)  # type: ignore[arg-type]
    async with runtime:
        ids = [await client.start_new("one", n) for n in range(WAITERS)]
        waits = asyncio.gather(*(client.wait_for_completion(i, 60, poll_interval=0.01) for i in ids))
        await poll_until(lambda: reads.checks >= 5, 10, "the watcher to pass a few intervals")
        assert reads.single_reads == 0  # while they wait, nobody polls an instance on its own
        assert reads.batch_reads <= 3  # and the shared reader reads them only as they come in
        gate.set()
        done = await waits
    assert [status.output for status in done] == list(range(WAITERS))
    assert reads.single_reads == 0  # the result is built from the record the shared read found
    assert all(status.runtime_status is RuntimeStatus.COMPLETED for status in done)


@pytest.mark.usefixtures("no_safety_net")
async def test_an_ending_in_another_process_is_seen_by_the_shared_read(tmp_path: Path) -> None:
    elsewhere = SqliteStateStore(tmp_path / "durable.db")  # another store object: no announcement
    await elsewhere.open()
    try:
        client = OrchestrationClient(elsewhere)
        async with _go_runtime(SqliteStateStore(tmp_path / "durable.db")):
            instance_id = await client.start_new("wait_for_go")
            waiting = asyncio.ensure_future(client.wait_for_completion(instance_id, timeout=30))
            await poll_until(lambda: client._watcher is not None, 10, "the wait to begin")
            await client.raise_event(instance_id, "go", "went")
            status = await waiting
    finally:
        await elsewhere.close()
    assert status.output == "went"


async def test_a_purged_instance_ends_its_waits_and_a_timeout_names_the_status(store: StateStore) -> None:
    client = OrchestrationClient(store)
    await client.start_new("nobody_runs_this", None, "stuck")
    with pytest.raises(OrchestrationTimeout, match=r"instance 'stuck' still Pending after 0\.2s"):
        await client.wait_for_completion("stuck", timeout=0.2)
    waiting = asyncio.ensure_future(client.wait_for_completion("stuck", timeout=30))
    await client.terminate("stuck")  # a Pending instance: the request waits for a worker
    await store.purge_instance("stuck")
    with pytest.raises(InstanceNotFound):
        await waiting
    with pytest.raises(InstanceNotFound):
        await client.wait_for_completion("never-was", timeout=5)


async def test_a_client_connects_to_a_store_url_for_a_block(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'durable.db'}"
    async with OrchestrationClient.connect(url, task_hub="orders") as client:
        await client.start_new("anything", None, "c1")
        status = await client.get_status("c1")
        store = client.store
    assert status is not None and status.runtime_status is RuntimeStatus.PENDING
    assert isinstance(store, SqliteStateStore) and store.path == tmp_path / "durable.orders.db"
    with pytest.raises(StoreError, match="is not open"):  # closed with the block
        await store.get_instance("c1")


async def test_postgres_pushes_endings_to_other_processes(pg_dsn: str, pg_schemas: Any) -> None:
    """A client on another store object (another process, as far as the database can tell) that
    re-reads only once a minute still sees endings at once: NOTIFY carries their ids, split over
    as many payloads as they need (these ids fill several)."""
    schema = pg_schemas()
    runtime = DurableFunctionRuntime(PostgresStateStore(pg_dsn, schema=schema), max_poll_interval=0.02)

    @runtime.orchestrator()
    def wait_for_go(ctx: OrchestrationContext) -> Any:
        value = yield ctx.wait_for_external_event("go")
        return value

    ids = [f"{n:03d}-" + "é" * 250 for n in range(60)]  # 30 KB of ids: several payloads' worth
    other_store = PostgresStateStore(pg_dsn, schema=schema)
    elsewhere = OrchestrationClient(other_store)
    await other_store.open()
    try:
        async with runtime:
            for instance_id in ids:
                await elsewhere.start_new("wait_for_go", None, instance_id)
            waits = [
                asyncio.ensure_future(elsewhere.wait_for_completion(i, timeout=30, poll_interval=60))
                for i in ids
            ]
            # sent together, so the worker ends many in one commit
            await asyncio.gather(*(runtime.client.raise_event(i, "go", i[:3]) for i in ids[:30]))
            done = await asyncio.gather(*waits[:30])
            assert [status.output for status in done] == [i[:3] for i in ids[:30]]
            await runtime.client.terminate(ids[30], "stop")
            assert (await waits[30]).runtime_status is RuntimeStatus.TERMINATED
            await runtime.store.purge_instances(InstanceFilter(instance_id_prefix="0"))  # by NOTIFY
            for waiting in waits[31:]:
                with pytest.raises(InstanceNotFound):
                    await waiting
    finally:
        await other_store.close()


async def test_sqlite_knows_when_another_process_wrote(tmp_path: Path) -> None:
    here = SqliteStateStore(tmp_path / "durable.db")
    there = SqliteStateStore(tmp_path / "durable.db")
    await here.open()
    await there.open()
    try:
        first = await here.unheard_mark()
        assert await here.unheard_mark() == first  # looking changes nothing: waiters may share it
        await OrchestrationClient(here).start_new("anything", None, "mine")
        assert await here.unheard_mark() == first  # its own writes it announces itself
        await OrchestrationClient(there).start_new("anything", None, "theirs")
        assert await here.unheard_mark() != first
    finally:
        await here.close()
        await there.close()


@pytest.fixture
def no_safety_net(monkeypatch: pytest.MonkeyPatch) -> None:
    """Readers do their 5-second full read only after 10 minutes: a test then shows that an
    ending elsewhere was noticed by the store's mark, not found by the safety net."""
    monkeypatch.setattr(waiting, "FALLBACK", 600.0)


def _go_runtime(store: StateStore) -> DurableFunctionRuntime:
    """A runtime (on another store object: another process, as far as waiters can tell) whose
    `wait_for_go` instances finish when event `go` arrives."""
    runtime = DurableFunctionRuntime(store, max_poll_interval=0.02)

    @runtime.orchestrator()
    def wait_for_go(ctx: OrchestrationContext) -> Any:
        value = yield ctx.wait_for_external_event("go")
        return value

    return runtime


@pytest.mark.usefixtures("no_safety_net")
async def test_two_clients_of_one_store_each_see_another_process_ending(tmp_path: Path) -> None:
    """Each client's reader keeps its own view of the store's mark, so one noticing a change does
    not hide it from the other."""
    here = SqliteStateStore(tmp_path / "durable.db")
    await here.open()
    clients = [OrchestrationClient(here), OrchestrationClient(here)]
    try:
        async with _go_runtime(SqliteStateStore(tmp_path / "durable.db")) as runtime:
            await runtime.client.start_new("wait_for_go", None, "theirs")
            waits = [asyncio.ensure_future(c.wait_for_completion("theirs", 30, 0.01)) for c in clients]
            await poll_until(lambda: all(c._watcher is not None for c in clients), 10, "both to wait")
            await runtime.client.raise_event("theirs", "go", "went")
            done = await asyncio.gather(*waits)
        assert [status.output for status in done] == ["went", "went"]
    finally:
        await here.close()


@pytest.mark.usefixtures("no_safety_net")
async def test_an_impatient_waiter_is_not_held_to_a_patient_ones_interval(tmp_path: Path) -> None:
    here = SqliteStateStore(tmp_path / "durable.db")
    await here.open()
    client = OrchestrationClient(here)
    try:
        async with _go_runtime(SqliteStateStore(tmp_path / "durable.db")) as runtime:
            for instance_id in ("patient", "impatient"):
                await runtime.client.start_new("wait_for_go", None, instance_id)
            patient = asyncio.ensure_future(client.wait_for_completion("patient", 120, poll_interval=60))
            await poll_until(lambda: client._watcher is not None, 10, "the patient wait to begin")
            impatient = asyncio.ensure_future(client.wait_for_completion("impatient", 30, 0.01))
            await runtime.client.raise_event("impatient", "go", "soon")
            assert (await impatient).output == "soon"
            patient.cancel()
    finally:
        await here.close()


class _CountingStarts(StoreWrapper):
    """Counts batched and one-by-one creations."""

    def __init__(self, inner: StateStore) -> None:
        super().__init__(inner)
        self.batches: list[int] = []
        self.singles = 0

    async def create_instances(self, news: Sequence[NewInstance]) -> set[str]:
        self.batches.append(len(news))
        return await self._inner.create_instances(news)

    async def create_instance(self, new: NewInstance, *, replace: bool) -> None:
        self.singles += 1
        await self._inner.create_instance(new, replace=replace)


async def test_concurrent_starts_share_transactions(store: StateStore) -> None:
    counting = _CountingStarts(store)
    client = OrchestrationClient(counting)  # type: ignore[arg-type]
    await client.start_new("anything", None, "taken")

    starts = [client.start_new("anything", n) for n in range(1200)]
    ids = await asyncio.gather(*starts, client.start_new("anything", None, "taken"), return_exceptions=True)

    assert isinstance(ids[-1], InstanceAlreadyExists)  # the one whose id is in use, alone
    assert counting.singles == 1  # it went the one-by-one way, which said why
    assert counting.batches == [1, 500, 500, 201]  # the first start, then the rest together
    records = await store.get_instances([i for i in ids[:-1] if isinstance(i, str)])
    assert sorted(record.input for record in records.values()) == sorted(str(n) for n in range(1200))


async def test_start_many_checks_every_input_first_and_returns_ids_in_order(store: StateStore) -> None:
    client = OrchestrationClient(store)
    with pytest.raises(SerializationError, match="input of orchestrator 'anything' of type object"):
        await client.start_many("anything", [1, 2, object()])
    assert (await store.query_instances(InstanceFilter(), 10, None)).instances == []

    ids = await client.start_many("anything", range(5))
    records = await store.get_instances(ids)
    assert [records[i].input for i in ids] == ["0", "1", "2", "3", "4"]


class _FailingSecondBatch(StoreWrapper):
    """The second batch of starts finds the store down."""

    def __init__(self, inner: StateStore) -> None:
        super().__init__(inner)
        self.batches = 0

    async def create_instances(self, news: Sequence[NewInstance]) -> set[str]:
        self.batches += 1
        if self.batches == 2:
            raise StoreError("the store went away")
        return await self._inner.create_instances(news)


async def test_start_many_names_what_started_when_the_store_fails_part_way(store: StateStore) -> None:
    client = OrchestrationClient(_FailingSecondBatch(store))  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="went away") as caught:
        await client.start_many("anything", range(600))
    [note] = caught.value.__notes__
    assert note.startswith("500 of 600 instances started: ")
    named = note.split(": ", 1)[1].split(", ")
    assert len(named) == 500 and len(await store.get_instances(named)) == 500
