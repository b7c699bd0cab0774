-- +goose Up
-- A subject's record shared with a partner organisation (issue 18): for one purpose, until
-- expires_at (required: no share is open-ended), unless revoked earlier. A partner's users
-- and service accounts see a subject only through an active share of their partner, for the
-- share's purpose, at GREEN. Rows are never deleted: a revoked or expired share stays as the
-- record of what was disclosed, to whom, why and until when.
CREATE TABLE partner_shares (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    partner_id    UUID NOT NULL,
    subject_id    UUID NOT NULL,
    purpose       TEXT NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    created_by    TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    revoked_by    TEXT NOT NULL DEFAULT '',
    justification TEXT NOT NULL,
    FOREIGN KEY (tenant_id, partner_id) REFERENCES partners (tenant_id, id) ON DELETE RESTRICT,
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT
);
-- The enforcement probe: the partner's shares of one subject.
CREATE INDEX partner_shares_partner_subject ON partner_shares (tenant_id, partner_id, subject_id);
CREATE INDEX partner_shares_subject ON partner_shares (tenant_id, subject_id);

ALTER TABLE partner_shares ENABLE ROW LEVEL SECURITY;
ALTER TABLE partner_shares FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON partner_shares
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
DROP TABLE partner_shares;
