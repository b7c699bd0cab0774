-- +goose Up
CREATE TABLE tenants (
    id          UUID PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    data_region TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    email         TEXT NOT NULL,
    email_norm    TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    password_hash TEXT,
    token_version BIGINT NOT NULL DEFAULT 1,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, email_norm),
    UNIQUE (tenant_id, id)
);

-- Built-in roles have tenant_id NULL; tenants add custom roles later (authorization issue).
CREATE TABLE roles (
    id         UUID PRIMARY KEY,
    tenant_id  UUID REFERENCES tenants (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    name       TEXT NOT NULL,
    builtin    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX roles_builtin_key ON roles (key) WHERE tenant_id IS NULL;
CREATE UNIQUE INDEX roles_tenant_key ON roles (tenant_id, key) WHERE tenant_id IS NOT NULL;

CREATE TABLE user_roles (
    tenant_id  UUID NOT NULL,
    user_id    UUID NOT NULL,
    role_id    UUID NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    granted_by UUID,
    granted_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    PRIMARY KEY (user_id, role_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

-- One-time tokens (bootstrap setup, later password reset). Only a SHA-256 of the token is kept.
CREATE TABLE user_tokens (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL,
    user_id    UUID NOT NULL,
    purpose    TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

INSERT INTO roles (id, tenant_id, key, name, builtin, created_at) VALUES
    ('00000000-0000-7000-8000-000000000001', NULL, 'super_admin',   'Super administrator',   TRUE, now()),
    ('00000000-0000-7000-8000-000000000002', NULL, 'program_admin', 'Programme administrator', TRUE, now()),
    ('00000000-0000-7000-8000-000000000003', NULL, 'operator',      'Operator',              TRUE, now()),
    ('00000000-0000-7000-8000-000000000004', NULL, 'auditor',       'Auditor',               TRUE, now()),
    ('00000000-0000-7000-8000-000000000005', NULL, 'partner',       'Partner organisation',  TRUE, now());

-- +goose Down
DROP TABLE user_tokens;
DROP TABLE user_roles;
DROP TABLE roles;
DROP TABLE users;
DROP TABLE tenants;
