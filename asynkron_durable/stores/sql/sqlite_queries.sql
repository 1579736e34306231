-- Named queries of the SQLite state store. Each starts with a `-- name --` header line; the store
-- loads this file once. Parameters are named (:param); lists are passed as JSON arrays (json_each).

-- get_schema_version --
SELECT MAX(version) AS version FROM schema_version;

-- record_schema_version --
UPDATE schema_version SET version = :version;

-- has_schema_version_table --
SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version';

-- select_instance --
SELECT * FROM instances WHERE instance_id = :instance_id;

-- instance_exists --
SELECT 1 FROM instances WHERE instance_id = :instance_id;

-- select_instances --
SELECT * FROM instances WHERE instance_id IN (SELECT value FROM json_each(:ids));

-- insert_instance --
INSERT INTO instances (
    instance_id, name, execution_id, runtime_status, input, output, custom_status, failure,
    created_at, last_updated_at, parent_instance_id, version, lease_owner, lease_expires_at
) VALUES (
    :instance_id, :name, :execution_id, :runtime_status, :input, :output, :custom_status, :failure,
    :created_at, :last_updated_at, :parent_instance_id, :version, NULL, NULL
);

-- insert_instance_if_missing --
-- The target of a message that creates it: an existing instance is left exactly as it is.
INSERT INTO instances (
    instance_id, name, execution_id, runtime_status, input, output, custom_status, failure,
    created_at, last_updated_at, parent_instance_id, version, lease_owner, lease_expires_at
) VALUES (
    :instance_id, :name, :execution_id, :runtime_status, :input, :output, :custom_status, :failure,
    :created_at, :last_updated_at, :parent_instance_id, :version, NULL, NULL
)
ON CONFLICT (instance_id) DO NOTHING;

-- commit_instance --
-- An episode's commit under the lease of :owner (:step = 0), or an activity step's (:step = 1),
-- which needs the instance unleased and without a visible inbox message.
UPDATE instances SET
    name = :name,
    execution_id = :execution_id,
    runtime_status = :runtime_status,
    input = :input,
    output = :output,
    custom_status = :custom_status,
    failure = :failure,
    created_at = :created_at,
    last_updated_at = :last_updated_at,
    parent_instance_id = :parent_instance_id,
    version = :version,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE instance_id = :instance_id AND version = :expected_version
  AND CASE WHEN :step THEN
      (lease_owner IS NULL OR lease_expires_at < :now)
      AND NOT EXISTS (
          SELECT 1 FROM inbox
          WHERE instance_id = :instance_id AND (visible_at IS NULL OR visible_at <= :now)
      )
  ELSE lease_owner = :owner END;

-- select_idle_instance --
-- Whether the instance has version :version and no inbox message at all (delayed ones count).
SELECT 1 FROM instances
WHERE instance_id = :instance_id AND version = :version
  AND NOT EXISTS (SELECT 1 FROM inbox WHERE instance_id = :instance_id);

-- delete_instances --
DELETE FROM instances WHERE instance_id IN (SELECT value FROM json_each(:ids));

-- delete_histories --
DELETE FROM history WHERE instance_id IN (SELECT value FROM json_each(:ids));

-- delete_inboxes --
DELETE FROM inbox WHERE instance_id IN (SELECT value FROM json_each(:ids));

-- delete_instance_activities --
DELETE FROM activities WHERE instance_id IN (SELECT value FROM json_each(:ids));

-- insert_history --
-- :events is the JSON array of the events one commit appends: one row per commit.
INSERT INTO history (instance_id, seq, event)
VALUES (
    :instance_id,
    (SELECT COALESCE(MAX(seq) + 1, 0) FROM history WHERE instance_id = :instance_id),
    :events
);

-- select_history --
SELECT instance_id, seq, event FROM history WHERE instance_id = :instance_id ORDER BY seq;

-- select_histories --
SELECT instance_id, seq, event FROM history
WHERE instance_id IN (SELECT value FROM json_each(:ids))
ORDER BY instance_id, seq;

-- insert_message --
INSERT INTO inbox (instance_id, execution_id, event, visible_at)
SELECT :instance_id, :execution_id, :event, :visible_at
WHERE EXISTS (SELECT 1 FROM instances WHERE instance_id = :instance_id);

-- ack_message --
DELETE FROM inbox WHERE instance_id = :instance_id AND message_id = :message_id;

-- claim_candidates --
-- The two halves are ranges of inbox_by_visible_at (NULL sorts first), so future timers cost nothing.
-- :names (a JSON list, or NULL for any) keeps to the instances of the orchestrators and entities
-- the caller runs.
SELECT m.instance_id, MIN(m.message_id) AS first_message_id
FROM (
    SELECT instance_id, message_id FROM inbox WHERE visible_at IS NULL
    UNION ALL
    SELECT instance_id, message_id FROM inbox WHERE visible_at <= :now
) AS m
JOIN instances AS i ON i.instance_id = m.instance_id
WHERE (i.lease_owner IS NULL OR i.lease_expires_at < :now)
  AND (:names IS NULL OR i.name IN (SELECT value FROM json_each(:names)))
GROUP BY m.instance_id
ORDER BY first_message_id
LIMIT :limit;

-- lease_instances --
UPDATE instances SET lease_owner = :owner, lease_expires_at = :lease_until
WHERE instance_id IN (SELECT value FROM json_each(:ids));

-- select_visible_messages --
SELECT message_id, instance_id, execution_id, event FROM inbox
WHERE instance_id IN (SELECT value FROM json_each(:ids))
  AND (visible_at IS NULL OR visible_at <= :now)
ORDER BY message_id;

-- dead_letter_message --
INSERT INTO dead_letters (message_id, instance_id, event, error, dead_at)
SELECT message_id, instance_id, event, :error, :now FROM inbox WHERE message_id = :message_id;

-- delete_message --
DELETE FROM inbox WHERE message_id = :message_id;

-- insert_activity --
-- Unleased (:owner NULL), or leased to :owner until :lease_until as its first attempt.
INSERT INTO activities (instance_id, execution_id, task_id, name, input, lease_owner, lease_expires_at, attempt)
VALUES (
    :instance_id, :execution_id, :task_id, :name, :input,
    :owner, :lease_until, CASE WHEN :owner IS NULL THEN 0 ELSE 1 END
)
RETURNING activity_id;

-- claim_activities --
-- An owner claiming back its own lapsed lease is still running the activity: no new attempt.
UPDATE activities
SET lease_owner = :owner, lease_expires_at = :lease_until,
    attempt = attempt + CASE WHEN lease_owner = :owner THEN 0 ELSE 1 END
WHERE activity_id IN (
    SELECT activity_id FROM activities
    WHERE (lease_owner IS NULL OR lease_expires_at < :now)
      AND (:names IS NULL OR name IN (SELECT value FROM json_each(:names)))
    ORDER BY activity_id
    LIMIT :limit
)
RETURNING activity_id, instance_id, execution_id, task_id, name, input, attempt;

-- next_due --
SELECT MIN(visible_at) FROM inbox WHERE visible_at > :now;

-- any_claimable_activity --
SELECT 1 FROM activities
WHERE (lease_owner IS NULL OR lease_expires_at < :now)
  AND (:names IS NULL OR name IN (SELECT value FROM json_each(:names)))
LIMIT 1;

-- complete_activity --
DELETE FROM activities WHERE activity_id = :activity_id AND lease_owner = :owner;

-- renew_instance_leases --
UPDATE instances SET lease_expires_at = :lease_until
WHERE lease_owner = :owner AND instance_id IN (SELECT value FROM json_each(:ids))
RETURNING instance_id;

-- renew_activity_leases --
UPDATE activities SET lease_expires_at = :lease_until
WHERE lease_owner = :owner AND activity_id IN (SELECT value FROM json_each(:ids))
RETURNING activity_id;

-- release_instance_leases --
UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL
WHERE lease_owner = :owner AND instance_id IN (SELECT value FROM json_each(:ids));

-- release_activity_leases --
-- A start given back does not count as an attempt.
UPDATE activities SET lease_owner = NULL, lease_expires_at = NULL, attempt = MAX(attempt - 1, 0)
WHERE lease_owner = :owner AND activity_id IN (SELECT value FROM json_each(:ids));

-- filter_instances --
SELECT * FROM instances
WHERE (created_at, instance_id) > (:after_created_at, :after_instance_id)
  AND (:statuses IS NULL OR runtime_status IN (SELECT value FROM json_each(:statuses)))
  AND (:created_from IS NULL OR created_at >= :created_from)
  AND (:created_to IS NULL OR created_at <= :created_to)
  AND (:id_from IS NULL OR instance_id >= :id_from)
  AND (:id_to IS NULL OR instance_id < :id_to)
  AND (:not_from IS NULL OR instance_id < :not_from OR instance_id >= :not_to)
  AND (:name IS NULL OR name = :name)
ORDER BY created_at, instance_id
LIMIT :limit;

-- register_worker --
INSERT OR REPLACE INTO workers (
    worker_id, host, pid, started_at, heartbeat_at, instance_names, activity_names, package_version
)
VALUES (
    :worker_id, :host, :pid, :started_at, :heartbeat_at, :instance_names, :activity_names, :version
);

-- heartbeat_worker --
UPDATE workers SET heartbeat_at = :now WHERE worker_id = :worker_id;

-- unregister_worker --
DELETE FROM workers WHERE worker_id = :worker_id;

-- list_workers --
SELECT * FROM workers ORDER BY started_at, worker_id;

-- remove_dead_worker --
-- Only while its heartbeat is the one seen when it was judged dead.
DELETE FROM workers WHERE worker_id = :worker_id AND heartbeat_at <= :heartbeat_at + 0.001;

-- expire_instance_leases_of --
-- A scan (no index on lease_owner, which every claim writes): it runs only when a worker died.
UPDATE instances SET lease_expires_at = :now WHERE lease_owner = :owner AND lease_expires_at > :now;

-- expire_activity_leases_of --
UPDATE activities SET lease_expires_at = :now WHERE lease_owner = :owner AND lease_expires_at > :now;

-- select_dead_letters --
SELECT * FROM dead_letters
WHERE :instance_id IS NULL OR instance_id = :instance_id
ORDER BY message_id DESC
LIMIT :limit;

-- unserved_instance_names --
-- The names of unleased instances with a visible message that are not in :names (a JSON list).
SELECT DISTINCT i.name
FROM inbox AS m JOIN instances AS i ON i.instance_id = m.instance_id
WHERE (m.visible_at IS NULL OR m.visible_at <= :now)
  AND (i.lease_owner IS NULL OR i.lease_expires_at < :now)
  AND i.name NOT IN (SELECT value FROM json_each(:names));

-- unserved_activity_names --
SELECT DISTINCT name FROM activities
WHERE (lease_owner IS NULL OR lease_expires_at < :now)
  AND name NOT IN (SELECT value FROM json_each(:names));
