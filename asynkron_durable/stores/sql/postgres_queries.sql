-- Named queries of the PostgreSQL state store. Each starts with a `-- name --` header line; the store
-- loads this file once and puts its (validated) schema name where `{schema}` stands, so every
-- statement names its tables fully: asyncpg caches prepared statements per connection by their
-- text, and a pool shared by stores on different schemas must never mix them up.
-- Parameters are positional; lists travel as arrays (`unnest`, `= ANY`), one round trip per batch.
-- Locks on instance rows are always taken first and in instance_id order (`ORDER BY ... FOR
-- UPDATE`), then activity rows in activity_id order, so writers queue instead of deadlocking.
-- A record's columns travel as 12 arrays in this order: instance_id, name, execution_id,
-- runtime_status, input, output, custom_status, failure, created_at, last_updated_at,
-- parent_instance_id, version.

-- create_schema_version --
CREATE TABLE IF NOT EXISTS {schema}.schema_version (
    version    integer     NOT NULL PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- get_schema_versions --
SELECT version FROM {schema}.schema_version ORDER BY version;

-- record_schema_versions --
INSERT INTO {schema}.schema_version (version) SELECT unnest($1::integer[]);

-- select_instance --
SELECT * FROM {schema}.instances WHERE instance_id = $1;

-- select_instances_by_id --
SELECT * FROM {schema}.instances WHERE instance_id = ANY($1::text[]);

-- lock_instances --
-- $1 ids. Returns what the caller needs to decide a commit or a replacement under the lock.
SELECT instance_id, runtime_status, version, lease_owner
FROM {schema}.instances
WHERE instance_id = ANY($1::text[])
ORDER BY instance_id
FOR UPDATE;

-- insert_instances --
INSERT INTO {schema}.instances (
    instance_id, name, execution_id, runtime_status, input, output, custom_status, failure,
    created_at, last_updated_at, parent_instance_id, version
)
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
    $9::timestamptz[], $10::timestamptz[], $11::text[], $12::bigint[]
);

-- create_if_free --
-- $1 notify channel, $2 payload, $3..$14 one record, $15 its start event. The usual start in one
-- statement: inserts the instance with its start message, already marked ready, only if the id is
-- free. Returns created = 0 when it is not (the caller then decides under the row lock).
WITH start AS (
    SELECT nextval(pg_get_serial_sequence('{schema}.inbox', 'message_id')) AS message_id
), created AS (
    INSERT INTO {schema}.instances (
        instance_id, name, execution_id, runtime_status, input, output, custom_status, failure,
        created_at, last_updated_at, parent_instance_id, version, ready_message_id
    )
    SELECT $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, start.message_id FROM start
    ON CONFLICT (instance_id) DO NOTHING
    RETURNING instance_id, execution_id, ready_message_id
), queued AS (
    INSERT INTO {schema}.inbox (message_id, instance_id, execution_id, event, visible_at)
    OVERRIDING SYSTEM VALUE
    SELECT ready_message_id, instance_id, execution_id, $15, NULL FROM created
), wake AS (
    SELECT pg_notify($1, $2) FROM created
)
SELECT (SELECT count(*) FROM created) AS created, (SELECT count(*) FROM wake) AS woken;

-- create_many_if_free --
-- $1 notify channel, $2 payload, $3..$14 the records (distinct ids, in id order), $15 their start
-- events. Many starts in one statement: inserts those whose id is free, each with its start
-- message, already marked ready; returns the ids it inserted.
WITH given AS (
    SELECT * FROM unnest(
        $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
        $11::timestamptz[], $12::timestamptz[], $13::text[], $14::bigint[], $15::text[]
    ) WITH ORDINALITY AS g(
        instance_id, name, execution_id, runtime_status, input, output, custom_status, failure,
        created_at, last_updated_at, parent_instance_id, version, event, position
    )
), created AS (
    INSERT INTO {schema}.instances (
        instance_id, name, execution_id, runtime_status, input, output, custom_status, failure,
        created_at, last_updated_at, parent_instance_id, version, ready_message_id
    )
    SELECT instance_id, name, execution_id, runtime_status, input, output, custom_status, failure,
        created_at, last_updated_at, parent_instance_id, version,
        nextval(pg_get_serial_sequence('{schema}.inbox', 'message_id'))
    FROM given ORDER BY position
    ON CONFLICT (instance_id) DO NOTHING
    RETURNING instance_id, execution_id, ready_message_id
), queued AS (
    INSERT INTO {schema}.inbox (message_id, instance_id, execution_id, event, visible_at)
    OVERRIDING SYSTEM VALUE
    SELECT c.ready_message_id, c.instance_id, c.execution_id, g.event, NULL
    FROM created AS c JOIN given AS g USING (instance_id)
), wake AS (
    SELECT pg_notify($1, $2) WHERE EXISTS (SELECT 1 FROM created)
)
SELECT c.instance_id, (SELECT count(*) FROM wake) AS woken FROM created AS c;

-- ensure_instances --
-- $1..$12 the records of instances that messages create when missing, in id order. Inserts the
-- missing ones and returns their ids. An existing one is left as it is but locked (DO UPDATE
-- with a false WHERE updates nothing yet locks the row, even one committed after this statement
-- began): DO NOTHING would leave it unlocked, and a conditional purge could then delete it before
-- the messages that were to land in it are inserted, losing them.
INSERT INTO {schema}.instances AS i (
    instance_id, name, execution_id, runtime_status, input, output, custom_status, failure,
    created_at, last_updated_at, parent_instance_id, version
)
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
    $9::timestamptz[], $10::timestamptz[], $11::text[], $12::bigint[]
)
ON CONFLICT (instance_id) DO UPDATE SET version = i.version WHERE false
RETURNING i.instance_id;

-- replace_instances --
-- Overwrites instances (locked and wiped by the caller) with new records, lease and inbox cleared.
UPDATE {schema}.instances AS i SET
    name = r.name,
    execution_id = r.execution_id,
    runtime_status = r.runtime_status,
    input = r.input,
    output = r.output,
    custom_status = r.custom_status,
    failure = r.failure,
    created_at = r.created_at,
    last_updated_at = r.last_updated_at,
    parent_instance_id = r.parent_instance_id,
    version = r.version,
    lease_owner = NULL,
    lease_expires_at = NULL,
    ready_message_id = NULL
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
    $9::timestamptz[], $10::timestamptz[], $11::text[], $12::bigint[]
) AS r(
    instance_id, name, execution_id, runtime_status, input, output, custom_status, failure,
    created_at, last_updated_at, parent_instance_id, version
)
WHERE i.instance_id = r.instance_id;

-- lock_step_instances --
-- $1 ids, $2 now. As lock_instances, plus whether each is free for an activity step: no live lease
-- and no message visible at $2.
SELECT i.instance_id, i.runtime_status, i.version, i.lease_owner,
    (i.lease_owner IS NULL OR i.lease_expires_at < $2)
    AND i.ready_message_id IS NULL
    AND NOT EXISTS (
        SELECT 1 FROM {schema}.inbox AS m WHERE m.instance_id = i.instance_id AND m.visible_at <= $2
    ) AS free
FROM {schema}.instances AS i
WHERE i.instance_id = ANY($1::text[])
ORDER BY i.instance_id
FOR UPDATE OF i;

-- commit_instances --
-- $1 owner, $2..$13 the new records, $14 the versions each commit expects (compare-and-swap),
-- $15 whether each is an activity step's (the caller found the row unleased under its lock),
-- $16 notify channel, $17 payload prefix (`token:e:`), $18 the terminal statuses. Returns how many
-- rows it updated, and tells other processes' waiters which instances ended, in payloads of at
-- most about 7 KB of ids (6,000 bytes and the one id that crosses that; PostgreSQL refuses 8,000),
-- when the transaction commits.
WITH updated AS (
    UPDATE {schema}.instances AS i SET
        name = c.name,
        execution_id = c.execution_id,
        runtime_status = c.runtime_status,
        input = c.input,
        output = c.output,
        custom_status = c.custom_status,
        failure = c.failure,
        created_at = c.created_at,
        last_updated_at = c.last_updated_at,
        parent_instance_id = c.parent_instance_id,
        version = c.version,
        lease_owner = NULL,
        lease_expires_at = NULL
    FROM unnest(
        $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
        $10::timestamptz[], $11::timestamptz[], $12::text[], $13::bigint[], $14::bigint[], $15::boolean[]
    ) AS c(
        instance_id, name, execution_id, runtime_status, input, output, custom_status, failure,
        created_at, last_updated_at, parent_instance_id, version, expected_version, step
    )
    WHERE i.instance_id = c.instance_id AND i.version = c.expected_version
      AND (i.lease_owner = $1 OR c.step)
    RETURNING i.instance_id, i.runtime_status
), ended AS (
    SELECT instance_id,
        sum(octet_length(to_json(instance_id)::text) + 2) OVER (ORDER BY instance_id) / 6000 AS part
    FROM updated WHERE runtime_status = ANY($18::text[])
), told AS (
    SELECT pg_notify($16, $17 || json_agg(instance_id ORDER BY instance_id)::text) FROM ended GROUP BY part
)
SELECT (SELECT count(*) FROM updated) AS updated, (SELECT count(*) FROM told) AS told;

-- wipe_instances --
-- $1 ids losing history, inbox and activities (replaced); $2 ids losing only history (reset).
WITH wiped_history AS (
    DELETE FROM {schema}.history WHERE instance_id = ANY($1::text[] || $2::text[])
), wiped_inbox AS (
    DELETE FROM {schema}.inbox WHERE instance_id = ANY($1::text[])
)
DELETE FROM {schema}.activities WHERE instance_id = ANY($1::text[]);

-- delete_instances --
-- $1 ids, locked by an earlier statement of the transaction: a statement's snapshot is taken when
-- it starts, so one that locked and deleted at once would miss a message that slipped in while
-- it waited for the lock. $2 notify channel, $3 payload prefix: other processes' waiters hear of
-- the deleted ids as of ended ones (see commit_instances).
WITH gone_history AS (
    DELETE FROM {schema}.history WHERE instance_id = ANY($1::text[])
), gone_inbox AS (
    DELETE FROM {schema}.inbox WHERE instance_id = ANY($1::text[])
), gone_activities AS (
    DELETE FROM {schema}.activities WHERE instance_id = ANY($1::text[])
), gone AS (
    DELETE FROM {schema}.instances WHERE instance_id = ANY($1::text[])
    RETURNING instance_id
), parts AS (
    SELECT instance_id,
        sum(octet_length(to_json(instance_id)::text) + 2) OVER (ORDER BY instance_id) / 6000 AS part
    FROM gone
), told AS (
    SELECT pg_notify($2, $3 || json_agg(instance_id ORDER BY instance_id)::text) FROM parts GROUP BY part
)
SELECT instance_id, (SELECT count(*) FROM told) AS told FROM gone;

-- inbox_is_empty --
-- $1 id, locked by an earlier statement of the transaction (see delete_instances): every message
-- insert locks its instance's row first, so none can be added until the transaction ends.
SELECT NOT EXISTS (SELECT 1 FROM {schema}.inbox WHERE instance_id = $1) AS empty;

-- append_history --
-- $1 instance ids (each once), $2 the events each appends, as one JSON array: one row per commit.
-- An instance appears once, so its next seq, read before the statement's own rows go in, is right.
INSERT INTO {schema}.history (instance_id, seq, event)
SELECT h.instance_id,
    COALESCE((SELECT max(seq) + 1 FROM {schema}.history WHERE instance_id = h.instance_id), 0),
    h.events
FROM unnest($1::text[], $2::text[]) AS h(instance_id, events);

-- select_history --
SELECT seq, event FROM {schema}.history WHERE instance_id = $1 ORDER BY seq;

-- select_histories --
SELECT instance_id, seq, event FROM {schema}.history
WHERE instance_id = ANY($1::text[])
ORDER BY instance_id, seq;

-- insert_messages --
-- $1 notify channel, $2 payload, $3..$6 instance ids, execution ids, events, visible_at.
-- Drops messages to instances that do not exist (locking the rest, so none is deleted meanwhile),
-- keeps the given order in the message ids, and notifies listeners when the transaction commits.
WITH m AS (
    SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::timestamptz[])
        WITH ORDINALITY AS m(instance_id, execution_id, event, visible_at, ord)
), live AS (
    SELECT instance_id FROM {schema}.instances
    WHERE instance_id IN (SELECT instance_id FROM m)
    ORDER BY instance_id
    FOR UPDATE
), added AS (
    INSERT INTO {schema}.inbox (instance_id, execution_id, event, visible_at)
    SELECT m.instance_id, m.execution_id, m.event, m.visible_at
    FROM m
    WHERE m.instance_id IN (SELECT instance_id FROM live)
    ORDER BY m.ord
    RETURNING message_id, instance_id, visible_at
), ready AS (
    UPDATE {schema}.instances AS i
    SET ready_message_id = least(i.ready_message_id, r.first_id)
    FROM (
        SELECT instance_id, min(message_id) AS first_id FROM added
        WHERE visible_at IS NULL
        GROUP BY instance_id
    ) AS r
    WHERE i.instance_id = r.instance_id
), wake AS (
    SELECT pg_notify($1, $2) FROM (SELECT FROM added LIMIT 1) AS any_added
)
SELECT (SELECT count(*) FROM added) AS enqueued, (SELECT count(*) FROM wake) AS woken;

-- ack_messages --
-- $1 instance ids, $2 message ids: delete them and recompute those instances' ready_message_id.
WITH acked AS (
    DELETE FROM {schema}.inbox AS m
    USING unnest($1::text[], $2::bigint[]) AS a(instance_id, message_id)
    WHERE m.message_id = a.message_id AND m.instance_id = a.instance_id
    RETURNING m.instance_id, m.message_id
)
UPDATE {schema}.instances AS i
SET ready_message_id = (
    SELECT min(m.message_id) FROM {schema}.inbox AS m
    WHERE m.instance_id = i.instance_id
      AND m.visible_at IS NULL
      AND m.message_id NOT IN (SELECT message_id FROM acked)
)
WHERE i.instance_id IN (SELECT instance_id FROM acked);

-- claim_orchestrations --
-- $1 owner, $2 now, $3 lease_until, $4 limit, $5 names (NULL: any; else only instances of those
-- orchestrators and entities). Leases instances with messages visible at $2, by
-- their oldest visible message, and returns each with that message's id. Two index-driven sources,
-- each capped at $4: instances by ready_message_id, and instances whose delayed messages came due.
-- An instance among the best $4 overall is among the best $4 of the source its key comes from,
-- so the union holds the exact answer. SKIP LOCKED: concurrent claimers take different rows.
WITH due AS (
    SELECT instance_id, min(message_id) AS first_id
    FROM {schema}.inbox
    WHERE visible_at <= $2
    GROUP BY instance_id
), due_free AS (
    SELECT i.instance_id, due.first_id
    FROM due JOIN {schema}.instances AS i ON i.instance_id = due.instance_id
    WHERE i.instance_id = ANY(ARRAY(SELECT instance_id FROM due))  -- primary-key lookups, never a scan
      AND (i.lease_owner IS NULL OR i.lease_expires_at < $2)
      AND ($5::text[] IS NULL OR i.name = ANY($5::text[]))
    ORDER BY due.first_id
    LIMIT $4
    FOR UPDATE OF i SKIP LOCKED
), ready_free AS (
    SELECT instance_id, ready_message_id AS first_id
    FROM {schema}.instances
    WHERE ready_message_id IS NOT NULL AND (lease_owner IS NULL OR lease_expires_at < $2)
      AND ($5::text[] IS NULL OR name = ANY($5::text[]))
    ORDER BY ready_message_id
    LIMIT $4
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT instance_id, min(first_id) AS first_id
    FROM (SELECT * FROM due_free UNION ALL SELECT * FROM ready_free) AS candidates
    GROUP BY instance_id
    ORDER BY min(first_id)
    LIMIT $4
)
UPDATE {schema}.instances AS i
SET lease_owner = $1, lease_expires_at = $3
FROM picked
WHERE i.instance_id = picked.instance_id
RETURNING i.instance_id, picked.first_id;

-- select_claimed --
-- $1 ids just leased, $2 now: each record with its visible messages in delivery order. A separate
-- statement from the claim, so its snapshot is taken after the leases: it cannot return a message
-- that the previous owner acknowledged while the claim was waiting for the row.
SELECT i.*, m.message_ids, m.execution_ids, m.events
FROM {schema}.instances AS i
CROSS JOIN LATERAL (
    SELECT
        array_agg(message_id ORDER BY message_id) AS message_ids,
        array_agg(execution_id ORDER BY message_id) AS execution_ids,
        array_agg(event ORDER BY message_id) AS events
    FROM {schema}.inbox
    WHERE instance_id = i.instance_id AND (visible_at IS NULL OR visible_at <= $2)
) AS m
WHERE i.instance_id = ANY($1::text[]);

-- quarantine_instances --
-- $1 owner marking unreadable rows, $2 ids: leased to that owner for good; claims skip them.
UPDATE {schema}.instances SET lease_owner = $1, lease_expires_at = 'infinity'
WHERE instance_id = ANY($2::text[]);

-- dead_letter_messages --
-- $1 message ids, $2 why each could not be decoded, $3 now: move them to dead_letters.
WITH dead AS (
    DELETE FROM {schema}.inbox AS m
    USING unnest($1::bigint[], $2::text[]) AS d(message_id, error)
    WHERE m.message_id = d.message_id
    RETURNING m.message_id, m.instance_id, m.execution_id, m.event, m.visible_at, d.error
), moved AS (
    INSERT INTO {schema}.dead_letters
        (message_id, instance_id, execution_id, event, visible_at, error, dead_at)
    SELECT message_id, instance_id, execution_id, event, visible_at, error, $3 FROM dead
)
UPDATE {schema}.instances AS i
SET ready_message_id = (
    SELECT min(m.message_id) FROM {schema}.inbox AS m
    WHERE m.instance_id = i.instance_id
      AND m.visible_at IS NULL
      AND m.message_id <> ALL($1::bigint[])
)
WHERE i.instance_id IN (SELECT instance_id FROM dead);

-- insert_activities --
-- $1 notify channel, $2 payload, $3..$7 instance ids, execution ids, task ids, names, inputs.
WITH added AS (
    INSERT INTO {schema}.activities (instance_id, execution_id, task_id, name, input)
    SELECT a.instance_id, a.execution_id, a.task_id, a.name, a.input
    FROM unnest($3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[])
        WITH ORDINALITY AS a(instance_id, execution_id, task_id, name, input, ord)
    ORDER BY a.ord
    RETURNING activity_id
), wake AS (
    SELECT pg_notify($1, $2) FROM (SELECT FROM added LIMIT 1) AS any_added
)
SELECT (SELECT count(*) FROM added) AS enqueued, (SELECT count(*) FROM wake) AS woken;

-- insert_leased_activities --
-- $1 owner, $2 lease_until, $3..$7 as insert_activities: inserted leased to $1 (attempt 1), so the
-- caller runs them without claiming; nobody else needs waking.
INSERT INTO {schema}.activities
    (instance_id, execution_id, task_id, name, input, lease_owner, lease_expires_at, attempt)
SELECT a.instance_id, a.execution_id, a.task_id, a.name, a.input, $1, $2, 1
FROM unnest($3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[])
    WITH ORDINALITY AS a(instance_id, execution_id, task_id, name, input, ord)
ORDER BY a.ord
RETURNING activity_id, instance_id, task_id;

-- claim_activities --
-- $1 owner, $2 now, $3 lease_until, $4 limit, $5 names (NULL: any). An owner claiming back its own
-- lapsed lease is still running the activity: that is no new attempt.
WITH picked AS (
    SELECT activity_id FROM {schema}.activities
    WHERE (lease_owner IS NULL OR lease_expires_at < $2)
      AND ($5::text[] IS NULL OR name = ANY($5::text[]))
    ORDER BY activity_id
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE {schema}.activities AS a
SET lease_owner = $1, lease_expires_at = $3,
    attempt = a.attempt + CASE WHEN a.lease_owner = $1 THEN 0 ELSE 1 END
FROM picked
WHERE a.activity_id = picked.activity_id
RETURNING a.activity_id, a.instance_id, a.execution_id, a.task_id, a.name, a.input, a.attempt;

-- complete_activities --
-- $1 owner, $2 activity ids: delete those still leased to $1; returns their ids.
WITH done AS (
    SELECT activity_id FROM {schema}.activities
    WHERE activity_id = ANY($2::bigint[]) AND lease_owner = $1
    ORDER BY activity_id
    FOR UPDATE
)
DELETE FROM {schema}.activities AS a USING done
WHERE a.activity_id = done.activity_id
RETURNING a.activity_id;

-- renew_instance_leases --
-- $1 owner, $2 lease_until, $3 ids; returns the ids still held.
WITH held AS (
    SELECT instance_id FROM {schema}.instances
    WHERE instance_id = ANY($3::text[]) AND lease_owner = $1
    ORDER BY instance_id
    FOR UPDATE
)
UPDATE {schema}.instances AS i SET lease_expires_at = $2
FROM held
WHERE i.instance_id = held.instance_id
RETURNING i.instance_id;

-- renew_activity_leases --
-- $1 owner, $2 lease_until, $3 ids; returns the ids still held.
WITH held AS (
    SELECT activity_id FROM {schema}.activities
    WHERE activity_id = ANY($3::bigint[]) AND lease_owner = $1
    ORDER BY activity_id
    FOR UPDATE
)
UPDATE {schema}.activities AS a SET lease_expires_at = $2
FROM held
WHERE a.activity_id = held.activity_id
RETURNING a.activity_id;

-- release_instance_leases --
-- $1 owner, $2 ids, $3 notify channel, $4 payload: released work is announced like new work.
WITH held AS (
    SELECT instance_id FROM {schema}.instances
    WHERE instance_id = ANY($2::text[]) AND lease_owner = $1
    ORDER BY instance_id
    FOR UPDATE
), released AS (
    UPDATE {schema}.instances AS i SET lease_owner = NULL, lease_expires_at = NULL
    FROM held
    WHERE i.instance_id = held.instance_id
    RETURNING i.instance_id
)
SELECT pg_notify($3, $4) FROM (SELECT FROM released LIMIT 1) AS any_released;

-- release_activity_leases --
-- $1 owner, $2 ids, $3 notify channel, $4 payload. A start given back does not count as an attempt.
WITH held AS (
    SELECT activity_id FROM {schema}.activities
    WHERE activity_id = ANY($2::bigint[]) AND lease_owner = $1
    ORDER BY activity_id
    FOR UPDATE
), released AS (
    UPDATE {schema}.activities AS a
    SET lease_owner = NULL, lease_expires_at = NULL, attempt = GREATEST(a.attempt - 1, 0)
    FROM held
    WHERE a.activity_id = held.activity_id
    RETURNING a.activity_id
)
SELECT pg_notify($3, $4) FROM (SELECT FROM released LIMIT 1) AS any_released;

-- filter_instances --
-- $1/$2 the (created_at, instance_id) a page starts after (NULL: first page), $3 statuses,
-- $4/$5 created range, $6 id prefix, $7 name, $8 entities (true: only ids in [$9, $10), the
-- entity ids; false: only the others), $11 limit (NULL: all). Unset filters are NULL.
SELECT * FROM {schema}.instances
WHERE ($1::timestamptz IS NULL OR (created_at, instance_id) > ($1::timestamptz, $2::text))
  AND ($3::text[] IS NULL OR runtime_status = ANY($3::text[]))
  AND ($4::timestamptz IS NULL OR created_at >= $4::timestamptz)
  AND ($5::timestamptz IS NULL OR created_at <= $5::timestamptz)
  AND ($6::text IS NULL OR starts_with(instance_id, $6::text))
  AND ($7::text IS NULL OR name = $7::text)
  AND ($8::boolean IS NOT TRUE OR (instance_id >= $9::text AND instance_id < $10::text))
  AND ($8::boolean IS NOT FALSE OR instance_id < $9::text OR instance_id >= $10::text)
ORDER BY created_at, instance_id
LIMIT $11::bigint;

-- lock_matching_instances --
-- $1 statuses, $2/$3 created range, $4 id prefix, $5 name, $6 entities, $7/$8 the entity id range
-- (as in filter_instances): the ids of the matching instances, locked in id order (the filter is
-- rechecked on rows changed meanwhile).
SELECT instance_id FROM {schema}.instances
WHERE ($1::text[] IS NULL OR runtime_status = ANY($1::text[]))
  AND ($2::timestamptz IS NULL OR created_at >= $2::timestamptz)
  AND ($3::timestamptz IS NULL OR created_at <= $3::timestamptz)
  AND ($4::text IS NULL OR starts_with(instance_id, $4::text))
  AND ($5::text IS NULL OR name = $5::text)
  AND ($6::boolean IS NOT TRUE OR (instance_id >= $7::text AND instance_id < $8::text))
  AND ($6::boolean IS NOT FALSE OR instance_id < $7::text OR instance_id >= $8::text)
ORDER BY instance_id
FOR UPDATE;

-- next_due --
-- $1 now: when the next delayed message becomes visible (NULL: none waits).
SELECT min(visible_at) AS due FROM {schema}.inbox WHERE visible_at > $1;

-- register_worker --
-- $1 id, $2 host, $3 pid, $4 started_at, $5 heartbeat_at, $6/$7 instance and activity names, $8
-- package version. The session writing is the one watched.
INSERT INTO {schema}.workers (
    worker_id, host, pid, started_at, heartbeat_at, backend_pid, instance_names, activity_names,
    package_version
)
VALUES ($1, $2, $3, $4, $5, pg_backend_pid(), $6, $7, $8)
ON CONFLICT (worker_id) DO UPDATE
SET host = EXCLUDED.host, pid = EXCLUDED.pid, started_at = EXCLUDED.started_at,
    heartbeat_at = EXCLUDED.heartbeat_at, backend_pid = EXCLUDED.backend_pid,
    instance_names = EXCLUDED.instance_names, activity_names = EXCLUDED.activity_names,
    package_version = EXCLUDED.package_version;

-- heartbeat_worker --
-- $1 id, $2 now; returns the id while the worker is registered.
UPDATE {schema}.workers SET heartbeat_at = $2, backend_pid = pg_backend_pid()
WHERE worker_id = $1
RETURNING worker_id;

-- unregister_worker --
DELETE FROM {schema}.workers WHERE worker_id = $1;

-- list_workers --
-- A worker's session is alive while a backend with the pid that last wrote its heartbeat exists.
SELECT w.*, EXISTS (SELECT 1 FROM pg_stat_activity AS a WHERE a.pid = w.backend_pid) AS session_alive
FROM {schema}.workers AS w
ORDER BY w.started_at, w.worker_id;

-- remove_dead_workers --
-- $1 ids, $2 their heartbeats as listed, $3 now, $4 channel, $5/$6 messages/activities payloads.
-- Removes the workers that have not beaten since, and ends their leases at $3 (scans: no index on
-- lease_owner, which every claim writes; this runs only when a worker died).
WITH dead AS (
    DELETE FROM {schema}.workers AS w
    USING unnest($1::text[], $2::timestamptz[]) AS seen(worker_id, heartbeat_at)
    WHERE w.worker_id = seen.worker_id AND w.heartbeat_at = seen.heartbeat_at
    RETURNING w.worker_id
), instances AS (
    UPDATE {schema}.instances SET lease_expires_at = $3
    WHERE lease_owner IN (SELECT worker_id FROM dead) AND lease_expires_at > $3
    RETURNING 1
), activities AS (
    UPDATE {schema}.activities SET lease_expires_at = $3
    WHERE lease_owner IN (SELECT worker_id FROM dead) AND lease_expires_at > $3
    RETURNING 1
), announced AS (
    SELECT pg_notify($4, $5) FROM (SELECT FROM instances LIMIT 1) AS any_instance
    UNION ALL
    SELECT pg_notify($4, $6) FROM (SELECT FROM activities LIMIT 1) AS any_activity
)
SELECT worker_id,
       EXISTS (SELECT FROM instances) AS instances,
       EXISTS (SELECT FROM activities) AS activities,
       (SELECT count(*) FROM announced) AS announced
FROM dead;

-- select_dead_letters --
-- $1 instance id (NULL: every instance), $2 limit.
SELECT * FROM {schema}.dead_letters
WHERE $1::text IS NULL OR instance_id = $1::text
ORDER BY message_id DESC
LIMIT $2;

-- unserved_instance_names --
-- $1 now, $2 names: those of unleased instances with a visible message that are not in $2 (the
-- ready ones by their index, the delayed ones come due by the inbox's).
SELECT name FROM {schema}.instances
WHERE ready_message_id IS NOT NULL AND (lease_owner IS NULL OR lease_expires_at < $1)
  AND NOT (name = ANY($2::text[]))
UNION
SELECT i.name FROM {schema}.inbox AS m JOIN {schema}.instances AS i ON i.instance_id = m.instance_id
WHERE m.visible_at <= $1 AND (i.lease_owner IS NULL OR i.lease_expires_at < $1)
  AND NOT (i.name = ANY($2::text[]));

-- unserved_activity_names --
SELECT DISTINCT name FROM {schema}.activities
WHERE (lease_owner IS NULL OR lease_expires_at < $1) AND NOT (name = ANY($2::text[]));
