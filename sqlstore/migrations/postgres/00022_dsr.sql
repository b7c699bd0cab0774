-- +goose Up
-- Data-subject requests (issue 14; GDPR Art. 15-22, NDPA, POPIA). dsr_requests holds one row
-- per request: IDs, kind, state, deadline and who works and approves it, never personal data
-- (the request survives the subject's erasure as the record that it was answered). What the
-- subject wrote is sealed under their person key in dsr_texts and the access package in
-- dsr_packages; both are in the erasure's personData, so erasing the subject shreds them.
-- dsr_steps is every step's who, when and what, append-only.
CREATE TABLE dsr_requests (
    id                  UUID PRIMARY KEY,
    tenant_id           UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    subject_id          UUID NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('access', 'portability', 'rectification', 'erasure',
                            'restriction', 'objection')),
    jurisdiction        TEXT NOT NULL,
    purpose             TEXT NOT NULL DEFAULT '', -- the purpose objected to (objection only)
    status              TEXT NOT NULL CHECK (status IN ('received', 'verified', 'in_progress', 'submitted',
                            'blocked', 'completed', 'rejected')),
    verification        TEXT NOT NULL CHECK (verification IN ('pending', 'verified', 'failed')),
    verification_method TEXT NOT NULL DEFAULT '',
    assignee            TEXT NOT NULL DEFAULT '',
    approver            TEXT NOT NULL DEFAULT '',
    received_at         TIMESTAMPTZ NOT NULL,
    due_at              TIMESTAMPTZ NOT NULL,
    extension_days      INTEGER NOT NULL DEFAULT 0,
    extension_reason    TEXT NOT NULL DEFAULT '',
    completed_at        TIMESTAMPTZ,
    outcome             TEXT NOT NULL DEFAULT '',
    outcome_reason      TEXT NOT NULL DEFAULT '',
    rectified_fields    TEXT NOT NULL DEFAULT '[]', -- JSON array of field names
    blocked_reason      TEXT NOT NULL DEFAULT '',
    created_by          TEXT NOT NULL DEFAULT '',
    updated_at          TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, id),
    CHECK (assignee = '' OR assignee <> approver),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX dsr_requests_open ON dsr_requests (tenant_id, due_at) WHERE completed_at IS NULL;
CREATE INDEX dsr_requests_subject ON dsr_requests (tenant_id, subject_id);

CREATE TABLE dsr_texts (
    dsr_id     UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL,
    subject_id UUID NOT NULL,
    ciphertext BYTEA NOT NULL,
    FOREIGN KEY (tenant_id, dsr_id) REFERENCES dsr_requests (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX dsr_texts_subject ON dsr_texts (tenant_id, subject_id);

CREATE TABLE dsr_steps (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL,
    dsr_id     UUID NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    step       TEXT NOT NULL,
    details    TEXT NOT NULL DEFAULT '{}', -- JSON: IDs, field and purpose names, reasons; no values
    FOREIGN KEY (tenant_id, dsr_id) REFERENCES dsr_requests (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX dsr_steps_dsr ON dsr_steps (tenant_id, dsr_id, at);

CREATE TRIGGER dsr_steps_append_only BEFORE UPDATE OR DELETE ON dsr_steps
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER dsr_steps_no_truncate BEFORE TRUNCATE ON dsr_steps
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- The access/portability package, sealed under the subject's key, and its one download link:
-- only the SHA-256 of the link's token is stored.
CREATE TABLE dsr_packages (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL,
    dsr_id          UUID NOT NULL,
    subject_id      UUID NOT NULL,
    ciphertext      BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    token_hash      BYTEA UNIQUE,
    link_expires_at TIMESTAMPTZ,
    used_at         TIMESTAMPTZ,
    UNIQUE (tenant_id, dsr_id),
    FOREIGN KEY (tenant_id, dsr_id) REFERENCES dsr_requests (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX dsr_packages_subject ON dsr_packages (tenant_id, subject_id);

ALTER TABLE dsr_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE dsr_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dsr_requests
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE dsr_texts ENABLE ROW LEVEL SECURITY;
ALTER TABLE dsr_texts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dsr_texts
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE dsr_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE dsr_steps FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dsr_steps
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE dsr_packages ENABLE ROW LEVEL SECURITY;
ALTER TABLE dsr_packages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dsr_packages
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
DROP TABLE dsr_packages;
DROP TABLE dsr_steps;
DROP TABLE dsr_texts;
DROP TABLE dsr_requests;
