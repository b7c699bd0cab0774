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
// the objection is a withdrawal of consent). Objecting twice changes nothing.
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
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, subject_id, purpose) DO NOTHING`,
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
// mind, or the tenant demonstrated compelling legitimate grounds, Art. 21(1)); reason says which.
func (c Consent) WithdrawObjection(ctx context.Context, subjectID, purpose, reason string) error {
	if !tutela.ValidID(subjectID) || !privacy.ValidName(purpose) {
		return tutela.Errorf(tutela.ENOTFOUND, "objection not found")
	}
	if reason == "" || len(reason) > maxHoldReason || !tutela.ValidText(reason) {
		return tutela.FieldErrorf("reason", "reason is required: one line of at most %d bytes", maxHoldReason)
	}
	res, err := c.tx.exec(ctx, `DELETE FROM subject_objections WHERE tenant_id = $1 AND subject_id = $2 AND purpose = $3`,
		c.tenantID, subjectID, purpose)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return tutela.Errorf(tutela.ENOTFOUND, "objection not found")
	}
	return c.tx.Record(ctx, "subject.objection.withdraw", c.tenantID, "subject", subjectID, "",
		map[string]any{"purpose": purpose, "reason": reason})
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
// every purpose's Check refuses with ERESTRICTED. Restricting twice changes nothing.
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
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, subject_id) DO NOTHING`,
		c.tenantID, subjectID, reference, ev.ActorType, ev.ActorID, c.tx.now)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	return c.tx.Audit(ctx, ev)
}

// LiftRestriction ends the subject's restriction; reason says why (Art. 18(3): the subject is
// told before it is lifted).
func (c Consent) LiftRestriction(ctx context.Context, subjectID, reason string) error {
	if !tutela.ValidID(subjectID) {
		return tutela.Errorf(tutela.ENOTFOUND, "restriction not found")
	}
	if reason == "" || len(reason) > maxHoldReason || !tutela.ValidText(reason) {
		return tutela.FieldErrorf("reason", "reason is required: one line of at most %d bytes", maxHoldReason)
	}
	res, err := c.tx.exec(ctx, `DELETE FROM subject_restrictions WHERE tenant_id = $1 AND subject_id = $2`, c.tenantID, subjectID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return tutela.Errorf(tutela.ENOTFOUND, "restriction not found")
	}
	return c.tx.Record(ctx, "subject.restriction.lift", c.tenantID, "subject", subjectID, "", map[string]any{"reason": reason})
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
