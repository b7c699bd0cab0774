-- +goose Up
-- See the PostgreSQL migration (row-level security is PostgreSQL only).
ALTER TABLE users ADD COLUMN person_id TEXT;
ALTER TABLE service_accounts ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN mode TEXT NOT NULL DEFAULT 'provisioning'
    CHECK (mode IN ('simulation', 'provisioning'));
CREATE TABLE partners (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    redirect_urls TEXT NOT NULL DEFAULT '[]',
    created_by    TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, name)
);
ALTER TABLE users ADD COLUMN partner_id TEXT;
ALTER TABLE service_accounts ADD COLUMN partner_id TEXT;

-- +goose Down
ALTER TABLE service_accounts DROP COLUMN partner_id;
ALTER TABLE users DROP COLUMN partner_id;
DROP TABLE partners;
ALTER TABLE tenants DROP COLUMN mode;
ALTER TABLE service_accounts DROP COLUMN created_by;
ALTER TABLE users DROP COLUMN person_id;
