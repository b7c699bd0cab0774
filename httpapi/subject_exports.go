package httpapi

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"time"

	"tutela"
	"tutela/approvals"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/sqlstore"
)

// Sealed exports (privacy vault, issue 13): a subject's record exactly as a read for a purpose
// returns it to the caller (readSubject), sealed under the subject's own key and kept for a
// limited time. Erasing the subject destroys the key, so an export stops opening with the rest
// of the subject's data, including copies of its ciphertext taken before (backups).

func (s *Server) subjectExportRoutes() {
	const base = "/v1/tenants/{tenant}/subjects/{id}/exports"
	s.handle("POST", base, false, s.authed(false, s.createSubjectExport))
	s.handle("GET", base, false, s.authed(false, s.listSubjectExports))
	s.handle("GET", base+"/{export}", false, s.authed(false, s.getSubjectExport))
	s.handle("GET", "/v1/tenants/{tenant}/erasures", false, s.authed(false, s.listErasures))
}

type subjectExportRequest struct {
	Purpose    string `json:"purpose"`
	TTLSeconds *int   `json:"ttl_seconds"`
	approvalFields
}

// subjectExportDoc is what an export holds once opened: the read it was made from, with its ID
// and time.
type subjectExportDoc struct {
	ExportID   string    `json:"export_id"`
	ExportedAt time.Time `json:"exported_at"`
	subjectView
}

// createSubjectExport needs EXPORT on subjects (a sensitive action: a person proves a fresh
// second factor) and READ, since the export is a read: fields not allowed for the purpose are
// left out and fields the caller may not read in clear are masked, as GET would return them.
// Where the tenant's policy for subject.export is on, the export waits for approval (the
// subject, the purpose and the export's life are what is approved), checked after the read is
// allowed and before anything is sealed.
func (s *Server) createSubjectExport(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req subjectExportRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	purpose, err := purposeFrom(req.Purpose)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	ttl := sqlstore.DefaultExportTTL
	if req.TTLSeconds != nil {
		ttl = time.Duration(*req.TTLSeconds) * time.Second
		if ttl < sqlstore.MinExportTTL || ttl > sqlstore.MaxExportTTL {
			middleware.WriteError(w, r, tutela.FieldErrorf("ttl_seconds", "ttl_seconds must be between %d and %d",
				int(sqlstore.MinExportTTL/time.Second), int(sqlstore.MaxExportTTL/time.Second)))
			return
		}
	}
	var out *sqlstore.SubjectExport
	var held *approvals.Request
	err = s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Export, authz.ResSubjects)
		if err != nil {
			return err
		}
		if _, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Read, Resource: authz.ResSubjects}); err != nil {
			return err
		}
		rd, err := s.readSubject(r, tx, p, t, pol, r.PathValue("id"), purpose)
		if err != nil {
			return err
		}
		g := gated{Action: approvals.ActionSubjectExport, TargetType: "subject", TargetID: rd.view.ID,
			Params:         map[string]any{"subject": rd.view.ID, "purpose": purpose, "ttl_seconds": int64(ttl / time.Second)},
			approvalFields: req.approvalFields}
		if held, err = s.gateTenant(r, tx, p, t.ID, g); err != nil || held != nil {
			return err
		}
		x := &sqlstore.NewExport{ID: tutela.NewID(), SubjectID: rd.view.ID, TTL: ttl, Maker: exportMaker(p),
			Purpose: purpose, Class: rd.class, Fields: rd.clear, Masked: rd.masked}
		doc, err := json.Marshal(subjectExportDoc{ExportID: x.ID, ExportedAt: tx.Now(), subjectView: rd.view})
		if err != nil {
			return err
		}
		x.Ciphertext, err = s.subjects().SealExport(r.Context(), t.ID, rd.stored, x.Binding(), doc)
		clear(doc)
		if err != nil {
			return subjectErr(err)
		}
		out, err = tx.Subjects(t.ID).CreateExport(r.Context(), x)
		return err
	})
	if wroteErrOrHeld(w, r, err, held) {
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, map[string]any{"id": out.ID, "expires_at": out.ExpiresAt})
}

// exportMaker is p as an export's maker: the one principal its download serves.
func exportMaker(p *tutela.Principal) sqlstore.ExportMaker {
	return sqlstore.ExportMaker{Kind: p.Kind, ID: p.UserID}
}

// getSubjectExport opens an export for its maker alone, while the subject's key exists and the
// export has not expired. An export holds its maker's view (RED values in clear if they could
// read them), so EXPORT is not enough: anyone else gets 404 as if it did not exist, and the
// maker must still be allowed the read it holds — READ on subjects at the highest
// classification it released in clear, for its purpose, with a fresh step-up when that is RED
// (requireStepUp, as every read) — all checked before anything is decrypted: a maker whose
// clearance was lowered or whose step-up has gone stale since is refused, and so is a download
// for a purpose the subject may no longer be processed for (checkProcessing: consent withdrawn,
// an objection or a restriction since the export was made).
// subject.export_download names the export and the fields it holds, never a value.
func (s *Server) getSubjectExport(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var doc json.RawMessage
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Export, authz.ResSubjects)
		if err != nil {
			return err
		}
		x, err := tx.Subjects(t.ID).Export(r.Context(), r.PathValue("id"), r.PathValue("export"), exportMaker(p))
		if err != nil {
			return err
		}
		if _, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Read, Resource: authz.ResSubjects,
			Class: x.Class, Purpose: x.Purpose}); err != nil {
			return err
		}
		// Handing out an export is processing for its purpose, now: consent withdrawn since it
		// was made refuses the download.
		if err := checkProcessing(r.Context(), r, tx, t.ID, x.SubjectID, x.Purpose); err != nil {
			return err
		}
		pt, err := s.subjects().OpenExport(r.Context(), t.ID, x.SubjectID, x.Wrapped, x.Binding(), x.Ciphertext)
		if err != nil {
			return subjectErr(err)
		}
		var fields struct {
			Values map[string]json.RawMessage `json:"values"`
		}
		if err := json.Unmarshal(pt, &fields); err != nil {
			return err
		}
		doc = pt
		return tx.Record(r.Context(), "subject.export_download", t.ID, "subject", x.SubjectID, "", map[string]any{
			"export_id": x.ID, "fields": slices.Sorted(maps.Keys(fields.Values))})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, doc)
}

// listSubjectExports lists a subject's exports (IDs and times, no content): READ on subjects.
func (s *Server) listSubjectExports(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	cursor, limit, err := pageParams(r)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var list []*sqlstore.SubjectExport
	err = s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResSubjects)
		if err != nil {
			return err
		}
		list, err = tx.Subjects(t.ID).Exports(r.Context(), r.PathValue("id"), cursor, limit)
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
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"exports": list, "next_cursor": next})
}

// listErasures answers the tenant's erasure ledger: who was erased, when, by whom, why and on
// what legal basis, never what they held. READ on subjects or READ on audit suffices: an auditor,
// who reads no person's data, must be able to see that erasures happened.
func (s *Server) listErasures(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	cursor, limit, err := pageParams(r)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var list []*sqlstore.Erasure
	err = s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		pol, err := principalPolicy(r, tx, p)
		if err != nil {
			return err
		}
		// Authorized against the permission p holds, so the denial (and its audit note) names
		// subjects only when p holds neither.
		resource := authz.ResSubjects
		if authz.Decide(pol, authz.Request{Action: authz.Read, Resource: authz.ResAudit}, s.d.Clock()).Allow {
			resource = authz.ResAudit
		}
		t, _, err := s.authorize(r, tx, p, authz.Read, resource)
		if err != nil {
			return err
		}
		if pol.Partner != "" {
			// The ledger names every erased subject of the tenant; a partner reads only what is
			// shared with it, and an erased subject is shared with no one.
			return tutela.Errorf(tutela.EFORBIDDEN, "a partner organisation's accounts do not read the erasure ledger")
		}
		list, err = tx.Erasures(r.Context(), t.ID, cursor, limit)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if list == nil {
		list = []*sqlstore.Erasure{}
	}
	next := ""
	if len(list) == limit {
		next = list[len(list)-1].ID
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"erasures": list, "next_cursor": next})
}
