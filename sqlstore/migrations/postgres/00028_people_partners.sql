-- +goose Up
-- Foundations of issue 18 (approvals, identity merges, partners, referrals).
--
-- A person may hold several accounts (users.person_id names the person; NULL: the account is
-- its own person). Approvals compare people, not accounts: nobody approves their own request
-- through a second account, nor through a service account they created
-- (service_accounts.created_by).
ALTER TABLE users ADD COLUMN person_id UUID;
ALTER TABLE service_accounts ADD COLUMN created_by TEXT NOT NULL DEFAULT '';

-- A tenant starts in simulation (set-up, dry runs) or in provisioning (serving real people);
-- promotion from simulation to provisioning may need approval. Existing tenants serve people.
ALTER TABLE tenants ADD COLUMN mode TEXT NOT NULL DEFAULT 'provisioning'
    CHECK (mode IN ('simulation', 'provisioning'));

-- Partner organisations of a tenant. A partner's users (users.partner_id) hold only the
-- partner role and see only what is shared with the partner; a partner's service accounts
-- (service_accounts.partner_id) confirm the referrals sent to it. redirect_urls is the JSON
-- list of the exact URLs referrals may send people to.
CREATE TABLE partners (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    redirect_urls TEXT NOT NULL DEFAULT '[]',
    created_by    TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, name)
);
ALTER TABLE users ADD COLUMN partner_id UUID;
ALTER TABLE service_accounts ADD COLUMN partner_id UUID;

ALTER TABLE partners ENABLE ROW LEVEL SECURITY;
ALTER TABLE partners FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON partners
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
ALTER TABLE service_accounts DROP COLUMN partner_id;
ALTER TABLE users DROP COLUMN partner_id;
DROP TABLE partners;
ALTER TABLE tenants DROP COLUMN mode;
ALTER TABLE service_accounts DROP COLUMN created_by;
ALTER TABLE users DROP COLUMN person_id;
