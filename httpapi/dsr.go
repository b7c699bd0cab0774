package httpapi

import (
	"net/http"
	"slices"

	"tutela"
	"tutela/approvals"
	"tutela/authz"
	"tutela/dsr"
	"tutela/httpapi/middleware"
	"tutela/privacy"
	"tutela/sqlstore"
)

// Data-subject requests (issue 14): the workflow's routes. Each handler is one transaction:
// authorize on the dsr resource, then one store step, which writes its step row and audit event.

func (s *Server) dsrRoutes() {
	const base = "/v1/tenants/{tenant}/dsr"
	s.handle("POST", base, false, s.authed(false, s.createDSR))
	s.handle("GET", base, false, s.authed(false, s.listDSRs))
	s.handle("GET", base+"/{id}", false, s.authed(false, s.getDSR))
	s.handle("POST", base+"/{id}/verify", false, s.authed(false, s.verifyDSR))
	s.handle("POST", base+"/{id}/assign", false, s.authed(false, s.assignDSR))
	s.handle("POST", base+"/{id}/submit", false, s.authed(false, s.submitDSR))
	s.handle("POST", base+"/{id}/approve", false, s.authed(false, s.approveDSR))
	s.handle("POST", base+"/{id}/reject", false, s.authed(false, s.rejectDSR))
	s.handle("POST", base+"/{id}/extend", false, s.authed(false, s.extendDSR))
	s.handle("POST", base+"/{id}/download-link", false, s.authed(false, s.dsrDownloadLink))
	s.handle("GET", "/v1/dsr-downloads/{token}", true, s.dsrDownload)
}

// dsrPolicy is the configured deadline policy (the default when none was given).
func (s *Server) dsrPolicy() privacy.DSRPolicy {
	if s.d.DSR.Periods == nil {
		return privacy.DefaultDSRPolicy()
	}
	return s.d.DSR
}

func (s *Server) dsrExecutor() dsr.Executor { return dsr.Executor{Keys: privacy.Keys{Vault: s.d.Keys}} }

type dsrCreateRequest struct {
	SubjectID    string `json:"subject_id"`
	Kind         string `json:"kind"`
	Jurisdiction string `json:"jurisdiction"`
	Purpose      string `json:"purpose"`
	Text         string `json:"text"`
}

// createDSR records a request as received (CREATE on dsr). What the subject wrote is sealed
// under their key before it is stored; the deadline jobs are queued in the same transaction.
func (s *Server) createDSR(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req dsrCreateRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if req.Text != "" && !privacy.ValidDSRText(req.Text) {
		middleware.WriteError(w, r, tutela.FieldErrorf("text", "text must be up to %d characters of printable text", privacy.MaxDSRText))
		return
	}
	var out *sqlstore.DSR
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Create, authz.ResDSR)
		if err != nil {
			return err
		}
		n := &sqlstore.NewDSR{ID: tutela.NewID(), SubjectID: req.SubjectID, Kind: privacy.DSRKind(req.Kind),
			Jurisdiction: req.Jurisdiction, Purpose: req.Purpose}
		if req.Text != "" {
			rec, err := tx.Subjects(t.ID).Get(r.Context(), req.SubjectID)
			if err != nil {
				return err
			}
			pk, err := privacy.Keys{Vault: s.d.Keys}.Open(r.Context(), t.ID, rec.ID, rec.Stored.Wrapped)
			if err != nil {
				return subjectErr(err)
			}
			if n.TextSealed, err = pk.Seal(privacy.DSRTextField(n.ID), []byte(req.Text)); err != nil {
				return err
			}
		}
		out, err = tx.DSRs(t.ID).Create(r.Context(), n, s.dsrPolicy())
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, out)
}

// listDSRs lists requests (READ): filters status, assignee, subject, overdue=true (open and
// past due), cursor pagination.
func (s *Server) listDSRs(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	cursor, limit, err := pageParams(r)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	q := r.URL.Query()
	f := sqlstore.DSRFilter{Status: q.Get("status"), Assignee: q.Get("assignee"), SubjectID: q.Get("subject"),
		Cursor: cursor, Limit: limit}
	switch {
	case f.Status != "" && !slices.Contains(privacy.DSRStatuses, f.Status):
		err = tutela.FieldErrorf("status", "status must be one of the request statuses")
	case f.Assignee != "" && !tutela.ValidID(f.Assignee):
		err = tutela.FieldErrorf("assignee", "assignee must be a user's ID")
	case f.SubjectID != "" && !tutela.ValidID(f.SubjectID):
		err = tutela.FieldErrorf("subject", "subject must be a subject's ID")
	}
	switch q.Get("overdue") {
	case "", "false":
	case "true":
		f.Overdue = true
	default:
		err = tutela.FieldErrorf("overdue", "overdue must be true or false")
	}
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var list []*sqlstore.DSR
	err = s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResDSR)
		if err != nil {
			return err
		}
		list, err = tx.DSRs(t.ID).List(r.Context(), f)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	next := ""
	if len(list) == limit {
		next = list[len(list)-1].ID
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"requests": list, "next_cursor": next})
}

// getDSR returns a request with its steps (READ). What the subject wrote is theirs: it is
// opened only for a caller allowed to READ requests at YELLOW (an auditor, cleared for GREEN,
// sees that there is text, not the text), and the read is audited.
func (s *Server) getDSR(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	out := map[string]any{}
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Read, authz.ResDSR)
		if err != nil {
			return err
		}
		repo := tx.DSRs(t.ID)
		d, err := repo.Get(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		steps, err := repo.Steps(r.Context(), d.ID)
		if err != nil {
			return err
		}
		out["request"], out["steps"], out["overdue"] = d, steps, d.Overdue(tx.Now())
		ct, err := repo.Text(r.Context(), d.ID)
		if err != nil || ct == nil {
			return err
		}
		if !authz.Decide(pol, authz.Request{Action: authz.Read, Resource: authz.ResDSR, Class: authz.Yellow}, s.d.Clock()).Allow {
			out["text_withheld"] = true
			return nil
		}
		wrapped, err := tx.PersonKeys(t.ID).Get(r.Context(), d.SubjectID)
		if err != nil {
			return err
		}
		pk, err := privacy.Keys{Vault: s.d.Keys}.Open(r.Context(), t.ID, d.SubjectID, wrapped)
		if privacy.IsErased(err) {
			return nil // shredded with the subject
		}
		if err != nil {
			return err
		}
		txt, err := pk.Open(privacy.DSRTextField(d.ID), ct)
		if err != nil {
			return err
		}
		out["text"] = string(txt)
		return tx.Record(r.Context(), "dsr.text_read", t.ID, "dsr", d.ID, "", map[string]any{"subject_id": d.SubjectID})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}

// dsrStep runs one workflow step as action on dsr in one transaction and answers the request.
func (s *Server) dsrStep(w http.ResponseWriter, r *http.Request, p *tutela.Principal, action authz.Action, body any,
	step func(tx *sqlstore.Tx, t *tutela.Tenant) (*sqlstore.DSR, error)) {
	if body != nil {
		if err := middleware.DecodeJSON(w, r, body); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
	}
	var out *sqlstore.DSR
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, action, authz.ResDSR)
		if err != nil {
			return err
		}
		out, err = step(tx, t)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}

type dsrVerifyRequest struct {
	Result string `json:"result"`
	Method string `json:"method"`
}

// verifyDSR records the identity check (UPDATE): verified, or failed (the request is rejected).
func (s *Server) verifyDSR(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req dsrVerifyRequest
	s.dsrStep(w, r, p, authz.Update, &req, func(tx *sqlstore.Tx, t *tutela.Tenant) (*sqlstore.DSR, error) {
		return tx.DSRs(t.ID).Verify(r.Context(), r.PathValue("id"), req.Result, req.Method)
	})
}

type dsrAssignRequest struct {
	Assignee string `json:"assignee"`
	Approver string `json:"approver"`
}

// assignDSR names the assignee and the approver, two different people (UPDATE).
func (s *Server) assignDSR(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req dsrAssignRequest
	s.dsrStep(w, r, p, authz.Update, &req, func(tx *sqlstore.Tx, t *tutela.Tenant) (*sqlstore.DSR, error) {
		return tx.DSRs(t.ID).Assign(r.Context(), r.PathValue("id"), req.Assignee, req.Approver)
	})
}

type dsrSubmitRequest struct {
	RectifiedFields []string `json:"rectified_fields"`
}

// submitDSR is the assignee handing the worked request to the approver (UPDATE, the assignee
// only).
func (s *Server) submitDSR(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req dsrSubmitRequest
	s.dsrStep(w, r, p, authz.Update, &req, func(tx *sqlstore.Tx, t *tutela.Tenant) (*sqlstore.DSR, error) {
		return tx.DSRs(t.ID).Submit(r.Context(), r.PathValue("id"), principalUser(p), req.RectifiedFields)
	})
}

// principalUser is the user ID a four-eyes rule compares: a service account is nobody's eyes.
func principalUser(p *tutela.Principal) string {
	if p.Kind != tutela.PrincipalUser {
		return ""
	}
	return p.UserID
}

type dsrApproveRequest struct {
	approvalFields
}

// approveDSR is the approver's decision (APPROVE: a sensitive action, so a person proves a
// fresh second factor) and the request's execution, in one transaction. An erasure refused by
// an active legal hold commits the request as blocked and answers 409 naming the hold. Where
// the tenant's policy for dsr.erasure is on, executing an erasure waits for approval (the DSR
// and the subject it erases are what is approved), asked once the approver may approve it; an
// erasure that a hold then blocks has spent its approval, and a new one executes it later.
func (s *Server) approveDSR(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req dsrApproveRequest
	if r.ContentLength != 0 {
		if err := middleware.DecodeJSON(w, r, &req); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
	}
	var res *dsr.Result
	var held *approvals.Request
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Approve, authz.ResDSR)
		if err != nil {
			return err
		}
		d, err := tx.DSRs(t.ID).Approvable(r.Context(), r.PathValue("id"), principalUser(p))
		if err != nil {
			return err
		}
		if d.Kind == privacy.DSRErasure {
			g := gated{Action: approvals.ActionErasure, TargetType: "dsr", TargetID: d.ID,
				Params:         map[string]any{"dsr": d.ID, "kind": string(d.Kind), "subject": d.SubjectID},
				approvalFields: req.approvalFields}
			if held, err = s.gateTenant(r, tx, p, t.ID, g); err != nil || held != nil {
				return err
			}
		}
		res, err = s.dsrExecutor().Approve(r.Context(), tx, t.ID, d.ID, principalUser(p))
		return subjectErr(err)
	})
	if err == nil && held != nil {
		writeHeld(w, r, held)
		return
	}
	if err == nil && res.BlockedBy != nil {
		err = dsr.ErrBlocked(res.BlockedBy)
	}
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, res.DSR)
}

type dsrReasonRequest struct {
	Reason string `json:"reason"`
	Days   int    `json:"days"`
}

// rejectDSR closes a request without acting on it, with the reason the subject is told (GDPR
// Art. 12(4)-(5)). Refusing someone their right is a decision: APPROVE.
func (s *Server) rejectDSR(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req dsrReasonRequest
	s.dsrStep(w, r, p, authz.Approve, &req, func(tx *sqlstore.Tx, t *tutela.Tenant) (*sqlstore.DSR, error) {
		return tx.DSRs(t.ID).Reject(r.Context(), r.PathValue("id"), principalUser(p), req.Reason)
	})
}

// extendDSR extends the due date once, with a reason (UPDATE).
func (s *Server) extendDSR(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req dsrReasonRequest
	s.dsrStep(w, r, p, authz.Update, &req, func(tx *sqlstore.Tx, t *tutela.Tenant) (*sqlstore.DSR, error) {
		return tx.DSRs(t.ID).Extend(r.Context(), r.PathValue("id"), req.Days, req.Reason, s.dsrPolicy())
	})
}
