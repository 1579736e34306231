-- Migration 2: a history row holds the events one commit appended, as a JSON array, where it
-- held one event. Rows written before stay readable as they are, so nothing is altered: the new
-- version is what keeps code that reads one event per row from opening a schema with the new rows.
COMMENT ON COLUMN history.event IS
    'JSON array of the events one commit appended (rows from before schema version 2: one event object)';
