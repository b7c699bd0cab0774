package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
)

// Sealed exports of a subject's record (privacy vault, issue 13): the JSON a purpose-bound read
// returned, sealed under the subject's own key (privacy.Subjects.SealExport), kept until it
// expires. Erasure deletes the rows (personData) and, above all, the key: a copy of the
// ciphertext taken before, in a backup or elsewhere, no longer opens.

// Bounds of an export's lifetime.
const (
	DefaultExportTTL = 24 * time.Hour
	MinExportTTL     = time.Minute
	MaxExportTTL     = 7 * 24 * time.Hour
)

// SubjectExport is an export's row without its ciphertext: what a listing shows.
type SubjectExport struct {
	ID        string    `json:"id"`
	SubjectID string    `json:"subject_id"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ExportMaker is the principal (kind and ID) who made an export: an export holds its maker's
// view of the subject, RED values included if they could read them, so it is served to them
// alone.
type ExportMaker struct {
	Kind string
	ID   string
}

func (m ExportMaker) valid() bool {
	return (m.Kind == tutela.PrincipalUser || m.Kind == tutela.PrincipalServiceAccount) && tutela.ValidID(m.ID)
}

// StoredExport is an export with what the download checks before opening it (maker, purpose,
// highest classification in clear) and what privacy.Subjects.OpenExport needs: the subject's
// wrapped key (nil once erased) and the ciphertext.
type StoredExport struct {
	SubjectExport
	Maker      ExportMaker
	Purpose    string
	Class      authz.Classification
	Wrapped    []byte
	Ciphertext []byte
}

// Binding is what the export's ciphertext was sealed to (privacy.ExportBinding): a row whose
// maker, purpose or classification was altered does not open.
func (x *StoredExport) Binding() privacy.ExportBinding {
	return privacy.ExportBinding{ExportID: x.ID, MakerKind: x.Maker.Kind, MakerID: x.Maker.ID,
		Purpose: x.Purpose, Class: string(x.Class)}
}

// NewExport is an export sealed by privacy.Subjects.SealExport under Binding(), ready to store.
// Maker, Purpose and Class (the highest classification among the fields in clear, GREEN when
// none) are stored for the download's checks; Purpose, Fields and Masked (field names only) go
// into the audit event.
type NewExport struct {
	ID         string
	SubjectID  string
	Ciphertext []byte
	TTL        time.Duration
	Maker      ExportMaker
	Purpose    string
	Class      authz.Classification
	Fields     []string
	Masked     []string
}

// Binding is what privacy.Subjects.SealExport seals the export to.
func (x *NewExport) Binding() privacy.ExportBinding {
	return privacy.ExportBinding{ExportID: x.ID, MakerKind: x.Maker.Kind, MakerID: x.Maker.ID,
		Purpose: x.Purpose, Class: string(x.Class)}
}

var (
	errExportNotFound = tutela.Errorf(tutela.ENOTFOUND, "export not found")
	// ErrExportExpired answers a download after the export's expiry: the ciphertext may still be
	// stored until the next export of the subject removes it, but it is no longer served.
	ErrExportExpired = tutela.Errorf(tutela.ENOTFOUND, "export expired; make a new one")
)

// CreateExport stores a sealed export of a live subject and records subject.export (export ID,
// purpose, field names, expiry; never a value). It also deletes the subject's expired exports.
// The subject row is locked, so an erasure running at the same time either comes first (the
// export is refused: the subject was erased) or waits and deletes the new row too.
func (r Subjects) CreateExport(ctx context.Context, x *NewExport) (*SubjectExport, error) {
	switch {
	case x == nil || !tutela.ValidID(x.ID) || len(x.Ciphertext) == 0:
		return nil, tutela.Errorf(tutela.EINVALID, "an export needs an ID and a ciphertext from privacy.Subjects.SealExport")
	case !x.Maker.valid() || !privacy.ValidName(x.Purpose) || !x.Class.Valid():
		// Stored without them, an export could not be re-authorized at download: refused.
		return nil, tutela.Errorf(tutela.EINVALID, "an export needs its maker, purpose and classification")
	case x.TTL < MinExportTTL || x.TTL > MaxExportTTL:
		return nil, tutela.FieldErrorf("ttl_seconds", "ttl_seconds must be between %d and %d",
			int(MinExportTTL/time.Second), int(MaxExportTTL/time.Second))
	}
	if err := r.keyed(ctx, x.SubjectID, "FOR UPDATE"); err != nil {
		return nil, err
	}
	now := r.tx.now
	if _, err := r.tx.exec(ctx, `DELETE FROM subject_exports WHERE tenant_id = $1 AND subject_id = $2 AND expires_at <= $3`,
		r.tenantID, x.SubjectID, now); err != nil {
		return nil, err
	}
	ev := EventFromContext(ctx, "subject.export", r.tenantID, "subject", x.SubjectID, "", nil)
	out := &SubjectExport{ID: x.ID, SubjectID: x.SubjectID, CreatedBy: x.Maker.ID, CreatedAt: now, ExpiresAt: now.Add(x.TTL)}
	if _, err := r.tx.exec(ctx, `INSERT INTO subject_exports (id, tenant_id, subject_id, ciphertext, created_by, created_by_kind,
		purpose, classification, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		out.ID, r.tenantID, out.SubjectID, x.Ciphertext, x.Maker.ID, x.Maker.Kind, x.Purpose, string(x.Class),
		now, out.ExpiresAt); err != nil {
		return nil, err
	}
	ev.Details = map[string]any{"export_id": out.ID, "purpose": x.Purpose, "fields": nonNil(x.Fields),
		"masked": nonNil(x.Masked), "expires_at": out.ExpiresAt.Format(time.RFC3339)}
	return out, r.tx.Audit(ctx, ev)
}

// Export returns an unexpired export of a live subject made by maker, with its ciphertext and
// the subject's wrapped key. It writes no audit event: the caller records the download.
// Missing, of another subject or tenant, or made by anyone else (including rows from before
// makers were recorded): not found, so a caller learns nothing of others' exports; subject
// erased: ErrSubjectErased; expired: ErrExportExpired.
func (r Subjects) Export(ctx context.Context, subjectID, exportID string, maker ExportMaker) (*StoredExport, error) {
	if err := r.keyed(ctx, subjectID, ""); err != nil {
		return nil, err
	}
	if !tutela.ValidID(exportID) || !maker.valid() {
		return nil, errExportNotFound
	}
	var x StoredExport
	var class string
	err := r.tx.queryRow(ctx, `SELECT e.id, e.subject_id, e.created_by, e.created_by_kind, e.purpose, e.classification,
		e.created_at, e.expires_at, e.ciphertext, k.wrapped
		FROM subject_exports e LEFT JOIN person_keys k ON k.tenant_id = e.tenant_id AND k.person_id = e.subject_id
		WHERE e.tenant_id = $1 AND e.subject_id = $2 AND e.id = $3 AND e.created_by_kind = $4 AND e.created_by = $5`,
		r.tenantID, subjectID, exportID, maker.Kind, maker.ID).Scan(
		&x.ID, &x.SubjectID, &x.CreatedBy, &x.Maker.Kind, &x.Purpose, &class, &x.CreatedAt, &x.ExpiresAt, &x.Ciphertext, &x.Wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errExportNotFound
	}
	if err != nil {
		return nil, err
	}
	x.Maker.ID, x.Class = x.CreatedBy, authz.Classification(class)
	x.CreatedAt, x.ExpiresAt = x.CreatedAt.UTC(), x.ExpiresAt.UTC()
	if !r.tx.now.Before(x.ExpiresAt) {
		return nil, ErrExportExpired
	}
	if !privacy.ValidName(x.Purpose) || !x.Class.Valid() {
		return nil, errExportNotFound // cannot be re-authorized: never served
	}
	return &x, nil
}

// Exports lists a live subject's exports (IDs and times, expired ones included until removed),
// oldest first, up to limit after cursor (an export ID).
func (r Subjects) Exports(ctx context.Context, subjectID, cursor string, limit int) ([]*SubjectExport, error) {
	if err := r.keyed(ctx, subjectID, ""); err != nil {
		return nil, err
	}
	rows, err := r.tx.query(ctx, `SELECT id, subject_id, created_by, created_at, expires_at FROM subject_exports
		WHERE tenant_id = $1 AND subject_id = $2 AND id > $3 ORDER BY id LIMIT $4`,
		r.tenantID, subjectID, cursorID(cursor), clampLimit(limit))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*SubjectExport{}
	for rows.Next() {
		var x SubjectExport
		if err := rows.Scan(&x.ID, &x.SubjectID, &x.CreatedBy, &x.CreatedAt, &x.ExpiresAt); err != nil {
			return nil, err
		}
		x.CreatedAt, x.ExpiresAt = x.CreatedAt.UTC(), x.ExpiresAt.UTC()
		out = append(out, &x)
	}
	return out, rows.Err()
}

// keyed checks that a subject is live and still has its key. A subject whose key is gone is
// erased whatever its row says: a restore re-applying the erasure ledger shreds the key and
// data rows of a person erased after the backup was taken.
func (r Subjects) keyed(ctx context.Context, subjectID, lock string) error {
	if _, err := r.subject(ctx, subjectID, lock); err != nil {
		return err
	}
	w, err := r.tx.PersonKeys(r.tenantID).Get(ctx, subjectID)
	if err != nil {
		return err
	}
	if w == nil {
		return ErrSubjectErased
	}
	return nil
}
