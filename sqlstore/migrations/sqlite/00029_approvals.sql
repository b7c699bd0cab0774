-- +goose Up
-- See the PostgreSQL migration (row-level security is PostgreSQL only).
CREATE TABLE approval_policies (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    action         TEXT NOT NULL,
    enabled        BOOLEAN NOT NULL,
    approver_roles TEXT NOT NULL,
    required       INTEGER NOT NULL CHECK (required BETWEEN 1 AND 5),
    ttl_seconds    INTEGER NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    updated_by     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, action)
);

CREATE TABLE approval_requests (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    action           TEXT NOT NULL,
    target_type      TEXT NOT NULL,
    target_id        TEXT NOT NULL,
    params           TEXT NOT NULL,
    params_mac       BLOB NOT NULL,
    key_id           INTEGER NOT NULL,
    justification    TEXT NOT NULL,
    requested_by     TEXT NOT NULL,
    requester_kind   TEXT NOT NULL CHECK (requester_kind IN ('user', 'service_account')),
    requester_person TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'expired', 'cancelled', 'executed')),
    approver_roles   TEXT NOT NULL,
    required         INTEGER NOT NULL,
    approvals        INTEGER NOT NULL DEFAULT 0,
    created_at       TIMESTAMP NOT NULL,
    expires_at       TIMESTAMP NOT NULL,
    decided_at       TIMESTAMP,
    executed_at      TIMESTAMP,
    remind_at        TIMESTAMP NOT NULL,  -- half its life: when a still-pending request is reminded
    reminded_at      TIMESTAMP,
    UNIQUE (tenant_id, id)
);
CREATE INDEX approval_requests_tenant ON approval_requests (tenant_id, state, id);
CREATE INDEX approval_requests_open ON approval_requests (expires_at) WHERE state IN ('pending', 'approved');
CREATE INDEX approval_requests_remind ON approval_requests (remind_at) WHERE state = 'pending' AND reminded_at IS NULL;

CREATE TABLE approval_decisions (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    decided_by     TEXT NOT NULL,
    decider_person TEXT NOT NULL,
    verdict        TEXT NOT NULL CHECK (verdict IN ('approve', 'reject')),
    comment        TEXT NOT NULL,
    decided_at     TIMESTAMP NOT NULL,
    UNIQUE (request_id, decider_person),
    FOREIGN KEY (tenant_id, request_id) REFERENCES approval_requests (tenant_id, id) ON DELETE CASCADE
);

-- +goose Down
DROP TABLE approval_decisions;
DROP TABLE approval_requests;
DROP TABLE approval_policies;
