-- +goose Up
-- When the session's user last re-entered their password (ASVS 7.5.2: ending other sessions
-- needs a fresh authentication: sign-in, step-up or this).
ALTER TABLE sessions ADD COLUMN reauth_at TIMESTAMPTZ;
-- The maintenance loop looks for open access reviews past their deadline every minute.
CREATE INDEX access_reviews_open_deadline ON access_reviews (deadline) WHERE status = 'open';
-- The hourly retention sweep selects by age.
CREATE INDEX login_history_created ON login_history (created_at);
CREATE INDEX security_events_created ON security_events (created_at);
CREATE INDEX user_tokens_expires ON user_tokens (expires_at);

-- +goose Down
DROP INDEX user_tokens_expires;
DROP INDEX security_events_created;
DROP INDEX login_history_created;
DROP INDEX access_reviews_open_deadline;
ALTER TABLE sessions DROP COLUMN reauth_at;
