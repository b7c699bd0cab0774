-- +goose Up
-- See the PostgreSQL migration.
ALTER TABLE mfa_factors ADD COLUMN confirm_step INTEGER;

-- +goose Down
ALTER TABLE mfa_factors DROP COLUMN confirm_step;
