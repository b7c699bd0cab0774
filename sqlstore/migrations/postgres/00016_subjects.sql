-- +goose Up
-- Subjects (issue 13): people whose data a tenant holds (beneficiaries, patients), apart from
-- the users who sign in. A per-tenant schema declares the fields; each value is encrypted under
-- the subject's own key (person_keys) and bound to (tenant, subject, field). Searchable fields
-- also get blind-index digests (keyed hashes of the normalized value), so an exact-value search
-- never decrypts the table.
CREATE TABLE subject_fields (
    tenant_id      UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    name           TEXT NOT NULL,
    type           TEXT NOT NULL,
    classification TEXT NOT NULL CHECK (classification IN ('GREEN', 'YELLOW', 'RED')),
    purposes       TEXT NOT NULL,            -- JSON array of purpose names
    retention_days INTEGER NOT NULL CHECK (retention_days BETWEEN 1 AND 36500),
    mask           TEXT NOT NULL,            -- authz.Mask shown to those who may not read the value
    searchable     BOOLEAN NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE subjects (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    created_by   TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    -- When the retention schedule erases the subject (the latest field value's retention).
    retain_until TIMESTAMPTZ,
    -- Set when the subject is erased; the row keeps only IDs and times, never data.
    erased_at    TIMESTAMPTZ,
    UNIQUE (tenant_id, id)
);
CREATE INDEX subjects_tenant ON subjects (tenant_id, id);
CREATE INDEX subjects_retention ON subjects (retain_until) WHERE erased_at IS NULL;

CREATE TABLE subject_values (
    tenant_id  UUID NOT NULL,
    subject_id UUID NOT NULL,
    field      TEXT NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, subject_id, field),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE subject_index (
    tenant_id  UUID NOT NULL,
    field      TEXT NOT NULL,
    key_id     BIGINT NOT NULL,
    digest     BYTEA NOT NULL,
    subject_id UUID NOT NULL,
    PRIMARY KEY (tenant_id, field, key_id, digest, subject_id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX subject_index_subject ON subject_index (tenant_id, subject_id);

-- Legal holds block erasure (by request or by the retention schedule) until released.
CREATE TABLE subject_holds (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL,
    subject_id  UUID NOT NULL,
    reason      TEXT NOT NULL,
    placed_by   TEXT NOT NULL DEFAULT '',
    placed_at   TIMESTAMPTZ NOT NULL,
    released_by TEXT,
    released_at TIMESTAMPTZ,
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX subject_holds_subject ON subject_holds (tenant_id, subject_id);

-- Exported files of a subject's record, sealed under the subject's key: erasure makes them
-- unreadable with everything else.
CREATE TABLE subject_exports (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL,
    subject_id UUID NOT NULL,
    ciphertext BYTEA NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX subject_exports_subject ON subject_exports (tenant_id, subject_id);

ALTER TABLE subject_fields ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_fields FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subject_fields
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE subjects ENABLE ROW LEVEL SECURITY;
ALTER TABLE subjects FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subjects
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE subject_values ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_values FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subject_values
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE subject_index ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_index FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subject_index
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE subject_holds ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_holds FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subject_holds
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE subject_exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_exports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subject_exports
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
DROP POLICY tenant_isolation ON subject_exports;
DROP POLICY tenant_isolation ON subject_holds;
DROP POLICY tenant_isolation ON subject_index;
DROP POLICY tenant_isolation ON subject_values;
DROP POLICY tenant_isolation ON subjects;
DROP POLICY tenant_isolation ON subject_fields;
DROP TABLE subject_exports;
DROP TABLE subject_holds;
DROP TABLE subject_index;
DROP TABLE subject_values;
DROP TABLE subjects;
DROP TABLE subject_fields;
