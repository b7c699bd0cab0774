package sqlstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/files"
	"tutela/vault"
)

// Files is a tenant's stored files (issue 17): their policy, what is known about each file and
// its wrapped data key (this file), and their download links (files_links.go). The bytes are in
// the blob store; this store never sees them.
type Files struct {
	tx       *Tx
	tenantID string
}

// Files scopes the file store to one tenant.
func (tx *Tx) Files(tenantID string) Files { return Files{tx: tx, tenantID: tenantID} }

var errNoFile = tutela.Errorf(tutela.ENOTFOUND, "file not found")

// Job tuning. A scan job is the safety net of a file whose node died before its own scan; 72
// attempts with the queue's backoff keep trying through a long scanner outage. A purge retries
// as long: a blob left behind is data that should be gone.
const (
	fileJobAttempts = 72
	fileScanDelay   = time.Minute
)

// Listing bounds.
const (
	DefaultFilePage = 50
	maxFileText     = 255
)

// Policy is the tenant's file policy, files.DefaultPolicy() until it sets its own. A stored
// policy that does not validate is an error, not the default: it was altered outside the
// application, and falling back could accept what the tenant refused.
func (s Files) Policy(ctx context.Context) (files.Policy, error) {
	if !tutela.ValidID(s.tenantID) {
		return files.Policy{}, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	var raw string
	err := s.tx.queryRow(ctx, `SELECT policy FROM file_policies WHERE tenant_id = $1`, s.tenantID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return files.DefaultPolicy(), nil
	}
	if err != nil {
		return files.Policy{}, err
	}
	var p files.Policy
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return files.Policy{}, tutela.Wrap(err, "the stored file policy does not decode")
	}
	if err := p.Validate(); err != nil {
		return files.Policy{}, tutela.Wrap(err, "the stored file policy is not valid")
	}
	return p, nil
}

// SetPolicy validates p and stores it as the tenant's policy (by: who set it).
func (s Files) SetPolicy(ctx context.Context, p files.Policy, by string) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if len(by) > 200 || !tutela.ValidText(by) {
		return tutela.FieldErrorf("updated_by", "updated_by must be at most 200 bytes of text without control characters")
	}
	if err := s.tx.lockTenant(ctx, s.tenantID); err != nil {
		return err
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = s.tx.exec(ctx, `INSERT INTO file_policies (tenant_id, policy, updated_at, updated_by) VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at,
		updated_by = excluded.updated_by`, s.tenantID, string(raw), s.tx.now, by)
	return err
}

const fileCols = `id, tenant_id, subject_id, name_sealed, declared_type, detected_type, extension, size, sha256,
	classification, status, quarantine_reason, scan_result, scan_attempts, scanned_at, blob_key, wrapped_dek, uploaded_by,
	created_at, updated_at`

func scanFile(row interface{ Scan(...any) error }) (*files.File, error) {
	var f files.File
	var subject, blob sql.NullString
	var scanned sql.NullTime
	var status string
	err := row.Scan(&f.ID, &f.TenantID, &subject, &f.NameSealed, &f.DeclaredType, &f.DetectedType, &f.Extension, &f.Size,
		&f.SHA256, &f.Classification, &status, &f.QuarantineReason, &f.ScanResult, &f.ScanAttempts, &scanned, &blob,
		&f.WrappedDEK, &f.UploadedBy, &f.CreatedAt, &f.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoFile
	}
	if err != nil {
		return nil, err
	}
	f.Status, f.SubjectID, f.BlobKey, f.ScannedAt = files.Status(status), subject.String, blob.String, optTime(scanned)
	f.CreatedAt, f.UpdatedAt = f.CreatedAt.UTC(), f.UpdatedAt.UTC()
	return &f, nil
}

var quarantineReasons = []string{files.QuarantinePending, files.QuarantineUnavailable, files.QuarantineTimeout,
	files.QuarantineLimit, files.QuarantineError}

// checkNew is the rule for a new file's fields; it reports the first problem.
func checkNew(f *files.File) error {
	text := func(v string) bool { return len(v) <= maxFileText && tutela.ValidText(v) }
	hexSum, _ := hex.DecodeString(f.SHA256)
	switch {
	case f.ID != "" && !tutela.ValidID(f.ID):
		return tutela.FieldErrorf("id", "id must be a UUID")
	case f.SubjectID != "" && !tutela.ValidID(f.SubjectID):
		return tutela.FieldErrorf("subject_id", "subject_id must be a UUID")
	case f.BlobKey == "" || !text(f.BlobKey):
		return tutela.FieldErrorf("blob_key", "blob_key is required")
	case len(f.WrappedDEK) == 0:
		return tutela.FieldErrorf("wrapped_dek", "wrapped_dek is required")
	case len(f.NameSealed) == 0:
		return tutela.FieldErrorf("name_sealed", "name_sealed is required")
	case f.DetectedType == "" || !text(f.DetectedType):
		return tutela.FieldErrorf("detected_type", "detected_type is required")
	case !text(f.DeclaredType):
		return tutela.FieldErrorf("declared_type", "declared_type must be at most %d bytes of text", maxFileText)
	case !text(f.Extension):
		return tutela.FieldErrorf("extension", "extension must be at most %d bytes of text", maxFileText)
	case f.Size < 0:
		return tutela.FieldErrorf("size", "size must not be negative")
	case len(hexSum) != 32 || f.SHA256 != hex.EncodeToString(hexSum):
		return tutela.FieldErrorf("sha256", "sha256 must be 64 lower-case hex digits")
	case !authz.Classification(f.Classification).Valid():
		return tutela.FieldErrorf("classification", "classification must be GREEN, YELLOW or RED")
	case f.Status != "" && f.Status != files.StatusQuarantined:
		// A file becomes available only through RecordScan, the one path that records a scan.
		return tutela.FieldErrorf("status", "a new file is quarantined until its scan is recorded")
	case f.QuarantineReason != "" && !slices.Contains(quarantineReasons, f.QuarantineReason):
		return tutela.FieldErrorf("quarantine_reason", "quarantine_reason is not a known reason")
	case !text(f.UploadedBy):
		return tutela.FieldErrorf("uploaded_by", "uploaded_by must be at most %d bytes of text", maxFileText)
	}
	return nil
}

// Create stores a new file (see the field rules in checkNew): the ID is assigned when empty,
// TenantID is the scope, CreatedAt and UpdatedAt are now, and the file is quarantined (reason
// scan_pending unless given) with no scan recorded. A SubjectID must name a live subject of
// this tenant, held FOR SHARE so an erasure cannot finish between the check and the insert
// (the erasure then waits and erases this file too). It enqueues a JobScan job a minute ahead:
// the safety net that scans the file if this node dies before its own scan.
func (s Files) Create(ctx context.Context, f *files.File) error {
	if err := checkNew(f); err != nil {
		return err
	}
	if !tutela.ValidID(s.tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	if f.SubjectID != "" {
		if err := s.tx.Subjects(s.tenantID).keyed(ctx, f.SubjectID, "FOR SHARE"); err != nil {
			if tutela.ErrorCode(err) == tutela.ENOTFOUND {
				return tutela.Errorf(tutela.ENOTFOUND, "subject not found")
			}
			return err
		}
	}
	if f.ID == "" {
		f.ID = tutela.NewID()
	}
	if f.QuarantineReason == "" {
		f.QuarantineReason = files.QuarantinePending
	}
	f.TenantID, f.Status, f.CreatedAt, f.UpdatedAt = s.tenantID, files.StatusQuarantined, s.tx.now, s.tx.now
	f.ScanResult, f.ScanAttempts, f.ScannedAt = "", 0, nil
	if _, err := s.tx.exec(ctx, `INSERT INTO files (`+fileCols+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)`,
		f.ID, f.TenantID, nullStr(f.SubjectID), f.NameSealed, f.DeclaredType, f.DetectedType, f.Extension, f.Size, f.SHA256,
		f.Classification, string(f.Status), f.QuarantineReason, "", 0, nil, f.BlobKey, f.WrappedDEK, f.UploadedBy,
		f.CreatedAt, f.UpdatedAt); err != nil {
		return err
	}
	return s.tx.EnqueueJob(ctx, &Job{Kind: files.JobScan, TenantID: s.tenantID, Payload: []byte(f.ID),
		MaxAttempts: fileJobAttempts, RunAt: s.tx.now.Add(fileScanDelay)})
}

func nullStr(v string) any {
	if v == "" {
		return nil
	}
	return v
}

// nullBytes is NULL for an empty value: drivers differ on whether a nil []byte binds as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Get returns the tenant's file in any status. Name is left empty: it is sealed (NameSealed),
// and opening it is the caller's. Another tenant's, an unknown or a malformed ID is not found.
func (s Files) Get(ctx context.Context, id string) (*files.File, error) {
	return s.get(ctx, id, "")
}

// get is Get with a row lock clause (PostgreSQL only).
func (s Files) get(ctx context.Context, id, lock string) (*files.File, error) {
	// A share discloses a subject's record to a partner, never files: for a partner's
	// transaction there are none (its role holds no files permission; this is the second lock).
	if !tutela.ValidID(s.tenantID) || !tutela.ValidID(id) || s.tx.partner != "" {
		return nil, errNoFile
	}
	return scanFile(s.tx.queryRow(ctx, `SELECT `+fileCols+` FROM files WHERE tenant_id = $1 AND id = $2`+s.tx.lockClause(lock),
		s.tenantID, id))
}

// FileQuery selects files for List. Empty fields match everything.
type FileQuery struct {
	SubjectID string
	Status    files.Status
	// After is the cursor List returned for the previous page ("" for the first).
	After string
	// Limit defaults to DefaultFilePage and is at most MaxPageSize.
	Limit int
	// Classes, when not nil, keeps only files of these classifications (the ones the caller
	// may read); an empty, non-nil list keeps none.
	Classes []string
}

// List returns the tenant's files, newest first (IDs are UUIDv7, so ID order is creation
// order), and the cursor of the next page ("" on the last). A malformed filter or cursor is
// invalid rather than ignored: ignoring a cursor would send a client round the first page
// forever.
func (s Files) List(ctx context.Context, q FileQuery) (out []files.File, next string, err error) {
	out = []files.File{}
	if s.tx.partner != "" {
		return out, "", nil // see get: no files for a partner
	}
	switch {
	case q.SubjectID != "" && !tutela.ValidID(q.SubjectID):
		return nil, "", tutela.FieldErrorf("subject_id", "subject_id must be a UUID")
	case q.Status != "" && !slices.Contains(statuses, q.Status):
		return nil, "", tutela.FieldErrorf("status", "status must be one of quarantined, available, infected, deleted, erased")
	case q.After != "" && !tutela.ValidID(q.After):
		return nil, "", tutela.FieldErrorf("after", "the cursor is not valid")
	}
	if !tutela.ValidID(s.tenantID) || (q.Classes != nil && len(q.Classes) == 0) {
		return out, "", nil
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultFilePage
	}
	limit = min(limit, MaxPageSize)
	sqlq, args := `SELECT `+fileCols+` FROM files WHERE tenant_id = $1`, []any{s.tenantID}
	add := func(cond string, v any) {
		args = append(args, v)
		sqlq += " AND " + cond + " $" + itoa(len(args))
	}
	if q.SubjectID != "" {
		add("subject_id =", q.SubjectID)
	}
	if q.Status != "" {
		add("status =", string(q.Status))
	}
	if q.After != "" {
		add("id <", q.After)
	}
	if q.Classes != nil {
		ph := make([]string, len(q.Classes))
		for i, c := range q.Classes {
			args = append(args, c)
			ph[i] = "$" + itoa(len(args))
		}
		sqlq += " AND classification IN (" + strings.Join(ph, ", ") + ")"
	}
	return newestFirst(ctx, s.tx, sqlq, args, limit, scanFile, func(v *files.File) string { return v.ID })
}

var statuses = []files.Status{files.StatusQuarantined, files.StatusAvailable, files.StatusInfected, files.StatusDeleted,
	files.StatusErased}

// ScanRecord is the outcome of one scan attempt: StatusAvailable (Result "clean"),
// StatusInfected (Result the signature), or StatusQuarantined again with the reason the scan
// gave no verdict.
type ScanRecord struct {
	Status           files.Status
	QuarantineReason string
	Result           string
}

// RecordScan records one scan attempt of a quarantined file: scan_attempts+1, updated_at, and
// scanned_at when there is a verdict. From any other status it is a conflict and changes
// nothing (a late scan must not resurrect a deleted or erased file). An infected file's data key
// and name are shredded (no one may ever read it) and a JobPurge job removes its blob; the row
// stays as the record, with the signature.
func (s Files) RecordScan(ctx context.Context, id string, r ScanRecord) (*files.File, error) {
	switch {
	case r.Status == files.StatusQuarantined && !slices.Contains(quarantineReasons, r.QuarantineReason):
		return nil, tutela.FieldErrorf("quarantine_reason", "a quarantined scan needs a known quarantine reason")
	case r.Status != files.StatusQuarantined && r.QuarantineReason != "":
		return nil, tutela.FieldErrorf("quarantine_reason", "only a quarantined scan has a quarantine reason")
	case r.Status == files.StatusAvailable && r.Result != files.ScanClean && r.Result != files.ScanNotScanned:
		return nil, tutela.FieldErrorf("result", `an available file's scan result is "clean" (or "not_scanned", scanning switched off)`)
	case r.Status == files.StatusInfected && (r.Result == "" || r.Result == "clean"):
		return nil, tutela.FieldErrorf("result", "an infected file's scan result names the signature")
	case r.Status != files.StatusQuarantined && r.Status != files.StatusAvailable && r.Status != files.StatusInfected:
		return nil, tutela.FieldErrorf("status", "a scan makes a file available, infected or leaves it quarantined")
	case len(r.Result) > maxFileText || !tutela.ValidText(r.Result):
		return nil, tutela.FieldErrorf("result", "result must be at most %d bytes of text", maxFileText)
	}
	f, err := s.get(ctx, id, "FOR UPDATE")
	if err != nil {
		return nil, err
	}
	if f.Status != files.StatusQuarantined {
		return nil, tutela.Errorf(tutela.ECONFLICT, "the file is %s, not quarantined: there is nothing to scan", f.Status)
	}
	f.Status, f.QuarantineReason, f.ScanResult, f.ScanAttempts, f.UpdatedAt = r.Status, r.QuarantineReason, r.Result,
		f.ScanAttempts+1, s.tx.now
	if r.Status != files.StatusQuarantined {
		now := s.tx.now
		f.ScannedAt = &now
	}
	if r.Status == files.StatusInfected {
		f.WrappedDEK, f.NameSealed = nil, nil
	}
	if _, err := s.tx.exec(ctx, `UPDATE files SET status = $1, quarantine_reason = $2, scan_result = $3, scan_attempts = $4,
		scanned_at = $5, updated_at = $6, wrapped_dek = $7, name_sealed = $8 WHERE tenant_id = $9 AND id = $10`,
		string(f.Status), f.QuarantineReason, f.ScanResult, f.ScanAttempts, optTimeArg(f.ScannedAt), f.UpdatedAt,
		nullBytes(f.WrappedDEK), nullBytes(f.NameSealed), s.tenantID, id); err != nil {
		return nil, err
	}
	if r.Status == files.StatusInfected {
		if err := s.tx.enqueuePurge(ctx, s.tenantID, f.ID, f.BlobKey); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Delete marks the file deleted: its data key and name are shredded, its hash cleared, every
// link revoked, and a JobPurge job removes the blob. A file already deleted or erased is not
// found (as for a reader, it no longer exists).
func (s Files) Delete(ctx context.Context, id string) (*files.File, error) {
	f, err := s.get(ctx, id, "FOR UPDATE")
	if err != nil {
		return nil, err
	}
	if f.Status == files.StatusDeleted || f.Status == files.StatusErased {
		return nil, errNoFile
	}
	f.Status, f.QuarantineReason, f.WrappedDEK, f.NameSealed, f.SHA256, f.UpdatedAt = files.StatusDeleted, "", nil, nil, "", s.tx.now
	if err := s.tx.shredFile(ctx, f); err != nil {
		return nil, err
	}
	return f, nil
}

// shredFile writes f's shredded state (status, no data key, no name, no hash), revokes its
// links and enqueues the purge of its blob: what Delete and a subject's erasure share.
func (tx *Tx) shredFile(ctx context.Context, f *files.File) error {
	if _, err := tx.exec(ctx, `UPDATE files SET status = $1, quarantine_reason = '', wrapped_dek = NULL, name_sealed = NULL,
		sha256 = '', updated_at = $2 WHERE tenant_id = $3 AND id = $4`, string(f.Status), tx.now, f.TenantID, f.ID); err != nil {
		return err
	}
	if _, err := tx.exec(ctx, `UPDATE file_links SET revoked_at = $1 WHERE tenant_id = $2 AND file_id = $3 AND revoked_at IS NULL`,
		tx.now, f.TenantID, f.ID); err != nil {
		return err
	}
	return tx.enqueuePurge(ctx, f.TenantID, f.ID, f.BlobKey)
}

// enqueuePurge enqueues the removal of a file's blob, unless the blob is already gone or a
// purge of the file is already pending (an infected file deleted before its purge ran).
func (tx *Tx) enqueuePurge(ctx context.Context, tenantID, fileID, blobKey string) error {
	if blobKey == "" {
		return nil
	}
	n, err := tx.count(ctx, `SELECT count(*) FROM jobs WHERE kind = $1 AND tenant_id = $2 AND state = 'pending' AND payload = $3`,
		files.JobPurge, tenantID, []byte(fileID))
	if err != nil || n > 0 {
		return err
	}
	return tx.EnqueueJob(ctx, &Job{Kind: files.JobPurge, TenantID: tenantID, Payload: []byte(fileID), MaxAttempts: fileJobAttempts})
}

// eraseSubjectFiles erases every file of an erased subject not already deleted or erased (the
// data keys went with the subject's key; this removes the leftovers): finishErasure's part for
// files. It reports how many it erased, so re-applying an erasure changes nothing twice.
func (tx *Tx) eraseSubjectFiles(ctx context.Context, tenantID, subjectID string) (int, error) {
	rows, err := tx.query(ctx, `SELECT `+fileCols+` FROM files WHERE tenant_id = $1 AND subject_id = $2
		AND status NOT IN ('deleted', 'erased') ORDER BY id`+tx.lockClause("FOR UPDATE"), tenantID, subjectID)
	if err != nil {
		return 0, err
	}
	var todo []*files.File
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			rows.Close()
			return 0, err
		}
		todo = append(todo, f)
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, f := range todo {
		f.Status = files.StatusErased
		if err := tx.shredFile(ctx, f); err != nil {
			return 0, err
		}
	}
	return len(todo), nil
}

// BlobRemoved clears the file's blob_key once the purge job has removed the blob, only if it
// still names key (a retried job finds it cleared and changes nothing). Only a shredded file
// (infected, deleted, erased) loses its blob: for any other it is a conflict.
func (s Files) BlobRemoved(ctx context.Context, id, key string) error {
	f, err := s.get(ctx, id, "FOR UPDATE")
	if err != nil {
		return err
	}
	if f.Status == files.StatusQuarantined || f.Status == files.StatusAvailable {
		return tutela.Errorf(tutela.ECONFLICT, "the file is %s: its blob must stay", f.Status)
	}
	if key == "" || f.BlobKey != key {
		return nil
	}
	_, err = s.tx.exec(ctx, `UPDATE files SET blob_key = NULL, updated_at = $1 WHERE tenant_id = $2 AND id = $3 AND blob_key = $4`,
		s.tx.now, s.tenantID, id, key)
	return err
}

// fileAAD binds a file's sealed column to its row: a wrapped key or name copied to another
// file's row does not open there.
func fileAAD(column, id string) []byte { return vault.AAD("files", column, id) }

// FileDEKAAD is the associated data the data key of file id is wrapped with.
func FileDEKAAD(id string) []byte { return fileAAD("wrapped_dek", id) }

// FileNameAAD is the associated data the name of file id is sealed with.
func FileNameAAD(id string) []byte { return fileAAD("name_sealed", id) }

// FilesSources lets `tutela keys rewrap` re-encrypt the data keys and names of the files that
// belong to no subject after a tenant's files keyset is rotated. A subject's files are sealed
// with the subject's own key, not a keyset: rotating person_keys rewraps that key, not them.
func FilesSources(db *DB) []vault.RewrapSource {
	// The labels name what is sealed, not the column: rewrap prints them, and its output must
	// not read as if it printed wrapped key material.
	src := func(column, label string) SealedColumn {
		return SealedColumn{DB: db, Table: "files", Column: column, Purpose: vault.PurposeFiles, Where: "subject_id IS NULL",
			TenantCol: "tenant_id", Label: label, Item: func(id, tenant, _ string) (string, []byte) {
				return tenant, fileAAD(column, id)
			}}
	}
	return []vault.RewrapSource{src("wrapped_dek", "files.data_keys"), src("name_sealed", "files.names")}
}
