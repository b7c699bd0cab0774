-- +goose Up
-- Privacy vault (issue 13): every person whose data a tenant holds (a subject, or a user) has
-- their own data key, wrapped by the tenant's person_keys keyset. Their personal data is
-- encrypted under it; erasing the person deletes this row, which makes every copy of their
-- ciphertexts unreadable at once (crypto-shredding).
CREATE TABLE person_keys (
    tenant_id  UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    person_id  UUID NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('subject', 'user')),
    wrapped    BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, person_id)
);

-- The erasure ledger: who was erased, when, by whom, why and on which legal basis; never what
-- they held. Append-only, like the audit log. `backup restore` re-applies it to a restored
-- database so an erasure reaches backups taken before it.
CREATE TABLE erasures (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    person_id   UUID NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('subject', 'user')),
    erased_at   TIMESTAMPTZ NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT NOT NULL DEFAULT '',
    trigger     TEXT NOT NULL CHECK (trigger IN ('request', 'retention')),
    reason      TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    UNIQUE (tenant_id, person_id)
);
CREATE INDEX erasures_tenant ON erasures (tenant_id, erased_at);

CREATE TRIGGER erasures_append_only BEFORE UPDATE OR DELETE ON erasures
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER erasures_no_truncate BEFORE TRUNCATE ON erasures
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

ALTER TABLE person_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE person_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON person_keys
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE erasures ENABLE ROW LEVEL SECURITY;
ALTER TABLE erasures FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON erasures
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
DROP POLICY tenant_isolation ON erasures;
DROP POLICY tenant_isolation ON person_keys;
DROP TABLE erasures;
DROP TABLE person_keys;
