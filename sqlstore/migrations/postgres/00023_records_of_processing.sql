-- +goose Up
-- Records of processing and the sub-processor register (issue 14, GDPR Art. 30 and 28). Only
-- what people declare is stored: the record itself is generated on each read from the register
-- of purposes and the subject schema merged with these declarations. The controller's details
-- are business contact data; lists are JSON arrays in TEXT, as subject_fields.purposes.
CREATE TABLE processing_controllers (
    tenant_id      UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE RESTRICT,
    name           TEXT NOT NULL,
    contact        TEXT NOT NULL,
    dpo_contact    TEXT NOT NULL DEFAULT '',
    representative TEXT NOT NULL DEFAULT '',
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE processing_records (
    tenant_id          UUID NOT NULL,
    purpose            TEXT NOT NULL,
    subject_categories TEXT NOT NULL, -- JSON array
    recipients         TEXT NOT NULL, -- JSON array
    transfers          TEXT NOT NULL, -- JSON array of {country, recipient, safeguard, safeguard_details}
    retention_note     TEXT NOT NULL DEFAULT '',
    security_measures  TEXT NOT NULL DEFAULT '',
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, purpose),
    FOREIGN KEY (tenant_id, purpose) REFERENCES processing_purposes (tenant_id, name) ON DELETE RESTRICT
);

-- A removed sub-processor keeps its row (status removed, removed_at): the register's history
-- is what shows who held the data when.
CREATE TABLE subprocessors (
    id                 UUID PRIMARY KEY,
    tenant_id          UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    name               TEXT NOT NULL,
    service            TEXT NOT NULL,
    locations          TEXT NOT NULL, -- JSON array of ISO 3166-1 alpha-2 codes
    data_categories    TEXT NOT NULL, -- JSON array
    transfer_safeguard TEXT NOT NULL CHECK (transfer_safeguard IN ('', 'adequacy', 'scc', 'bcr', 'derogation', 'other')),
    safeguard_details  TEXT NOT NULL DEFAULT '',
    contract_ref       TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('active', 'removed')),
    added_at           TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    removed_at         TIMESTAMPTZ,
    CHECK ((status = 'removed') = (removed_at IS NOT NULL))
);
CREATE INDEX subprocessors_tenant ON subprocessors (tenant_id, added_at, id);

ALTER TABLE processing_controllers ENABLE ROW LEVEL SECURITY;
ALTER TABLE processing_controllers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON processing_controllers
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE processing_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE processing_records FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON processing_records
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE subprocessors ENABLE ROW LEVEL SECURITY;
ALTER TABLE subprocessors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subprocessors
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
DROP TABLE subprocessors;
DROP TABLE processing_records;
DROP TABLE processing_controllers;
