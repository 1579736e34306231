-- Migration 3: the workers table, where every runtime registers and beats a heartbeat, and an
-- index to look up an instance's dead letters.

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

CREATE INDEX dead_letters_by_instance ON dead_letters (instance_id, message_id);
