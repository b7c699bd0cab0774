-- +goose Up
-- When the session last proved a second factor (sign-in with MFA or step-up).
ALTER TABLE sessions ADD COLUMN step_up_at TIMESTAMPTZ;
-- A tenant may require MFA of every user, beyond the roles that always need it.
ALTER TABLE tenants ADD COLUMN mfa_required_all BOOLEAN NOT NULL DEFAULT FALSE;
-- A tenant may require its service accounts to authenticate with private_key_jwt only.
ALTER TABLE tenants ADD COLUMN require_private_key_jwt BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE tenants DROP COLUMN require_private_key_jwt;
ALTER TABLE tenants DROP COLUMN mfa_required_all;
ALTER TABLE sessions DROP COLUMN step_up_at;
