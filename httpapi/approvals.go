package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"tutela"
	"tutela/approvals"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
)

// The approval engine's API (issue 18, docs/approvals.md): requests held by a tenant's
// policies, the decisions on them, the policies themselves, and linking two accounts as one
// person.
func (s *Server) approvalRoutes() {
	const base = "/v1/tenants/{tenant}/approvals"
	s.handle("GET", base, false, s.authed(false, s.listApprovals))
	s.handle("GET", base+"/{id}", false, s.authed(false, s.getApproval))
	s.handle("POST", base+"/{id}/decisions", false, s.authed(false, s.decideApproval))
	s.handle("POST", base+"/{id}/cancel", false, s.authed(false, s.cancelApproval))
	s.handle("GET", "/v1/tenants/{tenant}/approval-policies", false, s.authed(false, s.listApprovalPolicies))
	s.handle("PUT", "/v1/tenants/{tenant}/approval-policies/{action}", false, s.authed(false, s.putApprovalPolicy))
	s.handle("PUT", "/v1/tenants/{tenant}/users/{id}/person", false, s.authed(false, s.linkPerson))
}

// readsApprovals reports whether p holds approvals READ in the path's tenant. Without it a
// principal still reads the requests they made themselves.
func (s *Server) readsApprovals(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal) (*tutela.Tenant, bool, error) {
	t, err := pathTenant(r, tx, p)
	if err != nil {
		return nil, false, err
	}
	pol, err := principalPolicy(r, tx, p)
	if err != nil {
		return nil, false, err
	}
	d := authz.Decide(pol, authz.Request{Action: authz.Read, Resource: authz.ResApprovals, StepUpAt: p.StepUpAt}, s.d.Clock())
	return t, d.Allow && s.requireStepUp(p, d) == nil, nil
}

func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	cursor, limit, err := pageParams(r)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	q := sqlstore.ApprovalQuery{State: approvals.State(r.URL.Query().Get("state")), Action: r.URL.Query().Get("action"),
		After: cursor, Limit: limit}
	var list []approvals.Request
	err = s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, all, err := s.readsApprovals(r, tx, p)
		if err != nil {
			return err
		}
		if !all {
			q.RequestedBy = p.UserID
		}
		list, _, err = tx.Approvals(t.ID).List(r.Context(), q)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	writePage(w, "approvals", list, limit, func(a approvals.Request) string { return a.ID })
}

func (s *Server) getApproval(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req *approvals.Request
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, all, err := s.readsApprovals(r, tx, p)
		if err != nil {
			return err
		}
		if req, err = tx.Approvals(t.ID).Get(r.Context(), r.PathValue("id")); err != nil {
			return err
		}
		if !all && (req.RequestedBy != p.UserID || req.RequesterKind != p.Kind) {
			// Someone else's request, to a caller who may read only their own: as if absent.
			noteDenial(r.Context(), denial{action: string(authz.Read), resource: authz.ResApprovals, targetTenant: t.ID,
				targetID: req.ID, reason: "another principal's approval request, without approvals READ"})
			return tutela.Errorf(tutela.ENOTFOUND, "approval request not found")
		}
		return nil
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"approval": req})
}

type decisionRequest struct {
	Verdict string `json:"verdict"`
	Comment string `json:"comment"`
}

// decideApproval records one person's verdict. Deciding is not a permission: it takes a person
// (a service account has no second factor), a fresh step-up, one of the request's approver
// roles now, and not being the requester's person (sqlstore Approvals.Decide).
func (s *Server) decideApproval(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var body decisionRequest
	if err := middleware.DecodeJSON(w, r, &body); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var req *approvals.Request
	var refusal error // a refusal that still commits (the request marked expired)
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, err := pathTenant(r, tx, p)
		if err != nil {
			return err
		}
		if err := s.requireHumanStepUp(p); err != nil {
			if tutela.ErrorCode(err) == tutela.EFORBIDDEN {
				noteDenial(r.Context(), denial{action: "decide", resource: authz.ResApprovals, targetTenant: t.ID,
					targetID: r.PathValue("id"), reason: tutela.ErrorMessage(err)})
			}
			return err
		}
		req, err = tx.Approvals(t.ID).Decide(r.Context(), r.PathValue("id"),
			sqlstore.Decision{UserID: p.UserID, Verdict: body.Verdict, Comment: body.Comment})
		if errors.Is(err, sqlstore.ErrApprovalExpired) {
			refusal = err
			return s.notifyApproval(r.Context(), tx, req, "approval.expired", s.requesterUsers(r.Context(), tx, req))
		}
		if tutela.ErrorCode(err) == tutela.EFORBIDDEN {
			noteDenial(r.Context(), denial{action: "decide", resource: authz.ResApprovals, targetTenant: t.ID,
				targetID: r.PathValue("id"), reason: tutela.ErrorMessage(err)})
		}
		if err != nil {
			return err
		}
		switch req.State {
		case approvals.StateApproved:
			return s.notifyApproval(r.Context(), tx, req, "approval.approved", s.requesterUsers(r.Context(), tx, req))
		case approvals.StateRejected:
			return s.notifyApproval(r.Context(), tx, req, "approval.rejected", s.requesterUsers(r.Context(), tx, req))
		}
		return nil
	})
	if err == nil {
		err = refusal
	}
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"approval": req})
}

// requesterUsers is whom a decision on req is told: the requesting user, or the user who
// created the requesting service account (none when no user did: the tenant's webhooks only).
func (s *Server) requesterUsers(ctx context.Context, tx *sqlstore.Tx, req *approvals.Request) []string {
	if req.RequesterKind == tutela.PrincipalUser {
		return []string{req.RequestedBy}
	}
	if c, err := tx.ServiceAccountCreator(ctx, req.TenantID, req.RequestedBy); err == nil && c != "" {
		return []string{c}
	}
	return []string{}
}

func (s *Server) cancelApproval(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req *approvals.Request
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, err := pathTenant(r, tx, p)
		if err != nil {
			return err
		}
		req, err = tx.Approvals(t.ID).Cancel(r.Context(), r.PathValue("id"), p.Kind, p.UserID)
		if tutela.ErrorCode(err) == tutela.EFORBIDDEN {
			noteDenial(r.Context(), denial{action: "cancel", resource: authz.ResApprovals, targetTenant: t.ID,
				targetID: r.PathValue("id"), reason: tutela.ErrorMessage(err)})
		}
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"approval": req})
}

func (s *Server) listApprovalPolicies(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var pols []approvals.Policy
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResApprovals)
		if err != nil {
			return err
		}
		pols, err = tx.Approvals(t.ID).Policies(r.Context())
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"policies": pols})
}

type policyRequest struct {
	Enabled       *bool    `json:"enabled"`
	ApproverRoles []string `json:"approver_roles"`
	Required      int      `json:"required"`
	TTLSeconds    int64    `json:"ttl_seconds"`
	approvalFields
}

// putApprovalPolicy sets a tenant's policy for one action (approvals MANAGE, by a person with a
// fresh second factor). A change that weakens an enabled policy (approvals.Policy.Weakens) is
// itself held for approval (ActionPolicyChange), decided by the approvers of the policy being
// weakened, N of them: otherwise whoever may manage policies could switch off the control they
// are subject to.
func (s *Server) putApprovalPolicy(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var body policyRequest
	if err := middleware.DecodeJSON(w, r, &body); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var pol approvals.Policy
	var held *approvals.Request
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResApprovals)
		if err != nil {
			return err
		}
		// The body is judged after authorization: another tenant's path is 404 whatever it holds.
		if body.Enabled == nil {
			return tutela.FieldErrorf("enabled", "enabled is required")
		}
		if body.Justification != "" && !approvals.ValidText(body.Justification) {
			return tutela.FieldErrorf("justification", "justification must be 1 to %d characters of text", approvals.MaxJustification)
		}
		pol = approvals.Policy{Action: r.PathValue("action"), Enabled: *body.Enabled, ApproverRoles: body.ApproverRoles,
			Required: body.Required, TTL: time.Duration(body.TTLSeconds) * time.Second, UpdatedBy: p.UserID}
		if pol.ApproverRoles == nil {
			pol.ApproverRoles = []string{}
		}
		if err := s.requireHumanStepUp(p); err != nil {
			return err
		}
		store := tx.Approvals(t.ID)
		old, err := store.Policy(r.Context(), pol.Action)
		if err != nil {
			return err
		}
		if err := store.CheckPolicy(r.Context(), pol); err != nil {
			return err
		}
		if pol.Weakens(old) {
			held, err = s.gateUnder(r, tx, p, t.ID, gated{Action: approvals.ActionPolicyChange, TargetType: "approval_policy",
				TargetID: pol.Action, Params: policyParams(pol), approvalFields: body.approvalFields}, old)
			if err != nil || held != nil {
				return err
			}
		}
		return store.SetPolicy(r.Context(), &pol, body.Justification)
	})
	if wroteErrOrHeld(w, r, err, held) {
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"policy": pol})
}

// policyParams is what a held policy change binds: the whole new rule.
func policyParams(p approvals.Policy) map[string]any {
	return map[string]any{"action": p.Action, "enabled": p.Enabled, "approver_roles": p.ApproverRoles,
		"required": p.Required, "ttl_seconds": int64(p.TTL / time.Second)}
}

type personRequest struct {
	SameAs        string `json:"same_as"`
	Justification string `json:"justification"`
}

// linkPerson records that the user and same_as are one person (users MANAGE, fresh step-up,
// a justification). Approvals then treat the two accounts as one: neither decides the other's
// requests, and they decide a request once between them. There is no unlinking through the
// API: linking only ever makes approvals stricter, and undoing it would reopen what it closed.
func (s *Server) linkPerson(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var body personRequest
	if err := middleware.DecodeJSON(w, r, &body); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	err := s.withUser(r, p, authz.Manage, authz.ResUsers, true, func(tx *sqlstore.Tx, t *tutela.Tenant, u *tutela.User, _ *authz.Policy) error {
		// The body is judged after authorization: another tenant's path is 404 whatever it holds.
		if !tutela.ValidID(body.SameAs) {
			return tutela.FieldErrorf("same_as", "same_as must be a user ID")
		}
		if !approvals.ValidText(body.Justification) {
			return tutela.FieldErrorf("justification", "justification must be 1 to %d characters of text", approvals.MaxJustification)
		}
		if err := s.requireHumanStepUp(p); err != nil {
			return err
		}
		_, err := tx.LinkPerson(r.Context(), t.ID, u.ID, body.SameAs, body.Justification)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// SweepApprovals expires the requests whose time ran out and reminds the approvers of those
// half way through their life, across every tenant, telling people as each event says. Every
// node runs it each minute (cmd/tutela); each request is expired and reminded once.
func (s *Server) SweepApprovals(ctx context.Context) (sqlstore.Sweep, error) {
	var sw sqlstore.Sweep
	err := s.d.DB.Update(ctx, func(tx *sqlstore.Tx) (err error) {
		if sw, err = tx.SweepApprovals(ctx); err != nil {
			return err
		}
		for i := range sw.Expired {
			req := &sw.Expired[i]
			if err := s.notifyApproval(ctx, tx, req, "approval.expired", s.requesterUsers(ctx, tx, req)); err != nil {
				return err
			}
		}
		for i := range sw.Reminders {
			req := &sw.Reminders[i]
			store := tx.Approvals(req.TenantID)
			approvers, err := store.Approvers(ctx, req.ApproverRoles, req.RequesterPerson)
			if err != nil {
				return err
			}
			// Those who have decided already are not reminded.
			full, err := store.Get(ctx, req.ID)
			if err != nil {
				return err
			}
			approvers = slices.DeleteFunc(approvers, func(id string) bool {
				return slices.ContainsFunc(full.Decisions, func(d approvals.Decision) bool { return d.DecidedBy == id })
			})
			if err := s.notifyApproval(ctx, tx, req, "approval.reminder", approvers); err != nil {
				return err
			}
		}
		return nil
	})
	return sw, err
}
