package httpapi

import (
	"net/http"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/privacy"
	"tutela/sqlstore"
)

// Consent (issue 14): the tenant's register of purposes and its subjects' consents,
// objections and restrictions. What the register and the history allow is enforced where the
// processing happens (checkProcessing, consent_check.go); these endpoints keep the record.

// consentRoutes registers the consent endpoints; they need the vault (Deps.Keys), since a
// consent record's evidence is sealed under the subject's key.
func (s *Server) consentRoutes() {
	const subject = "/v1/tenants/{tenant}/subjects/{id}"
	s.handle("GET", "/v1/tenants/{tenant}/purposes", false, s.authed(false, s.listPurposes))
	s.handle("PUT", "/v1/tenants/{tenant}/purposes/{name}", false, s.authed(false, s.putPurpose))
	s.handle("POST", subject+"/consents", false, s.authed(false, s.recordConsent))
	s.handle("GET", subject+"/consents", false, s.authed(false, s.getConsents))
	s.handle("POST", subject+"/objections/{purpose}", false, s.authed(false, s.placeObjection))
	s.handle("DELETE", subject+"/objections/{purpose}", false, s.authed(false, s.withdrawObjection))
	s.handle("POST", subject+"/restriction", false, s.authed(false, s.placeRestriction))
	s.handle("DELETE", subject+"/restriction", false, s.authed(false, s.liftRestriction))
}

func (s *Server) listPurposes(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var list []*privacy.Purpose
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResConsents)
		if err != nil {
			return err
		}
		list, err = tx.Consent(t.ID).Purposes(r.Context())
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"purposes": list})
}

// purposeRequest is a purpose as PUT declares it; the name is the path's.
type purposeRequest struct {
	Name              string              `json:"name"`
	Description       string              `json:"description"`
	LawfulBasis       privacy.LawfulBasis `json:"lawful_basis"`
	NoticeID          string              `json:"notice_id"`
	NoticeVersion     int                 `json:"notice_version"`
	ConsentMinVersion int                 `json:"consent_min_version"`
}

// putPurpose declares or changes a purpose: MANAGE on consents (a sensitive action: a person
// proves a fresh second factor). Publishing a new notice version that requires re-consent is a
// PUT with notice_version N and consent_min_version N: from that commit every consent to an
// earlier version stops counting, on every node. The store refuses a change of lawful basis or
// notice and a version going back.
func (s *Server) putPurpose(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req purposeRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	name := r.PathValue("name")
	if req.Name != "" && req.Name != name {
		middleware.WriteError(w, r, tutela.FieldErrorf("name", "name must be the path's purpose name, or left out"))
		return
	}
	pur := &privacy.Purpose{Name: name, Description: req.Description, LawfulBasis: req.LawfulBasis,
		NoticeID: req.NoticeID, NoticeVersion: req.NoticeVersion, ConsentMinVersion: req.ConsentMinVersion}
	var created bool
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResConsents)
		if err != nil {
			return err
		}
		created, err = tx.Consent(t.ID).PutPurpose(r.Context(), pur)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	middleware.WriteJSON(w, status, pur)
}

// consentRequest is one consent record as submitted.
type consentRequest struct {
	Purpose       string                `json:"purpose"`
	Action        privacy.ConsentAction `json:"action"`
	LawfulBasis   privacy.ConsentBasis  `json:"lawful_basis"`
	NoticeID      string                `json:"notice_id"`
	NoticeVersion int                   `json:"notice_version"`
	Channel       string                `json:"channel"`
	RecordedBy    string                `json:"recorded_by"` // optional: derived from the principal, refused when it disagrees
	Evidence      string                `json:"evidence"`
}

// consentRecordView is a consent record as the API shows it: the evidence only to a caller
// cleared for it and only while it opens; evidence_present says whether there is any.
type consentRecordView struct {
	*privacy.ConsentRecord
	EvidencePresent bool `json:"evidence_present"`
}

// recordConsent appends a grant or a withdrawal to the subject's history: CREATE on consents.
// The record's ID is made here so that the evidence, sealed under the subject's key as
// privacy.EvidenceField(id) before it reaches the store, opens only as this record's. A
// withdrawal refuses the next processing for the purpose on every node (the check reads the
// history in the processing's own transaction). The audit event consent.granted or
// consent.withdrawn names the purpose, notice and channel and whether there is evidence, never
// the evidence. Who recorded it comes from the principal, not the body (privacy.RecordedBy): a
// person is a caseworker and gives evidence; only a service account records as the subject.
func (s *Server) recordConsent(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req consentRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	rec := &privacy.ConsentRecord{ID: tutela.NewID(), SubjectID: r.PathValue("id"), Purpose: req.Purpose,
		Action: req.Action, Basis: req.LawfulBasis, NoticeID: req.NoticeID, NoticeVersion: req.NoticeVersion,
		Channel: req.Channel, Evidence: req.Evidence}
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Create, authz.ResConsents)
		if err != nil {
			return err
		}
		if rec.RecordedBy, err = privacy.RecordedBy(p.Kind != tutela.PrincipalServiceAccount, req.RecordedBy); err != nil {
			return err
		}
		if err := rec.Validate(); err != nil {
			return err
		}
		if rec.Evidence != "" {
			subj, err := tx.Subjects(t.ID).Get(r.Context(), rec.SubjectID)
			if err != nil {
				return err
			}
			pk, err := s.subjects().Keys.Open(r.Context(), t.ID, rec.SubjectID, subj.Stored.Wrapped)
			if err != nil {
				return subjectErr(err)
			}
			if rec.EvidenceSealed, err = pk.Seal(privacy.EvidenceField(rec.ID), []byte(rec.Evidence)); err != nil {
				return err
			}
		}
		return tx.Consent(t.ID).Record(r.Context(), rec)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	present := rec.Evidence != ""
	rec.Evidence, rec.EvidenceSealed = "", nil
	middleware.WriteJSON(w, http.StatusCreated, consentRecordView{ConsentRecord: rec, EvidencePresent: present})
}
