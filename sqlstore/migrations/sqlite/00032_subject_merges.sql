-- +goose Up
-- See the PostgreSQL migration (row-level security is PostgreSQL only).
ALTER TABLE subjects ADD COLUMN merged_into TEXT;
ALTER TABLE subjects ADD COLUMN merged_at TIMESTAMP;
CREATE INDEX subjects_merged_into ON subjects (tenant_id, merged_into) WHERE merged_into IS NOT NULL;

CREATE TABLE subject_merges (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    survivor_id           TEXT NOT NULL,
    merged_id             TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('merged', 'unmerged')),
    choices               TEXT NOT NULL,
    justification         TEXT NOT NULL,
    approval_id           TEXT NOT NULL DEFAULT '',
    merged_by             TEXT NOT NULL DEFAULT '',
    merged_at             TIMESTAMP NOT NULL,
    unmerge_until         TIMESTAMP NOT NULL,
    survivor_updated_at   TIMESTAMP NOT NULL,
    survivor_retain_until TIMESTAMP,
    merged_updated_at     TIMESTAMP NOT NULL,
    merged_retain_until   TIMESTAMP,
    fingerprint           TEXT NOT NULL,
    unmerged_by           TEXT NOT NULL DEFAULT '',
    unmerged_at           TIMESTAMP,
    unmerge_justification TEXT NOT NULL DEFAULT '',
    CHECK (survivor_id <> merged_id),
    FOREIGN KEY (tenant_id, survivor_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT,
    FOREIGN KEY (tenant_id, merged_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX subject_merges_survivor ON subject_merges (tenant_id, survivor_id);
CREATE INDEX subject_merges_merged ON subject_merges (tenant_id, merged_id);

CREATE TABLE subject_merge_saved (
    tenant_id TEXT NOT NULL,
    merge_id  TEXT NOT NULL REFERENCES subject_merges (id) ON DELETE CASCADE,
    person_id TEXT NOT NULL,
    kind      TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    data      TEXT NOT NULL,
    PRIMARY KEY (merge_id, kind, seq)
);
CREATE INDEX subject_merge_saved_person ON subject_merge_saved (tenant_id, person_id);

-- +goose Down
DROP TABLE subject_merge_saved;
DROP TABLE subject_merges;
DROP INDEX subjects_merged_into;
ALTER TABLE subjects DROP COLUMN merged_at;
ALTER TABLE subjects DROP COLUMN merged_into;
