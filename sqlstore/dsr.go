package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/authz"
	"tutela/privacy"
)

// Data-subject requests (issue 14): the request rows, their append-only step history, the
// subject's sealed text and the deadline jobs. Every step writes its step row and its audit
// event (dsr.<step>, target the request, the subject's ID in the details) in the caller's
// transaction. The rules of the workflow are in privacy/dsr.go; the execution that needs the
// vault (building a package) is package dsr's.

// DSR is one request's row: IDs, states and times, never what the subject wrote or holds.
type DSR struct {
	ID                 string          `json:"id"`
	TenantID           string          `json:"tenant_id"`
	SubjectID          string          `json:"subject_id"`
	Kind               privacy.DSRKind `json:"kind"`
	Jurisdiction       string          `json:"jurisdiction"`
	Purpose            string          `json:"purpose,omitempty"`
	Status             string          `json:"status"`
	Verification       string          `json:"verification"`
	VerificationMethod string          `json:"verification_method,omitempty"`
	Assignee           string          `json:"assignee,omitempty"`
	Approver           string          `json:"approver,omitempty"`
	ReceivedAt         time.Time       `json:"received_at"`
	DueAt              time.Time       `json:"due_at"`
	ExtensionDays      int             `json:"extension_days,omitempty"`
	ExtensionReason    string          `json:"extension_reason,omitempty"`
	CompletedAt        *time.Time      `json:"completed_at,omitempty"`
	Outcome            string          `json:"outcome,omitempty"`
	OutcomeReason      string          `json:"outcome_reason,omitempty"`
	RectifiedFields    []string        `json:"rectified_fields"`
	BlockedReason      string          `json:"blocked_reason,omitempty"`
	CreatedBy          string          `json:"created_by,omitempty"`
	UpdatedAt          time.Time       `json:"updated_at"`
}

// Overdue reports whether the request is open past its due date at now.
func (d *DSR) Overdue(now time.Time) bool {
	return !privacy.DSRClosed(d.Status) && !now.Before(d.DueAt)
}

// DSRStep is one entry of a request's history: who did what, when. Details hold IDs, names and
// reasons, never a value of the subject.
type DSRStep struct {
	ID        string         `json:"id"`
	DSRID     string         `json:"dsr_id"`
	At        time.Time      `json:"at"`
	ActorType string         `json:"actor_type"`
	ActorID   string         `json:"actor_id"`
	Step      string         `json:"step"`
	Details   map[string]any `json:"details"`
}

// NewDSR is a request as received. TextSealed is what the subject wrote, sealed under their
// key as privacy.DSRTextField(ID) (nil when they wrote nothing).
type NewDSR struct {
	ID           string
	SubjectID    string
	Kind         privacy.DSRKind
	Jurisdiction string
	Purpose      string
	TextSealed   []byte
}

// DSRs is a tenant's data-subject requests.
type DSRs struct {
	tx       *Tx
	tenantID string
}

// DSRs returns tenantID's request repository.
func (tx *Tx) DSRs(tenantID string) DSRs { return DSRs{tx: tx, tenantID: tenantID} }

var errDSRNotFound = tutela.Errorf(tutela.ENOTFOUND, "data-subject request not found")

// JobDSRDeadline is the job kind of a request's reminders and overdue notice (package dsr runs
// them). The payload names the request and the due date it was scheduled for, so a job whose
// request was completed or whose due date moved (an extension) does nothing.
const JobDSRDeadline = "dsr_deadline"

// DSRDeadline is a deadline job's payload: IDs and times only.
type DSRDeadline struct {
	DSRID  string    `json:"dsr_id"`
	Event  string    `json:"event"` // "reminder" or "overdue"
	DueAt  time.Time `json:"due_at"`
	Before string    `json:"before,omitempty"` // a reminder's offset before the due date
}

const dsrCols = `id, tenant_id, subject_id, kind, jurisdiction, purpose, status, verification, verification_method,
	assignee, approver, received_at, due_at, extension_days, extension_reason, completed_at, outcome, outcome_reason,
	rectified_fields, blocked_reason, created_by, updated_at`

func scanDSR(sc interface{ Scan(...any) error }) (*DSR, error) {
	var d DSR
	var kind, rect string
	var done sql.NullTime
	if err := sc.Scan(&d.ID, &d.TenantID, &d.SubjectID, &kind, &d.Jurisdiction, &d.Purpose, &d.Status, &d.Verification,
		&d.VerificationMethod, &d.Assignee, &d.Approver, &d.ReceivedAt, &d.DueAt, &d.ExtensionDays, &d.ExtensionReason,
		&done, &d.Outcome, &d.OutcomeReason, &rect, &d.BlockedReason, &d.CreatedBy, &d.UpdatedAt); err != nil {
		return nil, err
	}
	d.Kind, d.CompletedAt = privacy.DSRKind(kind), optTime(done)
	d.ReceivedAt, d.DueAt, d.UpdatedAt = d.ReceivedAt.UTC(), d.DueAt.UTC(), d.UpdatedAt.UTC()
	if err := json.Unmarshal([]byte(rect), &d.RectifiedFields); err != nil || d.RectifiedFields == nil {
		d.RectifiedFields = []string{}
	}
	return &d, nil
}

// Get returns one request of the tenant.
func (r DSRs) Get(ctx context.Context, id string) (*DSR, error) { return r.get(ctx, id, "") }

func (r DSRs) get(ctx context.Context, id, lock string) (*DSR, error) {
	if !tutela.ValidID(id) || !tutela.ValidID(r.tenantID) {
		return nil, errDSRNotFound
	}
	d, err := scanDSR(r.tx.queryRow(ctx, `SELECT `+dsrCols+` FROM dsr_requests WHERE tenant_id = $1 AND id = $2`+
		r.tx.lockClause(lock), r.tenantID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errDSRNotFound
	}
	return d, err
}

// Create stores a request received now, due after its jurisdiction's period, with its text,
// its first step and the jobs of its reminders and overdue notice.
func (r DSRs) Create(ctx context.Context, n *NewDSR, pol privacy.DSRPolicy) (*DSR, error) {
	if n == nil || !tutela.ValidID(n.ID) {
		return nil, tutela.Errorf(tutela.EINVALID, "a request needs its ID before its text is sealed")
	}
	if !n.Kind.Valid() {
		return nil, tutela.FieldErrorf("kind", "kind must be one of access, portability, rectification, erasure, restriction, objection")
	}
	j, err := pol.Jurisdiction(n.Jurisdiction)
	if err != nil {
		return nil, err
	}
	if _, err := r.tx.Subjects(r.tenantID).subject(ctx, n.SubjectID, "FOR UPDATE"); err != nil {
		return nil, err
	}
	switch {
	case n.Kind == privacy.DSRObjection:
		p, err := r.tx.Consent(r.tenantID).Purpose(ctx, n.Purpose)
		if errors.Is(err, errPurposeNotFound) {
			return nil, errUndeclaredPurpose(n.Purpose)
		}
		if err != nil {
			return nil, err
		}
		if !p.LawfulBasis.Objectable() {
			return nil, tutela.FieldErrorf("purpose", "%s is processed on %s: an objection applies to public_task or legitimate_interests (for consent, withdraw it)", p.Name, p.LawfulBasis)
		}
	case n.Purpose != "":
		return nil, tutela.FieldErrorf("purpose", "only an objection names a purpose")
	}
	now := r.tx.now
	ev := EventFromContext(ctx, "dsr.received", r.tenantID, "dsr", n.ID, "", nil)
	d := &DSR{ID: n.ID, TenantID: r.tenantID, SubjectID: n.SubjectID, Kind: n.Kind, Jurisdiction: j, Purpose: n.Purpose,
		Status: privacy.DSRReceived, Verification: privacy.VerificationPending, ReceivedAt: now, DueAt: pol.Due(j, now),
		RectifiedFields: []string{}, CreatedBy: ev.ActorID, UpdatedAt: now}
	if _, err := r.tx.exec(ctx, `INSERT INTO dsr_requests (id, tenant_id, subject_id, kind, jurisdiction, purpose, status,
		verification, received_at, due_at, created_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $9)`,
		d.ID, r.tenantID, d.SubjectID, string(d.Kind), d.Jurisdiction, d.Purpose, d.Status, d.Verification, now, d.DueAt,
		d.CreatedBy); err != nil {
		return nil, err
	}
	if len(n.TextSealed) > 0 {
		if _, err := r.tx.exec(ctx, `INSERT INTO dsr_texts (dsr_id, tenant_id, subject_id, ciphertext) VALUES ($1, $2, $3, $4)`,
			d.ID, r.tenantID, d.SubjectID, n.TextSealed); err != nil {
			return nil, err
		}
	}
	if err := r.scheduleDeadlines(ctx, d, pol); err != nil {
		return nil, err
	}
	return d, r.step(ctx, d, "received", map[string]any{"kind": string(d.Kind), "jurisdiction": j, "purpose": d.Purpose,
		"due_at": d.DueAt.Format(time.RFC3339), "text": len(n.TextSealed) > 0})
}

// scheduleDeadlines enqueues d's reminders (each offset before the due date that is still in
// the future) and its overdue notice at the due date.
func (r DSRs) scheduleDeadlines(ctx context.Context, d *DSR, pol privacy.DSRPolicy) error {
	enqueue := func(p DSRDeadline, at time.Time) error {
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		return r.tx.EnqueueJob(ctx, &Job{Kind: JobDSRDeadline, TenantID: r.tenantID, Payload: b, RunAt: at, MaxAttempts: 8})
	}
	for _, off := range pol.Reminders {
		if at := d.DueAt.Add(-off); at.After(r.tx.now) {
			if err := enqueue(DSRDeadline{DSRID: d.ID, Event: "reminder", DueAt: d.DueAt, Before: off.String()}, at); err != nil {
				return err
			}
		}
	}
	return enqueue(DSRDeadline{DSRID: d.ID, Event: "overdue", DueAt: d.DueAt}, d.DueAt)
}

// step appends a step to d's history and records its audit event dsr.<name>.
func (r DSRs) step(ctx context.Context, d *DSR, name string, details map[string]any) error {
	return r.stepOutcome(ctx, d, name, "", details)
}

func (r DSRs) stepOutcome(ctx context.Context, d *DSR, name, outcome string, details map[string]any) error {
	if details == nil {
		details = map[string]any{}
	}
	details["subject_id"] = d.SubjectID
	ev := EventFromContext(ctx, "dsr."+name, r.tenantID, "dsr", d.ID, outcome, details)
	actorType := ev.ActorType
	if actorType == "" {
		actorType = audit.ActorSystem
	}
	b, err := json.Marshal(details)
	if err != nil {
		return err
	}
	if _, err := r.tx.exec(ctx, `INSERT INTO dsr_steps (id, tenant_id, dsr_id, at, actor_type, actor_id, step, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, tutela.NewID(), r.tenantID, d.ID, r.tx.now, actorType, ev.ActorID, name,
		string(b)); err != nil {
		return err
	}
	return r.tx.Audit(ctx, ev)
}

// open locks an open request for a step: missing → not found, closed → conflict.
func (r DSRs) open(ctx context.Context, id string, allowed ...string) (*DSR, error) {
	d, err := r.get(ctx, id, "FOR UPDATE")
	if err != nil {
		return nil, err
	}
	if privacy.DSRClosed(d.Status) {
		return nil, tutela.Errorf(tutela.ECONFLICT, "this request is %s", d.Status)
	}
	if len(allowed) > 0 && !slices.Contains(allowed, d.Status) {
		return nil, tutela.Errorf(tutela.ECONFLICT, "this request is %s; this step needs it %s", d.Status, strings.Join(allowed, " or "))
	}
	return d, nil
}

func (r DSRs) set(ctx context.Context, d *DSR, assignments string, args ...any) error {
	args = append(args, r.tx.now, r.tenantID, d.ID)
	n := len(args)
	_, err := r.tx.exec(ctx, `UPDATE dsr_requests SET `+assignments+`, updated_at = $`+itoa(n-2)+
		` WHERE tenant_id = $`+itoa(n-1)+` AND id = $`+itoa(n), args...)
	d.UpdatedAt = r.tx.now
	return err
}

// Verify records the identity check. verified lets the request go on. failed records the
// result and the method and leaves the request open, received: the check may be tried again
// (another method), and refusing the request (GDPR Art. 12(6)) is a decision, Reject's (APPROVE,
// a reason, not the assignee), never a side effect of an UPDATE. Approve refuses while the
// identity is not verified.
func (r DSRs) Verify(ctx context.Context, id, result, method string) (*DSR, error) {
	if !slices.Contains(privacy.VerificationMethods, method) {
		return nil, tutela.FieldErrorf("method", "method must be one of %s", strings.Join(privacy.VerificationMethods, ", "))
	}
	if result != privacy.VerificationVerified && result != privacy.VerificationFailed {
		return nil, tutela.FieldErrorf("result", "result must be verified or failed")
	}
	d, err := r.open(ctx, id, privacy.DSRReceived)
	if err != nil {
		return nil, err
	}
	d.Verification, d.VerificationMethod = result, method
	if result == privacy.VerificationVerified {
		d.Status = privacy.DSRVerified
		if err := r.set(ctx, d, `status = $1, verification = $2, verification_method = $3`, d.Status, result, method); err != nil {
			return nil, err
		}
		return d, r.step(ctx, d, "identity_verified", map[string]any{"method": method})
	}
	if err := r.set(ctx, d, `verification = $1, verification_method = $2`, result, method); err != nil {
		return nil, err
	}
	return d, r.stepOutcome(ctx, d, "identity_failed", audit.OutcomeFailure, map[string]any{"method": method})
}

// Assign names who works the request and who approves it: two different users of the tenant,
// both active, the assignee allowed to UPDATE requests and the approver to APPROVE them (four
// eyes). Only a verified request is assigned; reassigning one in progress is allowed (and
// recorded).
func (r DSRs) Assign(ctx context.Context, id, assignee, approver string) (*DSR, error) {
	switch {
	case !tutela.ValidID(assignee):
		return nil, tutela.FieldErrorf("assignee", "assignee must be a user's ID")
	case !tutela.ValidID(approver):
		return nil, tutela.FieldErrorf("approver", "approver must be a user's ID")
	case assignee == approver:
		return nil, tutela.FieldErrorf("approver", "the approver must be another person than the assignee (four eyes)")
	}
	d, err := r.open(ctx, id, privacy.DSRVerified, privacy.DSRInProgress)
	if err != nil {
		return nil, err
	}
	for _, c := range []struct {
		field, user string
		action      authz.Action
	}{{"assignee", assignee, authz.Update}, {"approver", approver, authz.Approve}} {
		st, err := r.tx.Users(r.tenantID).AuthState(ctx, c.user)
		if tutela.ErrorCode(err) == tutela.ENOTFOUND || err == nil && st.Status != tutela.StatusActive {
			return nil, tutela.FieldErrorf(c.field, "the %s must be an active user of this tenant", c.field)
		}
		if err != nil {
			return nil, err
		}
		pol, err := r.tx.Policy(ctx, r.tenantID, c.user)
		if err != nil {
			return nil, err
		}
		if !authz.Decide(pol, authz.Request{Action: c.action, Resource: authz.ResDSR}, r.tx.now).Allow {
			return nil, tutela.FieldErrorf(c.field, "the %s must be a user of this tenant allowed to %s data-subject requests", c.field, c.action)
		}
	}
	d.Assignee, d.Approver, d.Status = assignee, approver, privacy.DSRInProgress
	if err := r.set(ctx, d, `assignee = $1, approver = $2, status = $3`, assignee, approver, d.Status); err != nil {
		return nil, err
	}
	return d, r.step(ctx, d, "assigned", map[string]any{"assignee": assignee, "approver": approver})
}

// Submit is the assignee handing the worked request to the approver. A rectification names the
// fields the assignee rectified (names of the tenant's subject schema, never values).
func (r DSRs) Submit(ctx context.Context, id, actorID string, rectified []string) (*DSR, error) {
	d, err := r.open(ctx, id, privacy.DSRInProgress)
	if err != nil {
		return nil, err
	}
	if actorID == "" || actorID != d.Assignee {
		return nil, tutela.Errorf(tutela.EFORBIDDEN, "only the request's assignee submits it")
	}
	if d.Kind == privacy.DSRRectification {
		if len(rectified) == 0 {
			return nil, tutela.FieldErrorf("rectified_fields", "a rectification names the fields rectified (PATCH the subject first)")
		}
		schema, err := r.tx.SubjectSchema(r.tenantID).Get(ctx)
		if err != nil {
			return nil, err
		}
		for _, f := range rectified {
			if _, ok := schema.Field(f); !ok {
				return nil, tutela.FieldErrorf("rectified_fields", "%q is not a field of this tenant's subject schema", f)
			}
		}
		rectified = slices.Compact(slices.Sorted(slices.Values(rectified)))
	} else if len(rectified) > 0 {
		return nil, tutela.FieldErrorf("rectified_fields", "only a rectification names rectified fields")
	}
	b, _ := json.Marshal(nonNil(rectified))
	d.Status, d.RectifiedFields = privacy.DSRSubmitted, nonNil(rectified)
	if err := r.set(ctx, d, `status = $1, rectified_fields = $2`, d.Status, string(b)); err != nil {
		return nil, err
	}
	return d, r.step(ctx, d, "submitted", map[string]any{"rectified_fields": d.RectifiedFields})
}

// Approvable returns request id, locked for the rest of tx, if actorID may approve it now: it
// is submitted (or blocked), the requester's identity is verified, actorID is its approver and
// not its assignee. It changes nothing: a caller checks it before asking for approval of the
// execution (approvals.ActionErasure), then calls Approve.
func (r DSRs) Approvable(ctx context.Context, id, actorID string) (*DSR, error) {
	d, err := r.open(ctx, id, privacy.DSRSubmitted, privacy.DSRBlocked)
	if err != nil {
		return nil, err
	}
	switch {
	case d.Verification != privacy.VerificationVerified:
		// Fail closed: whatever the status says, nothing executes without a verified identity.
		return nil, tutela.Errorf(tutela.ECONFLICT, "the requester's identity is not verified: nothing is executed")
	case actorID == "" || actorID != d.Approver:
		return nil, tutela.Errorf(tutela.EFORBIDDEN, "only the request's approver approves it")
	case actorID == d.Assignee:
		return nil, tutela.Errorf(tutela.EFORBIDDEN, "the assignee cannot approve their own work (four eyes)")
	}
	return d, nil
}

// Approve is the approver's decision on a submitted (or blocked) request. It checks the four
// eyes and the identity once more (Approvable) and records the step; the caller then executes
// the request in the same transaction (package dsr), so an approval that cannot execute rolls
// back.
func (r DSRs) Approve(ctx context.Context, id, actorID string) (*DSR, error) {
	d, err := r.Approvable(ctx, id, actorID)
	if err != nil {
		return nil, err
	}
	return d, r.step(ctx, d, "approved", nil)
}

// Complete marks an approved request executed and completed, with its outcome.
func (r DSRs) Complete(ctx context.Context, d *DSR, outcome string, details map[string]any) error {
	now := r.tx.now
	d.Status, d.Outcome, d.CompletedAt, d.BlockedReason = privacy.DSRCompleted, outcome, &now, ""
	if err := r.set(ctx, d, `status = $1, outcome = $2, completed_at = $3, blocked_reason = ''`, d.Status, outcome, now); err != nil {
		return err
	}
	if details == nil {
		details = map[string]any{}
	}
	details["outcome"] = outcome
	return r.step(ctx, d, "completed", details)
}

// Block marks an approved request that could not execute (an active legal hold refused the
// erasure): it stays open, with the reason, until a new approval executes it.
func (r DSRs) Block(ctx context.Context, d *DSR, reason string, details map[string]any) error {
	d.Status, d.BlockedReason = privacy.DSRBlocked, reason
	if err := r.set(ctx, d, `status = $1, blocked_reason = $2`, d.Status, reason); err != nil {
		return err
	}
	return r.stepOutcome(ctx, d, "blocked", audit.OutcomeFailure, details)
}

// Reject closes an open request without acting on it. The reason is required (GDPR Art. 12(4)
// and 12(5): the subject is told why) and is kept: a case reference and the ground, no one's
// personal data.
//
// Refusing someone their right takes four eyes too: actorID (the rejecter) must be a person and
// not the request's assignee, whose own work the refusal would otherwise close unchecked.
func (r DSRs) Reject(ctx context.Context, id, actorID, reason string) (*DSR, error) {
	if err := checkDSRReason(reason); err != nil {
		return nil, err
	}
	d, err := r.open(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case actorID == "":
		return nil, tutela.Errorf(tutela.EFORBIDDEN, "a request is rejected by a person (four eyes), not a service account")
	case actorID == d.Assignee:
		return nil, tutela.Errorf(tutela.EFORBIDDEN, "the assignee cannot reject the request they work (four eyes): another person allowed to APPROVE rejects it")
	}
	now := r.tx.now
	d.Status, d.Outcome, d.OutcomeReason, d.CompletedAt = privacy.DSRRejected, "rejected", strings.TrimSpace(reason), &now
	if err := r.set(ctx, d, `status = $1, outcome = $2, outcome_reason = $3, completed_at = $4`, d.Status, d.Outcome,
		d.OutcomeReason, now); err != nil {
		return nil, err
	}
	return d, r.step(ctx, d, "rejected", map[string]any{"reason": d.OutcomeReason})
}

// Extend moves an open request's due date once, by up to the policy's maximum (GDPR Art.
// 12(3): two further months where necessary, the subject told why), and schedules its
// reminders and overdue notice again (the earlier jobs find the due date moved and do nothing).
func (r DSRs) Extend(ctx context.Context, id string, days int, reason string, pol privacy.DSRPolicy) (*DSR, error) {
	if days < 1 || days > pol.MaxExtensionDays {
		return nil, tutela.FieldErrorf("days", "days must be from 1 to %d", pol.MaxExtensionDays)
	}
	if err := checkDSRReason(reason); err != nil {
		return nil, err
	}
	d, err := r.open(ctx, id)
	if err != nil {
		return nil, err
	}
	if d.ExtensionDays > 0 {
		return nil, tutela.Errorf(tutela.ECONFLICT, "this request was already extended; a request is extended once")
	}
	old := d.DueAt
	d.DueAt, d.ExtensionDays, d.ExtensionReason = d.DueAt.AddDate(0, 0, days), days, strings.TrimSpace(reason)
	if err := r.set(ctx, d, `due_at = $1, extension_days = $2, extension_reason = $3`, d.DueAt, days, d.ExtensionReason); err != nil {
		return nil, err
	}
	if err := r.scheduleDeadlines(ctx, d, pol); err != nil {
		return nil, err
	}
	return d, r.step(ctx, d, "extended", map[string]any{"days": days, "reason": d.ExtensionReason,
		"previous_due_at": old.Format(time.RFC3339), "due_at": d.DueAt.Format(time.RFC3339)})
}

func checkDSRReason(reason string) error {
	if strings.TrimSpace(reason) == "" || len(reason) > maxHoldReason || !tutela.ValidText(reason) {
		return tutela.FieldErrorf("reason", "reason is required: one line of at most %d bytes (a case reference and the ground, no personal data)", maxHoldReason)
	}
	return nil
}

// Steps lists a request's history, oldest first.
func (r DSRs) Steps(ctx context.Context, id string) ([]*DSRStep, error) {
	rows, err := r.tx.query(ctx, `SELECT id, dsr_id, at, actor_type, actor_id, step, details FROM dsr_steps
		WHERE tenant_id = $1 AND dsr_id = $2 ORDER BY at, id`, r.tenantID, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*DSRStep{}
	for rows.Next() {
		var s DSRStep
		var details string
		if err := rows.Scan(&s.ID, &s.DSRID, &s.At, &s.ActorType, &s.ActorID, &s.Step, &details); err != nil {
			return nil, err
		}
		s.At = s.At.UTC()
		if err := json.Unmarshal([]byte(details), &s.Details); err != nil {
			return nil, err
		}
		out = append(out, &s)
	}
	return out, rows.Err()
}

// Text returns the request's sealed text (nil when there is none or the subject was erased).
func (r DSRs) Text(ctx context.Context, id string) ([]byte, error) {
	var ct []byte
	err := r.tx.queryRow(ctx, `SELECT ciphertext FROM dsr_texts WHERE tenant_id = $1 AND dsr_id = $2`, r.tenantID, id).Scan(&ct)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return ct, err
}

// DSRFilter selects requests for List. Empty fields match everything.
type DSRFilter struct {
	Status    string
	Assignee  string
	SubjectID string
	// Overdue lists only open requests past their due date.
	Overdue bool
	Cursor  string // a request ID
	Limit   int
}

// List returns the tenant's requests in ID order, up to f.Limit after f.Cursor.
func (r DSRs) List(ctx context.Context, f DSRFilter) ([]*DSR, error) {
	out := []*DSR{}
	if !tutela.ValidID(r.tenantID) {
		return out, nil
	}
	q := `SELECT ` + dsrCols + ` FROM dsr_requests WHERE tenant_id = $1 AND id > $2`
	args := []any{r.tenantID, cursorID(f.Cursor)}
	add := func(cond string, v any) {
		args = append(args, v)
		q += " AND " + strings.ReplaceAll(cond, "?", "$"+itoa(len(args)))
	}
	if f.Status != "" {
		add("status = ?", f.Status)
	}
	if f.Assignee != "" {
		add("assignee = ?", f.Assignee)
	}
	if f.SubjectID != "" {
		add("subject_id = ?", f.SubjectID)
	}
	if f.Overdue {
		add("completed_at IS NULL AND due_at <= ?", r.tx.now)
	}
	args = append(args, clampLimit(f.Limit))
	rows, err := r.tx.query(ctx, q+` ORDER BY id LIMIT $`+itoa(len(args)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanDSR(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
