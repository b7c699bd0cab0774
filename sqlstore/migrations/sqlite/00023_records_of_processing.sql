-- +goose Up
-- See the PostgreSQL migration.
CREATE TABLE processing_controllers (
    tenant_id      TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE RESTRICT,
    name           TEXT NOT NULL,
    contact        TEXT NOT NULL,
    dpo_contact    TEXT NOT NULL DEFAULT '',
    representative TEXT NOT NULL DEFAULT '',
    updated_at     TIMESTAMP NOT NULL
);

CREATE TABLE processing_records (
    tenant_id          TEXT NOT NULL,
    purpose            TEXT NOT NULL,
    subject_categories TEXT NOT NULL,
    recipients         TEXT NOT NULL,
    transfers          TEXT NOT NULL,
    retention_note     TEXT NOT NULL DEFAULT '',
    security_measures  TEXT NOT NULL DEFAULT '',
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, purpose),
    FOREIGN KEY (tenant_id, purpose) REFERENCES processing_purposes (tenant_id, name) ON DELETE RESTRICT
);

CREATE TABLE subprocessors (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    name               TEXT NOT NULL,
    service            TEXT NOT NULL,
    locations          TEXT NOT NULL,
    data_categories    TEXT NOT NULL,
    transfer_safeguard TEXT NOT NULL CHECK (transfer_safeguard IN ('', 'adequacy', 'scc', 'bcr', 'derogation', 'other')),
    safeguard_details  TEXT NOT NULL DEFAULT '',
    contract_ref       TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('active', 'removed')),
    added_at           TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    removed_at         TIMESTAMP,
    CHECK ((status = 'removed') = (removed_at IS NOT NULL))
);
CREATE INDEX subprocessors_tenant ON subprocessors (tenant_id, added_at, id);

-- +goose Down
DROP TABLE subprocessors;
DROP TABLE processing_records;
DROP TABLE processing_controllers;
