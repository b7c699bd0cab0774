-- +goose Up
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    data_region TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    email         TEXT NOT NULL,
    email_norm    TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    password_hash TEXT,
    token_version INTEGER NOT NULL DEFAULT 1,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, email_norm),
    UNIQUE (tenant_id, id)
);

CREATE TABLE roles (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    name       TEXT NOT NULL,
    builtin    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX roles_builtin_key ON roles (key) WHERE tenant_id IS NULL;
CREATE UNIQUE INDEX roles_tenant_key ON roles (tenant_id, key) WHERE tenant_id IS NOT NULL;

CREATE TABLE user_roles (
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    role_id    TEXT NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    granted_by TEXT,
    granted_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    PRIMARY KEY (user_id, role_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE user_tokens (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

INSERT INTO roles (id, tenant_id, key, name, builtin, created_at) VALUES
    ('00000000-0000-7000-8000-000000000001', NULL, 'super_admin',   'Super administrator',   TRUE, strftime('%Y-%m-%d %H:%M:%S+00:00', 'now')),
    ('00000000-0000-7000-8000-000000000002', NULL, 'program_admin', 'Programme administrator', TRUE, strftime('%Y-%m-%d %H:%M:%S+00:00', 'now')),
    ('00000000-0000-7000-8000-000000000003', NULL, 'operator',      'Operator',              TRUE, strftime('%Y-%m-%d %H:%M:%S+00:00', 'now')),
    ('00000000-0000-7000-8000-000000000004', NULL, 'auditor',       'Auditor',               TRUE, strftime('%Y-%m-%d %H:%M:%S+00:00', 'now')),
    ('00000000-0000-7000-8000-000000000005', NULL, 'partner',       'Partner organisation',  TRUE, strftime('%Y-%m-%d %H:%M:%S+00:00', 'now'));

-- +goose Down
DROP TABLE user_tokens;
DROP TABLE user_roles;
DROP TABLE roles;
DROP TABLE users;
DROP TABLE tenants;
