package httpapi

import (
	"net/http"

	"tutela"
	"tutela/approvals"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
)

// approvalFields are the body fields of every call a policy may hold for approval; handlers
// embed it in their request struct. Neither is part of the approved parameters.
type approvalFields struct {
	Justification string `json:"justification,omitempty"`
	ApprovalID    string `json:"approval_id,omitempty"`
}

// gated is one call a policy may hold.
type gated struct {
	Action     string // approvals.Action*
	TargetType string
	TargetID   string
	Params     any // exactly what the call will do (canonicalized with approvals.Canonical)
	approvalFields
}

// gate runs inside the handler's write transaction, after authorization and validation and
// before the change. It returns (nil, nil) when the call may proceed now: the tenant's policy for
// g.Action is off, or g.ApprovalID names an approved, unexpired, unexecuted request of this
// tenant, made by this same principal, for the same action and target, whose parameters'
// MAC equals the MAC of g.Params (then the request is marked executed in this transaction,
// conditionally, so it runs once; audited approval.executed). With the policy on and no
// approval_id it creates the request (justification required, tutela.ValidFreeText, 1..2000
// runes; else EINVALID field justification), audits approval.requested with the justification,
// notifies (see part C), and returns it: the handler then commits WITHOUT making the change and
// answers writeHeld. A wrong approval_id: EAPPROVAL with Reason one of "unknown" (also another
// tenant's or malformed), "pending", "rejected", "expired", "cancelled", "executed",
// "not_requester", "mismatch" (params, action or target differ), "tampered".
func (s *Server) gate(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, tenantID string, g gated) (*approvals.Request, error) {
	pol, err := tx.Approvals(tenantID).Policy(r.Context(), g.Action)
	if err != nil {
		return nil, err
	}
	return s.gateUnder(r, tx, p, tenantID, g, pol)
}

// gateUnder is gate with the policy given: a weakening policy change (ActionPolicyChange) is
// held under the old policy of the action it changes.
func (s *Server) gateUnder(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, tenantID string, g gated, pol approvals.Policy) (*approvals.Request, error) {
	if !pol.Enabled {
		return nil, nil
	}
	params, err := approvals.Canonical(g.Params)
	if err != nil {
		return nil, tutela.Wrap(err, "approval parameters")
	}
	store := tx.Approvals(tenantID)
	if g.ApprovalID != "" {
		// The approved call: exactly the parameters approved, by whoever asked, once.
		_, err := store.Execute(r.Context(), g.ApprovalID, sqlstore.Execution{Kind: p.Kind, PrincipalID: p.UserID,
			Action: g.Action, TargetType: g.TargetType, TargetID: g.TargetID, Params: params})
		return nil, err
	}
	if !approvals.ValidText(g.Justification) {
		return nil, tutela.FieldErrorf("justification",
			"this call needs approval: give a justification of 1 to %d characters saying why", approvals.MaxJustification)
	}
	req := &approvals.Request{Action: g.Action, TargetType: g.TargetType, TargetID: g.TargetID, Params: params,
		Justification: g.Justification, RequestedBy: p.UserID, RequesterKind: p.Kind}
	if err := store.Create(r.Context(), req, pol); err != nil {
		return nil, err
	}
	approvers, err := store.Approvers(r.Context(), req.ApproverRoles, req.RequesterPerson)
	if err != nil {
		return nil, err
	}
	if err := s.notifyApproval(r.Context(), tx, req, "approval.requested", approvers); err != nil {
		return nil, err
	}
	return req, nil
}

// approvalURL is where a request is read.
func approvalURL(req *approvals.Request) string {
	return "/v1/tenants/" + req.TenantID + "/approvals/" + req.ID
}

// writeHeld answers 202 Accepted {"approval": req} (Location: the request's URL).
func writeHeld(w http.ResponseWriter, r *http.Request, req *approvals.Request) {
	w.Header().Set("Location", approvalURL(req))
	middleware.WriteJSON(w, http.StatusAccepted, map[string]any{"approval": req})
}

// wroteErrOrHeld answers a gated call that did not complete: its error, or its request held
// for approval (202). It reports whether it wrote; if not, the call ran and the caller answers.
func wroteErrOrHeld(w http.ResponseWriter, r *http.Request, err error, held *approvals.Request) bool {
	switch {
	case err != nil:
		middleware.WriteError(w, r, err)
	case held != nil:
		writeHeld(w, r, held)
	default:
		return false
	}
	return true
}
