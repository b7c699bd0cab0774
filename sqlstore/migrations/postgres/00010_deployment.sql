-- +goose Up
-- Settings every node of one deployment must share (issue 12): the access-token issuer and the
-- audit log's verifier key. The first node to start records them (INSERT … ON CONFLICT DO
-- NOTHING, then compare, so two nodes starting at once on an empty database agree on one value);
-- a node configured otherwise refuses to start, naming the setting.
CREATE TABLE deployment_settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- One row: when a sequencer last ran a round that held the sequencing lock, and its interval.
-- `tutela audit verify` uses it to tell events that a live node will sequence from events left
-- outside the Merkle log while no node runs.
CREATE TABLE audit_sequencer (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    beat_at     TIMESTAMPTZ NOT NULL,
    interval_ms BIGINT NOT NULL CHECK (interval_ms > 0)
);

-- +goose Down
DROP TABLE audit_sequencer;
DROP TABLE deployment_settings;
