-- +goose Up
-- Security monitoring (issue 19): the rules engine reads the sequenced audit log (audit_log,
-- by idx) and remembers how far it got, so across restarts nothing is skipped and nothing is
-- evaluated twice; the round that advances the cursor also updates the threshold windows and
-- enqueues the alerts, in one transaction under an advisory lock (one node at a time).
CREATE TABLE monitor_cursor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    next_idx   BIGINT NOT NULL CHECK (next_idx >= 0),
    updated_at TIMESTAMPTZ NOT NULL
);

-- One row per threshold rule and tenant ('' for platform events): the times and audit event IDs
-- of the matching events still inside the rule's window (at most the threshold's count), and
-- the end of the quiet period after an alert, so a rule fires once per window.
CREATE TABLE monitor_windows (
    rule        TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    events      TEXT NOT NULL,
    quiet_until TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (rule, tenant_id)
);

ALTER TABLE monitor_windows ENABLE ROW LEVEL SECURITY;
ALTER TABLE monitor_windows FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON monitor_windows
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id = current_setting('tutela.tenant', true));

-- +goose Down
DROP TABLE monitor_windows;
DROP TABLE monitor_cursor;
