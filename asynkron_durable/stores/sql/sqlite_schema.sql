-- Schema of the SQLite state store. Every statement is idempotent: open() runs this file whenever
-- the recorded schema version is missing or older, inside one BEGIN IMMEDIATE transaction.
-- Times are REAL seconds since the Unix epoch (UTC) so comparisons can use indexes.

CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS instances (
    instance_id        TEXT    NOT NULL PRIMARY KEY,
    name               TEXT    NOT NULL,
    execution_id       TEXT    NOT NULL,
    runtime_status     TEXT    NOT NULL,
    input              TEXT,
    output             TEXT,
    custom_status      TEXT,
    failure            TEXT,
    created_at         REAL    NOT NULL,
    last_updated_at    REAL    NOT NULL,
    parent_instance_id TEXT,
    version            INTEGER NOT NULL,
    lease_owner        TEXT,
    lease_expires_at   REAL
);

CREATE INDEX IF NOT EXISTS instances_by_created ON instances (created_at, instance_id);

-- The current execution's history, one row per commit: seq orders the rows, event is the JSON
-- array of the events the commit appended (a version 1 file's rows hold one event object each).
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    event       TEXT    NOT NULL,
    PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;

-- AUTOINCREMENT: message ids only ever grow, so they order delivery and are never reused.
CREATE TABLE IF NOT EXISTS inbox (
    message_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id  TEXT    NOT NULL,
    execution_id TEXT,
    event        TEXT    NOT NULL,
    visible_at   REAL
);

CREATE INDEX IF NOT EXISTS inbox_by_instance ON inbox (instance_id, message_id);
CREATE INDEX IF NOT EXISTS inbox_by_visible_at ON inbox (visible_at, instance_id, message_id);

-- Claims walk the primary key: leased rows (bounded by worker concurrency) are all they skip.
CREATE TABLE IF NOT EXISTS activities (
    activity_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id      TEXT    NOT NULL,
    execution_id     TEXT    NOT NULL,
    task_id          INTEGER NOT NULL,
    name             TEXT    NOT NULL,
    input            TEXT,
    lease_owner      TEXT,
    lease_expires_at REAL,
    attempt          INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX IF NOT EXISTS activities_by_instance ON activities (instance_id);

-- Inbox rows that could not be decoded, moved aside so they neither block claims nor vanish.
CREATE TABLE IF NOT EXISTS dead_letters (
    message_id  INTEGER PRIMARY KEY,
    instance_id TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    error       TEXT    NOT NULL,
    dead_at     REAL    NOT NULL
);

CREATE INDEX IF NOT EXISTS dead_letters_by_instance ON dead_letters (instance_id, message_id);

-- Live workers: each beats a heartbeat here, so the others can tell when it died and end its leases.
-- instance_names and activity_names are JSON lists: what it runs.
CREATE TABLE IF NOT EXISTS workers (
    worker_id       TEXT    NOT NULL PRIMARY KEY,
    host            TEXT    NOT NULL,
    pid             INTEGER NOT NULL,
    started_at      REAL    NOT NULL,
    heartbeat_at    REAL    NOT NULL,
    instance_names  TEXT    NOT NULL DEFAULT '[]',
    activity_names  TEXT    NOT NULL DEFAULT '[]',
    package_version TEXT    NOT NULL DEFAULT ''
);

INSERT INTO schema_version (version) SELECT 3 WHERE NOT EXISTS (SELECT 1 FROM schema_version);
