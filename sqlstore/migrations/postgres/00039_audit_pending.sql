-- +goose Up
-- The sequencer's queue (issue 20, "Growth and restarts"). Each audit event's pos is inserted
-- here by the statement that inserts the event (sqlstore Tx.AuditMany), so it commits or rolls
-- back with it, and the round that appends the event to the log deletes it in the same
-- transaction. A round reads the queue by its primary key (ORDER BY pos LIMIT n) and the events
-- by theirs, so its cost no longer depends on the size of the log, with or without statistics:
-- before, it scanned audit_events for events of recent transactions (txid >= horizon) missing
-- from audit_log, all of them after a restart.
--
-- Not evidence: a row only says "not sequenced yet". The runtime role may DELETE here (the
-- sequencer must), never on the audit tables. Deleting a row cannot hide an event: it stays in
-- audit_events, and `audit verify` reports an event that is neither in the log nor queued as
-- unsequenced (`tutela audit sequence` queues it again). No tenant data, no row-level security
-- (like audit_sequencer).
CREATE TABLE audit_pending (
    pos BIGINT PRIMARY KEY
);

-- A runtime role that records audit events (INSERT on audit_events, docs/audit.md) must now queue
-- them too, or every audited transaction would fail after the upgrade: give each such role (other
-- than the owner running this) what the queue needs, and nothing more.
-- +goose StatementBegin
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT DISTINCT grantee FROM information_schema.role_table_grants
             WHERE table_schema = current_schema() AND table_name = 'audit_events'
               AND privilege_type = 'INSERT' AND grantee <> current_user AND grantee <> 'PUBLIC' LOOP
        EXECUTE format('GRANT SELECT, INSERT, DELETE ON audit_pending TO %I', r.grantee);
    END LOOP;
END
$$;
-- +goose StatementEnd

-- One-time backfill: the events recorded but not yet sequenced when this migration runs.
INSERT INTO audit_pending (pos)
SELECT e.pos FROM audit_events e WHERE NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.event_id = e.id);

-- Only the old pending scan used the inserting transaction's id; its index cost ~25 bytes per
-- event. The column goes too (8 bytes per new row; dropping is a catalog change, old rows keep
-- their bytes until rewritten).
DROP INDEX audit_events_txid;
ALTER TABLE audit_events DROP COLUMN txid;

-- +goose Down
ALTER TABLE audit_events ADD COLUMN txid BIGINT NOT NULL DEFAULT txid_current();
CREATE INDEX audit_events_txid ON audit_events (txid);
DROP TABLE audit_pending;
