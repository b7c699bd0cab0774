-- +goose Up
-- Passkey sign-ins begin without a user, so their ceremony travels sealed with the browser
-- rather than as a webauthn_ceremonies row; the challenges they used are kept here (SHA-256)
-- until the ceremony could no longer be accepted, so an assertion cannot be replayed.
CREATE TABLE spent_challenges (
    digest     BYTEA PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX spent_challenges_expiry ON spent_challenges (expires_at);

-- +goose Down
DROP TABLE spent_challenges;
