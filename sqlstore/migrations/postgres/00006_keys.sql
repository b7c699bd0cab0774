-- +goose Up
-- Data-encryption keysets (Tink), one per (tenant, purpose); tenant_id NULL is the platform.
-- wrapped is the keyset encrypted by the key-encryption key named by kek_uri; key_info lists
-- key IDs and statuses (no key material) for GET /v1/keys. One row per keyset, updated in place
-- (compare-and-swap on version) so a retired or destroyed key leaves no copy behind; the
-- history of every change is in the audit log.
CREATE TABLE keysets (
    id         UUID PRIMARY KEY,
    tenant_id  UUID REFERENCES tenants (id) ON DELETE RESTRICT,
    purpose    TEXT NOT NULL CHECK (purpose ~ '^[a-z][a-z0-9_]{0,62}$'),
    kind       TEXT NOT NULL CHECK (kind IN ('aead', 'deterministic')),
    version    BIGINT NOT NULL CHECK (version > 0),
    wrapped    BYTEA NOT NULL,
    kek_uri    TEXT NOT NULL,
    key_info   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    rotated_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX keysets_scope ON keysets (COALESCE(tenant_id::text, ''), purpose);

-- +goose Down
DROP TABLE keysets;
