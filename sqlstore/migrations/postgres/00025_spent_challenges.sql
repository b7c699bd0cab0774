-- +goose Up
-- One-time values that must not be accepted twice, kept as SHA-256 until they expire: the
-- challenges of passkey sign-ins (which begin without a user, so their ceremony travels sealed
-- with the browser rather than as a webauthn_ceremonies row) and the jti of relying parties'
-- client assertions (private_key_jwt).
CREATE TABLE spent_challenges (
    digest     BYTEA PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX spent_challenges_expiry ON spent_challenges (expires_at);

-- +goose Down
DROP TABLE spent_challenges;
