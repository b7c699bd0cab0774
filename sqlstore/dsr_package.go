package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"strings"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/privacy"
)

// Executing a request (restriction, objection, erasure's hold check), the sources of an
// access/portability package, its sealed storage and its one-time download link.

// Restrict executes a restriction request: the subject's processing is restricted with the
// request as reference (Consent.Restrict writes its own audit event).
func (r DSRs) Restrict(ctx context.Context, d *DSR) error {
	return r.tx.Consent(r.tenantID).Restrict(ctx, d.SubjectID, d.ID)
}

// Object executes an objection request for the purpose it names.
func (r DSRs) Object(ctx context.Context, d *DSR) error {
	return r.tx.Consent(r.tenantID).Object(ctx, d.SubjectID, d.Purpose, d.ID)
}

// DSRSources is everything the tenant holds about one subject, as stored (values and texts
// sealed under the subject's key): what package dsr opens and assembles into the subject's
// package.
//
// Legal holds are not among them: a hold's reason and placer are other people's information and
// may tip off an investigation (GDPR Art. 23 allows withholding them), so the package leaves
// holds out and says so in its README.
type DSRSources struct {
	Subject  *SubjectRecord
	Consents []*privacy.ConsentRecord
	// MergedKeys are the wrapped keys of the subjects merged into this one whose consent
	// records are among Consents (their evidence is sealed under those keys), by subject ID.
	MergedKeys  map[string][]byte
	Objections  []*Objection
	Restriction *Restriction
	Requests    []*DSR
	Steps       map[string][]*DSRStep // by request ID
	Texts       map[string][]byte     // by request ID, sealed
	// Events are the audit events naming the subject: those whose target is the subject or
	// one of their requests. Their source IP and user agent are removed: they belong to the
	// caseworker who made the call, not to the subject.
	Events []audit.Event
	// Staff are the IDs of the tenant's users: the package names them only as "staff" (who
	// worked on the subject is the staff member's data, not the subject's).
	Staff map[string]bool
}

// PackageSources reads everything the tenant holds about a live subject.
func (r DSRs) PackageSources(ctx context.Context, subjectID string) (*DSRSources, error) {
	subs := r.tx.Subjects(r.tenantID)
	rec, err := subs.Get(ctx, subjectID)
	if err != nil {
		return nil, err
	}
	src := &DSRSources{Subject: rec, Steps: map[string][]*DSRStep{}, Texts: map[string][]byte{}, Staff: map[string]bool{}}
	if err := r.staffIDs(ctx, src.Staff); err != nil {
		return nil, err
	}
	c := r.tx.Consent(r.tenantID)
	if src.Consents, err = c.History(ctx, subjectID); err != nil {
		return nil, err
	}
	src.MergedKeys = map[string][]byte{}
	for _, rec := range src.Consents {
		if _, ok := src.MergedKeys[rec.SubjectID]; ok || rec.SubjectID == subjectID {
			continue
		}
		if src.MergedKeys[rec.SubjectID], err = r.tx.PersonKeys(r.tenantID).Get(ctx, rec.SubjectID); err != nil {
			return nil, err
		}
	}
	if src.Objections, err = c.Objections(ctx, subjectID); err != nil {
		return nil, err
	}
	if src.Restriction, err = c.Restriction(ctx, subjectID); err != nil {
		return nil, err
	}
	for cursor := ""; ; {
		page, err := r.List(ctx, DSRFilter{SubjectID: subjectID, Cursor: cursor, Limit: MaxPageSize})
		if err != nil {
			return nil, err
		}
		src.Requests = append(src.Requests, page...)
		if len(page) < MaxPageSize {
			break
		}
		cursor = page[len(page)-1].ID
	}
	for _, d := range src.Requests {
		if src.Steps[d.ID], err = r.Steps(ctx, d.ID); err != nil {
			return nil, err
		}
		ct, err := r.Text(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		if ct != nil {
			src.Texts[d.ID] = ct
		}
	}
	rows, err := r.tx.query(ctx, `SELECT canonical FROM audit_events WHERE tenant_id = $1 AND (
		(target_type = 'subject' AND target_id = $2) OR
		(target_type = 'dsr' AND target_id IN (SELECT CAST(id AS TEXT) FROM dsr_requests WHERE tenant_id = $3 AND subject_id = $4)))
		ORDER BY pos`, r.tenantID, subjectID, r.tenantID, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var canonical []byte
		if err := rows.Scan(&canonical); err != nil {
			return nil, err
		}
		e, err := DecodeAuditEvent(canonical)
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(e.Action, "subject.hold.") {
			continue // withheld with the holds themselves
		}
		e.SourceIP, e.UserAgent = "", ""
		src.Events = append(src.Events, e)
	}
	return src, rows.Err()
}

func (r DSRs) staffIDs(ctx context.Context, into map[string]bool) error {
	rows, err := r.tx.query(ctx, `SELECT id FROM users WHERE tenant_id = $1`, r.tenantID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		into[id] = true
	}
	return rows.Err()
}

// StorePackage stores d's package, sealed under the subject's key as
// privacy.DSRPackageField(d.ID, packageID), replacing an earlier one of d.
func (r DSRs) StorePackage(ctx context.Context, d *DSR, packageID string, ciphertext []byte) error {
	if !tutela.ValidID(packageID) || len(ciphertext) == 0 {
		return tutela.Errorf(tutela.EINVALID, "a package needs an ID and a ciphertext sealed under the subject's key")
	}
	if _, err := r.tx.exec(ctx, `DELETE FROM dsr_packages WHERE tenant_id = $1 AND dsr_id = $2`, r.tenantID, d.ID); err != nil {
		return err
	}
	_, err := r.tx.exec(ctx, `INSERT INTO dsr_packages (id, tenant_id, dsr_id, subject_id, ciphertext, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, packageID, r.tenantID, d.ID, d.SubjectID, ciphertext, r.tx.now)
	return err
}

// DSRTokenHash is what the store keeps of a download token: its SHA-256. The token carries 256
// random bits, so a hash lookup is as strong as a constant-time comparison of the token and
// nothing stored opens the package.
func DSRTokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Delivery modes of a package's download link (recorded in the download_link step).
const (
	// DSRDeliveryEmail: the system e-mailed the link to the address in the subject's record;
	// the caller who asked never saw the token.
	DSRDeliveryEmail = "email"
	// DSRDeliveryInPerson: the caller received the token to hand over, being allowed to read
	// every field of the package anyway.
	DSRDeliveryInPerson = "in_person"
)

// SetDownloadLink gives d's package its one download link (token hash) valid for ttl. A
// package has one link per approval: once a link was issued, used or not, no other is, and
// used_at is never reset, so a delivered package cannot be fetched again by someone who merely
// may ask for a link; a new delivery needs a new request and a new approval. It needs a
// completed access or portability request of a live subject whose package is still stored
// (a consumed package is deleted with its download; one whose link expired unused by the
// retention sweep, PurgeExpiredDSRPackages). delivery is recorded with the issuer; the token
// never is.
func (r DSRs) SetDownloadLink(ctx context.Context, id string, tokenHash []byte, ttl time.Duration, delivery string) (time.Time, error) {
	if len(tokenHash) != sha256.Size {
		return time.Time{}, tutela.Errorf(tutela.EINVALID, "a download link is stored as its token's SHA-256")
	}
	if delivery != DSRDeliveryEmail && delivery != DSRDeliveryInPerson {
		return time.Time{}, tutela.FieldErrorf("delivery", "delivery must be email or in_person")
	}
	if ttl <= 0 {
		return time.Time{}, tutela.Errorf(tutela.EINVALID, "a download link needs a positive lifetime")
	}
	d, err := r.PackageState(ctx, id)
	if err != nil {
		return time.Time{}, err
	}
	expires := r.tx.now.Add(ttl)
	res, err := r.tx.exec(ctx, `UPDATE dsr_packages SET token_hash = $1, link_expires_at = $2
		WHERE tenant_id = $3 AND dsr_id = $4 AND token_hash IS NULL AND used_at IS NULL`, tokenHash, expires, r.tenantID, d.ID)
	if err := affectedOne(res, err, "this request's package is gone"); err != nil {
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return time.Time{}, errDSRLinkIssued
		}
		return time.Time{}, err
	}
	return expires, r.step(ctx, d, "download_link", map[string]any{"expires_at": expires.Format(time.RFC3339),
		"delivery": delivery})
}

var (
	errDSRPackageGone = tutela.Errorf(tutela.ECONFLICT, "this request's package is gone (downloaded, its link expired unused, "+
		"or the subject was erased): a new delivery needs a new request and its approval")
	errDSRLinkIssued = tutela.Errorf(tutela.ECONFLICT, "this package's one download link was already issued: a new link needs "+
		"a new request and its approval")
)

// PackageState locks request id for a download link and reports whether it may have one: a
// completed access or portability request of a live subject, whose package is stored and has
// had no link yet (409 otherwise, saying why).
func (r DSRs) PackageState(ctx context.Context, id string) (*DSR, error) {
	d, err := r.get(ctx, id, "FOR UPDATE")
	if err != nil {
		return nil, err
	}
	if !d.Kind.Packaged() || d.Status != privacy.DSRCompleted {
		return nil, tutela.Errorf(tutela.ECONFLICT, "only a completed access or portability request has a package to download")
	}
	if err := r.tx.Subjects(r.tenantID).keyed(ctx, d.SubjectID, ""); err != nil {
		return nil, err
	}
	var issued bool
	err = r.tx.queryRow(ctx, `SELECT token_hash IS NOT NULL OR used_at IS NOT NULL FROM dsr_packages
		WHERE tenant_id = $1 AND dsr_id = $2`, r.tenantID, d.ID).Scan(&issued)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, errDSRPackageGone
	case err != nil:
		return nil, err
	case issued:
		return nil, errDSRLinkIssued
	}
	return d, nil
}

// DSRDownload is a consumed download: the package's ciphertext and what opens it.
type DSRDownload struct {
	TenantID   string
	DSRID      string
	SubjectID  string
	PackageID  string
	Ciphertext []byte
	Wrapped    []byte
}

// ErrDSRDownloadNotFound answers every download that cannot be served: unknown, used, expired
// or of an erased subject look alike.
var ErrDSRDownloadNotFound = tutela.Errorf(tutela.ENOTFOUND, "download not found")

// ConsumeDSRDownload uses the link whose token hashes to tokenHash: atomically, so two requests
// with the same token cannot both get the package (the UPDATE claims it only while unused and
// unexpired), and records dsr.package_download. The caller opens the package in the same
// transaction; if that fails, the transaction rolls back and the link is not spent.
//
// The token names no tenant, so the package's tenant is resolved through Tenant before the link
// is spent: a node of another data region (a copied link, a wrong DNS entry) answers
// wrong_region and leaves the link for the tenant's own region (docs/residency.md).
func (tx *Tx) ConsumeDSRDownload(ctx context.Context, tokenHash []byte) (*DSRDownload, error) {
	if len(tokenHash) != sha256.Size {
		return nil, ErrDSRDownloadNotFound
	}
	var tenantID string
	err := tx.queryRow(ctx, `SELECT tenant_id FROM dsr_packages
		WHERE token_hash = $1 AND used_at IS NULL AND link_expires_at > $2`, tokenHash, tx.now).Scan(&tenantID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrDSRDownloadNotFound
	}
	if err != nil {
		return nil, err
	}
	if _, err := tx.Tenant(ctx, tenantID); err != nil {
		return nil, err
	}
	res, err := tx.exec(ctx, `UPDATE dsr_packages SET used_at = $1
		WHERE token_hash = $2 AND used_at IS NULL AND link_expires_at > $1`, tx.now, tokenHash)
	if err := affectedOne(res, err, "download not found"); err != nil {
		if tutela.ErrorCode(err) == tutela.ENOTFOUND {
			return nil, ErrDSRDownloadNotFound
		}
		return nil, err
	}
	var x DSRDownload
	var wrapped sql.Null[[]byte]
	err = tx.queryRow(ctx, `SELECT p.tenant_id, p.dsr_id, p.subject_id, p.id, p.ciphertext, k.wrapped FROM dsr_packages p
		LEFT JOIN person_keys k ON k.tenant_id = p.tenant_id AND k.person_id = p.subject_id
		WHERE p.token_hash = $1`, tokenHash).Scan(&x.TenantID, &x.DSRID, &x.SubjectID, &x.PackageID, &x.Ciphertext, &wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrDSRDownloadNotFound
	}
	if err != nil {
		return nil, err
	}
	if !wrapped.Valid {
		return nil, ErrDSRDownloadNotFound
	}
	x.Wrapped = wrapped.V
	// The package served is deleted in the same transaction: a delivered package is not kept
	// to go stale (nor to be served again); a package that fails to open rolls back with it.
	if _, err := tx.exec(ctx, `DELETE FROM dsr_packages WHERE tenant_id = $1 AND id = $2`, x.TenantID, x.PackageID); err != nil {
		return nil, err
	}
	r := tx.DSRs(x.TenantID)
	d, err := r.get(ctx, x.DSRID, "")
	if err != nil {
		return nil, err
	}
	return &x, r.step(ctx, d, "package_download", map[string]any{"package_id": x.PackageID, "package_deleted": true})
}

// PurgeExpiredDSRPackages deletes, as of now, the packages whose one link expired unused (a
// package that can no longer be delivered is only a stale copy of the subject's data), each
// with a package_expired step and its audit event on its request. The retention sweep runs it
// hourly (PurgeExpired); a batch is bounded like the sweep's other tables.
func (tx *Tx) PurgeExpiredDSRPackages(ctx context.Context, now time.Time) (int64, error) {
	scope, args := tx.regionScope("tenant_id", false, now, purgeBatch)
	rows, err := tx.query(ctx, `SELECT tenant_id, dsr_id, id FROM dsr_packages WHERE used_at IS NULL
		AND link_expires_at IS NOT NULL AND link_expires_at <= $1`+scope+` ORDER BY link_expires_at LIMIT $2`+tx.skipLocked(), args...)
	if err != nil {
		return 0, err
	}
	type expired struct{ tenant, dsr, pkg string }
	var list []expired
	for rows.Next() {
		var e expired
		if err := rows.Scan(&e.tenant, &e.dsr, &e.pkg); err != nil {
			rows.Close()
			return 0, err
		}
		list = append(list, e)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, err
	}
	var n int64
	for _, e := range list {
		res, err := tx.exec(ctx, `DELETE FROM dsr_packages WHERE tenant_id = $1 AND id = $2 AND used_at IS NULL`, e.tenant, e.pkg)
		if err != nil {
			return n, err
		}
		if k, err := res.RowsAffected(); err != nil || k == 0 {
			continue
		}
		n++
		r := tx.DSRs(e.tenant)
		d, err := r.get(ctx, e.dsr, "")
		if err != nil {
			return n, err
		}
		if err := r.step(ctx, d, "package_expired", map[string]any{"package_id": e.pkg}); err != nil {
			return n, err
		}
	}
	return n, nil
}

// NoticeDue reports whether a deadline job still applies: its request is open and still due
// at dueAt (an extension moved it, or it was completed or rejected: nothing to do).
func (r DSRs) NoticeDue(ctx context.Context, id string, dueAt time.Time) (*DSR, bool, error) {
	d, err := r.get(ctx, id, "FOR UPDATE")
	if errors.Is(err, errDSRNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return d, !privacy.DSRClosed(d.Status) && d.DueAt.Equal(dueAt.UTC().Truncate(time.Microsecond)), nil
}

// NoticeRecipients are the users a deadline notice goes to: the assignee, or, while the
// request is unassigned, the tenant's active programme administrators.
func (r DSRs) NoticeRecipients(ctx context.Context, d *DSR) ([]string, error) {
	if d.Assignee != "" {
		return []string{d.Assignee}, nil
	}
	rows, err := r.tx.query(ctx, `SELECT DISTINCT u.id FROM user_roles ur JOIN roles ro ON ro.id = ur.role_id
		JOIN users u ON u.tenant_id = ur.tenant_id AND u.id = ur.user_id
		WHERE ur.tenant_id = $1 AND ro.key = 'program_admin' AND u.status = 'active'
		AND (ur.expires_at IS NULL OR ur.expires_at > $2) ORDER BY u.id`, r.tenantID, r.tx.now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// RecordNotice records a reminder or overdue notice sent about d (dsr.reminder, dsr.overdue).
func (r DSRs) RecordNotice(ctx context.Context, d *DSR, event, before string, recipients []string) error {
	details := map[string]any{"due_at": d.DueAt.Format(time.RFC3339), "recipients": nonNil(recipients)}
	if before != "" {
		details["before"] = before
	}
	return r.step(ctx, d, event, details)
}
