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

-- version comes from one sequence. Sequence values are taken in one order and committed in
-- another, so the watcher does not poll by version alone: xid is the bumping transaction, and
-- a poll asks for every row whose xid is not older than the oldest transaction still running at
-- the previous poll (pg_snapshot_xmin), which a late commit cannot escape.
CREATE SEQUENCE auth_epoch_version;
CREATE TABLE auth_epochs (
    tenant_id TEXT PRIMARY KEY,
    epoch     BIGINT NOT NULL,
    version   BIGINT NOT NULL,
    xid       xid8 NOT NULL
);
CREATE INDEX auth_epochs_version ON auth_epochs (version);
CREATE INDEX auth_epochs_xid ON auth_epochs (xid);

-- The row holds no tenant data, only a counter, but it is still fenced like every tenant-scoped
-- table: a tenant-scoped transaction sees and bumps its own row (and the platform's '*' row it
-- may need to bump); the platform scope (the watcher) sees all.
ALTER TABLE auth_epochs ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth_epochs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON auth_epochs
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id = current_setting('tutela.tenant', true) OR tenant_id = '*');

-- SECURITY DEFINER: the runtime role needs no privilege on auth_epochs or its sequence to change
-- authentication state (only SELECT to poll); search_path is pinned to the migration's schema.
-- +goose StatementBegin
CREATE FUNCTION auth_epoch_bump(t TEXT) RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF t IS NULL THEN
        RETURN; -- a child row whose parent this statement deleted: the parent's trigger bumped
    END IF;
    INSERT INTO auth_epochs AS e (tenant_id, epoch, version, xid)
        VALUES (t, 1, nextval('auth_epoch_version'), pg_current_xact_id())
        ON CONFLICT (tenant_id) DO UPDATE SET epoch = e.epoch + 1, version = excluded.version, xid = excluded.xid;
END $$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION auth_epoch_by_tenant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM auth_epoch_bump(COALESCE(OLD.tenant_id::text, '*'));
    ELSE
        PERFORM auth_epoch_bump(COALESCE(NEW.tenant_id::text, '*'));
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION auth_epoch_by_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM auth_epoch_bump(OLD.id::text);
    ELSE
        PERFORM auth_epoch_bump(NEW.id::text);
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION auth_epoch_by_role() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rid UUID;
BEGIN
    IF TG_OP = 'DELETE' THEN rid := OLD.role_id; ELSE rid := NEW.role_id; END IF;
    PERFORM auth_epoch_bump((SELECT COALESCE(tenant_id::text, '*') FROM roles WHERE id = rid));
    RETURN NULL;
END $$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION auth_epoch_by_service_account() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sid UUID;
BEGIN
    IF TG_OP = 'DELETE' THEN sid := OLD.service_account_id; ELSE sid := NEW.service_account_id; END IF;
    PERFORM auth_epoch_bump((SELECT tenant_id::text FROM service_accounts WHERE id = sid));
    RETURN NULL;
END $$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION auth_epoch_platform() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM auth_epoch_bump('*');
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER auth_epoch_tenants_insert AFTER INSERT ON tenants
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_id();

CREATE TRIGGER auth_epoch_tenants_update AFTER UPDATE ON tenants
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.data_region IS DISTINCT FROM NEW.data_region OR OLD.mfa_required_all IS DISTINCT FROM NEW.mfa_required_all OR OLD.require_private_key_jwt IS DISTINCT FROM NEW.require_private_key_jwt OR OLD.session_idle_seconds IS DISTINCT FROM NEW.session_idle_seconds OR OLD.session_absolute_seconds IS DISTINCT FROM NEW.session_absolute_seconds)
    EXECUTE FUNCTION auth_epoch_by_id();

CREATE TRIGGER auth_epoch_tenants_delete AFTER DELETE ON tenants
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_id();

CREATE TRIGGER auth_epoch_users_insert AFTER INSERT ON users
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_users_update AFTER UPDATE ON users
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.token_version IS DISTINCT FROM NEW.token_version OR OLD.must_change_password IS DISTINCT FROM NEW.must_change_password OR OLD.partner_id IS DISTINCT FROM NEW.partner_id OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_users_delete AFTER DELETE ON users
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_person_keys_insert AFTER INSERT ON person_keys
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_person_keys_update AFTER UPDATE ON person_keys
    FOR EACH ROW WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id OR OLD.person_id IS DISTINCT FROM NEW.person_id)
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_person_keys_delete AFTER DELETE ON person_keys
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_user_roles_insert AFTER INSERT ON user_roles
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_user_roles_update AFTER UPDATE ON user_roles
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_user_roles_delete AFTER DELETE ON user_roles
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_user_permissions_insert AFTER INSERT ON user_permissions
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_user_permissions_update AFTER UPDATE ON user_permissions
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_user_permissions_delete AFTER DELETE ON user_permissions
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_roles_insert AFTER INSERT ON roles
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_roles_update AFTER UPDATE ON roles
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_roles_delete AFTER DELETE ON roles
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_role_permissions_insert AFTER INSERT ON role_permissions
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_role();

CREATE TRIGGER auth_epoch_role_permissions_update AFTER UPDATE ON role_permissions
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_role();

CREATE TRIGGER auth_epoch_role_permissions_delete AFTER DELETE ON role_permissions
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_role();

CREATE TRIGGER auth_epoch_field_policies_insert AFTER INSERT ON field_policies
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_role();

CREATE TRIGGER auth_epoch_field_policies_update AFTER UPDATE ON field_policies
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_role();

CREATE TRIGGER auth_epoch_field_policies_delete AFTER DELETE ON field_policies
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_role();

CREATE TRIGGER auth_epoch_permissions_update AFTER UPDATE ON permissions
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_platform();

CREATE TRIGGER auth_epoch_permissions_delete AFTER DELETE ON permissions
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_platform();

CREATE TRIGGER auth_epoch_mfa_factors_insert AFTER INSERT ON mfa_factors
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_mfa_factors_update AFTER UPDATE ON mfa_factors
    FOR EACH ROW WHEN (OLD.active IS DISTINCT FROM NEW.active OR OLD.type IS DISTINCT FROM NEW.type OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_mfa_factors_delete AFTER DELETE ON mfa_factors
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_sessions_update AFTER UPDATE ON sessions
    FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.revoked_reason IS DISTINCT FROM NEW.revoked_reason OR OLD.step_up_at IS DISTINCT FROM NEW.step_up_at OR OLD.amr IS DISTINCT FROM NEW.amr OR OLD.reauth_at IS DISTINCT FROM NEW.reauth_at OR OLD.token_hash IS DISTINCT FROM NEW.token_hash OR OLD.token_version IS DISTINCT FROM NEW.token_version OR OLD.dpop_jkt IS DISTINCT FROM NEW.dpop_jkt OR OLD.idle_timeout_s IS DISTINCT FROM NEW.idle_timeout_s OR OLD.absolute_expires_at IS DISTINCT FROM NEW.absolute_expires_at OR OLD.client_id IS DISTINCT FROM NEW.client_id OR OLD.parent_id IS DISTINCT FROM NEW.parent_id OR OLD.scope IS DISTINCT FROM NEW.scope OR OLD.auth_time IS DISTINCT FROM NEW.auth_time OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_sessions_delete AFTER DELETE ON sessions
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_service_accounts_insert AFTER INSERT ON service_accounts
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_service_accounts_update AFTER UPDATE ON service_accounts
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.clearance IS DISTINCT FROM NEW.clearance OR OLD.ip_allowlist IS DISTINCT FROM NEW.ip_allowlist OR OLD.expires_at IS DISTINCT FROM NEW.expires_at OR OLD.partner_id IS DISTINCT FROM NEW.partner_id OR OLD.client_id IS DISTINCT FROM NEW.client_id OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_service_accounts_delete AFTER DELETE ON service_accounts
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_tenant();

CREATE TRIGGER auth_epoch_service_account_secrets_insert AFTER INSERT ON service_account_secrets
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_service_account();

CREATE TRIGGER auth_epoch_service_account_secrets_update AFTER UPDATE ON service_account_secrets
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_service_account();

CREATE TRIGGER auth_epoch_service_account_secrets_delete AFTER DELETE ON service_account_secrets
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_service_account();

CREATE TRIGGER auth_epoch_service_account_permissions_insert AFTER INSERT ON service_account_permissions
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_service_account();

CREATE TRIGGER auth_epoch_service_account_permissions_update AFTER UPDATE ON service_account_permissions
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_service_account();

CREATE TRIGGER auth_epoch_service_account_permissions_delete AFTER DELETE ON service_account_permissions
    FOR EACH ROW
    EXECUTE FUNCTION auth_epoch_by_service_account();

-- +goose Down
DROP TRIGGER auth_epoch_tenants_insert ON tenants;
DROP TRIGGER auth_epoch_tenants_update ON tenants;
DROP TRIGGER auth_epoch_tenants_delete ON tenants;
DROP TRIGGER auth_epoch_users_insert ON users;
DROP TRIGGER auth_epoch_users_update ON users;
DROP TRIGGER auth_epoch_users_delete ON users;
DROP TRIGGER auth_epoch_person_keys_insert ON person_keys;
DROP TRIGGER auth_epoch_person_keys_update ON person_keys;
DROP TRIGGER auth_epoch_person_keys_delete ON person_keys;
DROP TRIGGER auth_epoch_user_roles_insert ON user_roles;
DROP TRIGGER auth_epoch_user_roles_update ON user_roles;
DROP TRIGGER auth_epoch_user_roles_delete ON user_roles;
DROP TRIGGER auth_epoch_user_permissions_insert ON user_permissions;
DROP TRIGGER auth_epoch_user_permissions_update ON user_permissions;
DROP TRIGGER auth_epoch_user_permissions_delete ON user_permissions;
DROP TRIGGER auth_epoch_roles_insert ON roles;
DROP TRIGGER auth_epoch_roles_update ON roles;
DROP TRIGGER auth_epoch_roles_delete ON roles;
DROP TRIGGER auth_epoch_role_permissions_insert ON role_permissions;
DROP TRIGGER auth_epoch_role_permissions_update ON role_permissions;
DROP TRIGGER auth_epoch_role_permissions_delete ON role_permissions;
DROP TRIGGER auth_epoch_field_policies_insert ON field_policies;
DROP TRIGGER auth_epoch_field_policies_update ON field_policies;
DROP TRIGGER auth_epoch_field_policies_delete ON field_policies;
DROP TRIGGER auth_epoch_permissions_update ON permissions;
DROP TRIGGER auth_epoch_permissions_delete ON permissions;
DROP TRIGGER auth_epoch_mfa_factors_insert ON mfa_factors;
DROP TRIGGER auth_epoch_mfa_factors_update ON mfa_factors;
DROP TRIGGER auth_epoch_mfa_factors_delete ON mfa_factors;
DROP TRIGGER auth_epoch_sessions_update ON sessions;
DROP TRIGGER auth_epoch_sessions_delete ON sessions;
DROP TRIGGER auth_epoch_service_accounts_insert ON service_accounts;
DROP TRIGGER auth_epoch_service_accounts_update ON service_accounts;
DROP TRIGGER auth_epoch_service_accounts_delete ON service_accounts;
DROP TRIGGER auth_epoch_service_account_secrets_insert ON service_account_secrets;
DROP TRIGGER auth_epoch_service_account_secrets_update ON service_account_secrets;
DROP TRIGGER auth_epoch_service_account_secrets_delete ON service_account_secrets;
DROP TRIGGER auth_epoch_service_account_permissions_insert ON service_account_permissions;
DROP TRIGGER auth_epoch_service_account_permissions_update ON service_account_permissions;
DROP TRIGGER auth_epoch_service_account_permissions_delete ON service_account_permissions;
DROP FUNCTION auth_epoch_platform();
DROP FUNCTION auth_epoch_by_service_account();
DROP FUNCTION auth_epoch_by_role();
DROP FUNCTION auth_epoch_by_id();
DROP FUNCTION auth_epoch_by_tenant();
DROP FUNCTION auth_epoch_bump(TEXT);
DROP TABLE auth_epochs;
DROP SEQUENCE auth_epoch_version;
