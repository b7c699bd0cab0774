-- +goose Up
-- Per-tenant overrides; NULL means "use the server default".
ALTER TABLE tenants ADD COLUMN session_idle_seconds INTEGER;
ALTER TABLE tenants ADD COLUMN session_absolute_seconds INTEGER;
ALTER TABLE tenants ADD COLUMN password_composition TEXT;

ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN last_login_at TIMESTAMPTZ;

CREATE TABLE password_history (
    tenant_id  UUID NOT NULL,
    user_id    UUID NOT NULL,
    hash       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX password_history_user ON password_history (user_id, created_at DESC);

-- Server-side sessions. id is the public handle (list/revoke); only SHA-256 of the cookie
-- value is stored.
CREATE TABLE sessions (
    id                  UUID PRIMARY KEY,
    tenant_id           UUID NOT NULL,
    user_id             UUID NOT NULL,
    token_hash          BYTEA NOT NULL UNIQUE,
    token_version       BIGINT NOT NULL,
    amr                 TEXT NOT NULL,
    ip                  TEXT NOT NULL,
    user_agent          TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    last_seen_at        TIMESTAMPTZ NOT NULL,
    idle_timeout_s      INTEGER NOT NULL,
    absolute_expires_at TIMESTAMPTZ NOT NULL,
    revoked_at          TIMESTAMPTZ,
    revoked_reason      TEXT,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);

-- Refresh tokens rotate on every use; all tokens of one session form a family (RFC 9700 §4.14).
CREATE TABLE refresh_tokens (
    id         UUID PRIMARY KEY,
    session_id UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Brute-force counters shared by every node. key is a SHA-256 of the throttled identity
-- (account, IP, or IP+account), so the table holds no e-mail addresses.
CREATE TABLE auth_throttle (
    key          BYTEA PRIMARY KEY,
    kind         TEXT NOT NULL,
    subject      BYTEA,
    failures     INTEGER NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    locks        INTEGER NOT NULL,
    contrib        INTEGER NOT NULL DEFAULT 0,
    contrib_window TIMESTAMPTZ,
    locked_until TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX auth_throttle_subject ON auth_throttle (subject);

CREATE TABLE login_history (
    id         UUID PRIMARY KEY,
    tenant_id  UUID,
    user_id    UUID,
    ip         TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    result     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX login_history_tenant ON login_history (tenant_id, created_at);
CREATE INDEX login_history_user ON login_history (user_id, created_at);

CREATE TABLE security_events (
    id         UUID PRIMARY KEY,
    tenant_id  UUID,
    user_id    UUID,
    kind       TEXT NOT NULL,
    ip         TEXT NOT NULL,
    details    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX security_events_tenant ON security_events (tenant_id, created_at);

-- Access-token signing keys; private keys sealed with the master key.
CREATE TABLE signing_keys (
    id             TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    public_jwk     BYTEA NOT NULL,
    sealed_private BYTEA NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    activate_at    TIMESTAMPTZ NOT NULL,
    retire_at      TIMESTAMPTZ
);

-- Integration accounts: no interactive login; secrets stored hashed, at most two active.
CREATE TABLE service_accounts (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    client_id  TEXT NOT NULL UNIQUE,
    status     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE TABLE service_account_secrets (
    id                 UUID PRIMARY KEY,
    service_account_id UUID NOT NULL REFERENCES service_accounts (id) ON DELETE CASCADE,
    secret_hash        BYTEA NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    expires_at         TIMESTAMPTZ,
    revoked_at         TIMESTAMPTZ
);

-- +goose Down
DROP TABLE service_account_secrets;
DROP TABLE service_accounts;
DROP TABLE signing_keys;
DROP TABLE security_events;
DROP TABLE login_history;
DROP TABLE auth_throttle;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE password_history;
ALTER TABLE users DROP COLUMN last_login_at;
ALTER TABLE users DROP COLUMN must_change_password;
ALTER TABLE tenants DROP COLUMN password_composition;
ALTER TABLE tenants DROP COLUMN session_absolute_seconds;
ALTER TABLE tenants DROP COLUMN session_idle_seconds;
