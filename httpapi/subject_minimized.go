package httpapi

import (
	"net/http"
	"slices"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/privacy"
	"tutela/sqlstore"
)

// The minimized view of a subject (issue 13): the tenant's minimization profile for a purpose
// applied to the subject's stored values. It is what the AI gateway (issue 16) sends out, so it
// is built to leak nothing the profile, the schema or the caller's clearance would not release.

// subjectMinimizedRoutes registers the minimized read; it needs the vault (Deps.Keys).
func (s *Server) subjectMinimizedRoutes() {
	s.handle("GET", "/v1/tenants/{tenant}/subjects/{id}/minimized", false, s.authed(false, s.getSubjectMinimized))
}

type subjectMinimized struct {
	SubjectID string         `json:"subject_id"`
	Purpose   string         `json:"purpose"`
	Values    map[string]any `json:"values"`
	// Withheld names the fields the profile would release that this caller may not have for
	// this purpose (the schema does not allow the purpose, or the caller may not READ the field
	// at its classification or the role masks it).
	Withheld []string `json:"withheld"`
}

// getSubjectMinimized is READ on subjects. A field leaves only when all of these hold:
//   - the profile for ?purpose= names it with pass, generalize or tokenize (any other field,
//     including fields added to the schema later, never leaves);
//   - the schema allows the purpose for the field (as for a plain read);
//   - the caller may READ subjects at the field's classification, with no role mask on
//     subjects.<field> (the safe rule: a generalised or tokenized value still says something
//     about the person, so a field the caller would see masked does not pass in any form; it is
//     listed in withheld instead). A RED field needs a person's fresh step-up, as any RED read.
//
// Tokenized fields become the field's deterministic token, held for the subject (person_id =
// subject), so erasing the subject shreds the token vault's copy too; the token is the one
// POST …/tokens gives for the same field and value. The subject must be processable for the
// purpose now (checkProcessing: a withdrawal refuses the next AI call at once, on every node),
// checked before any key opens. No profile for the purpose is 404. The audit event
// subject.read_minimized records the purpose and field names, never values.
func (s *Server) getSubjectMinimized(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	purpose := r.URL.Query().Get("purpose")
	if !privacy.ValidPurpose(purpose) {
		middleware.WriteError(w, r, tutela.FieldErrorf("purpose", "purpose is required: the minimization profile's purpose"))
		return
	}
	var out subjectMinimized
	err := s.withTokenKeys(r.Context(), func(tenantID *string) error {
		return s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
			t, pol, err := s.authorize(r, tx, p, authz.Read, authz.ResSubjects)
			if err != nil {
				return err
			}
			*tenantID = t.ID
			if pol.Partner != "" {
				// As readSubject: the share for this purpose before anything is loaded.
				if err := checkProcessing(r.Context(), r, tx, t.ID, r.PathValue("id"), purpose); err != nil {
					return err
				}
			}
			prof, err := tx.MinimizationProfiles(t.ID).Get(r.Context(), purpose)
			if err != nil {
				return err
			}
			schema, err := tx.SubjectSchema(t.ID).Get(r.Context())
			if err != nil {
				return err
			}
			rec, err := tx.Subjects(t.ID).Get(r.Context(), r.PathValue("id"))
			if err != nil {
				return err
			}
			if err := checkProcessing(r.Context(), r, tx, t.ID, rec.ID, purpose); err != nil {
				return err
			}
			var release, withheld []string
			types := map[string]privacy.FieldType{}
			for _, f := range schema {
				rule, listed := prof.Fields[f.Name]
				if _, held := rec.Stored.Values[f.Name]; !held || !listed || rule.Action == privacy.Drop {
					continue
				}
				d := authz.Decide(pol, authz.Request{Action: authz.Read, Resource: authz.ResSubjects, Class: f.Classification,
					Purpose: purpose, StepUpAt: p.StepUpAt}, s.d.Clock())
				if !f.Allows(purpose) || fieldMask(pol, d, f) != authz.MaskFull {
					withheld = append(withheld, f.Name)
					continue
				}
				if err := s.requireStepUp(p, d); err != nil {
					return err
				}
				release = append(release, f.Name)
				types[f.Name] = f.Type
			}
			vals, err := s.subjects().Open(r.Context(), t.ID, &rec.Stored, release)
			if err != nil {
				return subjectErr(err)
			}
			tv := tx.TokenVault(t.ID, s.tokenizer())
			tokenize := func(field, value string) (string, error) {
				toks, err := tv.Tokenize(r.Context(), sqlstore.TokenizeRequest{Field: field, Kind: privacy.Deterministic,
					PersonID: rec.ID, Values: []string{value}})
				if err != nil {
					return "", err
				}
				return toks[0], nil
			}
			minimized, err := privacy.Minimize(prof, vals, types, tokenize, s.d.Clock())
			if err != nil {
				return err
			}
			fields := make([]string, 0, len(minimized))
			for f := range minimized {
				fields = append(fields, f)
			}
			slices.Sort(fields)
			out = subjectMinimized{SubjectID: rec.ID, Purpose: purpose, Values: minimized, Withheld: nonNilStrings(withheld)}
			return tx.Record(r.Context(), "subject.read_minimized", t.ID, "subject", rec.ID, "", map[string]any{
				"purpose": purpose, "fields": fields, "withheld": out.Withheld})
		})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}
