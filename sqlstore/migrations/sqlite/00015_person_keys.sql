-- +goose Up
-- See the PostgreSQL migration.
CREATE TABLE person_keys (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    person_id  TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('subject', 'user')),
    wrapped    BLOB NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, person_id)
);

CREATE TABLE erasures (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    person_id   TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('subject', 'user')),
    erased_at   TIMESTAMP NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT NOT NULL DEFAULT '',
    trigger     TEXT NOT NULL CHECK (trigger IN ('request', 'retention')),
    reason      TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    UNIQUE (tenant_id, person_id)
);
CREATE INDEX erasures_tenant ON erasures (tenant_id, erased_at);

-- +goose StatementBegin
CREATE TRIGGER erasures_no_update BEFORE UPDATE ON erasures
BEGIN SELECT RAISE(ABORT, 'erasure ledger is append-only: UPDATE on erasures refused'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER erasures_no_delete BEFORE DELETE ON erasures
BEGIN SELECT RAISE(ABORT, 'erasure ledger is append-only: DELETE on erasures refused'); END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER erasures_no_delete;
DROP TRIGGER erasures_no_update;
DROP TABLE erasures;
DROP TABLE person_keys;
