-- +goose Up
-- Identity merges (issue 18, master person index): two subjects found to be the same person
-- become one. The merged subject's row stays, marked merged_into the survivor (reads, lists,
-- searches, consents and erasure requests for it answer not found); its values stay where they
-- are, under its own key, until it is unmerged or erased with the survivor. subject_merges
-- records each merge and what unmerging needs; subject_merge_saved holds the rows the merge
-- replaced or moved, as they were (ciphertexts under the key of person_id, so erasing that person
-- deletes them with everything else of theirs).
ALTER TABLE subjects ADD COLUMN merged_into UUID;
ALTER TABLE subjects ADD COLUMN merged_at TIMESTAMPTZ;
CREATE INDEX subjects_merged_into ON subjects (tenant_id, merged_into) WHERE merged_into IS NOT NULL;

CREATE TABLE subject_merges (
    id                    UUID PRIMARY KEY,
    tenant_id             UUID NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    survivor_id           UUID NOT NULL,
    merged_id             UUID NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('merged', 'unmerged')),
    choices               TEXT NOT NULL,            -- JSON: field -> "survivor" | "merged"
    justification         TEXT NOT NULL,
    approval_id           TEXT NOT NULL DEFAULT '',
    merged_by             TEXT NOT NULL DEFAULT '',
    merged_at             TIMESTAMPTZ NOT NULL,
    unmerge_until         TIMESTAMPTZ NOT NULL,
    -- The two subject rows' times before the merge, restored by unmerge.
    survivor_updated_at   TIMESTAMPTZ NOT NULL,
    survivor_retain_until TIMESTAMPTZ,
    merged_updated_at     TIMESTAMPTZ NOT NULL,
    merged_retain_until   TIMESTAMPTZ,
    -- JSON: per part of the survivor (values, consents, tokens, files...) a digest of it right
    -- after the merge; unmerge refuses when the survivor changed since.
    fingerprint           TEXT NOT NULL,
    unmerged_by           TEXT NOT NULL DEFAULT '',
    unmerged_at           TIMESTAMPTZ,
    unmerge_justification TEXT NOT NULL DEFAULT '',
    CHECK (survivor_id <> merged_id),
    FOREIGN KEY (tenant_id, survivor_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT,
    FOREIGN KEY (tenant_id, merged_id) REFERENCES subjects (tenant_id, id) ON DELETE RESTRICT
);
CREATE INDEX subject_merges_survivor ON subject_merges (tenant_id, survivor_id);
CREATE INDEX subject_merges_merged ON subject_merges (tenant_id, merged_id);

CREATE TABLE subject_merge_saved (
    tenant_id UUID NOT NULL,
    merge_id  UUID NOT NULL REFERENCES subject_merges (id) ON DELETE CASCADE,
    person_id UUID NOT NULL,          -- whose key seals what row holds; erased with them
    kind      TEXT NOT NULL,          -- value, index, consent_state, objection, restriction, token, token_added, file
    seq       INTEGER NOT NULL,
    data      TEXT NOT NULL,          -- JSON of the saved row
    PRIMARY KEY (merge_id, kind, seq)
);
CREATE INDEX subject_merge_saved_person ON subject_merge_saved (tenant_id, person_id);

ALTER TABLE subject_merges ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_merges FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subject_merges
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));
ALTER TABLE subject_merge_saved ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_merge_saved FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subject_merge_saved
    USING (current_setting('tutela.tenant', true) = '*' OR tenant_id::text = current_setting('tutela.tenant', true));

-- +goose Down
DROP POLICY tenant_isolation ON subject_merge_saved;
DROP POLICY tenant_isolation ON subject_merges;
DROP TABLE subject_merge_saved;
DROP TABLE subject_merges;
DROP INDEX subjects_merged_into;
ALTER TABLE subjects DROP COLUMN merged_at;
ALTER TABLE subjects DROP COLUMN merged_into;
