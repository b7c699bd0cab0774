package httpapi

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"tutela"
	"tutela/approvals"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/privacy"
	"tutela/sqlstore"
)

// Identity merges (issue 18, docs/merge.md): two subjects that are the same person become one,
// after a preview, a field-by-field choice, a justification and an approval; undone within the
// window (config privacy.unmerge_window). Every call needs UPDATE on subjects: a merge record
// links two records, which a reader of one is not told (a merged subject reads as 404).

// DefaultUnmergeWindow is Deps.UnmergeWindow's zero value: config privacy.unmerge_window's
// default.
const DefaultUnmergeWindow = 30 * 24 * time.Hour

// mergeRoutes registers the merge endpoints; they need the vault (Deps.Keys). The merge
// records live under subject-merges: under subjects/merges/{id} they would collide with
// subjects/{id}/holds and its kin (a path like subjects/merges/holds matches both).
func (s *Server) mergeRoutes() {
	const base = "/v1/tenants/{tenant}/subjects/merge"
	s.handle("POST", base+"/preview", false, s.authed(false, s.previewMerge))
	s.handle("POST", base, false, s.authed(false, s.mergeSubjects))
	s.handle("GET", "/v1/tenants/{tenant}/subject-merges", false, s.authed(false, s.listMerges))
	s.handle("GET", "/v1/tenants/{tenant}/subject-merges/{id}", false, s.authed(false, s.getMerge))
	s.handle("POST", "/v1/tenants/{tenant}/subject-merges/{id}/unmerge", false, s.authed(false, s.unmergeSubjects))
}

func (s *Server) unmergeWindow() time.Duration {
	if s.d.UnmergeWindow > 0 {
		return s.d.UnmergeWindow
	}
	return DefaultUnmergeWindow
}

type mergePreviewRequest struct {
	SurvivorID string `json:"survivor_id"`
	MergedID   string `json:"merged_id"`
	Purpose    string `json:"purpose"`
}

// mergeField is one schema field in a preview: whether the two differ (compared in clear by
// the store, never returned; null for a field above what the caller may update, so the preview
// is no equality oracle for values they may not read), and each side's value as a GET of the
// subject for the purpose would show it to this caller (absent: not held, not for this purpose).
type mergeField struct {
	Name     string `json:"name"`
	Differs  *bool  `json:"differs"`
	Survivor any    `json:"survivor,omitempty"`
	Merged   any    `json:"merged,omitempty"`
}

type mergePreview struct {
	SurvivorID string                          `json:"survivor_id"`
	MergedID   string                          `json:"merged_id"`
	Purpose    string                          `json:"purpose"`
	Fields     []mergeField                    `json:"fields"`
	Holdings   map[string]sqlstore.MergeCounts `json:"holdings"`
}

// previewMerge shows what merging would meet. Both reads follow GET …/subjects/{id}'s rules
// (readSubject: purpose, consent, masking, RED step-up) and are audited as one
// subject.merge.preview naming the fields shown in clear and masked per side.
func (s *Server) previewMerge(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req mergePreviewRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	purpose, err := purposeFrom(req.Purpose)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var out mergePreview
	err = s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Update, authz.ResSubjects)
		if err != nil {
			return err
		}
		if _, _, err := s.authorize(r, tx, p, authz.Read, authz.ResSubjects); err != nil {
			return err
		}
		pv, err := tx.SubjectMerges(t.ID).Preview(r.Context(), req.SurvivorID, req.MergedID)
		if err != nil {
			return err
		}
		sr, err := s.readSubject(r, tx, p, t, pol, req.SurvivorID, purpose)
		if err != nil {
			return err
		}
		mr, err := s.readSubject(r, tx, p, t, pol, req.MergedID, purpose)
		if err != nil {
			return err
		}
		out = mergePreview{SurvivorID: req.SurvivorID, MergedID: req.MergedID, Purpose: purpose, Fields: []mergeField{},
			Holdings: map[string]sqlstore.MergeCounts{"survivor": pv.Survivor, "merged": pv.Merged}}
		schema, err := tx.SubjectSchema(t.ID).Get(r.Context())
		if err != nil {
			return err
		}
		for _, name := range slices.Sorted(maps.Keys(pv.Differs)) {
			f := mergeField{Name: name, Survivor: sr.view.Values[name], Merged: mr.view.Values[name]}
			if s.mayMergeField(p, pol, schema, name) {
				d := pv.Differs[name]
				f.Differs = &d
			}
			out.Fields = append(out.Fields, f)
		}
		return tx.Record(r.Context(), "subject.merge.preview", t.ID, "subject", req.SurvivorID, "", map[string]any{
			"merged_id": req.MergedID, "purpose": purpose,
			"survivor_fields": nonNilStrings(sr.clear), "survivor_masked": nonNilStrings(sr.masked),
			"merged_fields": nonNilStrings(mr.clear), "merged_masked": nonNilStrings(mr.masked)})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}

type mergeRequest struct {
	SurvivorID string            `json:"survivor_id"`
	MergedID   string            `json:"merged_id"`
	Choices    map[string]string `json:"choices"`
	approvalFields
}

// mergeParams are what an approver approves and the approved call must repeat exactly.
type mergeParams struct {
	SurvivorID string            `json:"survivor_id"`
	MergedID   string            `json:"merged_id"`
	Choices    map[string]string `json:"choices"`
}

// mergeSubjects merges merged_id into survivor_id. It needs UPDATE on subjects, at the
// classification of every field taken from the merged subject (it writes them, as a PATCH
// would), and a fresh step-up; it goes through the approval gate (approvals.ActionSubjectMerge,
// on by default): without approval_id it creates the request and answers 202. The pair and the
// choices are checked before a request is made, so nobody approves a merge that cannot run.
func (s *Server) mergeSubjects(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req mergeRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if req.Choices == nil {
		req.Choices = map[string]string{}
	}
	if err := sqlstore.CheckMergeJustification(req.Justification); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if err := s.requireStepUp(p, stepUpAlways); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var held *approvals.Request
	var out *sqlstore.SubjectMerge
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Update, authz.ResSubjects)
		if err != nil {
			return err
		}
		schema, err := tx.SubjectSchema(t.ID).Get(r.Context())
		if err != nil {
			return err
		}
		// A field above what the caller may update keeps the survivor's value unless they chose
		// otherwise (which authorizeFields then refuses): asking them to choose would tell them
		// whether the two values differ.
		for _, f := range schema {
			if _, chosen := req.Choices[f.Name]; !chosen && !s.mayMergeField(p, pol, schema, f.Name) {
				req.Choices[f.Name] = sqlstore.MergeKeepSurvivor
			}
		}
		var taken []string
		for _, f := range slices.Sorted(maps.Keys(req.Choices)) {
			if req.Choices[f] == sqlstore.MergeKeepMerged {
				taken = append(taken, f)
			}
		}
		if err := s.authorizeFields(r, tx, p, authz.Update, schema, taken); err != nil {
			return err
		}
		q := sqlstore.MergeRequest{SurvivorID: req.SurvivorID, MergedID: req.MergedID, Choices: req.Choices,
			Justification: req.Justification, ApprovalID: req.ApprovalID, Window: s.unmergeWindow()}
		merges := tx.SubjectMerges(t.ID)
		if err := merges.Check(r.Context(), q); err != nil {
			return err
		}
		if held, err = s.gate(r, tx, p, t.ID, gated{Action: approvals.ActionSubjectMerge, TargetType: "subject",
			TargetID: req.SurvivorID, Params: mergeParams{SurvivorID: req.SurvivorID, MergedID: req.MergedID, Choices: req.Choices},
			approvalFields: req.approvalFields}); err != nil || held != nil {
			return err
		}
		out, err = merges.Merge(r.Context(), q)
		return err
	})
	if wroteErrOrHeld(w, r, err, held) {
		return
	}
	w.Header().Set("Location", "/v1/tenants/"+out.TenantID+"/subject-merges/"+out.ID)
	middleware.WriteJSON(w, http.StatusCreated, out)
}

type unmergeRequest struct {
	approvalFields
}

// unmergeSubjects undoes a merge within its window (SubjectMerges.Unmerge: exactly the state
// before, or a conflict naming what changed since). UPDATE on subjects and a fresh step-up; the
// subject.merge policy holds it like the merge it undoes (one person must not undo alone what
// two decided), binding the merge's ID.
func (s *Server) unmergeSubjects(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req unmergeRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if err := sqlstore.CheckMergeJustification(req.Justification); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if err := s.requireStepUp(p, stepUpAlways); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var out *sqlstore.SubjectMerge
	var held *approvals.Request
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Update, authz.ResSubjects)
		if err != nil {
			return err
		}
		id := r.PathValue("id")
		merges := tx.SubjectMerges(t.ID)
		if req.ApprovalID == "" {
			// No request for a merge that cannot be undone (an approval named is checked, and
			// spent or refused, by the gate first; Unmerge checks everything again).
			mg, err := merges.Get(r.Context(), id)
			if err != nil {
				return err
			}
			if mg.Status == sqlstore.MergeStatusUnmerged {
				return tutela.Errorf(tutela.ECONFLICT, "this merge was already undone")
			}
			if tx.Now().After(mg.UnmergeUntil) {
				return tutela.Errorf(tutela.ECONFLICT, "the window to undo this merge closed at %s", mg.UnmergeUntil.Format(time.RFC3339))
			}
		}
		if held, err = s.gate(r, tx, p, t.ID, gated{Action: approvals.ActionSubjectMerge, TargetType: "subject_merge", TargetID: id,
			Params: map[string]any{"merge_id": id, "undo": true}, approvalFields: req.approvalFields}); err != nil || held != nil {
			return err
		}
		out, err = merges.Unmerge(r.Context(), id, req.Justification)
		return err
	})
	if wroteErrOrHeld(w, r, err, held) {
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) listMerges(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			middleware.WriteError(w, r, tutela.FieldErrorf("limit", "limit must be 1 to 200"))
			return
		}
		limit = n
	}
	var out []*sqlstore.SubjectMerge
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Update, authz.ResSubjects)
		if err != nil {
			return err
		}
		out, err = tx.SubjectMerges(t.ID).List(r.Context(), r.URL.Query().Get("subject_id"), limit)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"merges": out})
}

func (s *Server) getMerge(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var out *sqlstore.SubjectMerge
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Update, authz.ResSubjects)
		if err != nil {
			return err
		}
		out, err = tx.SubjectMerges(t.ID).Get(r.Context(), r.PathValue("id"))
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}

// mayMergeField reports whether p may update subjects at field's classification: whether a
// merge may show them if the two subjects differ in it, and take the merged subject's value.
func (s *Server) mayMergeField(p *tutela.Principal, pol *authz.Policy, schema privacy.Schema, field string) bool {
	f, ok := schema.Field(field)
	if !ok {
		return false
	}
	return authz.Decide(pol, authz.Request{Action: authz.Update, Resource: authz.ResSubjects, Class: f.Classification,
		StepUpAt: p.StepUpAt}, s.d.Clock()).Allow
}
