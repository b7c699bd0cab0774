package httpapi

import (
	"errors"
	"net/http"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/privacy"
	"tutela/sqlstore"
)

// purposeState is where one purpose of the register stands for a subject: the latest consent
// record's action and notice version (a purpose on consent), and whether processing for it is
// allowed now, with the refusal's code and reason when not. Allowed is Consent.Check's answer,
// the same one every processing asks.
type purposeState struct {
	Purpose       string                `json:"purpose"`
	LawfulBasis   privacy.LawfulBasis   `json:"lawful_basis"`
	Consent       privacy.ConsentAction `json:"consent,omitempty"`
	NoticeVersion int                   `json:"notice_version,omitempty"`
	Allowed       bool                  `json:"allowed"`
	RefusedCode   string                `json:"refused_code,omitempty"`
	RefusedReason string                `json:"refused_reason,omitempty"`
}

type consentsView struct {
	SubjectID   string                `json:"subject_id"`
	Erased      bool                  `json:"erased"`
	Records     []consentRecordView   `json:"records"`
	Purposes    []purposeState        `json:"purposes"`
	Objections  []*sqlstore.Objection `json:"objections"`
	Restriction *sqlstore.Restriction `json:"restriction"`
}

// evidenceClass is the classification a consent record's evidence is read at: it is personal
// data (a form's reference, a call recording's ID), so READ on consents at GREEN (an auditor)
// shows the history without it.
const evidenceClass = authz.Yellow

// getConsents is READ on consents: the subject's history oldest first, each purpose's state
// and whether processing for it is allowed now, and the subject's objections and restriction.
// Evidence is decrypted only for a caller who may READ consents at YELLOW; anyone else sees
// evidence_present. An erased subject's history stays (it proves what consent there was, GDPR
// Art. 7(1)) but its evidence no longer opens and nothing is allowed. The audit event
// consent.read says how many records and how much evidence were shown, never the evidence.
func (s *Server) getConsents(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	id := r.PathValue("id")
	var out consentsView
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Read, authz.ResConsents)
		if err != nil {
			return err
		}
		subj, err := tx.Subjects(t.ID).Get(r.Context(), id)
		switch {
		case errors.Is(err, sqlstore.ErrSubjectErased):
			out.Erased = true
		case err != nil:
			return err
		}
		c := tx.Consent(t.ID)
		history, err := c.History(r.Context(), id)
		if err != nil {
			return err
		}
		var pk *privacy.PersonKey
		d := authz.Decide(pol, authz.Request{Action: authz.Read, Resource: authz.ResConsents, Class: evidenceClass,
			StepUpAt: p.StepUpAt}, s.d.Clock())
		if subj != nil && d.Allow && s.requireStepUp(p, d) == nil && hasEvidence(history) {
			if pk, err = s.subjects().Keys.Open(r.Context(), t.ID, id, subj.Stored.Wrapped); err != nil {
				return subjectErr(err)
			}
		}
		opened := 0
		latest := map[string]*privacy.ConsentRecord{}
		// A survivor's history holds the records of the subjects merged into it, their evidence
		// sealed under those subjects' own keys (kept until they are erased with the survivor).
		keys := map[string]*privacy.PersonKey{id: pk}
		keyOf := func(subjectID string) (*privacy.PersonKey, error) {
			if k, ok := keys[subjectID]; ok || pk == nil {
				return k, nil
			}
			w, err := tx.PersonKeys(t.ID).Get(r.Context(), subjectID)
			if err != nil {
				return nil, err
			}
			k, err := s.subjects().Keys.Open(r.Context(), t.ID, subjectID, w)
			if privacy.IsErased(err) {
				k, err = nil, nil
			}
			keys[subjectID] = k
			return k, err
		}
		out.SubjectID, out.Records = id, make([]consentRecordView, 0, len(history))
		for _, rec := range history {
			v := consentRecordView{ConsentRecord: rec, EvidencePresent: len(rec.EvidenceSealed) > 0}
			rpk, err := keyOf(rec.SubjectID)
			if err != nil {
				return err
			}
			if rpk != nil && v.EvidencePresent {
				// A value that does not open (moved from another record) is left out, not shown.
				if pt, err := rpk.Open(privacy.EvidenceField(rec.ID), rec.EvidenceSealed); err == nil {
					rec.Evidence = string(pt)
					opened++
				}
			}
			latest[rec.Purpose] = rec
			out.Records = append(out.Records, v)
		}
		if out.Purposes, err = purposeStates(r, c, id, latest); err != nil {
			return err
		}
		if out.Objections, err = c.Objections(r.Context(), id); err != nil {
			return err
		}
		if out.Restriction, err = c.Restriction(r.Context(), id); err != nil {
			return err
		}
		return tx.Record(r.Context(), "consent.read", t.ID, "subject", id, "", map[string]any{
			"records": len(history), "evidence_shown": opened})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}

func hasEvidence(history []*privacy.ConsentRecord) bool {
	for _, rec := range history {
		if len(rec.EvidenceSealed) > 0 {
			return true
		}
	}
	return false
}

// purposeStates is every purpose of the register as it stands for the subject, allowed by
// Consent.Check (one rule, not a copy of it).
func purposeStates(r *http.Request, c sqlstore.Consent, subjectID string, latest map[string]*privacy.ConsentRecord) ([]purposeState, error) {
	purposes, err := c.Purposes(r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]purposeState, 0, len(purposes))
	for _, pur := range purposes {
		st := purposeState{Purpose: pur.Name, LawfulBasis: pur.LawfulBasis}
		if rec, ok := latest[pur.Name]; ok {
			st.Consent, st.NoticeVersion = rec.Action, rec.NoticeVersion
		}
		err := c.Check(r.Context(), subjectID, pur.Name)
		switch code := tutela.ErrorCode(err); {
		case err == nil:
			st.Allowed = true
		case code == tutela.EINTERNAL:
			return nil, err
		default:
			st.RefusedCode, st.RefusedReason = code, tutela.ErrorMessage(err)
		}
		out = append(out, st)
	}
	return out, nil
}
