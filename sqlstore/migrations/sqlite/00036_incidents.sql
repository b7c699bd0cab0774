-- +goose Up
-- See the PostgreSQL migration (row-level security is PostgreSQL only).
CREATE TABLE incidents (
    id                   TEXT PRIMARY KEY,
    title                TEXT NOT NULL,
    description          TEXT NOT NULL,
    severity             TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    status               TEXT NOT NULL CHECK (status IN ('open', 'investigating', 'contained', 'resolved', 'closed')),
    personal_data_breach BOOLEAN NOT NULL DEFAULT FALSE,
    detected_at          TIMESTAMP NOT NULL,
    confirmed_at         TIMESTAMP,
    frameworks           TEXT NOT NULL,  -- JSON list of incidents.Frameworks keys
    owners               TEXT NOT NULL,  -- JSON list of user IDs
    data_categories      TEXT NOT NULL,  -- JSON list
    subject_categories   TEXT NOT NULL,  -- JSON list
    contact              TEXT NOT NULL DEFAULT '',
    consequences         TEXT NOT NULL DEFAULT '',
    measures             TEXT NOT NULL DEFAULT '',
    created_by           TEXT NOT NULL,
    created_at           TIMESTAMP NOT NULL,
    updated_at           TIMESTAMP NOT NULL,
    closed_at            TIMESTAMP,
    next_reminder_at     TIMESTAMP,
    reminded_through     TIMESTAMP,
    reminder_seq         INTEGER NOT NULL DEFAULT 0,
    CHECK (confirmed_at IS NOT NULL OR NOT personal_data_breach)
);
CREATE INDEX incidents_created ON incidents (created_at, id);
CREATE INDEX incidents_reminder ON incidents (next_reminder_at);

CREATE TABLE incident_tenants (
    incident_id     TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    subjects_approx INTEGER NOT NULL DEFAULT 0 CHECK (subjects_approx >= 0),
    records_approx  INTEGER NOT NULL DEFAULT 0 CHECK (records_approx >= 0),
    added_at        TIMESTAMP NOT NULL,
    PRIMARY KEY (incident_id, tenant_id)
);
CREATE INDEX incident_tenants_tenant ON incident_tenants (tenant_id, incident_id);

-- Subjects known to be affected: their IDs only (no foreign key: an erased subject's ID stays,
-- meaning nothing any more).
CREATE TABLE incident_subjects (
    incident_id TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    added_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (incident_id, tenant_id, subject_id),
    FOREIGN KEY (incident_id, tenant_id) REFERENCES incident_tenants (incident_id, tenant_id) ON DELETE CASCADE
);

-- Append-only: the store has no update or delete for entries. tenant_id NULL: deployment-wide.
CREATE TABLE incident_timeline (
    id          TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    at          TIMESTAMP NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    text        TEXT NOT NULL,
    tenant_id   TEXT,
    ref         TEXT NOT NULL DEFAULT '',
    UNIQUE (incident_id, seq)
);

CREATE TABLE incident_notifications (
    id                TEXT PRIMARY KEY,
    incident_id       TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    recipient         TEXT NOT NULL CHECK (recipient IN ('authority', 'subjects')),
    framework         TEXT NOT NULL,
    tenant_id         TEXT,
    recipient_name    TEXT NOT NULL,
    made_at           TIMESTAMP NOT NULL,
    reference         TEXT NOT NULL DEFAULT '',
    subjects_notified INTEGER NOT NULL DEFAULT 0,
    recorded_by       TEXT NOT NULL,
    recorded_at       TIMESTAMP NOT NULL
);
CREATE INDEX incident_notifications_incident ON incident_notifications (incident_id, made_at);

-- +goose Down
DROP TABLE incident_notifications;
DROP TABLE incident_timeline;
DROP TABLE incident_subjects;
DROP TABLE incident_tenants;
DROP TABLE incidents;
