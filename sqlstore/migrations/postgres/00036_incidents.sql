-- +goose Up
-- Security incidents and the personal-data-breach clock (issue 19). An incident is
-- deployment-level: incident_tenants lists the tenants it affects, and a tenant-scoped
-- transaction sees an incident only through that list (row-level security below), and of its
-- subjects, timeline and notifications only its own and the deployment-wide ones.
-- next_reminder_at is the breach clock's next reminder (incidents.Incident.NextReminder), NULL
-- when none is due; reminder_seq changes with every reminder sent, so nodes sweeping at once send
-- each reminder once (a conditional UPDATE on it).
CREATE TABLE incidents (
    id                   UUID PRIMARY KEY,
    title                TEXT NOT NULL,
    description          TEXT NOT NULL,
    severity             TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    status               TEXT NOT NULL CHECK (status IN ('open', 'investigating', 'contained', 'resolved', 'closed')),
    personal_data_breach BOOLEAN NOT NULL DEFAULT FALSE,
    detected_at          TIMESTAMPTZ NOT NULL,
    confirmed_at         TIMESTAMPTZ,
    frameworks           TEXT NOT NULL,  -- JSON list of incidents.Frameworks keys
    owners               TEXT NOT NULL,  -- JSON list of user IDs
    data_categories      TEXT NOT NULL,  -- JSON list
    subject_categories   TEXT NOT NULL,  -- JSON list
    contact              TEXT NOT NULL DEFAULT '',
    consequences         TEXT NOT NULL DEFAULT '',
    measures             TEXT NOT NULL DEFAULT '',
    created_by           TEXT NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    closed_at            TIMESTAMPTZ,
    next_reminder_at     TIMESTAMPTZ,
    reminded_through     TIMESTAMPTZ,
    reminder_seq         BIGINT NOT NULL DEFAULT 0,
    CHECK (confirmed_at IS NOT NULL OR NOT personal_data_breach)
);
CREATE INDEX incidents_created ON incidents (created_at, id);
CREATE INDEX incidents_reminder ON incidents (next_reminder_at) WHERE next_reminder_at IS NOT NULL;

CREATE TABLE incident_tenants (
    incident_id     UUID NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    subjects_approx BIGINT NOT NULL DEFAULT 0 CHECK (subjects_approx >= 0),
    records_approx  BIGINT NOT NULL DEFAULT 0 CHECK (records_approx >= 0),
    added_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (incident_id, tenant_id)
);
CREATE INDEX incident_tenants_tenant ON incident_tenants (tenant_id, incident_id);

-- Subjects known to be affected: their IDs only (no foreign key: an erased subject's ID stays,
-- meaning nothing any more).
CREATE TABLE incident_subjects (
    incident_id UUID NOT NULL,
    tenant_id   UUID NOT NULL,
    subject_id  UUID NOT NULL,
    added_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (incident_id, tenant_id, subject_id),
    FOREIGN KEY (incident_id, tenant_id) REFERENCES incident_tenants (incident_id, tenant_id) ON DELETE CASCADE
);

-- Append-only: the store has no update or delete for entries. tenant_id NULL: deployment-wide.
CREATE TABLE incident_timeline (
    id          UUID PRIMARY KEY,
    incident_id UUID NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    text        TEXT NOT NULL,
    tenant_id   UUID,
    ref         TEXT NOT NULL DEFAULT '',
    UNIQUE (incident_id, seq)
);

CREATE TABLE incident_notifications (
    id                UUID PRIMARY KEY,
    incident_id       UUID NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    recipient         TEXT NOT NULL CHECK (recipient IN ('authority', 'subjects')),
    framework         TEXT NOT NULL,
    tenant_id         UUID,
    recipient_name    TEXT NOT NULL,
    made_at           TIMESTAMPTZ NOT NULL,
    reference         TEXT NOT NULL DEFAULT '',
    subjects_notified BIGINT NOT NULL DEFAULT 0,
    recorded_by       TEXT NOT NULL,
    recorded_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX incident_notifications_incident ON incident_notifications (incident_id, made_at);

ALTER TABLE incident_tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incident_tenants
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE incident_subjects ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_subjects FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incident_subjects
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
-- An incident, and its deployment-wide entries, are visible to a tenant it affects.
ALTER TABLE incidents ENABLE ROW LEVEL SECURITY;
ALTER TABLE incidents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incidents
    USING (current_setting('tutela.tenant', true) = '*' OR EXISTS (SELECT 1 FROM incident_tenants it
        WHERE it.incident_id = incidents.id AND it.tenant_id::text = current_setting('tutela.tenant', true)));
ALTER TABLE incident_timeline ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_timeline FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incident_timeline
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true)
        OR (tenant_id IS NULL AND EXISTS (SELECT 1 FROM incident_tenants it
            WHERE it.incident_id = incident_timeline.incident_id AND it.tenant_id::text = current_setting('tutela.tenant', true))));
ALTER TABLE incident_notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incident_notifications
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true)
        OR (tenant_id IS NULL AND EXISTS (SELECT 1 FROM incident_tenants it
            WHERE it.incident_id = incident_notifications.incident_id AND it.tenant_id::text = current_setting('tutela.tenant', true))));

-- +goose Down
DROP TABLE incident_notifications;
DROP TABLE incident_timeline;
DROP TABLE incident_subjects;
DROP TABLE incident_tenants;
DROP TABLE incidents;
