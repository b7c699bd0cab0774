-- +goose Up
-- Tamper-evident audit log (issue 5). Four insert-only tables:
--   audit_events       event bodies, written by the transaction that makes the audited change
--   audit_log          the sequence: log index -> event, written only by the sequencer
--   audit_hashes       RFC 6962 tree hashes at golang.org/x/mod/sumdb/tlog stored-hash indexes
--   audit_checkpoints  signed tree heads (C2SP tlog-checkpoint notes)
-- plus audit_prunes, the record of each retention prune (the only way a body ever goes).
-- The runtime role gets INSERT and SELECT only (docs/audit.md); the triggers below also stop the
-- owner, so an UPDATE, DELETE or TRUNCATE needs a deliberate act (disabling triggers) that
-- audit verify then detects.

CREATE TABLE audit_events (
    pos         BIGSERIAL PRIMARY KEY,          -- insertion order; NOT commit order
    id          TEXT NOT NULL UNIQUE,
    -- The inserting transaction's id: the sequencer reads only events of transactions at or
    -- past the oldest one that was still running at its previous round, so a late commit with a
    -- small pos is never skipped and a round does not scan the whole table.
    txid        BIGINT NOT NULL DEFAULT txid_current(),
    time        TIMESTAMPTZ NOT NULL,
    tenant_id   TEXT NOT NULL,                  -- '' for platform events
    actor_type  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    canonical   BYTEA NOT NULL,                 -- audit.Event.Canonical(): what the log hashes
    leaf_hash   BYTEA NOT NULL CHECK (length(leaf_hash) = 32)
);
CREATE INDEX audit_events_txid ON audit_events (txid);
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, time);
CREATE INDEX audit_events_actor ON audit_events (actor_id, time);
CREATE INDEX audit_events_action ON audit_events (action, time);
CREATE INDEX audit_events_target ON audit_events (target_type, target_id, time);

CREATE TABLE audit_log (
    idx       BIGINT PRIMARY KEY CHECK (idx >= 0),
    event_id  TEXT NOT NULL UNIQUE,             -- also serves the sequencer's anti-join
    time      TIMESTAMPTZ NOT NULL,             -- kept so a pruned entry's age stays known
    leaf_hash BYTEA NOT NULL CHECK (length(leaf_hash) = 32)
);

CREATE TABLE audit_hashes (
    id   BIGINT PRIMARY KEY CHECK (id >= 0),
    hash BYTEA NOT NULL CHECK (length(hash) = 32)
);

CREATE TABLE audit_checkpoints (
    size       BIGINT PRIMARY KEY CHECK (size > 0),
    signed     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit_prunes (
    id         TEXT PRIMARY KEY,                -- the id of the audit event recording the prune
    cutoff     TIMESTAMPTZ NOT NULL,            -- bodies of events before it may be gone
    txid       BIGINT NOT NULL DEFAULT txid_current(),
    created_at TIMESTAMPTZ NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd

-- The single exception: a retention prune may DELETE an event body when (1) the transaction set
-- tutela.audit_prune = 'on' with SET LOCAL, (2) the same transaction inserted a prune record
-- whose cutoff is after the event, and (3) the event is already in the log (its leaf hash stays
-- there, so the tree still verifies and the entry reports as pruned). Normal runtime code never
-- does (1) or (2), and the runtime role has no DELETE privilege at all.
-- +goose StatementBegin
CREATE FUNCTION audit_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND current_setting('tutela.audit_prune', true) = 'on'
       AND EXISTS (SELECT 1 FROM audit_prunes p WHERE p.txid = txid_current() AND OLD.time < p.cutoff)
       AND EXISTS (SELECT 1 FROM audit_log l WHERE l.event_id = OLD.id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_events_guard BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_guard();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_hashes_append_only BEFORE UPDATE OR DELETE ON audit_hashes
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_hashes_no_truncate BEFORE TRUNCATE ON audit_hashes
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_prunes_append_only BEFORE UPDATE OR DELETE ON audit_prunes
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_prunes_no_truncate BEFORE TRUNCATE ON audit_prunes
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- No Down section on purpose: rolling this migration back would destroy the audit evidence.
