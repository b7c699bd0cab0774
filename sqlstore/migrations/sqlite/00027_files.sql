-- +goose Up
-- See the PostgreSQL migration (row-level security is PostgreSQL only).
-- Safe file intake and signed download links (issue 17). The files' bytes are not here: each
-- file is a blob, encrypted with its own data key, in the blob store (a directory or an
-- S3-compatible bucket), named by the SHA-256 of its ciphertext. This table holds what is known
-- about it and the data key, wrapped by the tenant's files keyset or, for a subject's file, by
-- the subject's own key (so erasing the subject shreds the file).
CREATE TABLE file_policies (
    tenant_id  TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE RESTRICT,
    policy     TEXT NOT NULL,  -- JSON files.Policy
    updated_at TIMESTAMP NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);

CREATE TABLE files (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    subject_id        TEXT,            -- whose key wraps the data key; NULL: the tenant's files keyset
    name_sealed       BLOB,           -- the file's name, sealed like the data key; NULL once shredded
    declared_type     TEXT NOT NULL,
    detected_type     TEXT NOT NULL,
    extension         TEXT NOT NULL DEFAULT '',
    size              BIGINT NOT NULL,
    sha256            TEXT NOT NULL,   -- of the content, hex; '' once shredded
    classification    TEXT NOT NULL CHECK (classification IN ('GREEN', 'YELLOW', 'RED')),
    status            TEXT NOT NULL CHECK (status IN ('quarantined', 'available', 'infected', 'deleted', 'erased')),
    quarantine_reason TEXT NOT NULL DEFAULT '',
    scan_result       TEXT NOT NULL DEFAULT '',
    scan_attempts     INTEGER NOT NULL DEFAULT 0,
    scanned_at        TIMESTAMP,
    blob_key          TEXT,            -- the encrypted blob's name; NULL once the blob is removed
    wrapped_dek       BLOB,           -- the file's data key, wrapped; NULL once shredded
    uploaded_by       TEXT NOT NULL DEFAULT '',
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX files_tenant ON files (tenant_id, id);  -- List: newest first by UUIDv7 ID
CREATE INDEX files_subject ON files (tenant_id, subject_id) WHERE subject_id IS NOT NULL;
CREATE UNIQUE INDEX files_blob ON files (blob_key) WHERE blob_key IS NOT NULL;

-- A download link's token is never stored: it is the link's ID, key ID and expiry signed with
-- the file_links PRF; this row says what it opens, for whom, and whether it was used.
CREATE TABLE file_links (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    file_id    TEXT NOT NULL,
    key_id     BIGINT NOT NULL,
    audience   TEXT NOT NULL CHECK (audience IN ('user', 'anyone')),
    user_id    TEXT,
    single_use BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP,
    revoked_at TIMESTAMP,
    created_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    FOREIGN KEY (tenant_id, file_id) REFERENCES files (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX file_links_file ON file_links (tenant_id, file_id);
CREATE INDEX file_links_expiry ON file_links (expires_at);

-- +goose Down
DROP TABLE file_links;
DROP TABLE files;
DROP TABLE file_policies;
