package dsr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"tutela"
	"tutela/privacy"
	"tutela/sqlstore"
)

// Executor runs approved requests. Keys opens and seals with the subjects' own keys.
type Executor struct{ Keys privacy.Keys }

// Result is what an approval did: the request as it now stands, and the legal hold that
// blocked an erasure (nil when none did).
type Result struct {
	DSR       *sqlstore.DSR
	BlockedBy *sqlstore.Hold
}

// ErrBlocked is the error an approval blocked by a legal hold answers with (409), naming the
// hold's reason, as a refused erasure of the subject does. The request's blocked state and its
// step are committed; the caller writes this error after the transaction.
func ErrBlocked(h *sqlstore.Hold) error {
	return tutela.Errorf(tutela.ECONFLICT, "subject is under a legal hold (%s); the request stays open, blocked, until the hold is released and it is approved again", h.Reason)
}

// Approve records approverID's approval of request id and executes it, in tx: everything
// (approval, execution, completion and their audit events) commits together or not at all,
// except an erasure an active legal hold refuses, which is recorded as blocked (the subject's
// data untouched) and returned with the hold.
func (x Executor) Approve(ctx context.Context, tx *sqlstore.Tx, tenantID, id, approverID string) (*Result, error) {
	r := tx.DSRs(tenantID)
	d, err := r.Approve(ctx, id, approverID)
	if err != nil {
		return nil, err
	}
	switch d.Kind {
	case privacy.DSRErasure:
		return x.erase(ctx, tx, tenantID, d)
	case privacy.DSRAccess, privacy.DSRPortability:
		return &Result{DSR: d}, x.buildPackage(ctx, tx, tenantID, d)
	case privacy.DSRRestriction:
		if err := r.Restrict(ctx, d); err != nil {
			return nil, err
		}
		return &Result{DSR: d}, r.Complete(ctx, d, "restricted", nil)
	case privacy.DSRObjection:
		if err := r.Object(ctx, d); err != nil {
			return nil, err
		}
		return &Result{DSR: d}, r.Complete(ctx, d, "objection_recorded", map[string]any{"purpose": d.Purpose})
	case privacy.DSRRectification:
		return &Result{DSR: d}, r.Complete(ctx, d, "rectified", map[string]any{"rectified_fields": d.RectifiedFields})
	}
	return nil, tutela.Errorf(tutela.EINVALID, "unknown request kind %q", d.Kind)
}

// legalBases are the erasure ledger's legal basis per jurisdiction (the ledger says on what
// ground a person was erased).
var legalBases = map[string]string{
	"gdpr":  "right to erasure, GDPR Art. 17",
	"ndpa":  "right to erasure, Nigeria Data Protection Act 2023 s.34",
	"popia": "right to deletion, POPIA s.24",
}

func legalBasis(jurisdiction string) string {
	if b, ok := legalBases[jurisdiction]; ok {
		return b
	}
	return "right to erasure (" + jurisdiction + ")"
}

func (x Executor) erase(ctx context.Context, tx *sqlstore.Tx, tenantID string, d *sqlstore.DSR) (*Result, error) {
	r := tx.DSRs(tenantID)
	holds, err := tx.Subjects(tenantID).ActiveHolds(ctx, d.SubjectID)
	if errors.Is(err, sqlstore.ErrSubjectErased) {
		return &Result{DSR: d}, r.Complete(ctx, d, "already_erased", nil)
	}
	if err != nil {
		return nil, err
	}
	if len(holds) > 0 {
		h := holds[0]
		if err := r.Block(ctx, d, "legal hold "+h.ID, map[string]any{"hold_id": h.ID}); err != nil {
			return nil, err
		}
		return &Result{DSR: d, BlockedBy: h}, nil
	}
	e, err := tx.Subjects(tenantID).Erase(ctx, d.SubjectID, "data-subject request "+d.ID, legalBasis(d.Jurisdiction), sqlstore.ErasureRequest)
	if err != nil {
		return nil, err
	}
	return &Result{DSR: d}, r.Complete(ctx, d, "erased", map[string]any{"erasure_id": e.ID})
}

func (x Executor) buildPackage(ctx context.Context, tx *sqlstore.Tx, tenantID string, d *sqlstore.DSR) error {
	r := tx.DSRs(tenantID)
	src, err := r.PackageSources(ctx, d.SubjectID)
	if err != nil {
		return err
	}
	p, err := Open(ctx, x.Keys, tenantID, d.ID, src, tx.Now())
	if err != nil {
		return err
	}
	zipped, err := p.ZIP()
	if err != nil {
		return err
	}
	sum := sha256.Sum256(zipped)
	pkgID := tutela.NewID()
	ct, err := x.Seal(ctx, tenantID, &src.Subject.Stored, d.ID, pkgID, zipped)
	clear(zipped)
	if err != nil {
		return err
	}
	if err := r.StorePackage(ctx, d, pkgID, ct); err != nil {
		return err
	}
	return r.Complete(ctx, d, "package_ready", map[string]any{"package_id": pkgID, "sha256": hex.EncodeToString(sum[:]),
		"fields": len(p.Subject.Values), "consents": len(p.Consents), "requests": len(p.Requests), "audit_events": len(p.AuditEvents)})
}

// Seal seals a package's ZIP under the subject's key, bound to the request and the package.
func (x Executor) Seal(ctx context.Context, tenantID string, st *privacy.Stored, dsrID, packageID string, zipped []byte) ([]byte, error) {
	pk, err := x.Keys.Open(ctx, tenantID, st.SubjectID, st.Wrapped)
	if err != nil {
		return nil, err
	}
	return pk.Seal(privacy.DSRPackageField(dsrID, packageID), zipped)
}

// OpenDownload opens a consumed download's package. An erased subject (no key) is
// privacy.ErrErased; a ciphertext moved from another package is privacy.ErrDecrypt.
func (x Executor) OpenDownload(ctx context.Context, dl *sqlstore.DSRDownload) ([]byte, error) {
	pk, err := x.Keys.Open(ctx, dl.TenantID, dl.SubjectID, dl.Wrapped)
	if err != nil {
		return nil, err
	}
	return pk.Open(privacy.DSRPackageField(dl.DSRID, dl.PackageID), dl.Ciphertext)
}
