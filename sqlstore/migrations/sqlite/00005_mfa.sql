-- +goose Up
-- Second factors of a user. type 'totp': secret is the TOTP seed sealed with the vault (AAD binds
-- tenant, user and factor id), last_step the last accepted RFC 6238 time step (replays and older
-- codes are refused). type 'webauthn': credential_id and the credential record (public key, flags,
-- AAGUID; no secret), sign_count the last authenticator counter. type 'recovery': one row per set
-- of recovery codes, the codes in mfa_recovery_codes. A factor is usable only once active
-- (TOTP: after the first correct code).
CREATE TABLE mfa_factors (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    type          TEXT NOT NULL CHECK (type IN ('totp', 'webauthn', 'recovery')),
    name          TEXT NOT NULL,
    active        BOOLEAN NOT NULL,
    secret        BLOB,
    last_step     INTEGER NOT NULL DEFAULT 0,
    credential_id BLOB UNIQUE,
    credential    BLOB,
    sign_count    INTEGER NOT NULL DEFAULT 0,
    created_at    TIMESTAMP NOT NULL,
    last_used_at  TIMESTAMP,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX mfa_factors_user ON mfa_factors (tenant_id, user_id);

-- Recovery codes: 80 random bits each, stored as SHA-256 only.
CREATE TABLE mfa_recovery_codes (
    id         TEXT PRIMARY KEY,
    factor_id  TEXT NOT NULL REFERENCES mfa_factors (id) ON DELETE CASCADE,
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    code_hash  BLOB NOT NULL,
    used_at    TIMESTAMP
);
CREATE INDEX mfa_recovery_codes_user ON mfa_recovery_codes (tenant_id, user_id);

-- Pending WebAuthn ceremonies (server-side session data), single use, found by their challenge.
CREATE TABLE webauthn_ceremonies (
    challenge  TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('register', 'login')),
    session    BLOB NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX webauthn_ceremonies_user ON webauthn_ceremonies (tenant_id, user_id);

-- Public keys a service account signs its private_key_jwt client assertions with (RFC 7523).
CREATE TABLE service_account_keys (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL,
    service_account_id TEXT NOT NULL REFERENCES service_accounts (id) ON DELETE CASCADE,
    kid                TEXT NOT NULL,
    alg                TEXT NOT NULL,
    public_jwk         BLOB NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    UNIQUE (service_account_id, kid)
);

-- jti of accepted client assertions, kept until the assertion expires, so none is accepted twice.
CREATE TABLE client_assertion_jtis (
    service_account_id TEXT NOT NULL REFERENCES service_accounts (id) ON DELETE CASCADE,
    jti                TEXT NOT NULL,
    expires_at         TIMESTAMP NOT NULL,
    PRIMARY KEY (service_account_id, jti)
);
CREATE INDEX client_assertion_jtis_expiry ON client_assertion_jtis (expires_at);

-- +goose Down
DROP TABLE client_assertion_jtis;
DROP TABLE service_account_keys;
DROP TABLE webauthn_ceremonies;
DROP TABLE mfa_recovery_codes;
DROP TABLE mfa_factors;
