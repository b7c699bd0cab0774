package sqlstore

import (
	"context"
	"crypto/hmac"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"tutela"
	"tutela/approvals"
	"tutela/authz"
	"tutela/vault"
)

// Approvals is a tenant's approval policies and requests (issue 18, package approvals).
type Approvals struct {
	tx       *Tx
	tenantID string
}

// Approvals scopes the approval store to one tenant.
func (tx *Tx) Approvals(tenantID string) Approvals { return Approvals{tx: tx, tenantID: tenantID} }

var errNoApproval = tutela.Errorf(tutela.ENOTFOUND, "approval request not found")

// ErrApprovalExpired is Decide's answer for a pending request whose time ran out: the request
// has been marked expired (and audited) in the transaction, which the caller should commit
// before answering with this error.
var ErrApprovalExpired = tutela.Errorf(tutela.ECONFLICT, "the approval request has expired")

// Policy returns the tenant's policy for action: the stored one, or approvals.DefaultPolicy.
func (s Approvals) Policy(ctx context.Context, action string) (approvals.Policy, error) {
	if !slices.Contains(approvals.Actions, action) {
		return approvals.Policy{}, tutela.Errorf(tutela.ENOTFOUND, "no such approval action")
	}
	if !tutela.ValidID(s.tenantID) {
		return approvals.Policy{}, tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	p, err := scanPolicy(s.tx.queryRow(ctx, `SELECT action, enabled, approver_roles, required, ttl_seconds, updated_at, updated_by
		FROM approval_policies WHERE tenant_id = $1 AND action = $2`, s.tenantID, action))
	if errors.Is(err, sql.ErrNoRows) {
		return approvals.DefaultPolicy(action), nil
	}
	return p, err
}

// Policies returns the tenant's policy for every action, in approvals.Actions order.
func (s Approvals) Policies(ctx context.Context) ([]approvals.Policy, error) {
	out := make([]approvals.Policy, 0, len(approvals.Actions))
	for _, a := range approvals.Actions {
		p, err := s.Policy(ctx, a)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// SetPolicy validates and stores p (UpdatedAt now; UpdatedBy as given) and audits
// approval.policy_changed with the old and new rule and the justification. Whether the change
// needed approval is the caller's (approvals.Policy.Weakens); that the roles exist is checked
// here.
func (s Approvals) SetPolicy(ctx context.Context, p *approvals.Policy, justification string) error {
	if err := s.CheckPolicy(ctx, *p); err != nil {
		return err
	}
	old, err := s.Policy(ctx, p.Action)
	if err != nil {
		return err
	}
	rj, err := json.Marshal(p.ApproverRoles)
	if err != nil {
		return err
	}
	p.UpdatedAt = s.tx.now
	if _, err := s.tx.exec(ctx, `INSERT INTO approval_policies (tenant_id, action, enabled, approver_roles, required, ttl_seconds, updated_at, updated_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (tenant_id, action) DO UPDATE SET enabled = excluded.enabled, approver_roles = excluded.approver_roles,
			required = excluded.required, ttl_seconds = excluded.ttl_seconds, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		s.tenantID, p.Action, p.Enabled, string(rj), p.Required, int64(p.TTL/time.Second), p.UpdatedAt, p.UpdatedBy); err != nil {
		if isForeignKeyErr(err) {
			return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
		}
		return err
	}
	return s.tx.Record(ctx, "approval.policy_changed", s.tenantID, "approval_policy", p.Action, "", map[string]any{
		"old": policyDetails(old), "new": policyDetails(*p), "justification": justification})
}

// CheckPolicy validates p (approvals.Policy.Validate) and checks that its approver roles exist
// in the tenant (built-in or the tenant's own).
func (s Approvals) CheckPolicy(ctx context.Context, p approvals.Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	roles, err := s.tx.Roles(ctx, s.tenantID)
	if err != nil {
		return err
	}
	for _, k := range p.ApproverRoles {
		if k == authz.RolePartner {
			// A partner's users are outsiders who see only what is shared with them.
			return tutela.FieldErrorf("approver_roles", "the partner role cannot approve the tenant's calls")
		}
		if !slices.ContainsFunc(roles, func(r *Role) bool { return r.Key == k }) {
			return tutela.FieldErrorf("approver_roles", "approver_roles names a role the tenant does not have")
		}
	}
	return nil
}

func policyDetails(p approvals.Policy) map[string]any {
	return map[string]any{"enabled": p.Enabled, "approver_roles": p.ApproverRoles, "required": p.Required,
		"ttl_seconds": int64(p.TTL / time.Second)}
}

func scanPolicy(row interface{ Scan(...any) error }) (approvals.Policy, error) {
	var p approvals.Policy
	var roles string
	var ttl int64
	if err := row.Scan(&p.Action, &p.Enabled, &roles, &p.Required, &ttl, &p.UpdatedAt, &p.UpdatedBy); err != nil {
		return p, err
	}
	p.TTL, p.UpdatedAt = time.Duration(ttl)*time.Second, p.UpdatedAt.UTC()
	return p, json.Unmarshal([]byte(roles), &p.ApproverRoles)
}

// mac computes a request's parameter MAC under key keyID of the tenant's approvals keyset, or,
// with primary, under the keyset's primary key, which it returns.
func (s Approvals) mac(ctx context.Context, primary bool, keyID uint32, id, action, targetType, targetID string, params []byte) (uint32, []byte, error) {
	vctx, v, err := s.tx.vaultCtx(ctx)
	if err != nil {
		return 0, nil, err
	}
	if primary {
		if keyID, err = v.PRFPrimaryKey(vctx, s.tenantID, vault.PurposeApprovals); err != nil {
			return 0, nil, err
		}
	}
	tag, err := v.PRF(vctx, s.tenantID, vault.PurposeApprovals, keyID,
		approvals.MACInput(s.tenantID, id, action, targetType, targetID, params), approvals.MACSize)
	return keyID, tag, err
}

// intact reports whether r's stored row still matches its MAC. A key that no longer exists
// (retired, destroyed) cannot vouch for the row either.
func (s Approvals) intact(ctx context.Context, r *approvals.Request) (bool, error) {
	_, want, err := s.mac(ctx, false, r.KeyID, r.ID, r.Action, r.TargetType, r.TargetID, r.Params)
	if errors.Is(err, vault.ErrUnknownKey) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return hmac.Equal(want, r.ParamsMAC), nil
}

var errTampered = approvals.Refusal(approvals.ReasonTampered,
	"the approval request was altered after it was made; it cannot be decided or run")

// Create stores a new pending request for the call r describes (Action, TargetType, TargetID,
// Params, Justification, RequestedBy, RequesterKind), held under pol (its approver roles and
// N, its TTL from now), with its parameters' MAC, and audits approval.requested with the
// justification.
func (s Approvals) Create(ctx context.Context, r *approvals.Request, pol approvals.Policy) error {
	if !tutela.ValidID(s.tenantID) {
		return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
	}
	switch {
	case !slices.Contains(approvals.Actions, r.Action):
		return tutela.FieldErrorf("action", "unknown approval action")
	case r.TargetType == "" || len(r.TargetType) > 64 || r.TargetID == "" || len(r.TargetID) > 200 ||
		!tutela.ValidText(r.TargetType) || !tutela.ValidText(r.TargetID):
		return tutela.FieldErrorf("target", "an approval request names one target")
	case !approvals.ValidText(r.Justification):
		return tutela.FieldErrorf("justification", "justification must be 1 to %d characters of text saying why", approvals.MaxJustification)
	case r.RequesterKind != tutela.PrincipalUser && r.RequesterKind != tutela.PrincipalServiceAccount:
		return tutela.Errorf(tutela.EFORBIDDEN, "only a user or a service account may request an approval")
	case !json.Valid(r.Params):
		return tutela.FieldErrorf("params", "parameters must be canonical JSON")
	}
	if err := pol.Validate(); err != nil {
		return err
	}
	person, err := s.tx.PersonOf(ctx, s.tenantID, r.RequesterKind, r.RequestedBy)
	if err != nil {
		return err
	}
	if strings.HasPrefix(person, "sa:") {
		// Nobody is known to have made this service account (it predates migration 00028), so
		// nobody could be kept from approving its requests, its maker included: fail closed.
		return tutela.Errorf(tutela.EFORBIDDEN,
			"this service account's creator is not recorded (it predates approvals), so it cannot ask for approval; create a new service account for this call")
	}
	r.ID, r.TenantID, r.RequesterPerson, r.State, r.Approvals = tutela.NewID(), s.tenantID, person, approvals.StatePending, 0
	r.ApproverRoles, r.Required = slices.Clone(pol.ApproverRoles), pol.Required
	r.CreatedAt, r.ExpiresAt = s.tx.now, s.tx.now.Add(pol.TTL)
	r.DecidedAt, r.ExecutedAt, r.Decisions = nil, nil, nil
	if r.KeyID, r.ParamsMAC, err = s.mac(ctx, true, 0, r.ID, r.Action, r.TargetType, r.TargetID, r.Params); err != nil {
		return err
	}
	roles, err := json.Marshal(r.ApproverRoles)
	if err != nil {
		return err
	}
	// The reminder goes out when half the request's life is gone (SweepApprovals).
	remindAt := r.CreatedAt.Add(pol.TTL / 2)
	if _, err := s.tx.exec(ctx, `INSERT INTO approval_requests (id, tenant_id, action, target_type, target_id, params, params_mac,
		key_id, justification, requested_by, requester_kind, requester_person, state, approver_roles, required, approvals,
		created_at, expires_at, remind_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,0,$16,$17,$18)`,
		r.ID, r.TenantID, r.Action, r.TargetType, r.TargetID, string(r.Params), r.ParamsMAC, int64(r.KeyID), r.Justification,
		r.RequestedBy, r.RequesterKind, r.RequesterPerson, string(r.State), string(roles), r.Required, r.CreatedAt,
		r.ExpiresAt, remindAt); err != nil {
		if isForeignKeyErr(err) {
			return tutela.Errorf(tutela.ENOTFOUND, "tenant not found")
		}
		return err
	}
	return s.tx.Record(ctx, "approval.requested", s.tenantID, "approval_request", r.ID, "", map[string]any{
		"action": r.Action, "target_type": r.TargetType, "target_id": r.TargetID, "justification": r.Justification,
		"approver_roles": r.ApproverRoles, "required": r.Required, "expires_at": r.ExpiresAt.Format(time.RFC3339)})
}

const approvalCols = `id, tenant_id, action, target_type, target_id, params, params_mac, key_id, justification, requested_by,
	requester_kind, requester_person, state, approver_roles, required, approvals, created_at, expires_at, decided_at, executed_at`

// Get returns the tenant's request with its decisions; another tenant's, an unknown or a
// malformed ID is not found.
func (s Approvals) Get(ctx context.Context, id string) (*approvals.Request, error) {
	r, err := s.get(ctx, id, "")
	if err != nil {
		return nil, err
	}
	if r.Decisions, err = s.decisions(ctx, r.ID); err != nil {
		return nil, err
	}
	return r, nil
}

func (s Approvals) get(ctx context.Context, id, lock string) (*approvals.Request, error) {
	if !tutela.ValidID(s.tenantID) || !tutela.ValidID(id) {
		return nil, errNoApproval
	}
	return scanApproval(s.tx.queryRow(ctx, `SELECT `+approvalCols+` FROM approval_requests WHERE tenant_id = $1 AND id = $2`+
		s.tx.lockClause(lock), s.tenantID, id))
}

func (s Approvals) decisions(ctx context.Context, requestID string) ([]approvals.Decision, error) {
	rows, err := s.tx.query(ctx, `SELECT id, request_id, decided_by, verdict, comment, decided_at FROM approval_decisions
		WHERE tenant_id = $1 AND request_id = $2 ORDER BY decided_at, id`, s.tenantID, requestID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []approvals.Decision{}
	for rows.Next() {
		var d approvals.Decision
		if err := rows.Scan(&d.ID, &d.RequestID, &d.DecidedBy, &d.Verdict, &d.Comment, &d.DecidedAt); err != nil {
			return nil, err
		}
		d.DecidedAt = d.DecidedAt.UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}

func scanApproval(row interface{ Scan(...any) error }) (*approvals.Request, error) {
	var r approvals.Request
	var params, state, roles string
	var keyID int64
	var decided, executed sql.NullTime
	err := row.Scan(&r.ID, &r.TenantID, &r.Action, &r.TargetType, &r.TargetID, &params, &r.ParamsMAC, &keyID, &r.Justification,
		&r.RequestedBy, &r.RequesterKind, &r.RequesterPerson, &state, &roles, &r.Required, &r.Approvals, &r.CreatedAt,
		&r.ExpiresAt, &decided, &executed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoApproval
	}
	if err != nil {
		return nil, err
	}
	r.Params, r.State, r.KeyID = json.RawMessage(params), approvals.State(state), uint32(keyID) // #nosec G115 -- key IDs are written from uint32 values
	r.CreatedAt, r.ExpiresAt = r.CreatedAt.UTC(), r.ExpiresAt.UTC()
	if decided.Valid {
		t := decided.Time.UTC()
		r.DecidedAt = &t
	}
	if executed.Valid {
		t := executed.Time.UTC()
		r.ExecutedAt = &t
	}
	if err := json.Unmarshal([]byte(roles), &r.ApproverRoles); err != nil {
		return nil, err
	}
	return &r, nil
}

// ApprovalQuery selects requests for List. Empty fields match everything.
type ApprovalQuery struct {
	State  approvals.State
	Action string
	// RequestedBy keeps only the requests this principal made (a caller without approvals
	// READ sees only their own).
	RequestedBy string
	// After is the cursor List returned for the previous page ("" for the first).
	After string
	Limit int // default 50, at most MaxPageSize
}

var approvalStates = []approvals.State{approvals.StatePending, approvals.StateApproved, approvals.StateRejected,
	approvals.StateExpired, approvals.StateCancelled, approvals.StateExecuted}

// List returns the tenant's requests, newest first, without their decisions, and the cursor of
// the next page ("" on the last).
func (s Approvals) List(ctx context.Context, q ApprovalQuery) (out []approvals.Request, next string, err error) {
	out = []approvals.Request{}
	switch {
	case q.State != "" && !slices.Contains(approvalStates, q.State):
		return nil, "", tutela.FieldErrorf("state", "state must be one of pending, approved, rejected, expired, cancelled, executed")
	case q.Action != "" && !slices.Contains(approvals.Actions, q.Action):
		return nil, "", tutela.FieldErrorf("action", "action must be one of %v", approvals.Actions)
	case q.After != "" && !tutela.ValidID(q.After):
		return nil, "", tutela.FieldErrorf("cursor", "the cursor is not valid")
	}
	if !tutela.ValidID(s.tenantID) {
		return out, "", nil
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, MaxPageSize)
	sqlq, args := `SELECT `+approvalCols+` FROM approval_requests WHERE tenant_id = $1`, []any{s.tenantID}
	add := func(cond string, v any) {
		args = append(args, v)
		sqlq += " AND " + cond + " $" + itoa(len(args))
	}
	if q.State != "" {
		add("state =", string(q.State))
	}
	if q.Action != "" {
		add("action =", q.Action)
	}
	if q.RequestedBy != "" {
		add("requested_by =", q.RequestedBy)
	}
	if q.After != "" {
		add("id <", q.After)
	}
	return newestFirst(ctx, s.tx, sqlq, args, limit, scanApproval, func(v *approvals.Request) string { return v.ID })
}

// Decision is one person's verdict as Decide takes it.
type Decision struct {
	UserID  string // the deciding user (service accounts do not decide)
	Verdict string // approvals.Approve or approvals.Reject
	Comment string
}

// Decide records d on the pending request id and moves it on: approved when the approvals
// reach its N, rejected at the first rejection. The request row is locked (PostgreSQL FOR
// UPDATE; SQLite has one writer) so concurrent decisions count exactly. Refused: a row that no
// longer matches its MAC (EAPPROVAL tampered), a request not pending (ECONFLICT), a pending one
// past its expiry (marked expired; ErrApprovalExpired, to be committed), the requester's own
// person, through any of their accounts or a service account they created (EFORBIDDEN), a
// decider without one of the request's approver roles now (EFORBIDDEN), and a second decision
// by the same person (ECONFLICT).
func (s Approvals) Decide(ctx context.Context, id string, d Decision) (*approvals.Request, error) {
	if d.Verdict != approvals.Approve && d.Verdict != approvals.Reject {
		return nil, tutela.FieldErrorf("verdict", "verdict must be approve or reject")
	}
	if !approvals.ValidText(d.Comment) {
		return nil, tutela.FieldErrorf("comment", "comment must be 1 to %d characters of text", approvals.MaxJustification)
	}
	r, err := s.get(ctx, id, "FOR UPDATE")
	if err != nil {
		return nil, err
	}
	if ok, err := s.intact(ctx, r); err != nil {
		return nil, err
	} else if !ok {
		return nil, errTampered
	}
	if r.State == approvals.StatePending && !s.tx.now.Before(r.ExpiresAt) {
		if err := s.expire(ctx, r); err != nil {
			return nil, err
		}
		return r, ErrApprovalExpired
	}
	if r.State != approvals.StatePending {
		return nil, tutela.Errorf(tutela.ECONFLICT, "the approval request is %s, not pending", r.State)
	}
	person, err := s.tx.PersonOf(ctx, s.tenantID, tutela.PrincipalUser, d.UserID)
	if err != nil {
		return nil, err
	}
	// The requester's person now, as well as when they asked: accounts linked since count.
	current, err := s.tx.PersonOf(ctx, s.tenantID, r.RequesterKind, r.RequestedBy)
	if err != nil && tutela.ErrorCode(err) != tutela.ENOTFOUND {
		return nil, err
	}
	if d.UserID == r.RequestedBy || person == r.RequesterPerson || person == current {
		return nil, tutela.Errorf(tutela.EFORBIDDEN, "nobody decides their own request, through any of their accounts")
	}
	// The role must have been held since before the request was made: otherwise whoever may
	// grant a role that hands over no account (so no approval guards the grant) could make an
	// approver of an account they control after seeing their own request.
	holds, err := s.tx.holdsAnyRole(ctx, s.tenantID, d.UserID, r.ApproverRoles, r.CreatedAt)
	if err != nil {
		return nil, err
	}
	if !holds {
		return nil, tutela.Errorf(tutela.EFORBIDDEN,
			"only someone who held one of the roles %v before the request was made may decide it", r.ApproverRoles)
	}
	prior, err := s.decisions(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	for _, p := range prior {
		// Accounts linked to one person after their first decision are still one person.
		pp, err := s.tx.PersonOf(ctx, s.tenantID, tutela.PrincipalUser, p.DecidedBy)
		if err != nil && tutela.ErrorCode(err) != tutela.ENOTFOUND {
			return nil, err
		}
		if p.DecidedBy == d.UserID || pp == person {
			return nil, tutela.Errorf(tutela.ECONFLICT, "you have already decided this request")
		}
	}
	dec := approvals.Decision{ID: tutela.NewID(), RequestID: r.ID, DecidedBy: d.UserID, Verdict: d.Verdict, Comment: d.Comment,
		DecidedAt: s.tx.now}
	if _, err := s.tx.exec(ctx, `INSERT INTO approval_decisions (id, tenant_id, request_id, decided_by, decider_person, verdict,
		comment, decided_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`, dec.ID, s.tenantID, r.ID, dec.DecidedBy, person, dec.Verdict,
		dec.Comment, dec.DecidedAt); err != nil {
		if tutela.ErrorCode(err) == tutela.ECONFLICT {
			return nil, tutela.Errorf(tutela.ECONFLICT, "you have already decided this request")
		}
		return nil, err
	}
	if d.Verdict == approvals.Approve {
		r.Approvals++
		if r.Approvals >= r.Required {
			r.State = approvals.StateApproved
		}
	} else {
		r.State = approvals.StateRejected
	}
	var decidedAt any
	if r.State != approvals.StatePending {
		now := s.tx.now
		r.DecidedAt, decidedAt = &now, now
	}
	if _, err := s.tx.exec(ctx, `UPDATE approval_requests SET approvals = $1, state = $2, decided_at = $3
		WHERE tenant_id = $4 AND id = $5 AND state = 'pending'`, r.Approvals, string(r.State), decidedAt, s.tenantID, r.ID); err != nil {
		return nil, err
	}
	r.Decisions = append(prior, dec)
	return r, s.tx.Record(ctx, "approval.decided", s.tenantID, "approval_request", r.ID, "", map[string]any{
		"verdict": d.Verdict, "comment": d.Comment, "approvals": r.Approvals, "required": r.Required, "state": string(r.State)})
}

// expire marks r expired (if still open) and audits approval.expired.
func (s Approvals) expire(ctx context.Context, r *approvals.Request) error {
	res, err := s.tx.exec(ctx, `UPDATE approval_requests SET state = 'expired' WHERE tenant_id = $1 AND id = $2
		AND state IN ('pending', 'approved')`, s.tenantID, r.ID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return err // another transaction expired it first
	}
	prev := r.State
	r.State = approvals.StateExpired
	return s.tx.Record(ctx, "approval.expired", s.tenantID, "approval_request", r.ID, "", map[string]any{
		"action": r.Action, "previous_state": string(prev), "expires_at": r.ExpiresAt.Format(time.RFC3339)})
}

// Execution is the call that names an approval to run.
type Execution struct {
	Kind        string // the calling principal's kind and ID
	PrincipalID string
	Action      string
	TargetType  string
	TargetID    string
	Params      json.RawMessage // canonical (approvals.Canonical)
}

// Execute lets the call e make under the approved request id run, once: the request must be the
// tenant's, intact, made by the same principal, approved, unexpired and unexecuted, and for the
// same action, target and parameters (their MAC equals the stored one). It is marked executed
// conditionally, so of concurrent calls exactly one passes, and approval.executed is audited.
// Every refusal is EAPPROVAL with its reason.
func (s Approvals) Execute(ctx context.Context, id string, e Execution) (*approvals.Request, error) {
	r, err := s.get(ctx, id, "FOR UPDATE")
	if tutela.ErrorCode(err) == tutela.ENOTFOUND {
		return nil, approvals.Refusal(approvals.ReasonUnknown, "no such approval request")
	}
	if err != nil {
		return nil, err
	}
	if ok, err := s.intact(ctx, r); err != nil {
		return nil, err
	} else if !ok {
		return nil, errTampered
	}
	if r.RequesterKind != e.Kind || r.RequestedBy != e.PrincipalID {
		return nil, approvals.Refusal(approvals.ReasonNotRequester, "only the principal who requested the approval may use it")
	}
	if r.State != approvals.StateApproved {
		return nil, approvals.Refusal(approvals.StateReason(r.State), "the approval request is "+string(r.State))
	}
	if !s.tx.now.Before(r.ExpiresAt) {
		return nil, approvals.Refusal(approvals.ReasonExpired, "the approval request has expired")
	}
	// The state column alone is not trusted: the approval must stand on its recorded decisions,
	// N approvals from distinct people other than the requester and no rejection. A row set to
	// approved behind the store's back is refused as tampered.
	approve, err := s.tx.count(ctx, `SELECT count(DISTINCT decider_person) FROM approval_decisions
		WHERE tenant_id = $1 AND request_id = $2 AND verdict = 'approve' AND decider_person <> $3`, s.tenantID, r.ID, r.RequesterPerson)
	if err != nil {
		return nil, err
	}
	reject, err := s.tx.count(ctx, `SELECT count(*) FROM approval_decisions WHERE tenant_id = $1 AND request_id = $2 AND verdict = 'reject'`,
		s.tenantID, r.ID)
	if err != nil {
		return nil, err
	}
	if approve < r.Required || reject > 0 {
		return nil, errTampered
	}
	if e.Action != r.Action || e.TargetType != r.TargetType || e.TargetID != r.TargetID {
		return nil, approvals.Refusal(approvals.ReasonMismatch, "the approval was given for another action or target")
	}
	_, tag, err := s.mac(ctx, false, r.KeyID, r.ID, e.Action, e.TargetType, e.TargetID, e.Params)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(tag, r.ParamsMAC) {
		return nil, approvals.Refusal(approvals.ReasonMismatch, "the call's parameters differ from the approved ones")
	}
	res, err := s.tx.exec(ctx, `UPDATE approval_requests SET state = 'executed', executed_at = $1
		WHERE tenant_id = $2 AND id = $3 AND state = 'approved'`, s.tx.now, s.tenantID, r.ID)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, err
	} else if n != 1 {
		return nil, approvals.Refusal(approvals.ReasonExecuted, "the approval request has already been used")
	}
	now := s.tx.now
	r.State, r.ExecutedAt = approvals.StateExecuted, &now
	return r, s.tx.Record(ctx, "approval.executed", s.tenantID, "approval_request", r.ID, "", map[string]any{
		"action": r.Action, "target_type": r.TargetType, "target_id": r.TargetID})
}

// Cancel withdraws the request id; only its requester (kind, principal ID) may, while it is
// pending or approved. Audits approval.cancelled.
func (s Approvals) Cancel(ctx context.Context, id, kind, principalID string) (*approvals.Request, error) {
	r, err := s.get(ctx, id, "FOR UPDATE")
	if err != nil {
		return nil, err
	}
	if r.RequesterKind != kind || r.RequestedBy != principalID {
		return nil, tutela.Errorf(tutela.EFORBIDDEN, "only the requester may cancel an approval request")
	}
	if r.State != approvals.StatePending && r.State != approvals.StateApproved {
		return nil, tutela.Errorf(tutela.ECONFLICT, "the approval request is %s; only a pending or approved one can be cancelled", r.State)
	}
	now := s.tx.now
	if _, err := s.tx.exec(ctx, `UPDATE approval_requests SET state = 'cancelled', decided_at = $1
		WHERE tenant_id = $2 AND id = $3 AND state IN ('pending', 'approved')`, now, s.tenantID, r.ID); err != nil {
		return nil, err
	}
	prev := r.State
	r.State, r.DecidedAt = approvals.StateCancelled, &now
	return r, s.tx.Record(ctx, "approval.cancelled", s.tenantID, "approval_request", r.ID, "", map[string]any{
		"action": r.Action, "previous_state": string(prev)})
}

// Approvers returns the active users of the tenant holding one of roles now, except those who
// are person (the requester's): whom a new request is announced to.
func (s Approvals) Approvers(ctx context.Context, roles []string, person string) ([]string, error) {
	if len(roles) == 0 || !tutela.ValidID(s.tenantID) {
		return []string{}, nil
	}
	q, args := rolesQuery(`SELECT DISTINCT ur.user_id FROM user_roles ur JOIN roles ro ON ro.id = ur.role_id
		JOIN users u ON u.tenant_id = ur.tenant_id AND u.id = ur.user_id
		WHERE ur.tenant_id = $1 AND u.status = 'active' AND (ur.expires_at IS NULL OR ur.expires_at > $2)`,
		[]any{s.tenantID, s.tx.now}, roles)
	ids, err := s.tx.queryStrings(ctx, q+` ORDER BY ur.user_id`, args...)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, id := range ids {
		p, err := s.tx.PersonOf(ctx, s.tenantID, tutela.PrincipalUser, id)
		if err != nil {
			return nil, err
		}
		if p != person {
			out = append(out, id)
		}
	}
	return out, nil
}

func rolesQuery(q string, args []any, roles []string) (string, []any) {
	ph := make([]string, len(roles))
	for i, r := range roles {
		args = append(args, r)
		ph[i] = "$" + itoa(len(args))
	}
	return q + ` AND ro.key IN (` + strings.Join(ph, ", ") + `)`, args
}

// holdsAnyRole reports whether the active user holds an unexpired grant of one of roles now,
// granted no later than since.
func (tx *Tx) holdsAnyRole(ctx context.Context, tenantID, userID string, roles []string, since time.Time) (bool, error) {
	if len(roles) == 0 || !tutela.ValidID(userID) {
		return false, nil
	}
	q, args := rolesQuery(`SELECT count(*) FROM user_roles ur JOIN roles ro ON ro.id = ur.role_id
		JOIN users u ON u.tenant_id = ur.tenant_id AND u.id = ur.user_id
		WHERE ur.tenant_id = $1 AND ur.user_id = $2 AND u.status = 'active' AND (ur.expires_at IS NULL OR ur.expires_at > $3)
		AND ur.granted_at <= $4`,
		[]any{tenantID, userID, tx.now, since.UTC()}, roles)
	n, err := tx.count(ctx, q, args...)
	return n > 0, err
}

// Sweep is what one SweepApprovals pass did.
type Sweep struct {
	Expired   []approvals.Request // pending or approved requests whose time ran out, now expired
	Reminders []approvals.Request // pending requests past half their life, now marked reminded
}

// sweepBatch bounds one pass; the next pass (a minute later) takes the rest.
const sweepBatch = 500

// SweepApprovals, across every tenant, marks the open requests past their expiry expired
// (audited approval.expired by the system) and marks reminded the pending ones that have
// passed half their life without a reminder, returning both for notification. Each row is
// changed conditionally, so nodes sweeping at once expire and remind each request once.
func (tx *Tx) SweepApprovals(ctx context.Context) (Sweep, error) {
	var sw Sweep
	due, err := tx.openApprovals(ctx, `state IN ('pending', 'approved') AND expires_at <= $1`)
	if err != nil {
		return sw, err
	}
	for i := range due {
		r := &due[i]
		before := r.State
		if err := tx.Approvals(r.TenantID).expire(ctx, r); err != nil {
			return sw, err
		}
		if r.State != before {
			sw.Expired = append(sw.Expired, *r)
		}
	}
	remind, err := tx.openApprovals(ctx, `state = 'pending' AND reminded_at IS NULL AND remind_at <= $1 AND expires_at > $1`)
	if err != nil {
		return sw, err
	}
	for _, r := range remind {
		res, err := tx.exec(ctx, `UPDATE approval_requests SET reminded_at = $1 WHERE id = $2 AND reminded_at IS NULL
			AND state = 'pending'`, tx.now, r.ID)
		if err != nil {
			return sw, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return sw, err
		} else if n == 1 {
			sw.Reminders = append(sw.Reminders, r)
		}
	}
	return sw, nil
}

func (tx *Tx) openApprovals(ctx context.Context, cond string) ([]approvals.Request, error) {
	rows, err := tx.query(ctx, `SELECT `+approvalCols+` FROM approval_requests WHERE `+cond+
		` ORDER BY expires_at, id LIMIT `+itoa(sweepBatch), tx.now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []approvals.Request
	for rows.Next() {
		r, err := scanApproval(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, rows.Err()
}
