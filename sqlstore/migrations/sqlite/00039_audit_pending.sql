-- +goose Up
-- The sequencer's queue (issue 20); see the PostgreSQL migration. Each event's pos is inserted
-- here in the statement's transaction (Tx.AuditMany) and deleted by the round that sequences it,
-- so a round reads the queue and the events by primary key and never scans audit_events (after a
-- restart the old round started from pos 0). Not evidence, hence no append-only triggers.
CREATE TABLE audit_pending (
    pos INTEGER PRIMARY KEY
);

-- One-time backfill: the events recorded but not yet sequenced when this migration runs.
INSERT INTO audit_pending (pos)
SELECT e.pos FROM audit_events e WHERE NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.event_id = e.id);

-- +goose Down
DROP TABLE audit_pending;
