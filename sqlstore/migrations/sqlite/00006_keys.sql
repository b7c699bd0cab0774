-- +goose Up
-- See the PostgreSQL migration for the design.
CREATE TABLE keysets (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT REFERENCES tenants (id) ON DELETE RESTRICT,
    purpose    TEXT NOT NULL CHECK (purpose GLOB '[a-z]*' AND length(purpose) <= 63),
    kind       TEXT NOT NULL CHECK (kind IN ('aead', 'deterministic')),
    version    INTEGER NOT NULL CHECK (version > 0),
    wrapped    BLOB NOT NULL,
    kek_uri    TEXT NOT NULL,
    key_info   TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    rotated_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX keysets_scope ON keysets (COALESCE(tenant_id, ''), purpose);

-- +goose Down
DROP TABLE keysets;
