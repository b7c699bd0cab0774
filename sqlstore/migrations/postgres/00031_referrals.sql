-- +goose Up
-- Tracked referrals of subjects to partner organisations (issue 18). The redirect token is
-- never stored: it is the referral's ID, key ID and expiry signed with the platform's
-- referrals PRF; key_id and expires_at here are what the token must match. state is the
-- lifecycle as stored; a referral not closed or cancelled is read as expired once expires_at
-- has passed (referrals.Referral.StateAt), so 'expired' is stored only if a sweep writes it.
CREATE TABLE referrals (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    partner_id    UUID NOT NULL,
    subject_id    UUID NOT NULL,
    purpose       TEXT NOT NULL,
    target_url    TEXT NOT NULL,
    key_id        BIGINT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('created', 'opened', 'confirmed', 'closed', 'cancelled', 'expired')),
    outcome       TEXT NOT NULL DEFAULT '',
    justification TEXT NOT NULL,
    created_by    TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    opened_at     TIMESTAMPTZ,
    confirmed_at  TIMESTAMPTZ,
    confirmed_by  TEXT NOT NULL DEFAULT '',
    closed_at     TIMESTAMPTZ,
    closed_by     TEXT NOT NULL DEFAULT '',
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, partner_id) REFERENCES partners (tenant_id, id) ON DELETE RESTRICT,
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX referrals_subject ON referrals (tenant_id, subject_id);
CREATE INDEX referrals_partner ON referrals (tenant_id, partner_id);

-- Each transition of a referral, in order: who (a user, a partner's service account, or ''
-- for the person following the link), when, and a note (the justification, or the partner's
-- outcome).
CREATE TABLE referral_events (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL,
    referral_id UUID NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('created', 'opened', 'confirmed', 'closed', 'cancelled', 'expired')),
    actor       TEXT NOT NULL DEFAULT '',
    at          TIMESTAMPTZ NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (tenant_id, referral_id) REFERENCES referrals (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX referral_events_referral ON referral_events (tenant_id, referral_id, at);

ALTER TABLE referrals ENABLE ROW LEVEL SECURITY;
ALTER TABLE referrals FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON referrals
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE referral_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE referral_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON referral_events
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
DROP TABLE referral_events;
DROP TABLE referrals;
