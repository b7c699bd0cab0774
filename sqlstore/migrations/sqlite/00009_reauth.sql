-- +goose Up
-- When the session's user last re-entered their password (ASVS 7.5.2: ending other sessions
-- needs a fresh authentication: sign-in, step-up or this).
ALTER TABLE sessions ADD COLUMN reauth_at TIMESTAMP;

-- +goose Down
ALTER TABLE sessions DROP COLUMN reauth_at;
