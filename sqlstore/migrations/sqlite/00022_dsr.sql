-- +goose Up
-- See the PostgreSQL migration.
CREATE TABLE dsr_requests (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    subject_id          TEXT NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('access', 'portability', 'rectification', 'erasure',
                            'restriction', 'objection')),
    jurisdiction        TEXT NOT NULL,
    purpose             TEXT NOT NULL DEFAULT '', -- the purpose objected to (objection only)
    status              TEXT NOT NULL CHECK (status IN ('received', 'verified', 'in_progress', 'submitted',
                            'blocked', 'completed', 'rejected')),
    verification        TEXT NOT NULL CHECK (verification IN ('pending', 'verified', 'failed')),
    verification_method TEXT NOT NULL DEFAULT '',
    assignee            TEXT NOT NULL DEFAULT '',
    approver            TEXT NOT NULL DEFAULT '',
    received_at         TIMESTAMP NOT NULL,
    due_at              TIMESTAMP NOT NULL,
    extension_days      INTEGER NOT NULL DEFAULT 0,
    extension_reason    TEXT NOT NULL DEFAULT '',
    completed_at        TIMESTAMP,
    outcome             TEXT NOT NULL DEFAULT '',
    outcome_reason      TEXT NOT NULL DEFAULT '',
    rectified_fields    TEXT NOT NULL DEFAULT '[]', -- JSON array of field names
    blocked_reason      TEXT NOT NULL DEFAULT '',
    created_by          TEXT NOT NULL DEFAULT '',
    updated_at          TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, id),
    CHECK (assignee = '' OR assignee <> approver),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX dsr_requests_open ON dsr_requests (tenant_id, due_at) WHERE completed_at IS NULL;
CREATE INDEX dsr_requests_subject ON dsr_requests (tenant_id, subject_id);

CREATE TABLE dsr_texts (
    dsr_id     TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    FOREIGN KEY (tenant_id, dsr_id) REFERENCES dsr_requests (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX dsr_texts_subject ON dsr_texts (tenant_id, subject_id);

CREATE TABLE dsr_steps (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    dsr_id     TEXT NOT NULL,
    at         TIMESTAMP NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    step       TEXT NOT NULL,
    details    TEXT NOT NULL DEFAULT '{}', -- JSON: IDs, field and purpose names, reasons; no values
    FOREIGN KEY (tenant_id, dsr_id) REFERENCES dsr_requests (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX dsr_steps_dsr ON dsr_steps (tenant_id, dsr_id, at);

-- +goose StatementBegin
CREATE TRIGGER dsr_steps_no_update BEFORE UPDATE ON dsr_steps
BEGIN SELECT RAISE(ABORT, 'request steps are append-only: UPDATE on dsr_steps refused'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER dsr_steps_no_delete BEFORE DELETE ON dsr_steps
BEGIN SELECT RAISE(ABORT, 'request steps are append-only: DELETE on dsr_steps refused'); END;
-- +goose StatementEnd

CREATE TABLE dsr_packages (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    dsr_id          TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    ciphertext      BLOB NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    token_hash      BLOB UNIQUE,
    link_expires_at TIMESTAMP,
    used_at         TIMESTAMP,
    UNIQUE (tenant_id, dsr_id),
    FOREIGN KEY (tenant_id, dsr_id) REFERENCES dsr_requests (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX dsr_packages_subject ON dsr_packages (tenant_id, subject_id);

-- +goose Down
DROP TABLE dsr_packages;
DROP TABLE dsr_steps;
DROP TABLE dsr_texts;
DROP TABLE dsr_requests;
