-- +goose Up
-- The approval engine (issue 18): a tenant's policy per action, the requests a policy held
-- and the decisions on them. A request's parameters are bound to it by params_mac, the
-- tenant's approvals PRF (key key_id) over tenant, request ID, action, target and the
-- canonical parameters: a row altered here is refused as tampered when it is decided or run.
CREATE TABLE approval_policies (
    tenant_id      UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    action         TEXT NOT NULL,
    enabled        BOOLEAN NOT NULL,
    approver_roles TEXT NOT NULL,  -- JSON list of role keys
    required       INTEGER NOT NULL CHECK (required BETWEEN 1 AND 5),
    ttl_seconds    BIGINT NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    updated_by     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, action)
);

CREATE TABLE approval_requests (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    action           TEXT NOT NULL,
    target_type      TEXT NOT NULL,
    target_id        TEXT NOT NULL,
    params           TEXT NOT NULL,   -- canonical JSON (approvals.Canonical)
    params_mac       BYTEA NOT NULL,
    key_id           BIGINT NOT NULL,
    justification    TEXT NOT NULL,
    requested_by     TEXT NOT NULL,
    requester_kind   TEXT NOT NULL CHECK (requester_kind IN ('user', 'service_account')),
    requester_person TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'expired', 'cancelled', 'executed')),
    approver_roles   TEXT NOT NULL,   -- JSON list of role keys, the policy's when requested
    required         INTEGER NOT NULL,
    approvals        INTEGER NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    decided_at       TIMESTAMPTZ,
    executed_at      TIMESTAMPTZ,
    remind_at        TIMESTAMPTZ NOT NULL,  -- half its life: when a still-pending request is reminded
    reminded_at      TIMESTAMPTZ,
    UNIQUE (tenant_id, id)
);
CREATE INDEX approval_requests_tenant ON approval_requests (tenant_id, state, id);
-- The sweep: requests still open, by expiry.
CREATE INDEX approval_requests_open ON approval_requests (expires_at) WHERE state IN ('pending', 'approved');
CREATE INDEX approval_requests_remind ON approval_requests (remind_at) WHERE state = 'pending' AND reminded_at IS NULL;

CREATE TABLE approval_decisions (
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL,
    request_id     UUID NOT NULL,
    decided_by     TEXT NOT NULL,
    decider_person TEXT NOT NULL,
    verdict        TEXT NOT NULL CHECK (verdict IN ('approve', 'reject')),
    comment        TEXT NOT NULL,
    decided_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (request_id, decider_person),  -- one decision per person, whatever account
    FOREIGN KEY (tenant_id, request_id) REFERENCES approval_requests (tenant_id, id) ON DELETE CASCADE
);

ALTER TABLE approval_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE approval_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON approval_policies
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE approval_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE approval_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON approval_requests
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE approval_decisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE approval_decisions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON approval_decisions
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
DROP TABLE approval_decisions;
DROP TABLE approval_requests;
DROP TABLE approval_policies;
