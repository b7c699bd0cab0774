-- +goose Up
-- Tamper-evident audit log (issue 5); see the PostgreSQL migration for the design. SQLite runs
-- one writer at a time, so insertion order (pos) is commit order and the sequencer may follow it.

CREATE TABLE audit_events (
    pos         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    time        TIMESTAMP NOT NULL,
    tenant_id   TEXT NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    canonical   BLOB NOT NULL,
    leaf_hash   BLOB NOT NULL CHECK (length(leaf_hash) = 32)
);
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, time);
CREATE INDEX audit_events_actor ON audit_events (actor_id, time);
CREATE INDEX audit_events_action ON audit_events (action, time);
CREATE INDEX audit_events_target ON audit_events (target_type, target_id, time);

CREATE TABLE audit_log (
    idx       INTEGER PRIMARY KEY CHECK (idx >= 0),
    event_id  TEXT NOT NULL UNIQUE,
    time      TIMESTAMP NOT NULL,
    leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32)
);

CREATE TABLE audit_hashes (
    id   INTEGER PRIMARY KEY CHECK (id >= 0),
    hash BLOB NOT NULL CHECK (length(hash) = 32)
);

CREATE TABLE audit_checkpoints (
    size       INTEGER PRIMARY KEY CHECK (size > 0),
    signed     TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE audit_prunes (
    id         TEXT PRIMARY KEY,
    cutoff     TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- SQLite has no transaction-local settings: a prune inserts its record's id here, deletes, and
-- removes the row again before commit. Writers are serialised, so no other transaction ever
-- sees the gate open. Not an audit table: it is empty outside a prune.
CREATE TABLE audit_prune_gate (
    prune_id TEXT PRIMARY KEY REFERENCES audit_prunes (id)
);

-- +goose StatementBegin
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE on audit_events refused'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN NOT EXISTS (SELECT 1 FROM audit_prune_gate g JOIN audit_prunes p ON p.id = g.prune_id
                 WHERE OLD.time < p.cutoff)
  OR NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.event_id = OLD.id)
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE on audit_events refused'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE on audit_log refused'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE on audit_log refused'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_hashes_no_update BEFORE UPDATE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE on audit_hashes refused'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_hashes_no_delete BEFORE DELETE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE on audit_hashes refused'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE on audit_checkpoints refused'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE on audit_checkpoints refused'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_prunes_no_update BEFORE UPDATE ON audit_prunes
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE on audit_prunes refused'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_prunes_no_delete BEFORE DELETE ON audit_prunes
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE on audit_prunes refused'); END;
-- +goose StatementEnd

-- No Down section on purpose: rolling this migration back would destroy the audit evidence.
