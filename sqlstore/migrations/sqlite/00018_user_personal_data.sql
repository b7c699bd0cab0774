-- +goose Up
-- Users' own personal data encrypted at rest (issue 13). Each user has a person key
-- (person_keys, kind 'user'); their e-mail and display name, and the IP and user agent of their
-- sessions, sign-ins and security events, are sealed under it (privacy.PersonKey, bound to
-- tenant, user and "table.column"), so erasing the user shreds every copy. Rows with no user
-- (a failed sign-in for an unknown address) are sealed under the tenant's personal_data keyset.
-- Sign-in finds a user by email_digest: the blind index (HMAC under the tenant's blind_index
-- keyset, 4-byte key ID then the 32-byte digest) of the normalized address, unique per tenant.
-- The plaintext columns stay for now (dropping a column needs a table rebuild in SQLite): the
-- start-up data migration (sqlstore.SealPersonalData) moves existing rows into the sealed
-- columns and empties the plaintext ones ('' , and users.email_norm becomes the user's ID so
-- its old UNIQUE constraint holds nothing personal).
ALTER TABLE users ADD COLUMN email_digest BLOB;
ALTER TABLE users ADD COLUMN email_sealed BLOB;
ALTER TABLE users ADD COLUMN display_name_sealed BLOB;
CREATE UNIQUE INDEX users_email_digest ON users (tenant_id, email_digest);

ALTER TABLE sessions ADD COLUMN ip_sealed BLOB;
ALTER TABLE sessions ADD COLUMN user_agent_sealed BLOB;
ALTER TABLE login_history ADD COLUMN ip_sealed BLOB;
ALTER TABLE login_history ADD COLUMN user_agent_sealed BLOB;
ALTER TABLE security_events ADD COLUMN ip_sealed BLOB;
ALTER TABLE access_review_items ADD COLUMN user_email_sealed BLOB;
ALTER TABLE access_review_items ADD COLUMN user_display_name_sealed BLOB;

-- +goose Down
ALTER TABLE access_review_items DROP COLUMN user_display_name_sealed;
ALTER TABLE access_review_items DROP COLUMN user_email_sealed;
ALTER TABLE security_events DROP COLUMN ip_sealed;
ALTER TABLE login_history DROP COLUMN user_agent_sealed;
ALTER TABLE login_history DROP COLUMN ip_sealed;
ALTER TABLE sessions DROP COLUMN user_agent_sealed;
ALTER TABLE sessions DROP COLUMN ip_sealed;
DROP INDEX users_email_digest;
ALTER TABLE users DROP COLUMN display_name_sealed;
ALTER TABLE users DROP COLUMN email_sealed;
ALTER TABLE users DROP COLUMN email_digest;
