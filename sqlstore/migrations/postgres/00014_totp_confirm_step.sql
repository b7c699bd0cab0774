-- +goose Up
-- The time step that confirmed a TOTP factor. A user who types the confirming code again at the
-- first sign-in (the usual newcomer's mistake) is told to wait for the next code, without the
-- "someone replayed your code" alarm that any other spent step raises.
ALTER TABLE mfa_factors ADD COLUMN confirm_step BIGINT;

-- +goose Down
ALTER TABLE mfa_factors DROP COLUMN confirm_step;
