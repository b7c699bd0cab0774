-- +goose Up
-- See the PostgreSQL migration (row-level security is PostgreSQL only).
CREATE TABLE webhooks (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    url              TEXT NOT NULL,
    secret_sealed    BLOB NOT NULL,
    events           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_by       TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMP NOT NULL,
    last_delivery_at TIMESTAMP,
    last_status      TEXT NOT NULL DEFAULT '',
    UNIQUE (tenant_id, id)
);

-- +goose Down
DROP TABLE webhooks;
