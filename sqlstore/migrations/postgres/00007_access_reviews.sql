-- +goose Up
-- Access reviews (issue 6): a periodic re-certification of every grant in a tenant. Opening a
-- review snapshots each unexpired role grant and per-user allow; reviewers keep or revoke each
-- item before the deadline. Items copy what they describe (user e-mail, grant text, last
-- sign-in) and do not reference users or grants, so the evidence survives the revocations and
-- deletions the review itself causes.
CREATE TABLE access_reviews (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    created_by   UUID,
    created_at   TIMESTAMPTZ NOT NULL,
    deadline     TIMESTAMPTZ NOT NULL,
    auto_revoke  BOOLEAN NOT NULL,
    dormant_days INTEGER NOT NULL CHECK (dormant_days BETWEEN 1 AND 3650),
    status       TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    closed_at    TIMESTAMPTZ,
    closed_by    UUID,
    UNIQUE (tenant_id, id)
);
CREATE INDEX access_reviews_tenant ON access_reviews (tenant_id, created_at);

CREATE TABLE access_review_items (
    id                 UUID PRIMARY KEY,
    review_id          UUID NOT NULL,
    tenant_id          UUID NOT NULL,
    user_id            UUID NOT NULL,
    user_email         TEXT NOT NULL,
    user_display_name  TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('role', 'permission')),
    role_key           TEXT,
    user_permission_id UUID,
    description        TEXT NOT NULL,
    grant_expires_at   TIMESTAMPTZ,
    user_last_login_at TIMESTAMPTZ,
    dormant            BOOLEAN NOT NULL,
    decision           TEXT CHECK (decision IN ('keep', 'revoke')),
    decided_by         UUID,
    decided_at         TIMESTAMPTZ,
    comment            TEXT NOT NULL DEFAULT '',
    -- Set at close for items nobody decided: unreviewed, auto_revoked or last_admin_kept.
    outcome            TEXT CHECK (outcome IN ('unreviewed', 'auto_revoked', 'last_admin_kept', 'platform_role_kept')),
    CHECK ((kind = 'role') = (role_key IS NOT NULL) AND (kind = 'permission') = (user_permission_id IS NOT NULL)),
    FOREIGN KEY (tenant_id, review_id) REFERENCES access_reviews (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX access_review_items_review ON access_review_items (tenant_id, review_id);

ALTER TABLE access_reviews ENABLE ROW LEVEL SECURITY;
ALTER TABLE access_reviews FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON access_reviews
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE access_review_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE access_review_items FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON access_review_items
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
DROP POLICY tenant_isolation ON access_review_items;
DROP POLICY tenant_isolation ON access_reviews;
DROP TABLE access_review_items;
DROP TABLE access_reviews;
