package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"tutela"
	"tutela/privacy"
)

// Objections (GDPR Art. 21) and restrictions (Art. 18): what a data-subject request, or a
// caseworker acting on one, sets to stop processing. Consent.Check reads both.

// Lift is how a restriction is lifted or an objection withdrawn. One placed by a data-subject
// request (its reference is set) was decided under the request's four-eyes approval; issue 14's
// review found one person could undo it with nothing linking to the request. So lifting it
// needs what approving a request needs (MayLiftRequest: APPROVE on data-subject requests) and
// the caller's confirmation that the subject was told first (GDPR Art. 18(3)); both go into the
// audit event with the reference. One placed without a reference needs only the reason.
type Lift struct {
	Reason          string // why: the subject asked, accuracy verified, compelling legitimate grounds
	SubjectInformed bool   // the subject was told before the lifting
	// MayLiftRequest answers whether the caller may lift what the request reference placed
	// (nil: nobody may; fail closed).
	MayLiftRequest func(reference string) error
}

func (l Lift) validate() error {
	if l.Reason == "" || len(l.Reason) > maxHoldReason || !tutela.ValidText(l.Reason) {
		return tutela.FieldErrorf("reason", "reason is required: one line of at most %d bytes", maxHoldReason)
	}
	return nil
}

// allow applies the request rule to lifting what (a restriction or an objection) carrying
// reference.
func (l Lift) allow(reference, what string) error {
	if reference == "" {
		return nil
	}
	if l.MayLiftRequest == nil {
		return tutela.Errorf(tutela.EFORBIDDEN, "this %s was placed by data-subject request %s: lifting it needs APPROVE on data-subject requests", what, reference)
	}
	if err := l.MayLiftRequest(reference); err != nil {
		return err
	}
	if !l.SubjectInformed {
		return tutela.FieldErrorf("subject_informed", "this %s was placed by data-subject request %s: the subject must be told before it is lifted (GDPR Art. 18(3)); confirm with subject_informed: true", what, reference)
	}
	return nil
}

// Objection is a subject's standing objection to one purpose.
type Objection struct {
	Purpose   string    `json:"purpose"`
	Reference string    `json:"reference,omitempty"` // the data-subject request it came from
	ActorType string    `json:"actor_type"`
	ActorID   string    `json:"actor_id"`
	CreatedAt time.Time `json:"created_at"`
}

// Object records the subject's objection to purpose (reference: the request it came from). Only
// a purpose on public task or legitimate interests can be objected to (for a purpose on consent,
// the objection is a withdrawal of consent). Objecting twice changes nothing, except that a
// request's reference attaches to an objection placed without one: what a request confirmed is
// lifted under the request's rule (Lift), not by one caseworker.
func (c Consent) Object(ctx context.Context, subjectID, purpose, reference string) error {
	if _, err := c.tx.Subjects(c.tenantID).subject(ctx, subjectID, "FOR UPDATE"); err != nil {
		return err
	}
	p, err := c.Purpose(ctx, purpose)
	if errors.Is(err, errPurposeNotFound) {
		return errUndeclaredPurpose(purpose)
	}
	if err != nil {
		return err
	}
	if !p.LawfulBasis.Objectable() {
		return tutela.FieldErrorf("purpose", "%s is processed on %s: a subject may object only to processing on public_task or legitimate_interests (withdraw consent instead for a purpose on consent)", p.Name, p.LawfulBasis)
	}
	if reference != "" && !tutela.ValidID(reference) {
		return tutela.FieldErrorf("reference", "reference must be a data-subject request's ID")
	}
	ev := EventFromContext(ctx, "subject.objection.record", c.tenantID, "subject", subjectID, "",
		map[string]any{"purpose": purpose, "reference": reference})
	res, err := c.tx.exec(ctx, `INSERT INTO subject_objections (tenant_id, subject_id, purpose, reference, actor_type, actor_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, subject_id, purpose) DO UPDATE SET reference = excluded.reference
		WHERE subject_objections.reference = '' AND excluded.reference <> ''`,
		c.tenantID, subjectID, purpose, reference, ev.ActorType, ev.ActorID, c.tx.now)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	return c.tx.Audit(ctx, ev)
}

// WithdrawObjection removes the subject's objection to purpose (the subject changed their
// mind, or the tenant demonstrated compelling legitimate grounds, Art. 21(1)), under lift's rule.
func (c Consent) WithdrawObjection(ctx context.Context, subjectID, purpose string, lift Lift) error {
	if !tutela.ValidID(subjectID) || !privacy.ValidName(purpose) {
		return tutela.Errorf(tutela.ENOTFOUND, "objection not found")
	}
	if err := lift.validate(); err != nil {
		return err
	}
	var ref string
	err := c.tx.queryRow(ctx, `SELECT reference FROM subject_objections WHERE tenant_id = $1 AND subject_id = $2 AND purpose = $3`+
		c.tx.lockClause("FOR UPDATE"), c.tenantID, subjectID, purpose).Scan(&ref)
	if errors.Is(err, sql.ErrNoRows) {
		return tutela.Errorf(tutela.ENOTFOUND, "objection not found")
	}
	if err != nil {
		return err
	}
	if err := lift.allow(ref, "objection"); err != nil {
		return err
	}
	if _, err := c.tx.exec(ctx, `DELETE FROM subject_objections WHERE tenant_id = $1 AND subject_id = $2 AND purpose = $3`,
		c.tenantID, subjectID, purpose); err != nil {
		return err
	}
	return c.tx.Record(ctx, "subject.objection.withdraw", c.tenantID, "subject", subjectID, "",
		map[string]any{"purpose": purpose, "reason": lift.Reason, "reference": ref, "subject_informed": lift.SubjectInformed})
}

// Objections lists the subject's standing objections by purpose.
func (c Consent) Objections(ctx context.Context, subjectID string) ([]*Objection, error) {
	if !tutela.ValidID(subjectID) || !tutela.ValidID(c.tenantID) {
		return []*Objection{}, nil
	}
	rows, err := c.tx.query(ctx, `SELECT purpose, reference, actor_type, actor_id, created_at FROM subject_objections
		WHERE tenant_id = $1 AND subject_id = $2 ORDER BY purpose`, c.tenantID, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*Objection{}
	for rows.Next() {
		var o Objection
		if err := rows.Scan(&o.Purpose, &o.Reference, &o.ActorType, &o.ActorID, &o.CreatedAt); err != nil {
			return nil, err
		}
		o.CreatedAt = o.CreatedAt.UTC()
		out = append(out, &o)
	}
	return out, rows.Err()
}

// Restriction is a restriction of a subject's processing: their data is stored, not processed.
type Restriction struct {
	Reference string    `json:"reference,omitempty"`
	ActorType string    `json:"actor_type"`
	ActorID   string    `json:"actor_id"`
	CreatedAt time.Time `json:"created_at"`
}

// Restrict restricts the subject's processing (reference: the request it came from): from now
// every purpose's Check refuses with ERESTRICTED. Restricting twice changes nothing, except that
// a request's reference attaches to a restriction placed without one (as for Object).
func (c Consent) Restrict(ctx context.Context, subjectID, reference string) error {
	if _, err := c.tx.Subjects(c.tenantID).subject(ctx, subjectID, "FOR UPDATE"); err != nil {
		return err
	}
	if reference != "" && !tutela.ValidID(reference) {
		return tutela.FieldErrorf("reference", "reference must be a data-subject request's ID")
	}
	ev := EventFromContext(ctx, "subject.restriction.place", c.tenantID, "subject", subjectID, "",
		map[string]any{"reference": reference})
	res, err := c.tx.exec(ctx, `INSERT INTO subject_restrictions (tenant_id, subject_id, reference, actor_type, actor_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, subject_id) DO UPDATE SET reference = excluded.reference
		WHERE subject_restrictions.reference = '' AND excluded.reference <> ''`,
		c.tenantID, subjectID, reference, ev.ActorType, ev.ActorID, c.tx.now)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	return c.tx.Audit(ctx, ev)
}

// LiftRestriction ends the subject's restriction under lift's rule (Art. 18(3): the subject is
// told before it is lifted).
func (c Consent) LiftRestriction(ctx context.Context, subjectID string, lift Lift) error {
	if !tutela.ValidID(subjectID) {
		return tutela.Errorf(tutela.ENOTFOUND, "restriction not found")
	}
	if err := lift.validate(); err != nil {
		return err
	}
	var ref string
	err := c.tx.queryRow(ctx, `SELECT reference FROM subject_restrictions WHERE tenant_id = $1 AND subject_id = $2`+
		c.tx.lockClause("FOR UPDATE"), c.tenantID, subjectID).Scan(&ref)
	if errors.Is(err, sql.ErrNoRows) {
		return tutela.Errorf(tutela.ENOTFOUND, "restriction not found")
	}
	if err != nil {
		return err
	}
	if err := lift.allow(ref, "restriction"); err != nil {
		return err
	}
	if _, err := c.tx.exec(ctx, `DELETE FROM subject_restrictions WHERE tenant_id = $1 AND subject_id = $2`, c.tenantID, subjectID); err != nil {
		return err
	}
	return c.tx.Record(ctx, "subject.restriction.lift", c.tenantID, "subject", subjectID, "",
		map[string]any{"reason": lift.Reason, "reference": ref, "subject_informed": lift.SubjectInformed})
}

// Restriction returns the subject's restriction, or nil when their processing is not restricted.
func (c Consent) Restriction(ctx context.Context, subjectID string) (*Restriction, error) {
	if !tutela.ValidID(subjectID) || !tutela.ValidID(c.tenantID) {
		return nil, nil
	}
	var r Restriction
	err := c.tx.queryRow(ctx, `SELECT reference, actor_type, actor_id, created_at FROM subject_restrictions
		WHERE tenant_id = $1 AND subject_id = $2`, c.tenantID, subjectID).Scan(&r.Reference, &r.ActorType, &r.ActorID, &r.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r.CreatedAt = r.CreatedAt.UTC()
	return &r, nil
}
