-- +goose Up
-- Issue 12. A tenant may let its service accounts perform account-takeover operations
-- (password and MFA resets, granting takeover permissions); off by default.
ALTER TABLE tenants ADD COLUMN service_accounts_may_take_over BOOLEAN NOT NULL DEFAULT FALSE;
-- After an administrator's MFA reset, enrolling a factor needs the one-time enrolment code sent
-- out of band (user_tokens purpose 'mfa_enroll'), not the password alone; cleared by an
-- enrolment that spends the code.
ALTER TABLE users ADD COLUMN mfa_enrollment_code_required BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE users DROP COLUMN mfa_enrollment_code_required;
ALTER TABLE tenants DROP COLUMN service_accounts_may_take_over;
