"""SQLite-only behaviour: durability, schema handling, corrupt rows, cross-process claims, URLs."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.chaos import poll_until

from asynkron_durable.errors import StoreError
from asynkron_durable.history import (
    EventRaised,
    ExecutionStarted,
    HistoryEvent,
    InstanceRecord,
    OrchestratorStarted,
    RuntimeStatus,
    event_to_json,
)
from asynkron_durable.stores import (
    EpisodeCommit,
    InMemoryStateStore,
    Message,
    NewInstance,
    OrchestrationWorkItem,
    SqliteStateStore,
    store_from_url,
)
from asynkron_durable.stores._sqlite_codec import QUERIES
from asynkron_durable.stores.sqlite import SCHEMA_VERSION
from asynkron_durable.stores.workers import WorkerRecord

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=30)


def new_instance(instance_id: str) -> NewInstance:
    record = InstanceRecord(
        instance_id=instance_id,
        name="orch",
        execution_id=f"{instance_id}:1",
        runtime_status=RuntimeStatus.PENDING,
        created_at=T0,
        last_updated_at=T0,
    )
    return NewInstance(record, ExecutionStarted(name="orch", execution_id=f"{instance_id}:1"))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "durable.db"


@pytest.fixture
async def sqlite_store(db: Path) -> AsyncIterator[SqliteStateStore]:
    store = SqliteStateStore(db)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _commit(item: OrchestrationWorkItem, history: Sequence[HistoryEvent]) -> EpisodeCommit:
    """The commit of an episode of `item` that consumed its messages and recorded `history`."""
    return EpisodeCommit(
        record=item.record.model_copy(update={"runtime_status": RuntimeStatus.RUNNING}),
        expected_version=item.record.version,
        new_history=list(history),
        acknowledged_message_ids=[m.message_id for m in item.messages],
    )


async def _run_one_episode(store: SqliteStateStore, instance_id: str) -> list[OrchestratorStarted]:
    await store.create_instance(new_instance(instance_id), replace=False)
    [item] = await store.claim_orchestrations("w1", T0, LATER, 1)
    history = [OrchestratorStarted(timestamp=T0)]
    assert (await store.commit_episodes("w1", T0, [_commit(item, history)])).rejected == set()
    return history


def _sql(db: Path, statement: str, params: dict[str, object] | None = None) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(statement, params or {}).fetchall()
    conn.close()
    return rows


async def test_data_survives_reopening_the_file(db: Path) -> None:
    first = SqliteStateStore(db)
    await first.open()
    history = await _run_one_episode(first, "a")
    await first.send_messages([Message("a", EventRaised(name="later"), visible_at=LATER)])
    await first.close()

    second = SqliteStateStore(str(db))
    await second.open()
    try:
        record = await second.get_instance("a")
        assert record is not None
        assert (record.runtime_status, record.version) == (RuntimeStatus.RUNNING, 1)
        assert await second.get_history("a") == history
        [item] = await second.claim_orchestrations("w2", LATER, LATER, 1)
        assert [m.event.kind for m in item.messages] == ["EventRaised"]
    finally:
        await second.close()


async def test_open_is_idempotent_and_uses_wal(sqlite_store: SqliteStateStore, db: Path) -> None:
    await sqlite_store.open()
    await sqlite_store.create_instance(new_instance("a"), replace=False)
    other = SqliteStateStore(db)
    await other.open()
    await other.close()

    assert _sql(db, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert _sql(db, "PRAGMA journal_mode") == [("wal",)]
    assert await sqlite_store.get_instance("a") is not None


async def test_refuses_a_newer_schema(db: Path) -> None:
    store = SqliteStateStore(db)
    await store.open()
    await store.close()
    _sql(db, f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}")

    with pytest.raises(
        StoreError, match=rf"schema version {SCHEMA_VERSION + 1}.*only knows up to {SCHEMA_VERSION}"
    ):
        await SqliteStateStore(db).open()


async def test_a_commit_appends_its_events_as_one_history_row(
    sqlite_store: SqliteStateStore, db: Path
) -> None:
    await sqlite_store.create_instance(new_instance("a"), replace=False)
    [item] = await sqlite_store.claim_orchestrations("w1", T0, LATER, 1)
    events: list[HistoryEvent] = [
        OrchestratorStarted(timestamp=T0),
        EventRaised(name="x"),
        EventRaised(name="y"),
    ]
    assert (await sqlite_store.commit_episodes("w1", T0, [_commit(item, events)])).rejected == set()

    assert _sql(db, "SELECT seq FROM history WHERE instance_id = 'a'") == [(0,)]
    assert await sqlite_store.get_history("a") == events


async def test_a_version_1_file_is_upgraded_and_its_one_event_rows_read_first(db: Path) -> None:
    store = SqliteStateStore(db)
    await store.open()
    await store.create_instance(new_instance("a"), replace=False)
    [item] = await store.claim_orchestrations("w1", T0, LATER, 1)
    await store.close()
    old: list[HistoryEvent] = [OrchestratorStarted(timestamp=T0), EventRaised(name="old")]
    _sql(db, "UPDATE schema_version SET version = 1")
    for seq, event in enumerate(old):
        _sql(
            db, "INSERT INTO history VALUES ('a', :seq, :event)", {"seq": seq, "event": event_to_json(event)}
        )

    upgraded = SqliteStateStore(db)
    await upgraded.open()
    try:
        assert _sql(db, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
        new: list[HistoryEvent] = [OrchestratorStarted(timestamp=LATER), EventRaised(name="new")]
        assert (await upgraded.commit_episodes("w1", T0, [_commit(item, new)])).rejected == set()
        assert await upgraded.get_history("a") == old + new
        assert await upgraded.load_histories(["a"]) == {"a": old + new}
    finally:
        await upgraded.close()
    assert _sql(db, "SELECT seq FROM history WHERE instance_id = 'a' ORDER BY seq") == [(0,), (1,), (2,)]


async def test_a_version_2_file_gets_the_workers_table(db: Path) -> None:
    store = SqliteStateStore(db)
    await store.open()
    await store.create_instance(new_instance("a"), replace=False)
    await store.close()
    _sql(db, "DROP TABLE workers")
    _sql(db, "UPDATE schema_version SET version = 2")

    upgraded = SqliteStateStore(db)
    await upgraded.open()
    try:
        worker = WorkerRecord("w1", "host", 1, T0, T0)
        await upgraded.workers.register(worker)
        assert [w.worker_id for w in await upgraded.workers.registered()] == ["w1"]
        assert await upgraded.get_instance("a") is not None
    finally:
        await upgraded.close()
    assert _sql(db, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]


async def test_driver_errors_become_store_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"garbage\.db") as caught:
        await SqliteStateStore(garbage).open()
    assert isinstance(caught.value.__cause__, sqlite3.Error)

    with pytest.raises(StoreError, match="unable to open"):
        await SqliteStateStore(tmp_path / "missing-dir" / "x.db").open()


async def test_corrupt_history_row_names_the_instance(sqlite_store: SqliteStateStore, db: Path) -> None:
    await _run_one_episode(sqlite_store, "broken")
    await _run_one_episode(sqlite_store, "fine")
    _sql(db, "UPDATE history SET event = '[{\"kind\": \"Nope\"}]' WHERE instance_id = 'broken'")

    with pytest.raises(StoreError, match=r"'broken'.*seq=0"):
        await sqlite_store.load_histories(["fine", "broken"])
    with pytest.raises(StoreError, match="'broken'"):
        await sqlite_store.get_history("broken")
    assert len(await sqlite_store.get_history("fine")) == 1


async def test_corrupt_inbox_row_is_dead_lettered_and_blocks_nothing(
    sqlite_store: SqliteStateStore, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await sqlite_store.create_instance(new_instance("broken"), replace=False)
    _sql(db, "UPDATE inbox SET event = 'not json'")
    await sqlite_store.create_instance(new_instance("healthy"), replace=False)

    items = await sqlite_store.claim_orchestrations("w1", T0, LATER, 10)

    by_id = {item.record.instance_id: item for item in items}
    assert len(by_id["healthy"].messages) == 1
    assert by_id["broken"].messages == []
    (dead,) = _sql(db, "SELECT instance_id, event, error FROM dead_letters")
    assert dead[0] == "broken" and dead[1] == "not json"
    assert "'broken'" in dead[2] and "inbox message" in dead[2]
    assert "dead_letters" in caplog.text
    assert await sqlite_store.claim_orchestrations("w2", T0, LATER, 10) == []


async def test_corrupt_instance_row_names_the_instance(sqlite_store: SqliteStateStore, db: Path) -> None:
    await sqlite_store.create_instance(new_instance("broken"), replace=False)
    await sqlite_store.create_instance(new_instance("healthy"), replace=False)
    _sql(db, "UPDATE instances SET runtime_status = 'Bogus' WHERE instance_id = 'broken'")
    with pytest.raises(StoreError, match="'broken'"):
        await sqlite_store.get_instance("broken")

    items = await sqlite_store.claim_orchestrations("w1", T0, LATER, 10)

    assert [item.record.instance_id for item in items] == ["healthy"]
    assert _sql(db, "SELECT lease_owner FROM instances WHERE instance_id = 'broken'") == [("!unreadable",)]
    much_later = LATER + timedelta(days=365)
    again = await sqlite_store.claim_orchestrations("w2", much_later, much_later + timedelta(seconds=30), 10)
    assert [item.record.instance_id for item in again] == ["healthy"]  # its lease expired; broken never


async def test_two_store_objects_never_claim_the_same_instance(db: Path) -> None:
    first, second = SqliteStateStore(db), SqliteStateStore(db)
    await first.open()
    await second.open()
    try:
        for n in range(20):
            await first.create_instance(new_instance(f"i{n}"), replace=False)

        claims = await asyncio.gather(
            *(
                store.claim_orchestrations(owner, T0, LATER, 3)
                for _ in range(5)
                for owner, store in (("p1", first), ("p2", second))
            )
        )

        claimed = [item.record.instance_id for batch in claims for item in batch]
        assert sorted(claimed) == sorted(f"i{n}" for n in range(20))
        assert await second.claim_orchestrations("p2", T0, LATER, 10) == []
    finally:
        await first.close()
        await second.close()


async def test_claim_query_uses_the_visibility_index(db: Path) -> None:
    store = SqliteStateStore(db)
    await store.open()
    await store.close()
    for names in (None, '["orch"]'):  # any instance, or those a worker registers
        params = {"now": 0.0, "limit": 10, "names": names}
        plan = _sql(db, "EXPLAIN QUERY PLAN " + QUERIES["claim_candidates"], params)
        details = " ".join(str(row[-1]) for row in plan)
        assert "inbox_by_visible_at" in details
        assert "SCAN inbox" not in details


async def test_sql_files_ship_in_the_package() -> None:
    assert {"claim_candidates", "commit_instance", "filter_instances"} <= set(QUERIES)
    assert all(sql.strip() for sql in QUERIES.values())


def test_store_from_url(tmp_path: Path) -> None:
    assert isinstance(store_from_url("memory://"), InMemoryStateStore)
    relative = store_from_url("sqlite:///./durable.db")
    assert isinstance(relative, SqliteStateStore)
    assert relative.path == Path("durable.db")
    absolute = store_from_url(f"sqlite:///{tmp_path}/abs.db")
    assert isinstance(absolute, SqliteStateStore)
    assert absolute.path == tmp_path / "abs.db"
    assert absolute.path.is_absolute()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///:memory:", "memory://"),
        ("sqlite://", "no file path"),
        ("sqlite:///", "no file path"),
        ("sqlite://host/x.db", "no file path"),
        ("memory://extra", "takes no path"),
        ("durable.db", "no scheme"),
        ("redis://x", r"'redis'.*memory://.*sqlite:///.*postgresql://"),
    ],
)
def test_store_from_url_rejects(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        store_from_url(url)


async def test_open_waits_for_a_file_another_process_has_locked(tmp_path: Path) -> None:
    """A client opening the file while a worker holds its write lock for longer than the busy
    timeout keeps trying, instead of failing with "database is locked"."""
    first = SqliteStateStore(tmp_path / "durable.db")
    await first.open()
    await first.close()
    holder = sqlite3.connect(tmp_path / "durable.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    store = SqliteStateStore(tmp_path / "durable.db", busy_timeout_ms=20)
    attempts = 0
    connect = store._connect

    async def counted() -> Any:
        nonlocal attempts
        attempts += 1
        return await connect()

    store._connect = counted  # type: ignore[method-assign]
    opening = asyncio.ensure_future(store.open())
    try:
        await poll_until(lambda: attempts >= 3, 10, "open to try a few times")
        assert not opening.done()
        holder.execute("COMMIT")
        await opening
        assert await store.get_instance("nothing") is None
    finally:
        holder.close()
        await store.close()


def test_a_program_that_never_closes_its_store_still_exits(tmp_path: Path) -> None:
    program = f"""
import asyncio
from asynkron_durable import OrchestrationClient, SqliteStateStore

async def main():
    store = SqliteStateStore({str(tmp_path / "durable.db")!r})
    await store.open()
    await OrchestrationClient(store).start_new("anything", 1, "kept")

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", program], timeout=60, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    with sqlite3.connect(tmp_path / "durable.db") as conn:  # and what it committed is there
        assert conn.execute("SELECT name FROM instances WHERE instance_id = 'kept'").fetchall() == [
            ("anything",)
        ]
