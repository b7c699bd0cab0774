-- +goose Up
-- Authentication-state epochs (issue 20; docs/caching.md). Every node caches what a request's
-- authentication and authorization read (the principal, its session, its policy, its service
-- account). A row per tenant counts the changes to that state: triggers on every table those
-- reads use bump the row of the changed row's tenant ('*' for platform-wide rows such as the
-- shared permissions), so no code path can change authentication state without every node's
-- watcher seeing it at its next poll. version orders the bumps for the poll (WHERE version > last).
-- last_seen_at touches, sign-in timestamps and factor-use counters are not authentication
-- state: the WHEN clauses leave them out, or every active user would empty their tenant's
-- caches once a minute.

CREATE TABLE auth_epochs (
    tenant_id TEXT PRIMARY KEY,
    epoch     INTEGER NOT NULL,
    version   INTEGER NOT NULL
);
CREATE INDEX auth_epochs_version ON auth_epochs (version);

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_tenants_insert AFTER INSERT ON tenants
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_tenants_update AFTER UPDATE ON tenants WHEN OLD.status IS NOT NEW.status OR OLD.data_region IS NOT NEW.data_region OR OLD.mfa_required_all IS NOT NEW.mfa_required_all OR OLD.require_private_key_jwt IS NOT NEW.require_private_key_jwt OR OLD.session_idle_seconds IS NOT NEW.session_idle_seconds OR OLD.session_absolute_seconds IS NOT NEW.session_absolute_seconds
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_tenants_delete AFTER DELETE ON tenants
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT OLD.id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE OLD.id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_users_insert AFTER INSERT ON users
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_users_update AFTER UPDATE ON users WHEN OLD.status IS NOT NEW.status OR OLD.token_version IS NOT NEW.token_version OR OLD.must_change_password IS NOT NEW.must_change_password OR OLD.partner_id IS NOT NEW.partner_id OR OLD.tenant_id IS NOT NEW.tenant_id
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_users_delete AFTER DELETE ON users
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT OLD.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE OLD.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_person_keys_insert AFTER INSERT ON person_keys
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_person_keys_update AFTER UPDATE ON person_keys WHEN OLD.tenant_id IS NOT NEW.tenant_id OR OLD.person_id IS NOT NEW.person_id
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_person_keys_delete AFTER DELETE ON person_keys
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT OLD.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE OLD.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_user_roles_insert AFTER INSERT ON user_roles
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_user_roles_update AFTER UPDATE ON user_roles
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_user_roles_delete AFTER DELETE ON user_roles
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT OLD.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE OLD.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_user_permissions_insert AFTER INSERT ON user_permissions
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_user_permissions_update AFTER UPDATE ON user_permissions
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_user_permissions_delete AFTER DELETE ON user_permissions
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT OLD.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE OLD.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_roles_insert AFTER INSERT ON roles
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT COALESCE(NEW.tenant_id, '*'), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE COALESCE(NEW.tenant_id, '*') IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_roles_update AFTER UPDATE ON roles
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT COALESCE(NEW.tenant_id, '*'), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE COALESCE(NEW.tenant_id, '*') IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_roles_delete AFTER DELETE ON roles
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT COALESCE(OLD.tenant_id, '*'), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE COALESCE(OLD.tenant_id, '*') IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_role_permissions_insert AFTER INSERT ON role_permissions
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT (SELECT COALESCE(tenant_id, '*') FROM roles WHERE id = NEW.role_id), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE (SELECT COALESCE(tenant_id, '*') FROM roles WHERE id = NEW.role_id) IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_role_permissions_update AFTER UPDATE ON role_permissions
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT (SELECT COALESCE(tenant_id, '*') FROM roles WHERE id = NEW.role_id), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE (SELECT COALESCE(tenant_id, '*') FROM roles WHERE id = NEW.role_id) IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_role_permissions_delete AFTER DELETE ON role_permissions
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT (SELECT COALESCE(tenant_id, '*') FROM roles WHERE id = OLD.role_id), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE (SELECT COALESCE(tenant_id, '*') FROM roles WHERE id = OLD.role_id) IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_field_policies_insert AFTER INSERT ON field_policies
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT (SELECT COALESCE(tenant_id, '*') FROM roles WHERE id = NEW.role_id), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE (SELECT COALESCE(tenant_id, '*') FROM roles WHERE id = NEW.role_id) IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_field_policies_update AFTER UPDATE ON field_policies
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT (SELECT COALESCE(tenant_id, '*') FROM roles WHERE id = NEW.role_id), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE (SELECT COALESCE(tenant_id, '*') FROM roles WHERE id = NEW.role_id) IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_field_policies_delete AFTER DELETE ON field_policies
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT (SELECT COALESCE(tenant_id, '*') FROM roles WHERE id = OLD.role_id), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE (SELECT COALESCE(tenant_id, '*') FROM roles WHERE id = OLD.role_id) IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_permissions_update AFTER UPDATE ON permissions
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT '*', 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE '*' IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_permissions_delete AFTER DELETE ON permissions
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT '*', 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE '*' IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_mfa_factors_insert AFTER INSERT ON mfa_factors
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_mfa_factors_update AFTER UPDATE ON mfa_factors WHEN OLD.active IS NOT NEW.active OR OLD.type IS NOT NEW.type OR OLD.tenant_id IS NOT NEW.tenant_id OR OLD.user_id IS NOT NEW.user_id
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_mfa_factors_delete AFTER DELETE ON mfa_factors
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT OLD.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE OLD.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_sessions_update AFTER UPDATE ON sessions WHEN OLD.revoked_at IS NOT NEW.revoked_at OR OLD.revoked_reason IS NOT NEW.revoked_reason OR OLD.step_up_at IS NOT NEW.step_up_at OR OLD.amr IS NOT NEW.amr OR OLD.reauth_at IS NOT NEW.reauth_at OR OLD.token_hash IS NOT NEW.token_hash OR OLD.token_version IS NOT NEW.token_version OR OLD.dpop_jkt IS NOT NEW.dpop_jkt OR OLD.idle_timeout_s IS NOT NEW.idle_timeout_s OR OLD.absolute_expires_at IS NOT NEW.absolute_expires_at OR OLD.client_id IS NOT NEW.client_id OR OLD.parent_id IS NOT NEW.parent_id OR OLD.scope IS NOT NEW.scope OR OLD.auth_time IS NOT NEW.auth_time OR OLD.tenant_id IS NOT NEW.tenant_id OR OLD.user_id IS NOT NEW.user_id
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_sessions_delete AFTER DELETE ON sessions
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT OLD.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE OLD.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_service_accounts_insert AFTER INSERT ON service_accounts
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_service_accounts_update AFTER UPDATE ON service_accounts WHEN OLD.status IS NOT NEW.status OR OLD.clearance IS NOT NEW.clearance OR OLD.ip_allowlist IS NOT NEW.ip_allowlist OR OLD.expires_at IS NOT NEW.expires_at OR OLD.partner_id IS NOT NEW.partner_id OR OLD.client_id IS NOT NEW.client_id OR OLD.tenant_id IS NOT NEW.tenant_id
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT NEW.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE NEW.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_service_accounts_delete AFTER DELETE ON service_accounts
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT OLD.tenant_id, 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE OLD.tenant_id IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_service_account_secrets_insert AFTER INSERT ON service_account_secrets
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT (SELECT tenant_id FROM service_accounts WHERE id = NEW.service_account_id), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE (SELECT tenant_id FROM service_accounts WHERE id = NEW.service_account_id) IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_service_account_secrets_update AFTER UPDATE ON service_account_secrets
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT (SELECT tenant_id FROM service_accounts WHERE id = NEW.service_account_id), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE (SELECT tenant_id FROM service_accounts WHERE id = NEW.service_account_id) IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_service_account_secrets_delete AFTER DELETE ON service_account_secrets
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT (SELECT tenant_id FROM service_accounts WHERE id = OLD.service_account_id), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE (SELECT tenant_id FROM service_accounts WHERE id = OLD.service_account_id) IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_service_account_permissions_insert AFTER INSERT ON service_account_permissions
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT (SELECT tenant_id FROM service_accounts WHERE id = NEW.service_account_id), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE (SELECT tenant_id FROM service_accounts WHERE id = NEW.service_account_id) IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_service_account_permissions_update AFTER UPDATE ON service_account_permissions
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT (SELECT tenant_id FROM service_accounts WHERE id = NEW.service_account_id), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE (SELECT tenant_id FROM service_accounts WHERE id = NEW.service_account_id) IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER auth_epoch_service_account_permissions_delete AFTER DELETE ON service_account_permissions
BEGIN
    INSERT INTO auth_epochs (tenant_id, epoch, version)
        SELECT (SELECT tenant_id FROM service_accounts WHERE id = OLD.service_account_id), 1, (SELECT COALESCE(MAX(version), 0) + 1 FROM auth_epochs) WHERE (SELECT tenant_id FROM service_accounts WHERE id = OLD.service_account_id) IS NOT NULL
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = epoch + 1, version = excluded.version;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER auth_epoch_tenants_insert;
DROP TRIGGER auth_epoch_tenants_update;
DROP TRIGGER auth_epoch_tenants_delete;
DROP TRIGGER auth_epoch_users_insert;
DROP TRIGGER auth_epoch_users_update;
DROP TRIGGER auth_epoch_users_delete;
DROP TRIGGER auth_epoch_person_keys_insert;
DROP TRIGGER auth_epoch_person_keys_update;
DROP TRIGGER auth_epoch_person_keys_delete;
DROP TRIGGER auth_epoch_user_roles_insert;
DROP TRIGGER auth_epoch_user_roles_update;
DROP TRIGGER auth_epoch_user_roles_delete;
DROP TRIGGER auth_epoch_user_permissions_insert;
DROP TRIGGER auth_epoch_user_permissions_update;
DROP TRIGGER auth_epoch_user_permissions_delete;
DROP TRIGGER auth_epoch_roles_insert;
DROP TRIGGER auth_epoch_roles_update;
DROP TRIGGER auth_epoch_roles_delete;
DROP TRIGGER auth_epoch_role_permissions_insert;
DROP TRIGGER auth_epoch_role_permissions_update;
DROP TRIGGER auth_epoch_role_permissions_delete;
DROP TRIGGER auth_epoch_field_policies_insert;
DROP TRIGGER auth_epoch_field_policies_update;
DROP TRIGGER auth_epoch_field_policies_delete;
DROP TRIGGER auth_epoch_permissions_update;
DROP TRIGGER auth_epoch_permissions_delete;
DROP TRIGGER auth_epoch_mfa_factors_insert;
DROP TRIGGER auth_epoch_mfa_factors_update;
DROP TRIGGER auth_epoch_mfa_factors_delete;
DROP TRIGGER auth_epoch_sessions_update;
DROP TRIGGER auth_epoch_sessions_delete;
DROP TRIGGER auth_epoch_service_accounts_insert;
DROP TRIGGER auth_epoch_service_accounts_update;
DROP TRIGGER auth_epoch_service_accounts_delete;
DROP TRIGGER auth_epoch_service_account_secrets_insert;
DROP TRIGGER auth_epoch_service_account_secrets_update;
DROP TRIGGER auth_epoch_service_account_secrets_delete;
DROP TRIGGER auth_epoch_service_account_permissions_insert;
DROP TRIGGER auth_epoch_service_account_permissions_update;
DROP TRIGGER auth_epoch_service_account_permissions_delete;
DROP TABLE auth_epochs;
