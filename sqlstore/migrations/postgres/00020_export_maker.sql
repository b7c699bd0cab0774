-- +goose Up
-- An export holds its maker's view (review 2): who made it (principal kind beside created_by's
-- ID), the purpose of the read it holds and the highest classification it released in clear,
-- so a download is refused to anyone but its maker, and re-authorized for that classification
-- and purpose, before anything is decrypted. Rows from before have '' and are never served.
ALTER TABLE subject_exports ADD COLUMN created_by_kind TEXT NOT NULL DEFAULT '';
ALTER TABLE subject_exports ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
ALTER TABLE subject_exports ADD COLUMN classification TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE subject_exports DROP COLUMN classification;
ALTER TABLE subject_exports DROP COLUMN purpose;
ALTER TABLE subject_exports DROP COLUMN created_by_kind;
