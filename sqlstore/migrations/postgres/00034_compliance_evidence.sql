-- +goose Up
-- Operations the compliance report cites as evidence that Tutela recorded nowhere before
-- (issue 19): each run of `tutela audit verify` with its result, each encrypted backup written
-- by `tutela backup create`, each restore (`tutela backup restore`, recorded in the restored
-- database) and each restore test (`tutela backup test`). Deployment-wide, no tenant's data:
-- details is a JSON object of counts, sizes, digests and outcomes, never a secret or a path
-- beyond the file's base name. Each insert is audited in the same transaction.
CREATE TABLE compliance_evidence (
    id          UUID PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('audit_verify', 'backup', 'restore', 'restore_test')),
    outcome     TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    details     TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX compliance_evidence_kind ON compliance_evidence (kind, recorded_at);

-- +goose Down
DROP TABLE compliance_evidence;
