-- +goose Up
-- See the PostgreSQL migration (row-level security is PostgreSQL only).
CREATE TABLE monitor_cursor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    next_idx   INTEGER NOT NULL CHECK (next_idx >= 0),
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE monitor_windows (
    rule        TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    events      TEXT NOT NULL,
    quiet_until TIMESTAMP,
    updated_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (rule, tenant_id)
);

-- +goose Down
DROP TABLE monitor_windows;
DROP TABLE monitor_cursor;
