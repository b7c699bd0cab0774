-- +goose Up
-- Access reviews (issue 6); see the PostgreSQL migration for the design notes.
CREATE TABLE access_reviews (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    created_by   TEXT,
    created_at   TIMESTAMP NOT NULL,
    deadline     TIMESTAMP NOT NULL,
    auto_revoke  BOOLEAN NOT NULL,
    dormant_days INTEGER NOT NULL CHECK (dormant_days BETWEEN 1 AND 3650),
    status       TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    closed_at    TIMESTAMP,
    closed_by    TEXT,
    UNIQUE (tenant_id, id)
);
CREATE INDEX access_reviews_tenant ON access_reviews (tenant_id, created_at);

CREATE TABLE access_review_items (
    id                 TEXT PRIMARY KEY,
    review_id          TEXT NOT NULL,
    tenant_id          TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    user_email         TEXT NOT NULL,
    user_display_name  TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('role', 'permission')),
    role_key           TEXT,
    user_permission_id TEXT,
    description        TEXT NOT NULL,
    grant_expires_at   TIMESTAMP,
    user_last_login_at TIMESTAMP,
    dormant            BOOLEAN NOT NULL,
    decision           TEXT CHECK (decision IN ('keep', 'revoke')),
    decided_by         TEXT,
    decided_at         TIMESTAMP,
    comment            TEXT NOT NULL DEFAULT '',
    outcome            TEXT CHECK (outcome IN ('unreviewed', 'auto_revoked', 'last_admin_kept', 'platform_role_kept')),
    CHECK ((kind = 'role') = (role_key IS NOT NULL) AND (kind = 'permission') = (user_permission_id IS NOT NULL)),
    FOREIGN KEY (tenant_id, review_id) REFERENCES access_reviews (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX access_review_items_review ON access_review_items (tenant_id, review_id);

-- +goose Down
DROP TABLE access_review_items;
DROP TABLE access_reviews;
