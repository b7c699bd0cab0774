-- +goose Up
-- See the PostgreSQL migration.
CREATE TABLE processing_purposes (
    tenant_id           TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    name                TEXT NOT NULL,
    description         TEXT NOT NULL,
    lawful_basis        TEXT NOT NULL CHECK (lawful_basis IN ('consent', 'contract', 'legal_obligation',
                            'vital_interests', 'public_task', 'legitimate_interests')),
    notice_id           TEXT NOT NULL DEFAULT '',
    notice_version      INTEGER NOT NULL DEFAULT 0,
    consent_min_version INTEGER NOT NULL DEFAULT 0,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, name),
    CHECK (lawful_basis <> 'consent' OR (notice_id <> '' AND consent_min_version BETWEEN 1 AND notice_version))
);

CREATE TABLE consent_records (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    subject_id     TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    action         TEXT NOT NULL CHECK (action IN ('granted', 'withdrawn')),
    basis          TEXT NOT NULL CHECK (basis IN ('consent', 'explicit_consent', 'parental_consent')),
    notice_id      TEXT NOT NULL,
    notice_version INTEGER NOT NULL,
    channel        TEXT NOT NULL,
    recorded_by    TEXT NOT NULL CHECK (recorded_by IN ('subject', 'caseworker')),
    actor_type     TEXT NOT NULL,
    actor_id       TEXT NOT NULL,
    evidence       BLOB,
    recorded_at    TIMESTAMP NOT NULL,
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT,
    FOREIGN KEY (tenant_id, purpose) REFERENCES processing_purposes (tenant_id, name) ON DELETE RESTRICT
);
CREATE INDEX consent_records_subject ON consent_records (tenant_id, subject_id, recorded_at);

-- +goose StatementBegin
CREATE TRIGGER consent_records_no_update BEFORE UPDATE ON consent_records
BEGIN SELECT RAISE(ABORT, 'consent history is append-only: UPDATE on consent_records refused'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER consent_records_no_delete BEFORE DELETE ON consent_records
BEGIN SELECT RAISE(ABORT, 'consent history is append-only: DELETE on consent_records refused'); END;
-- +goose StatementEnd

CREATE TABLE consent_state (
    tenant_id      TEXT NOT NULL,
    subject_id     TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    action         TEXT NOT NULL CHECK (action IN ('granted', 'withdrawn')),
    notice_version INTEGER NOT NULL,
    record_id      TEXT NOT NULL REFERENCES consent_records (id),
    updated_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, subject_id, purpose),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT
);

CREATE TABLE subject_objections (
    tenant_id  TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    reference  TEXT NOT NULL DEFAULT '',
    actor_type TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, subject_id, purpose),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT,
    FOREIGN KEY (tenant_id, purpose) REFERENCES processing_purposes (tenant_id, name) ON DELETE RESTRICT
);

CREATE TABLE subject_restrictions (
    tenant_id  TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    reference  TEXT NOT NULL DEFAULT '',
    actor_type TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, subject_id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT
);

-- +goose Down
DROP TRIGGER consent_records_no_delete;
DROP TRIGGER consent_records_no_update;
DROP TABLE subject_restrictions;
DROP TABLE subject_objections;
DROP TABLE consent_state;
DROP TABLE consent_records;
DROP TABLE processing_purposes;
