-- +goose Up
ALTER TABLE roles ADD COLUMN clearance TEXT NOT NULL DEFAULT 'GREEN' CHECK (clearance IN ('GREEN', 'YELLOW', 'RED'));
ALTER TABLE roles ADD COLUMN description TEXT NOT NULL DEFAULT '';
UPDATE roles SET clearance = 'RED' WHERE key = 'super_admin' AND tenant_id IS NULL;
UPDATE roles SET clearance = 'YELLOW' WHERE key IN ('program_admin', 'operator') AND tenant_id IS NULL;

CREATE TABLE permissions (
    id                 TEXT PRIMARY KEY,
    resource_type      TEXT NOT NULL,
    action             TEXT NOT NULL CHECK (action IN ('CREATE', 'READ', 'UPDATE', 'DELETE', 'PUBLISH', 'APPROVE', 'REVIEW', 'EXPORT', 'IMPORT', 'MANAGE')),
    max_classification TEXT CHECK (max_classification IN ('GREEN', 'YELLOW', 'RED'))
);
CREATE UNIQUE INDEX permissions_unique ON permissions (resource_type, action, COALESCE(max_classification, ''));

CREATE TABLE role_permissions (
    role_id       TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission_id TEXT NOT NULL REFERENCES permissions (id) ON DELETE RESTRICT,
    PRIMARY KEY (role_id, permission_id)
);

CREATE TABLE user_permissions (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    permission_id TEXT NOT NULL REFERENCES permissions (id) ON DELETE RESTRICT,
    effect        TEXT NOT NULL CHECK (effect IN ('allow', 'deny')),
    granted_by    TEXT,
    granted_at    TIMESTAMP NOT NULL,
    expires_at    TIMESTAMP,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX user_permissions_user ON user_permissions (tenant_id, user_id);

CREATE TABLE field_policies (
    role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    field   TEXT NOT NULL,
    mask    TEXT NOT NULL CHECK (mask IN ('full', 'partial', 'hashed', 'redacted', 'hidden')),
    PRIMARY KEY (role_id, field)
);

-- Service accounts carry an explicit permission set, a clearance, an optional IP allowlist and
-- an optional expiry.
ALTER TABLE service_accounts ADD COLUMN clearance TEXT NOT NULL DEFAULT 'GREEN' CHECK (clearance IN ('GREEN', 'YELLOW', 'RED'));
ALTER TABLE service_accounts ADD COLUMN ip_allowlist TEXT NOT NULL DEFAULT '';
ALTER TABLE service_accounts ADD COLUMN expires_at TIMESTAMP;
CREATE TABLE service_account_permissions (
    service_account_id TEXT NOT NULL REFERENCES service_accounts (id) ON DELETE CASCADE,
    permission_id      TEXT NOT NULL REFERENCES permissions (id) ON DELETE RESTRICT,
    PRIMARY KEY (service_account_id, permission_id)
);

-- +goose Down
DROP TABLE service_account_permissions;
ALTER TABLE service_accounts DROP COLUMN expires_at;
ALTER TABLE service_accounts DROP COLUMN ip_allowlist;
ALTER TABLE service_accounts DROP COLUMN clearance;
DROP TABLE field_policies;
DROP TABLE user_permissions;
DROP TABLE role_permissions;
DROP TABLE permissions;
ALTER TABLE roles DROP COLUMN description;
ALTER TABLE roles DROP COLUMN clearance;
