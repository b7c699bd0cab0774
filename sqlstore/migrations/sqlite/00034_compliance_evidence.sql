-- +goose Up
-- See the PostgreSQL migration.
CREATE TABLE compliance_evidence (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('audit_verify', 'backup', 'restore', 'restore_test')),
    outcome     TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    details     TEXT NOT NULL,
    recorded_at TIMESTAMP NOT NULL
);
CREATE INDEX compliance_evidence_kind ON compliance_evidence (kind, recorded_at);

-- +goose Down
DROP TABLE compliance_evidence;
