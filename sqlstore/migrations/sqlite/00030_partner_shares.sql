-- +goose Up
-- See the PostgreSQL migration (row-level security is PostgreSQL only).
CREATE TABLE partner_shares (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    partner_id    TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    created_by    TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMP NOT NULL,
    revoked_at    TIMESTAMP,
    revoked_by    TEXT NOT NULL DEFAULT '',
    justification TEXT NOT NULL,
    FOREIGN KEY (tenant_id, partner_id) REFERENCES partners (tenant_id, id) ON DELETE RESTRICT,
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX partner_shares_partner_subject ON partner_shares (tenant_id, partner_id, subject_id);
CREATE INDEX partner_shares_subject ON partner_shares (tenant_id, subject_id);

-- +goose Down
DROP TABLE partner_shares;
