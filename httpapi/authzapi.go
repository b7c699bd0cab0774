package httpapi

import (
	"net/http"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
)

type checkRequest struct {
	UserID         string               `json:"user_id"`
	Action         authz.Action         `json:"action"`
	Resource       string               `json:"resource"`
	Classification authz.Classification `json:"classification"`
	Purpose        string               `json:"purpose"`
}

// subjectPolicy returns the policy of the user asked about: the caller by default; another
// user of the caller's tenant only for someone allowed to read roles (it reveals privileges).
// The tenant always comes from the caller, never from the request.
func (s *Server) subjectPolicy(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, userID string) (*authz.Policy, error) {
	if userID == "" || userID == p.UserID {
		return principalPolicy(r, tx, p)
	}
	if _, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Read, Resource: authz.ResRoles}); err != nil {
		return nil, err
	}
	if _, err := tx.Users(p.TenantID).Get(r.Context(), userID); err != nil {
		return nil, err // another tenant's user is not found, like a missing one
	}
	return tx.CachedPolicy(r.Context(), p.TenantID, userID)
}

// cachedOwnPolicy is the caller's own policy from the node's cache, when the question is about
// the caller and the cache holds it: the decision then needs no transaction at all.
func (s *Server) cachedOwnPolicy(p *tutela.Principal, userID string) (*authz.Policy, bool) {
	if userID != "" && userID != p.UserID {
		return nil, false
	}
	if p.Kind == tutela.PrincipalServiceAccount {
		return s.d.DB.CachedServiceAccountPolicyHit(p.TenantID, p.UserID)
	}
	return s.d.DB.CachedPolicyHit(p.TenantID, p.UserID)
}

// validate rejects a malformed question (400 naming the field) rather than answering "deny".
func (c checkRequest) validate() error {
	switch {
	case !c.Action.Valid():
		return tutela.FieldErrorf("action", "action must be one of CREATE READ UPDATE DELETE PUBLISH APPROVE REVIEW EXPORT IMPORT MANAGE")
	case c.Resource == "" || c.Resource == authz.Any || len(c.Resource) > 63:
		return tutela.FieldErrorf("resource", "resource must be a resource type")
	case c.Classification != "" && !c.Classification.Valid():
		return tutela.FieldErrorf("classification", "classification must be GREEN, YELLOW or RED")
	}
	return nil
}

func (s *Server) check(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, c checkRequest) (authz.Decision, error) {
	if err := c.validate(); err != nil {
		return authz.Decision{}, err
	}
	pol, err := s.subjectPolicy(r, tx, p, c.UserID)
	if err != nil {
		return authz.Decision{}, err
	}
	return authz.Decide(pol, authz.Request{Action: c.Action, Resource: c.Resource, Class: c.Classification,
		Purpose: c.Purpose, StepUpAt: stepUpOf(p, c.UserID)}, s.d.Clock()), nil
}

// stepUpOf is the second-factor time to decide with: the caller's session's when the question is
// about the caller, zero (never) for another user, who has no session in this request.
func stepUpOf(p *tutela.Principal, userID string) time.Time {
	if userID == "" || userID == p.UserID {
		return p.StepUpAt
	}
	return time.Time{}
}

func (s *Server) authzCheck(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req checkRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	// Decide in a read transaction (the policy usually comes from the cache); only an allowed
	// access to RED data writes, its audit event.
	var d authz.Decision
	var err error
	if pol, ok := s.cachedOwnPolicy(p, req.UserID); ok && req.validate() == nil {
		d = authz.Decide(pol, authz.Request{Action: req.Action, Resource: req.Resource, Class: req.Classification,
			Purpose: req.Purpose, StepUpAt: p.StepUpAt}, s.d.Clock())
	} else {
		err = s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) (err error) {
			d, err = s.check(r, tx, p, req)
			return err
		})
	}
	if err == nil && req.Classification == authz.Red && d.Allow {
		err = s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error { return recordRedAccess(r, tx, p, req, d) })
	}
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, d)
}

// recordRedAccess keeps every allowed access to RED data in the audit trail, with its stated
// purpose, who asked, for whom and what: single and batch checks alike.
func recordRedAccess(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, c checkRequest, d authz.Decision) error {
	if c.Classification != authz.Red || !d.Allow {
		return nil
	}
	return tx.Record(r.Context(), "authz.red_access", p.TenantID, c.Resource, "", "", map[string]any{
		"subject": c.UserID, "action": string(c.Action), "purpose": c.Purpose})
}

// MaxBatchChecks bounds one batch request.
const MaxBatchChecks = 100

func (s *Server) authzCheckBatch(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req struct {
		Checks []checkRequest `json:"checks"`
	}
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if len(req.Checks) == 0 || len(req.Checks) > MaxBatchChecks {
		middleware.WriteError(w, r, tutela.FieldErrorf("checks", "checks must hold 1-%d requests", MaxBatchChecks))
		return
	}
	out := make([]authz.Decision, len(req.Checks))
	// Decide in a read transaction; only allowed RED access (rare) then needs a write, for its
	// audit events.
	red := false
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		policies := map[string]*authz.Policy{}
		for i, c := range req.Checks {
			if err := c.validate(); err != nil {
				return err
			}
			pol, ok := policies[c.UserID]
			if !ok {
				var err error
				if pol, err = s.subjectPolicy(r, tx, p, c.UserID); err != nil {
					return err
				}
				policies[c.UserID] = pol
			}
			out[i] = authz.Decide(pol, authz.Request{Action: c.Action, Resource: c.Resource, Class: c.Classification,
				Purpose: c.Purpose, StepUpAt: stepUpOf(p, c.UserID)}, s.d.Clock())
			red = red || (c.Classification == authz.Red && out[i].Allow)
		}
		return nil
	})
	if err == nil && red {
		err = s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
			for i, c := range req.Checks {
				if err := recordRedAccess(r, tx, p, c, out[i]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"results": out})
}

// authzExplain answers "why can (or can't) this user do this": the decision, the rule that
// decided, and every grant and deny the user has that concerns the resource.
func (s *Server) authzExplain(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	q := r.URL.Query()
	c := checkRequest{UserID: q.Get("user"), Action: authz.Action(q.Get("action")), Resource: q.Get("resource"),
		Classification: authz.Classification(q.Get("classification")), Purpose: q.Get("purpose")}
	if err := c.validate(); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var out map[string]any
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		pol, err := s.subjectPolicy(r, tx, p, c.UserID)
		if err != nil {
			return err
		}
		d := authz.Decide(pol, authz.Request{Action: c.Action, Resource: c.Resource, Class: c.Classification, Purpose: c.Purpose,
			StepUpAt: stepUpOf(p, c.UserID)}, s.d.Clock())
		relevant := []authz.Grant{}
		for _, g := range pol.Grants {
			if g.Resource == c.Resource || g.Resource == authz.Any {
				relevant = append(relevant, g)
			}
		}
		out = map[string]any{"decision": d, "subject": pol.Subject, "roles": nonNil(pol.Roles), "clearance": pol.Clearance,
			"grants": relevant}
		return nil
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}

// authzPolicy exports a policy snapshot — grants, denies, clearance, field masks — so a
// resource server (the client package) can decide locally with authz.Decide. Same rules as a
// check: one's own, or another user of one's tenant with (roles READ).
func (s *Server) authzPolicy(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var pol *authz.Policy
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) (err error) {
		pol, err = s.subjectPolicy(r, tx, p, r.URL.Query().Get("user"))
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, pol)
}
