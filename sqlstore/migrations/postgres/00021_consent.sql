-- +goose Up
-- Consent and lawful bases (issue 14). processing_purposes is each tenant's register of
-- purposes with their lawful basis and, for a purpose on consent, the privacy notice and the
-- lowest notice version a consent still counts for. consent_records is every subject's consent
-- history, append-only; consent_state is its latest entry per (subject, purpose), updated in
-- the same transaction, so the check before each processing is one indexed read. Objections
-- (GDPR Art. 21) and restrictions (Art. 18) stop processing until lifted.
CREATE TABLE processing_purposes (
    tenant_id           UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    name                TEXT NOT NULL,
    description         TEXT NOT NULL,
    lawful_basis        TEXT NOT NULL CHECK (lawful_basis IN ('consent', 'contract', 'legal_obligation',
                            'vital_interests', 'public_task', 'legitimate_interests')),
    notice_id           TEXT NOT NULL DEFAULT '',
    notice_version      INTEGER NOT NULL DEFAULT 0,
    consent_min_version INTEGER NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, name),
    CHECK (lawful_basis <> 'consent' OR (notice_id <> '' AND consent_min_version BETWEEN 1 AND notice_version))
);

CREATE TABLE consent_records (
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL,
    subject_id     UUID NOT NULL,
    purpose        TEXT NOT NULL,
    action         TEXT NOT NULL CHECK (action IN ('granted', 'withdrawn')),
    basis          TEXT NOT NULL CHECK (basis IN ('consent', 'explicit_consent', 'parental_consent')),
    notice_id      TEXT NOT NULL,
    notice_version INTEGER NOT NULL,
    channel        TEXT NOT NULL,
    recorded_by    TEXT NOT NULL CHECK (recorded_by IN ('subject', 'caseworker')),
    actor_type     TEXT NOT NULL,
    actor_id       TEXT NOT NULL,
    -- The caseworker's evidence reference, sealed under the subject's key (shredded with it).
    evidence       BYTEA,
    recorded_at    TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT,
    FOREIGN KEY (tenant_id, purpose) REFERENCES processing_purposes (tenant_id, name) ON DELETE RESTRICT
);
CREATE INDEX consent_records_subject ON consent_records (tenant_id, subject_id, recorded_at);

CREATE TRIGGER consent_records_append_only BEFORE UPDATE OR DELETE ON consent_records
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER consent_records_no_truncate BEFORE TRUNCATE ON consent_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE TABLE consent_state (
    tenant_id      UUID NOT NULL,
    subject_id     UUID NOT NULL,
    purpose        TEXT NOT NULL,
    action         TEXT NOT NULL CHECK (action IN ('granted', 'withdrawn')),
    notice_version INTEGER NOT NULL,
    record_id      UUID NOT NULL REFERENCES consent_records (id),
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, subject_id, purpose),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT
);

CREATE TABLE subject_objections (
    tenant_id  UUID NOT NULL,
    subject_id UUID NOT NULL,
    purpose    TEXT NOT NULL,
    reference  TEXT NOT NULL DEFAULT '', -- the data-subject request it came from, if any
    actor_type TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, subject_id, purpose),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT,
    FOREIGN KEY (tenant_id, purpose) REFERENCES processing_purposes (tenant_id, name) ON DELETE RESTRICT
);

CREATE TABLE subject_restrictions (
    tenant_id  UUID NOT NULL,
    subject_id UUID NOT NULL,
    reference  TEXT NOT NULL DEFAULT '',
    actor_type TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, subject_id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT
);

ALTER TABLE processing_purposes ENABLE ROW LEVEL SECURITY;
ALTER TABLE processing_purposes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON processing_purposes
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE consent_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE consent_records FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON consent_records
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE consent_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE consent_state FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON consent_state
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE subject_objections ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_objections FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subject_objections
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE subject_restrictions ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_restrictions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subject_restrictions
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
DROP TABLE subject_restrictions;
DROP TABLE subject_objections;
DROP TABLE consent_state;
DROP TABLE consent_records;
DROP TABLE processing_purposes;
