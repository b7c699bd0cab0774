-- +goose Up
-- One row per audit shipping destination (audit.ship in the configuration; docs/audit.md,
-- "Shipping the log"): the next log index to ship and the size of the last checkpoint the
-- destination accepted, so a restarted node resumes exactly where shipping stopped. The lease
-- lets one node ship to a destination at a time; failures, retry_at and last_error drive the
-- backoff and tell an operator what is wrong. No tenant data (the log's own state, like
-- audit_sequencer), hence no row-level security.
CREATE TABLE audit_ship_cursors (
    destination     TEXT PRIMARY KEY,
    next_index      BIGINT NOT NULL DEFAULT 0 CHECK (next_index >= 0),
    checkpoint_size BIGINT NOT NULL DEFAULT 0 CHECK (checkpoint_size >= 0),
    lease_owner     TEXT NOT NULL DEFAULT '',
    lease_until     TIMESTAMPTZ,
    failures        INTEGER NOT NULL DEFAULT 0,
    retry_at        TIMESTAMPTZ,
    last_error      TEXT NOT NULL DEFAULT '',
    shipped_at      TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE audit_ship_cursors;
