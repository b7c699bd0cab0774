package httpapi

import (
	"net/http"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
)

// Objections (GDPR Art. 21) and restrictions (Art. 18) set directly by a caseworker; a
// data-subject request sets them through the same store methods. Consent.Check reads both.

type objectionRequest struct {
	Reference string `json:"reference"`
}

type liftRequest struct {
	Reason          string `json:"reason"`
	SubjectInformed bool   `json:"subject_informed"`
}

// lift is the store's rule for req: one placed by a data-subject request needs APPROVE on
// data-subject requests (what approving the request needed) besides UPDATE on consents, and
// subject_informed (sqlstore.Lift).
func (s *Server) lift(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, req liftRequest) sqlstore.Lift {
	return sqlstore.Lift{Reason: req.Reason, SubjectInformed: req.SubjectInformed,
		MayLiftRequest: func(string) error {
			_, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Approve, Resource: authz.ResDSR})
			return err
		}}
}

// placeObjection records the subject's objection to a purpose on public task or legitimate
// interests (GDPR Art. 21): UPDATE on consents. From its commit, processing for the purpose
// is refused. The body may name the data-subject request it came from ({"reference": id}).
func (s *Server) placeObjection(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req objectionRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.updateConsent(w, r, p, http.StatusCreated, func(_ *sqlstore.Tx, c sqlstore.Consent) error {
		return c.Object(r.Context(), r.PathValue("id"), r.PathValue("purpose"), req.Reference)
	})
}

// withdrawObjection removes an objection: UPDATE on consents, with a reason; one a data-subject
// request placed also needs APPROVE on dsr and subject_informed: true.
func (s *Server) withdrawObjection(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req liftRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.updateConsent(w, r, p, http.StatusOK, func(tx *sqlstore.Tx, c sqlstore.Consent) error {
		return c.WithdrawObjection(r.Context(), r.PathValue("id"), r.PathValue("purpose"), s.lift(r, tx, p, req))
	})
}

// placeRestriction restricts the subject's processing (GDPR Art. 18): UPDATE on consents. From
// its commit every processing of the subject is refused with processing_restricted.
func (s *Server) placeRestriction(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req objectionRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.updateConsent(w, r, p, http.StatusCreated, func(_ *sqlstore.Tx, c sqlstore.Consent) error {
		return c.Restrict(r.Context(), r.PathValue("id"), req.Reference)
	})
}

// liftRestriction ends the subject's restriction: UPDATE on consents, with a reason; one a
// data-subject request placed also needs APPROVE on dsr and subject_informed: true (GDPR Art.
// 18(3): the subject is told before the restriction is lifted).
func (s *Server) liftRestriction(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req liftRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	s.updateConsent(w, r, p, http.StatusOK, func(tx *sqlstore.Tx, c sqlstore.Consent) error {
		return c.LiftRestriction(r.Context(), r.PathValue("id"), s.lift(r, tx, p, req))
	})
}

// updateConsent runs change under UPDATE on consents and answers with the subject's objections
// and restriction as they stand after it.
func (s *Server) updateConsent(w http.ResponseWriter, r *http.Request, p *tutela.Principal, status int, change func(*sqlstore.Tx, sqlstore.Consent) error) {
	var out struct {
		SubjectID   string                `json:"subject_id"`
		Objections  []*sqlstore.Objection `json:"objections"`
		Restriction *sqlstore.Restriction `json:"restriction"`
	}
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Update, authz.ResConsents)
		if err != nil {
			return err
		}
		c := tx.Consent(t.ID)
		if err := change(tx, c); err != nil {
			return err
		}
		out.SubjectID = r.PathValue("id")
		if out.Objections, err = c.Objections(r.Context(), out.SubjectID); err != nil {
			return err
		}
		out.Restriction, err = c.Restriction(r.Context(), out.SubjectID)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, status, out)
}
