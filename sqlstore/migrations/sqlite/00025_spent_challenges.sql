-- +goose Up
-- See the PostgreSQL migration.
CREATE TABLE spent_challenges (
    digest     BLOB PRIMARY KEY,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX spent_challenges_expiry ON spent_challenges (expires_at);

-- +goose Down
DROP TABLE spent_challenges;
