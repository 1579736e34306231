"""PostgreSQL-only behaviour: schema and migrations, isolation, NOTIFY, SKIP LOCKED, corrupt rows,
pools, connection errors, URLs. Tests that need the server take `pg_dsn`/`pg_schemas` (conftest) and
skip without ASYNKRON_DURABLE_PG_DSN; the others run everywhere."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
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
    ActivityResult,
    ActivityTask,
    EpisodeCommit,
    InstanceFilter,
    Message,
    NewInstance,
    OrchestrationWorkItem,
    PostgresStateStore,
    Work,
    WorkerRecord,
    store_from_url,
)
from asynkron_durable.stores._postgres_codec import MIGRATIONS, queries_for
from asynkron_durable.stores._postgres_listener import parse_ended
from asynkron_durable.stores.postgres import STATEMENT_LIFETIME

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=30)
DEADLINE = 5.0
"""Seconds a test waits for a notification before it fails (they arrive in milliseconds)."""


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


def commit_for(item: OrchestrationWorkItem, **changes: Any) -> EpisodeCommit:
    fields: dict[str, Any] = {
        "record": item.record.model_copy(update={"runtime_status": RuntimeStatus.RUNNING}),
        "expected_version": item.record.version,
        "new_history": [OrchestratorStarted(timestamp=T0)],
        "acknowledged_message_ids": [m.message_id for m in item.messages],
    }
    return EpisodeCommit(**fields | changes)


@pytest.fixture
async def pg(pg_dsn: str) -> AsyncIterator[Any]:
    """A plain asyncpg connection to the test server, for looking behind the store's back."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def pg_store(pg_dsn: str, pg_schemas: Callable[[], str]) -> AsyncIterator[PostgresStateStore]:
    store = PostgresStateStore(pg_dsn, schema=pg_schemas(), max_pool_size=4)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def _schema_shape(conn: Any, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Columns (with their comments), indexes and constraints of `schema`, with the schema's name
    taken out."""
    columns = await conn.fetch(
        """SELECT table_name, column_name, ordinal_position, data_type, is_nullable, column_default,
                  collation_name, is_identity, identity_generation,
                  col_description(format('%I.%I', table_schema, table_name)::regclass, ordinal_position)
           FROM information_schema.columns WHERE table_schema = $1 ORDER BY 1, 3""",
        schema,
    )
    indexes = await conn.fetch(
        "SELECT tablename, indexname, replace(indexdef, $1, 'S') FROM pg_indexes "
        "WHERE schemaname = $1 ORDER BY 1, 2",
        schema,
    )
    constraints = await conn.fetch(
        "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = $1::regnamespace ORDER BY 2",
        schema,
    )
    return {
        "columns": [tuple(r) for r in columns],
        "indexes": [tuple(r) for r in indexes],
        "constraints": [(r[0].replace(f"{schema}.", "S."), *tuple(r)[1:]) for r in constraints],
    }


# --- schema and migrations -----------------------------------------------------------------


async def test_migrations_build_exactly_the_schema_file(
    pg: Any, pg_dsn: str, pg_schemas: Callable[[], str]
) -> None:
    fresh, migrated = pg_schemas(), pg_schemas()
    store = PostgresStateStore(pg_dsn, schema=fresh)
    await store.open()  # a fresh schema gets postgres_schema.sql
    await store.close()
    async with pg.transaction():
        await pg.execute(f'CREATE SCHEMA "{migrated}"')
        await pg.execute(f'SET LOCAL search_path TO "{migrated}"')
        for script in MIGRATIONS.values():
            await pg.execute(script)
        await pg.execute(queries_for(migrated)["create_schema_version"])
        await pg.execute(queries_for(migrated)["record_schema_versions"], list(MIGRATIONS))

    assert await _schema_shape(pg, migrated) == await _schema_shape(pg, fresh)
    tables = {row[0] for row in (await _schema_shape(pg, fresh))["columns"]}
    assert tables == {
        "activities",
        "dead_letters",
        "history",
        "inbox",
        "instances",
        "schema_version",
        "workers",
    }
    upgraded = PostgresStateStore(pg_dsn, schema=migrated)  # a migrated schema is used as it is
    await upgraded.open()
    try:
        await upgraded.create_instance(new_instance("a"), replace=False)
        assert await upgraded.get_instance("a") is not None
    finally:
        await upgraded.close()


async def test_a_commit_appends_its_events_as_one_history_row(pg_store: PostgresStateStore, pg: Any) -> None:
    await pg_store.create_instance(new_instance("a"), replace=False)
    [item] = await pg_store.claim_orchestrations("w", T0, LATER, 1)
    events: list[HistoryEvent] = [
        OrchestratorStarted(timestamp=T0),
        EventRaised(name="x"),
        EventRaised(name="y"),
    ]
    assert (await pg_store.commit_episodes("w", T0, [commit_for(item, new_history=events)])).rejected == set()

    rows = await pg.fetch(f'SELECT seq FROM "{pg_store.schema}".history WHERE instance_id = $1', "a")
    assert [row["seq"] for row in rows] == [0]
    assert await pg_store.get_history("a") == events


async def test_one_event_rows_of_a_version_1_schema_read_back_before_newer_commits(
    pg_store: PostgresStateStore, pg: Any, pg_dsn: str
) -> None:
    schema = f'"{pg_store.schema}"'
    await pg_store.create_instance(new_instance("a"), replace=False)
    [item] = await pg_store.claim_orchestrations("w", T0, LATER, 1)
    await pg_store.close()
    old: list[HistoryEvent] = [OrchestratorStarted(timestamp=T0), EventRaised(name="old")]
    await pg.execute(f"DELETE FROM {schema}.schema_version WHERE version > 1")
    await pg.execute(f"DROP TABLE {schema}.workers")  # what later migrations add
    await pg.execute(f"DROP INDEX {schema}.dead_letters_by_instance")
    await pg.executemany(
        f"INSERT INTO {schema}.history (instance_id, seq, event) VALUES ('a', $1, $2)",
        [(seq, event_to_json(event)) for seq, event in enumerate(old)],
    )

    upgraded = PostgresStateStore(pg_dsn, schema=pg_store.schema)
    await upgraded.open()
    try:
        versions = await pg.fetch(f"SELECT version FROM {schema}.schema_version ORDER BY version")
        assert [row["version"] for row in versions] == list(MIGRATIONS)
        new: list[HistoryEvent] = [OrchestratorStarted(timestamp=LATER), EventRaised(name="new")]
        assert (
            await upgraded.commit_episodes("w", T0, [commit_for(item, new_history=new)])
        ).rejected == set()
        assert await upgraded.get_history("a") == old + new
        assert await upgraded.load_histories(["a"]) == {"a": old + new}
        await upgraded.workers.register(WorkerRecord("w", "host", 1, T0, T0))
        assert [w.worker_id for w in await upgraded.workers.registered()] == ["w"]
    finally:
        await upgraded.close()
    rows = await pg.fetch(f"SELECT seq FROM {schema}.history WHERE instance_id = 'a' ORDER BY seq")
    assert [row["seq"] for row in rows] == [0, 1, 2]


async def test_concurrent_first_opens_migrate_once(
    pg: Any, pg_dsn: str, pg_schemas: Callable[[], str]
) -> None:
    schema = pg_schemas()
    stores = [PostgresStateStore(pg_dsn, schema=schema, max_pool_size=1) for _ in range(8)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        await stores[0].open()  # idempotent
        await stores[0].create_instance(new_instance("a"), replace=False)
        assert await stores[7].get_instance("a") is not None
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    rows = await pg.fetch(f'SELECT version FROM "{schema}".schema_version')
    assert [row["version"] for row in rows] == list(MIGRATIONS)


async def test_refuses_a_newer_schema(pg: Any, pg_dsn: str, pg_schemas: Callable[[], str]) -> None:
    schema = pg_schemas()
    store = PostgresStateStore(pg_dsn, schema=schema)
    await store.open()
    await store.close()
    newer = max(MIGRATIONS) + 1
    await pg.execute(f'INSERT INTO "{schema}".schema_version (version) VALUES ($1)', newer)

    with pytest.raises(StoreError, match=f"schema version {newer}.*only knows up to {max(MIGRATIONS)}"):
        await PostgresStateStore(pg_dsn, schema=schema).open()


async def test_statements_are_prepared_again_so_plans_follow_a_growing_table(
    pg: Any, pg_dsn: str, pg_schemas: Callable[[], str]
) -> None:
    """After a few runs PostgreSQL keeps one generic plan per prepared statement: made while a table
    was small, it scans the whole table. The store prepares its statements again every
    STATEMENT_LIFETIME seconds, so once the table has grown, lookups use its index. (Creating or
    dropping any schema in the database also replans, as other tests do meanwhile, so the test
    watches the prepared statement itself, not only the plan.)"""
    schema = pg_schemas()
    store = PostgresStateStore(pg_dsn, schema=schema, max_pool_size=1)
    await store.open()

    async def renew_statements() -> list[Any]:
        """The prepared statement renewing instance leases, on the store's one query connection
        (max_pool_size=1; the other connection only LISTENs)."""
        async with store._pool.acquire() as conn:  # type: ignore[union-attr]
            return list(
                await conn.fetch(
                    "SELECT name, generic_plans FROM pg_prepared_statements "
                    "WHERE statement LIKE '%returns the ids still held%' AND statement LIKE $1",
                    f'%"{schema}".instances%',
                )
            )

    try:
        # No ANALYZE to refresh the plans behind the store's back.
        await pg.execute(f'ALTER TABLE "{schema}".instances SET (autovacuum_enabled = false)')
        add = f"""INSERT INTO "{schema}".instances (instance_id, name, execution_id, runtime_status,
                      created_at, last_updated_at, version)
                  SELECT 'i' || n, 'orch', 'e', 'Pending', now(), now(), 1
                  FROM generate_series($1::integer, $2::integer) AS n"""
        await pg.execute(add, 1, 300)  # a few hundred rows: one scan is cheaper than two lookups
        for _ in range(8):  # past PostgreSQL's five custom plans: the generic one is in use now
            await store.renew_leases("w", LATER, ["i1", "i2"], [])
        [first] = await renew_statements()
        assert first["generic_plans"] > 0
        await pg.execute(add, 301, 50_000)

        deadline = time.monotonic() + STATEMENT_LIFETIME + 15
        while all(row["name"] == first["name"] for row in await renew_statements()):
            assert time.monotonic() < deadline, "the statement was never prepared again"
            await store.renew_leases("w", LATER, ["i1", "i2"], [])
            await asyncio.sleep(0.2)

        index_scans = f"""SELECT pg_stat_clear_snapshot(), idx_scan FROM pg_stat_user_indexes
                          WHERE schemaname = '{schema}' AND indexrelname = 'instances_pkey'"""
        before = (await pg.fetchrow(index_scans))["idx_scan"]
        deadline = time.monotonic() + 15
        while (await pg.fetchrow(index_scans))["idx_scan"] == before:
            assert time.monotonic() < deadline, "lookups still scan the whole table"
            await store.renew_leases("w", LATER, ["i1", "i2"], [])
            await asyncio.sleep(0.2)
    finally:
        await store.close()


async def test_schemas_in_one_database_are_isolated(pg_dsn: str, pg_schemas: Callable[[], str]) -> None:
    first = PostgresStateStore(pg_dsn, schema=pg_schemas())
    second = PostgresStateStore(pg_dsn, schema=pg_schemas())
    await first.open()
    await second.open()
    try:
        await first.create_instance(new_instance("a"), replace=False)
        await second.create_instance(new_instance("b"), replace=False)

        assert await second.get_instance("a") is None
        assert [i.record.instance_id for i in await second.claim_orchestrations("w", T0, LATER, 10)] == ["b"]
        assert [i.record.instance_id for i in await first.claim_orchestrations("w", T0, LATER, 10)] == ["a"]
    finally:
        await first.close()
        await second.close()


# --- NOTIFY ----------------------------------------------------------------------------------


async def test_notify_wakes_a_subscriber_of_another_store_object_with_the_kind_of_work(
    pg: Any, pg_dsn: str, pg_schemas: Callable[[], str]
) -> None:
    schema = pg_schemas()
    sender, receiver = PostgresStateStore(pg_dsn, schema=schema), PostgresStateStore(pg_dsn, schema=schema)
    await sender.open()
    await receiver.open()
    heard: asyncio.Queue[Work] = asyncio.Queue()
    receiver.subscribe(heard.put_nowait)
    try:
        await sender.create_instance(new_instance("a"), replace=False)
        assert await asyncio.wait_for(heard.get(), DEADLINE) == Work.MESSAGES

        [item] = await sender.claim_orchestrations("w", T0, LATER, 10)
        task = ActivityTask("a", "a:1", 1, "t", None)
        assert (
            await sender.commit_episodes("w", T0, [commit_for(item, activities=[task])])
        ).rejected == set()
        assert await asyncio.wait_for(heard.get(), DEADLINE) == Work.ACTIVITIES
        [activity] = await sender.claim_activities("w", T0, LATER, 10)
        await sender.release_leases("w", [], [activity.activity_id])
        assert await asyncio.wait_for(heard.get(), DEADLINE) == Work.ACTIVITIES

        # a dropped LISTEN connection comes back, and says so by waking subscribers for any work
        killed = await pg.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
            f'LISTEN "{schema}_wake"',
        )
        assert len(killed) == 2
        assert await asyncio.wait_for(heard.get(), DEADLINE) == Work.ANY
        await sender.send_messages([Message("a", EventRaised(name="e"))])
        assert await asyncio.wait_for(heard.get(), DEADLINE) == Work.MESSAGES
        assert heard.empty()
    finally:
        await sender.close()
        await receiver.close()


async def test_endings_committed_together_reach_another_store_object_however_long_their_ids(
    pg: Any, pg_dsn: str, pg_schemas: Callable[[], str]
) -> None:
    """One commit ends 40 instances whose ids hold 40 KB: the other store object hears every id
    (in as many payloads as they need), is told when its LISTEN connection dropped, and hears
    nothing of its own endings twice."""
    schema = pg_schemas()
    sender, receiver = PostgresStateStore(pg_dsn, schema=schema), PostgresStateStore(pg_dsn, schema=schema)
    await sender.open()
    await receiver.open()
    heard: list[str] = []
    told: list[str] = []
    payloads: list[int] = []

    def hear(ids: Collection[str]) -> None:
        payloads.append(len(ids))
        heard.extend(ids)

    receiver.on_ended(hear)
    sender.on_ended(told.extend)
    ids = [f"{n:02d}-" + "é" * 250 for n in range(40)]
    try:
        assert await sender.create_instances([new_instance(i) for i in ids]) == set()
        items = await sender.claim_orchestrations("w", T0, LATER, 100)
        done = RuntimeStatus.COMPLETED
        commits = [
            commit_for(item, record=item.record.model_copy(update={"runtime_status": done})) for item in items
        ]
        assert (await sender.commit_episodes("w", T0, commits)).rejected == set()
        await poll_until(lambda: len(heard) >= 40, DEADLINE, "every ending to be heard")
        assert sorted(heard) == ids and sorted(told) == ids  # the sender announced its own locally
        assert len(payloads) <= 5  # 20 KB of ids in a few payloads: the commit was not split up
        mark = await receiver.unheard_mark()
        assert await receiver.unheard_mark() == mark  # looking changes nothing
        await pg.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
            f'LISTEN "{schema}_wake"',
        )

        async def moved() -> bool:
            return await receiver.unheard_mark() != mark

        await poll_until(moved, DEADLINE, "the dropped connection to move the mark")
    finally:
        await sender.close()
        await receiver.close()


async def test_a_notification_naming_no_known_kind_wakes_for_any_work(
    pg: Any, pg_dsn: str, pg_schemas: Callable[[], str]
) -> None:
    """A sender of another version may announce work we cannot read the kind of: wake for all."""
    schema = pg_schemas()
    receiver = PostgresStateStore(pg_dsn, schema=schema)
    await receiver.open()
    heard: asyncio.Queue[Work] = asyncio.Queue()
    receiver.subscribe(heard.put_nowait)
    try:
        for payload in ("some-other-token", "some-other-token:z"):
            await pg.execute("SELECT pg_notify($1, $2)", f"{schema}_wake", payload)
            assert await asyncio.wait_for(heard.get(), DEADLINE) == Work.ANY
    finally:
        await receiver.close()


# --- SKIP LOCKED -----------------------------------------------------------------------------


async def test_two_store_objects_never_claim_the_same_work(
    pg_dsn: str, pg_schemas: Callable[[], str]
) -> None:
    schema = pg_schemas()
    first, second = PostgresStateStore(pg_dsn, schema=schema), PostgresStateStore(pg_dsn, schema=schema)
    await first.open()
    await second.open()
    try:
        for n in range(30):
            await first.create_instance(new_instance(f"i{n:02}"), replace=False)
        claims = await asyncio.gather(
            *(
                store.claim_orchestrations(owner, T0, LATER, 3)
                for _ in range(6)
                for owner, store in (("p1", first), ("p2", second))
            )
        )
        claimed = [item.record.instance_id for batch in claims for item in batch]
        assert sorted(claimed) == [f"i{n:02}" for n in range(30)]

        await first.create_instance(new_instance("acts"), replace=False)
        [item] = await second.claim_orchestrations("p3", T0, LATER, 10)
        tasks = [ActivityTask("acts", "acts:1", n, "act", None) for n in range(30)]
        assert (await first.commit_episodes("p3", T0, [commit_for(item, activities=tasks)])).rejected == set()
        activities = await asyncio.gather(
            *(store.claim_activities("a", T0, LATER, 2) for _ in range(8) for store in (first, second))
        )
        ids = [a.activity_id for batch in activities for a in batch]
        assert len(ids) == len(set(ids)) == 30
    finally:
        await first.close()
        await second.close()


# --- corrupt rows and refused values ---------------------------------------------------------


async def test_corrupt_rows_are_named_set_aside_and_block_nothing(
    pg_store: PostgresStateStore, pg: Any, caplog: pytest.LogCaptureFixture
) -> None:
    schema = f'"{pg_store.schema}"'
    for instance_id in ("bad_history", "bad_inbox", "bad_record", "fine"):
        await pg_store.create_instance(new_instance(instance_id), replace=False)
    items = {i.record.instance_id: i for i in await pg_store.claim_orchestrations("w", T0, LATER, 10)}
    assert (
        await pg_store.commit_episodes("w", T0, [commit_for(i) for i in items.values()])
    ).rejected == set()
    await pg_store.send_messages([Message(i, EventRaised(name="go")) for i in items])
    await pg.execute(f"""UPDATE {schema}.history SET event = '{{"kind": "Nope"}}'
                         WHERE instance_id = 'bad_history'""")
    await pg.execute(f"UPDATE {schema}.inbox SET event = 'not json' WHERE instance_id = 'bad_inbox'")
    await pg.execute(f"UPDATE {schema}.instances SET runtime_status = 'Bad' WHERE instance_id = 'bad_record'")

    with pytest.raises(StoreError, match=r"'bad_history'.*seq=0"):
        await pg_store.load_histories(["fine", "bad_history"])
    with pytest.raises(StoreError, match="'bad_history'"):
        await pg_store.get_history("bad_history")
    with pytest.raises(StoreError, match="'bad_record'"):
        await pg_store.get_instance("bad_record")

    claimed = {i.record.instance_id: i for i in await pg_store.claim_orchestrations("w", T0, LATER, 10)}

    assert sorted(claimed) == ["bad_history", "bad_inbox", "fine"]
    assert claimed["bad_inbox"].messages == []
    dead = await pg.fetch(f"SELECT instance_id, event, error FROM {schema}.dead_letters")
    assert [(r["instance_id"], r["event"]) for r in dead] == [("bad_inbox", "not json")]
    assert "inbox message" in dead[0]["error"] and "dead_letters" in caplog.text
    owner = await pg.fetchval(f"SELECT lease_owner FROM {schema}.instances WHERE instance_id = 'bad_record'")
    assert owner == "!unreadable"
    much_later = LATER + timedelta(days=365)  # leases expired; the quarantine never does
    again = await pg_store.claim_orchestrations("w2", much_later, much_later + timedelta(seconds=30), 10)
    assert sorted(i.record.instance_id for i in again) == ["bad_history", "fine"]


async def test_a_commit_postgres_refuses_does_not_hold_up_its_batch(
    pg_store: PostgresStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    for instance_id in ("good", "poison"):
        await pg_store.create_instance(new_instance(instance_id), replace=False)
    items = {i.record.instance_id: i for i in await pg_store.claim_orchestrations("w", T0, LATER, 10)}
    poison = commit_for(items["poison"], new_instances=[new_instance("child\x00with a NUL")])

    with caplog.at_level(logging.ERROR):
        rejected = (await pg_store.commit_episodes("w", T0, [commit_for(items["good"]), poison])).rejected

    assert rejected == {"poison"}
    assert "'poison' cannot be stored" in caplog.text
    good = await pg_store.get_instance("good")
    assert good is not None and good.version == 1
    assert await pg_store.get_history("poison") == []


# --- pools, connection errors, names ---------------------------------------------------------


async def test_a_pool_passed_in_is_shared_and_never_closed(
    pg_dsn: str, pg_schemas: Callable[[], str]
) -> None:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    try:
        first = PostgresStateStore(pool, schema=pg_schemas())
        second = PostgresStateStore(pool, schema=pg_schemas())
        await first.open()
        await second.open()
        await first.create_instance(new_instance("a"), replace=False)
        # The same statement text on the same pooled connections must still hit each store's tables.
        assert await second.get_instance("a") is None
        assert await first.get_instance("a") is not None
        await first.close()
        await second.close()
        await first.close()

        assert await pool.fetchval("SELECT 1") == 1
        with pytest.raises(StoreError, match="not open"):
            await first.get_instance("a")
    finally:
        await pool.close()


async def test_an_unknown_database_is_a_store_error(pg_dsn: str) -> None:
    dsn = pg_dsn.rsplit("/", 1)[0] + "/no_such_database_here"
    with pytest.raises(StoreError, match=r"open failed.*no_such_database_here") as caught:
        await PostgresStateStore(dsn, connect_timeout=5).open()
    assert isinstance(caught.value.__cause__, asyncpg.PostgresError)


async def test_unreachable_servers_fail_fast_with_a_store_error() -> None:
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:1/db.*open failed"):
        await PostgresStateStore("postgresql://u:secret@127.0.0.1:1/db", connect_timeout=2).open()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts the connection, never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        store = PostgresStateStore(f"postgresql://u:secret@127.0.0.1:{port}/db", connect_timeout=0.3)
        with pytest.raises(StoreError, match="TimeoutError") as caught:
            await asyncio.wait_for(store.open(), DEADLINE)
        assert "secret" not in str(caught.value) and "u:***@" in str(caught.value)
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("schema", ["Upper", "1st", "has-dash", "pg_catalog", "x" * 49, ""])
def test_schema_names_are_checked(schema: str) -> None:
    with pytest.raises(ValueError, match="invalid PostgreSQL schema name"):
        PostgresStateStore("postgresql://localhost/db", schema=schema)


def test_pool_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="min_pool_size=3, max_pool_size=2"):
        PostgresStateStore("postgresql://localhost/db", min_pool_size=3, max_pool_size=2)


def test_store_from_url() -> None:
    store = store_from_url("postgresql://u:pw@db.example:5433/hub?schema=orders&sslmode=disable")
    assert isinstance(store, PostgresStateStore)
    assert store.schema == "orders"
    default = store_from_url("postgres://localhost/db")
    assert isinstance(default, PostgresStateStore) and default.schema == "asynkron_durable"
    with pytest.raises(ValueError, match="more than once"):
        store_from_url("postgresql://localhost/db?schema=a&schema=b")
    with pytest.raises(ValueError, match=r"postgresql://u:\*\*\*@localhost/db.*invalid PostgreSQL schema"):
        store_from_url("postgresql://u:pw@localhost/db?schema=Bad")


# --- claim plans -----------------------------------------------------------------------------


async def test_claims_walk_indexes_not_the_inbox(pg_store: PostgresStateStore, pg: Any) -> None:
    """20,000 instances: 10,000 with a ready message, 10,000 waiting on a future timer."""
    schema = f'"{pg_store.schema}"'
    event = event_to_json(EventRaised(name="e", timestamp=T0))
    await pg.execute(f"""
        INSERT INTO {schema}.instances (instance_id, name, execution_id, runtime_status, created_at,
                                        last_updated_at, version)
        SELECT 'i' || n, 'orch', 'e', 'Running', now(), now(), 1 FROM generate_series(1, 20000) AS n;
        INSERT INTO {schema}.inbox (instance_id, event, visible_at)
        SELECT 'i' || n, '{event}', CASE WHEN n % 2 = 0 THEN now() + interval '1 day' END
        FROM generate_series(1, 20000) AS n;
        UPDATE {schema}.instances AS i SET ready_message_id = m.message_id
        FROM {schema}.inbox AS m WHERE m.instance_id = i.instance_id AND m.visible_at IS NULL;
        ANALYZE {schema}.instances; ANALYZE {schema}.inbox;
    """)
    now = datetime.now(UTC)
    query = queries_for(pg_store.schema)["claim_orchestrations"]
    plan = "\n".join(row[0] for row in await pg.fetch("EXPLAIN " + query, "w", now, LATER, 64, ["orch"]))

    assert "instances_ready" in plan and "inbox_delayed" in plan
    assert "Seq Scan" not in plan
    items = await pg_store.claim_orchestrations("w", now, now + timedelta(seconds=30), 64)
    assert len(items) == 64 and [i.messages[0].message_id for i in items] == list(range(1, 128, 2))


# --- many writers --------------------------------------------------------------------------


async def _busy_worker(store: PostgresStateStore, owner: str, ids: list[str], rounds: int) -> None:
    """Claim, commit (with messages, activities and new instances), complete, purge, recreate."""
    rng = random.Random(owner)
    for _ in range(rounds):
        now = datetime.now(UTC)
        commits = [
            commit_for(
                item,
                messages=[Message(i, EventRaised(name="x")) for i in rng.sample(ids, 3)],
                activities=[ActivityTask(item.record.instance_id, item.record.execution_id, 1, "a", None)],
                new_instances=[new_instance(rng.choice(ids))] if rng.random() < 0.2 else [],
            )
            for item in await store.claim_orchestrations(owner, now, now + timedelta(seconds=30), 4)
        ]
        await store.commit_episodes(owner, now, commits)
        activities = await store.claim_activities(owner, now, now + timedelta(seconds=30), 4)
        await store.renew_leases(owner, now + timedelta(minutes=1), [], [a.activity_id for a in activities])
        done = EventRaised(name="done")
        await store.complete_activities(
            owner, now, [ActivityResult(a.activity_id, Message(rng.choice(ids), done)) for a in activities]
        )
        if rng.random() < 0.2:
            await store.purge_instance(rng.choice(ids))
        if rng.random() < 0.2:
            await store.create_instance(new_instance(rng.choice(ids)), replace=True)


async def test_many_writers_leave_no_orphans_and_a_true_ready_index(
    pg: Any, pg_dsn: str, pg_schemas: Callable[[], str]
) -> None:
    schema = pg_schemas()
    stores = [PostgresStateStore(pg_dsn, schema=schema, max_pool_size=3) for _ in range(3)]
    for store in stores:
        await store.open()
    ids = [f"i{n}" for n in range(30)]
    try:
        for instance_id in ids:
            await stores[0].create_instance(new_instance(instance_id), replace=False)
        await asyncio.gather(*(_busy_worker(stores[n % 3], f"w{n}", ids, 15) for n in range(6)))
    finally:
        for store in stores:
            await store.close()

    s = f'"{schema}"'
    for table in ("inbox", "history", "activities"):
        orphans = await pg.fetchval(
            f"SELECT count(*) FROM {s}.{table} AS t "
            f"WHERE NOT EXISTS (SELECT FROM {s}.instances AS i WHERE i.instance_id = t.instance_id)"
        )
        assert orphans == 0, f"{table} rows of deleted instances"
    wrong = await pg.fetch(f"""
        SELECT instance_id FROM {s}.instances AS i WHERE ready_message_id IS DISTINCT FROM (
            SELECT min(message_id) FROM {s}.inbox AS m
            WHERE m.instance_id = i.instance_id AND m.visible_at IS NULL)""")
    assert wrong == []


async def test_a_statement_that_gets_no_answer_fails_after_the_command_timeout(
    pg_dsn: str, pg_schemas: Callable[[], str], pg: Any
) -> None:
    """A hung connection or a lock held elsewhere must not block a worker silently."""
    schema = pg_schemas()
    store = PostgresStateStore(pg_dsn, schema=schema, command_timeout=0.5)
    await store.open()
    try:
        await store.create_instance(new_instance("held"), replace=False)
        async with pg.transaction():
            await pg.execute(f'SELECT 1 FROM "{schema}".instances WHERE instance_id = $1 FOR UPDATE', "held")
            began = time.monotonic()
            with pytest.raises(StoreError, match="purge_instance failed: TimeoutError: no answer within"):
                await store.purge_instance("held")
            waited = time.monotonic() - began
    finally:
        await store.close()
    assert waited < 5


def test_a_command_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="command_timeout"):
        PostgresStateStore("postgresql://x@127.0.0.1/db", command_timeout=0)


async def test_a_purge_of_thousands_of_short_ids_reaches_another_store_object(
    pg_dsn: str, pg_schemas: Callable[[], str]
) -> None:
    """Short ids pack many to a payload: separators and prefix count against the 8,000 bytes."""
    schema = pg_schemas()
    sender, receiver = PostgresStateStore(pg_dsn, schema=schema), PostgresStateStore(pg_dsn, schema=schema)
    await sender.open()
    await receiver.open()
    heard: list[str] = []
    receiver.on_ended(heard.extend)
    ids = [f"{n:04d}" for n in range(3000)]
    try:
        assert await sender.create_instances([new_instance(i) for i in ids]) == set()
        assert await sender.purge_instances(InstanceFilter()) == 3000
        await poll_until(lambda: len(heard) >= 3000, DEADLINE, "every purged id to be heard")
        assert sorted(heard) == ids
    finally:
        await sender.close()
        await receiver.close()


def test_an_unreadable_ending_payload_is_not_guessed_at() -> None:
    assert parse_ended("token:e:not json") is None  # the listener counts it as missed instead
    assert parse_ended('token:e:["a","b"]') == ["a", "b"]
