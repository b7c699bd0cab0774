-- +goose Up
-- OpenID Provider (issue 15). A relying party's sign-in is a session of its own, a child of the
-- browser's sign-in session: it holds the refresh-token family of that client (rotation and
-- reuse detection are the refresh machinery of every session), ends when its parent ends
-- (RevokeSessionByID cascades), and never outlives it (absolute expiry copied from it).
ALTER TABLE sessions ADD COLUMN client_id TEXT;   -- NULL: a Tutela session (hosted pages, /v1 API)
ALTER TABLE sessions ADD COLUMN parent_id UUID;   -- the sign-in session the client's session came from
ALTER TABLE sessions ADD COLUMN scope TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN dpop_jkt TEXT;    -- RFC 9449: its tokens need a proof by this key (JWK SHA-256 thumbprint)
ALTER TABLE sessions ADD COLUMN auth_time TIMESTAMPTZ;  -- a client session: when the user last authenticated (its parent's sign-in or step-up)
CREATE INDEX sessions_parent ON sessions (parent_id) WHERE parent_id IS NOT NULL;

-- Per-tenant branding of the hosted pages (JSON: display name, logo, colours; validated, never HTML).
ALTER TABLE tenants ADD COLUMN branding TEXT NOT NULL DEFAULT '';

-- Registered relying parties, per tenant. The client_id is random (never sequential).
CREATE TABLE oidc_clients (
    id                        TEXT PRIMARY KEY,
    tenant_id                 UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    name                      TEXT NOT NULL,
    -- op.ApplicationType: web (a server), native (a mobile or desktop app), user_agent (a SPA)
    app_type                  TEXT NOT NULL CHECK (app_type IN ('web', 'native', 'user_agent')),
    auth_method               TEXT NOT NULL CHECK (auth_method IN ('client_secret_basic', 'private_key_jwt', 'none')),
    redirect_uris             TEXT NOT NULL,           -- JSON array, matched exactly (RFC 8252 loopback ports aside)
    post_logout_redirect_uris TEXT NOT NULL,           -- JSON array
    backchannel_logout_uri    TEXT NOT NULL DEFAULT '',
    scopes                    TEXT NOT NULL,           -- JSON array: the scopes it may ask for
    grant_types               TEXT NOT NULL,           -- JSON array: authorization_code, refresh_token, client_credentials
    id_token_alg              TEXT NOT NULL DEFAULT 'EdDSA' CHECK (id_token_alg IN ('EdDSA', 'ES256', 'RS256')),
    require_dpop              BOOLEAN NOT NULL DEFAULT false,
    require_par               BOOLEAN NOT NULL DEFAULT false,
    skip_consent              BOOLEAN NOT NULL DEFAULT false, -- first-party applications the tenant vouches for
    access_token_ttl_s        INTEGER NOT NULL DEFAULT 0,     -- 0: the server's access-token lifetime
    status                    TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_by                TEXT NOT NULL,
    created_at                TIMESTAMPTZ NOT NULL,
    updated_at                TIMESTAMPTZ NOT NULL
);
CREATE INDEX oidc_clients_tenant ON oidc_clients (tenant_id, created_at, id);

-- Client secrets: only their SHA-256 is kept. Rotation adds a secret and gives the previous one
-- an expiry (the overlap), so a fleet of relying-party nodes can switch without an outage.
CREATE TABLE oidc_client_secrets (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL,
    client_id   TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    secret_hash BYTEA NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ            -- NULL: until the next rotation
);
CREATE INDEX oidc_client_secrets_client ON oidc_client_secrets (client_id);

-- Public keys of private_key_jwt clients (RFC 7523), one JWK each.
CREATE TABLE oidc_client_keys (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL,
    client_id  TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    kid        TEXT NOT NULL,
    jwk        TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    UNIQUE (client_id, kid)
);

-- Authorization requests between /authorize and the code exchange (10 minutes at most). The
-- code is kept as its SHA-256; a used code stays (code_used_at) so that a replay revokes the
-- client session it became (RFC 6749 §4.1.2) until the row expires.
CREATE TABLE oidc_auth_requests (
    id                UUID PRIMARY KEY,
    tenant_id         UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id         TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    request           TEXT NOT NULL,       -- the validated request (JSON)
    user_id           UUID,
    session_id        UUID,                -- the browser's sign-in session that completed it
    auth_time         TIMESTAMPTZ,
    amr               TEXT NOT NULL DEFAULT '',
    acr               TEXT NOT NULL DEFAULT '',
    denied            TEXT NOT NULL DEFAULT '',  -- the error sent back instead of a code (access_denied, login_required ...)
    done              BOOLEAN NOT NULL DEFAULT false,
    code_hash         BYTEA UNIQUE,
    code_used_at      TIMESTAMPTZ,
    issued_session_id UUID,                -- the client session the code was exchanged for
    dpop_jkt          TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    expires_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX oidc_auth_requests_expiry ON oidc_auth_requests (expires_at);

-- Pushed authorization requests (RFC 9126): the request_uri handle is kept as its SHA-256,
-- single use, 60 seconds.
CREATE TABLE oidc_pushed_requests (
    handle_hash BYTEA PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    params      TEXT NOT NULL,             -- the pushed parameters (JSON object of string lists)
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

-- Remembered consent: what a user let an application receive. Revoking it ends the
-- application's sessions of that user.
CREATE TABLE oidc_consents (
    tenant_id  UUID NOT NULL,
    user_id    UUID NOT NULL,
    client_id  TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,              -- JSON array
    granted_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, user_id, client_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

-- DPoP proof identifiers seen (RFC 9449 §11.1: a proof is used once), kept as SHA-256 until
-- the proof could no longer be accepted.
CREATE TABLE oidc_dpop_proofs (
    jti_hash   BYTEA PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX oidc_dpop_proofs_expiry ON oidc_dpop_proofs (expires_at);

ALTER TABLE oidc_clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_clients FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oidc_clients
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE oidc_client_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_client_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oidc_client_secrets
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE oidc_client_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_client_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oidc_client_keys
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE oidc_auth_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_auth_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oidc_auth_requests
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE oidc_pushed_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_pushed_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oidc_pushed_requests
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE oidc_consents ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_consents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oidc_consents
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
DROP TABLE oidc_dpop_proofs;
DROP TABLE oidc_consents;
DROP TABLE oidc_pushed_requests;
DROP TABLE oidc_auth_requests;
DROP TABLE oidc_client_keys;
DROP TABLE oidc_client_secrets;
DROP TABLE oidc_clients;
ALTER TABLE tenants DROP COLUMN branding;
DROP INDEX sessions_parent;
ALTER TABLE sessions DROP COLUMN auth_time;
ALTER TABLE sessions DROP COLUMN dpop_jkt;
ALTER TABLE sessions DROP COLUMN scope;
ALTER TABLE sessions DROP COLUMN parent_id;
ALTER TABLE sessions DROP COLUMN client_id;
