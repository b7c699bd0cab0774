-- +goose Up
-- A tenant's webhook endpoints (issue 18): events (approvals, referrals) are POSTed to each
-- subscribed URL through the durable queue, signed with the endpoint's secret. The secret is
-- sealed under the tenant's webhooks keyset (AEAD), bound to the row's ID; it is shown once, at
-- creation, and never read back through the API. events is the JSON list of event types the
-- endpoint receives ("*": all). last_delivery_at and last_status describe the latest attempt.
CREATE TABLE webhooks (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    url              TEXT NOT NULL,
    secret_sealed    BYTEA NOT NULL,
    events           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_by       TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL,
    last_delivery_at TIMESTAMPTZ,
    last_status      TEXT NOT NULL DEFAULT '',
    UNIQUE (tenant_id, id)
);

ALTER TABLE webhooks ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhooks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhooks
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
DROP TABLE webhooks;
