-- +goose Up
CREATE TYPE permission_action AS ENUM ('CREATE', 'READ', 'UPDATE', 'DELETE', 'PUBLISH', 'APPROVE', 'REVIEW', 'EXPORT', 'IMPORT', 'MANAGE');

ALTER TABLE roles ADD COLUMN clearance TEXT NOT NULL DEFAULT 'GREEN' CHECK (clearance IN ('GREEN', 'YELLOW', 'RED'));
ALTER TABLE roles ADD COLUMN description TEXT NOT NULL DEFAULT '';
UPDATE roles SET clearance = 'RED' WHERE key = 'super_admin' AND tenant_id IS NULL;
UPDATE roles SET clearance = 'YELLOW' WHERE key IN ('program_admin', 'operator') AND tenant_id IS NULL;

-- A permission is (resource type, action, optional maximum classification).
CREATE TABLE permissions (
    id                 UUID PRIMARY KEY,
    resource_type      TEXT NOT NULL,
    action             permission_action NOT NULL,
    max_classification TEXT CHECK (max_classification IN ('GREEN', 'YELLOW', 'RED')),
    UNIQUE NULLS NOT DISTINCT (resource_type, action, max_classification)
);

-- Custom roles' permissions; built-in roles' permissions are defined in code (authz.BuiltinRoles).
CREATE TABLE role_permissions (
    role_id       UUID NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission_id UUID NOT NULL REFERENCES permissions (id) ON DELETE RESTRICT,
    PRIMARY KEY (role_id, permission_id)
);

-- Per-user grants and explicit denies, optionally expiring.
CREATE TABLE user_permissions (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL,
    user_id       UUID NOT NULL,
    permission_id UUID NOT NULL REFERENCES permissions (id) ON DELETE RESTRICT,
    effect        TEXT NOT NULL CHECK (effect IN ('allow', 'deny')),
    granted_by    UUID,
    granted_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX user_permissions_user ON user_permissions (tenant_id, user_id);

-- Field masking policies per role ("resource.field" → mask), overriding the clearance defaults.
CREATE TABLE field_policies (
    role_id UUID NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    field   TEXT NOT NULL,
    mask    TEXT NOT NULL CHECK (mask IN ('full', 'partial', 'hashed', 'redacted', 'hidden')),
    PRIMARY KEY (role_id, field)
);

-- Service accounts carry an explicit permission set, a clearance, an optional IP allowlist and
-- an optional expiry.
ALTER TABLE service_accounts ADD COLUMN clearance TEXT NOT NULL DEFAULT 'GREEN' CHECK (clearance IN ('GREEN', 'YELLOW', 'RED'));
ALTER TABLE service_accounts ADD COLUMN ip_allowlist TEXT NOT NULL DEFAULT '';
ALTER TABLE service_accounts ADD COLUMN expires_at TIMESTAMPTZ;
CREATE TABLE service_account_permissions (
    service_account_id UUID NOT NULL REFERENCES service_accounts (id) ON DELETE CASCADE,
    permission_id      UUID NOT NULL REFERENCES permissions (id) ON DELETE RESTRICT,
    PRIMARY KEY (service_account_id, permission_id)
);

-- Row-level security: a second wall behind the store's own tenant scoping. Every transaction
-- sets tutela.tenant to the caller's tenant ('*' for platform work); a query that forgets its
-- tenant filter still sees only that tenant's rows, and a transaction that never set it sees
-- nothing at all (current_setting(..., true) is NULL).
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sessions
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE user_roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_roles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON user_roles
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE user_permissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_permissions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON user_permissions
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE user_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON user_tokens
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
DROP TABLE service_account_permissions;
ALTER TABLE service_accounts DROP COLUMN expires_at;
ALTER TABLE service_accounts DROP COLUMN ip_allowlist;
ALTER TABLE service_accounts DROP COLUMN clearance;
DROP POLICY tenant_isolation ON user_tokens;
ALTER TABLE user_tokens NO FORCE ROW LEVEL SECURITY;
ALTER TABLE user_tokens DISABLE ROW LEVEL SECURITY;
DROP POLICY tenant_isolation ON user_permissions;
DROP POLICY tenant_isolation ON user_roles;
ALTER TABLE user_roles NO FORCE ROW LEVEL SECURITY;
ALTER TABLE user_roles DISABLE ROW LEVEL SECURITY;
DROP POLICY tenant_isolation ON sessions;
ALTER TABLE sessions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE sessions DISABLE ROW LEVEL SECURITY;
DROP POLICY tenant_isolation ON users;
ALTER TABLE users NO FORCE ROW LEVEL SECURITY;
ALTER TABLE users DISABLE ROW LEVEL SECURITY;
DROP TABLE field_policies;
DROP TABLE user_permissions;
DROP TABLE role_permissions;
DROP TABLE permissions;
ALTER TABLE roles DROP COLUMN description;
ALTER TABLE roles DROP COLUMN clearance;
DROP TYPE permission_action;
