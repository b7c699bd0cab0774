-- +goose Up
-- See the PostgreSQL migration.
-- Token vault (issue 13): tokens stand in for field values (deterministic, random or
-- format-preserving). A token row names the token; its value rows hold the value encrypted under
-- the person's key (person_id set) or the tenant's personal_data keyset (tenant-held, holder '').
-- A deterministic token is shared by everyone holding the same value (joins, deduplication), so
-- one token may have several value rows; erasing a person deletes theirs (ON DELETE CASCADE from
-- person_keys, and ErasePerson) and the token with them when nobody else holds the value.
CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    field      TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('deterministic', 'random', 'format_preserving')),
    token      TEXT NOT NULL,
    -- Keyed digest (tokens PRF keyset, key det_key_id) of the value, for finding the existing
    -- token of a value; NULL for random tokens, which are never looked up by value.
    det_key_id INTEGER,
    det_digest BLOB,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, field, token),
    CHECK ((kind = 'random') = (det_digest IS NULL)),
    CHECK ((det_key_id IS NULL) = (det_digest IS NULL))
);
-- One token per value, kind and key: a concurrent tokenization of the same value finds the
-- other's row instead of making a second token.
CREATE UNIQUE INDEX tokens_value ON tokens (tenant_id, field, kind, det_key_id, det_digest) WHERE det_digest IS NOT NULL;

CREATE TABLE token_values (
    tenant_id  TEXT NOT NULL,
    token_id   TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    holder     TEXT NOT NULL,            -- person_id, or '' for a tenant-held value
    person_id  TEXT,
    ciphertext BLOB NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, token_id, holder),
    FOREIGN KEY (tenant_id, person_id) REFERENCES person_keys (tenant_id, person_id) ON DELETE CASCADE,
    CHECK ((person_id IS NULL AND holder = '') OR holder = person_id)
);
CREATE INDEX token_values_person ON token_values (tenant_id, person_id) WHERE person_id IS NOT NULL;

-- Minimization profiles: per purpose, which fields pass, are generalised, become tokens or are
-- dropped (privacy.Profile, stored as JSON).
CREATE TABLE minimization_profiles (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    purpose    TEXT NOT NULL,
    rules      TEXT NOT NULL,
    updated_by TEXT NOT NULL DEFAULT '',
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, purpose)
);

-- +goose Down
DROP TABLE minimization_profiles;
DROP TABLE token_values;
DROP TABLE tokens;
