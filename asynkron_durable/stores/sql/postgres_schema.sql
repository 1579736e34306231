-- Schema of the PostgreSQL state store: the source of truth. open() runs this file on a fresh
-- schema (with search_path set to it, so names here are unqualified); existing schemas are upgraded
-- by the numbered files in postgres_migrations/, which must produce exactly this (a test checks).
-- Times are timestamptz; events and payloads are JSON text, decoded only in Python.
-- instance_id columns use the "C" collation: code-point order, as in the SQLite store and Python.

CREATE TABLE instances (
    instance_id        text COLLATE "C" NOT NULL PRIMARY KEY,
    name               text        NOT NULL,
    execution_id       text        NOT NULL,
    runtime_status     text        NOT NULL,
    input              text,
    output             text,
    custom_status      text,
    failure            text,
    created_at         timestamptz NOT NULL,
    last_updated_at    timestamptz NOT NULL,
    parent_instance_id text,
    version            bigint      NOT NULL,
    lease_owner        text,
    lease_expires_at   timestamptz,
    -- The smallest id among this instance's inbox messages that wait for no timer (NULL: none).
    -- Every statement that adds or removes inbox rows keeps it current, so a claim walks an index
    -- of ready instances instead of grouping the whole inbox.
    ready_message_id   bigint
);

CREATE INDEX instances_by_created ON instances (created_at, instance_id);
CREATE INDEX instances_ready ON instances (ready_message_id) WHERE ready_message_id IS NOT NULL;

-- The current execution's history, one row per commit: seq orders the rows.
CREATE TABLE history (
    instance_id text COLLATE "C" NOT NULL,
    seq         integer NOT NULL,
    event       text    NOT NULL,
    PRIMARY KEY (instance_id, seq)
);

COMMENT ON COLUMN history.event IS
    'JSON array of the events one commit appended (rows from before schema version 2: one event object)';

-- Message ids only ever grow, so they order delivery and are never reused.
CREATE TABLE inbox (
    message_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id  text COLLATE "C" NOT NULL,
    execution_id text,
    event        text NOT NULL,
    visible_at   timestamptz
);

CREATE INDEX inbox_by_instance ON inbox (instance_id, message_id);
-- Delayed messages (timers): claims read the due ones from here; future ones cost nothing.
CREATE INDEX inbox_delayed ON inbox (visible_at, instance_id, message_id) WHERE visible_at IS NOT NULL;

-- Claims walk the primary key: leased rows (bounded by worker concurrency) are all they skip.
CREATE TABLE activities (
    activity_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id      text COLLATE "C" NOT NULL,
    execution_id     text    NOT NULL,
    task_id          bigint  NOT NULL,
    name             text    NOT NULL,
    input            text,
    lease_owner      text,
    lease_expires_at timestamptz,
    attempt          integer NOT NULL DEFAULT 0
);

CREATE INDEX activities_by_instance ON activities (instance_id);

-- Inbox rows that could not be decoded, moved aside so they neither block claims nor vanish.
CREATE TABLE dead_letters (
    message_id   bigint      NOT NULL PRIMARY KEY,
    instance_id  text COLLATE "C" NOT NULL,
    execution_id text,
    event        text        NOT NULL,
    visible_at   timestamptz,
    error        text        NOT NULL,
    dead_at      timestamptz NOT NULL
);

CREATE INDEX dead_letters_by_instance ON dead_letters (instance_id, message_id);

-- Live workers: each beats a heartbeat here, from a session of its own (backend_pid), so the others
-- can tell when it died (its session gone, or its heartbeat old) and end its leases.
CREATE TABLE workers (
    worker_id       text COLLATE "C" NOT NULL PRIMARY KEY,
    host            text        NOT NULL,
    pid             integer     NOT NULL,
    started_at      timestamptz NOT NULL,
    heartbeat_at    timestamptz NOT NULL,
    backend_pid     integer     NOT NULL,
    instance_names  text[]      NOT NULL DEFAULT '{}',
    activity_names  text[]      NOT NULL DEFAULT '{}',
    package_version text        NOT NULL DEFAULT ''
);
