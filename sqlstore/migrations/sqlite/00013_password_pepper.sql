-- +goose Up
-- See the PostgreSQL migration. SQLite cannot alter a CHECK constraint: the table is rebuilt.
CREATE TABLE keysets_new (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT REFERENCES tenants (id) ON DELETE RESTRICT,
    purpose    TEXT NOT NULL CHECK (purpose GLOB '[a-z]*' AND length(purpose) <= 63),
    kind       TEXT NOT NULL CHECK (kind IN ('aead', 'deterministic', 'prf')),
    version    INTEGER NOT NULL CHECK (version > 0),
    wrapped    BLOB NOT NULL,
    kek_uri    TEXT NOT NULL,
    key_info   TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    rotated_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO keysets_new SELECT id, tenant_id, purpose, kind, version, wrapped, kek_uri, key_info, created_at, rotated_at, updated_at FROM keysets;
DROP TABLE keysets;
ALTER TABLE keysets_new RENAME TO keysets;
CREATE UNIQUE INDEX keysets_scope ON keysets (COALESCE(tenant_id, ''), purpose);

-- +goose Down
DELETE FROM keysets WHERE kind = 'prf';
CREATE TABLE keysets_old (
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
INSERT INTO keysets_old SELECT id, tenant_id, purpose, kind, version, wrapped, kek_uri, key_info, created_at, rotated_at, updated_at FROM keysets;
DROP TABLE keysets;
ALTER TABLE keysets_old RENAME TO keysets;
CREATE UNIQUE INDEX keysets_scope ON keysets (COALESCE(tenant_id, ''), purpose);
