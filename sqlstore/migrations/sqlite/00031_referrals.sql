-- +goose Up
-- See the PostgreSQL migration (row-level security is PostgreSQL only).
-- Tracked referrals of subjects to partner organisations (issue 18). The redirect token is
-- never stored: it is the referral's ID, key ID and expiry signed with the platform's
-- referrals PRF; key_id and expires_at here are what the token must match. state is the
-- lifecycle as stored; a referral not closed or cancelled is read as expired once expires_at
-- has passed (referrals.Referral.StateAt), so 'expired' is stored only if a sweep writes it.
CREATE TABLE referrals (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    partner_id    TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    target_url    TEXT NOT NULL,
    key_id        BIGINT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('created', 'opened', 'confirmed', 'closed', 'cancelled', 'expired')),
    outcome       TEXT NOT NULL DEFAULT '',
    justification TEXT NOT NULL,
    created_by    TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMP NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    opened_at     TIMESTAMP,
    confirmed_at  TIMESTAMP,
    confirmed_by  TEXT NOT NULL DEFAULT '',
    closed_at     TIMESTAMP,
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
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    referral_id TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('created', 'opened', 'confirmed', 'closed', 'cancelled', 'expired')),
    actor       TEXT NOT NULL DEFAULT '',
    at          TIMESTAMP NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (tenant_id, referral_id) REFERENCES referrals (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX referral_events_referral ON referral_events (tenant_id, referral_id, at);

-- +goose Down
DROP TABLE referral_events;
DROP TABLE referrals;
