package httpapi

import (
	"maps"
	"net/http"
	"slices"

	"tutela"
	"tutela/approvals"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/privacy"
	"tutela/sqlstore"
)

// Subjects (privacy vault, issue 13): the people whose data a tenant holds. Values are sealed
// (privacy.Subjects) outside the write transaction, because the vault may create the tenant's
// keysets on first use in a transaction of its own; the write transaction authorizes again and
// the store refuses a change sealed against a schema that has changed since.

// subjectRoutes registers the subject endpoints; they need the vault (Deps.Keys).
func (s *Server) subjectRoutes() {
	const base = "/v1/tenants/{tenant}/subjects"
	s.handle("GET", "/v1/tenants/{tenant}/subject-schema", false, s.authed(false, s.getSubjectSchema))
	s.handle("PUT", "/v1/tenants/{tenant}/subject-schema", false, s.authed(false, s.putSubjectSchema))
	s.handle("POST", base, false, s.authed(false, s.createSubject))
	s.handle("GET", base, false, s.authed(false, s.listSubjects))
	s.handle("POST", base+"/search", false, s.authed(false, s.searchSubjects))
	s.handle("GET", base+"/search", false, s.authed(false, searchByURLRefused))
	s.handle("GET", base+"/{id}", false, s.authed(false, s.getSubject))
	s.handle("PATCH", base+"/{id}", false, s.authed(false, s.patchSubject))
	s.handle("DELETE", base+"/{id}", false, s.authed(false, s.eraseSubject))
	s.handle("GET", base+"/{id}/holds", false, s.authed(false, s.listHolds))
	s.handle("POST", base+"/{id}/holds", false, s.authed(false, s.placeHold))
	s.handle("DELETE", base+"/{id}/holds/{hold}", false, s.authed(false, s.releaseHold))
	s.subjectExportRoutes()
}

func (s *Server) subjects() privacy.Subjects { return privacy.NewSubjects(s.d.Keys) }

type subjectSchemaBody struct {
	Fields privacy.Schema `json:"fields"`
}

func (s *Server) getSubjectSchema(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var schema privacy.Schema
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResSubjects)
		if err != nil {
			return err
		}
		schema, err = tx.SubjectSchema(t.ID).Get(r.Context())
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, subjectSchemaBody{Fields: schema})
}

func (s *Server) putSubjectSchema(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req subjectSchemaBody
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if req.Fields == nil {
		middleware.WriteError(w, r, tutela.FieldErrorf("fields", "fields is required (an empty list removes every field)"))
		return
	}
	var schema privacy.Schema
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Manage, authz.ResSubjects)
		if err != nil {
			return err
		}
		if err := tx.SubjectSchema(t.ID).PutAuthorized(r.Context(), req.Fields, func(changes []privacy.FieldChange) error {
			return s.authorizeSchemaChanges(r, p, pol, changes)
		}); err != nil {
			return err
		}
		schema, err = tx.SubjectSchema(t.ID).Get(r.Context())
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, subjectSchemaBody{Fields: schema})
}

// schemaChangePurpose is the purpose stated for the clearance check of a schema change.
const schemaChangePurpose = "subject_schema_change"

// authorizeSchemaChanges enforces "you cannot change what you cannot see": every field added,
// changed or removed needs READ on subjects at the higher of its old and new classification, so
// a YELLOW-cleared administrator cannot lower a RED field, relax its mask or add a purpose to
// it and then read it. A refusal is audited as authz.denied, names the field, and changes
// nothing.
func (s *Server) authorizeSchemaChanges(r *http.Request, p *tutela.Principal, pol *authz.Policy, changes []privacy.FieldChange) error {
	for _, c := range changes {
		d := authz.Decide(pol, authz.Request{Action: authz.Read, Resource: authz.ResSubjects, Class: c.Class(),
			Purpose: schemaChangePurpose, StepUpAt: p.StepUpAt}, s.d.Clock())
		if !d.Allow {
			reason := "changing field " + c.Name + " needs READ on subjects at " + string(c.Class()) + ": " + d.Reason
			noteDenial(r.Context(), denial{action: string(authz.Read), resource: authz.ResSubjects,
				targetTenant: r.PathValue("tenant"), reason: reason})
			return tutela.Errorf(tutela.EFORBIDDEN, "%s", reason)
		}
		if err := s.requireStepUp(p, d); err != nil {
			return err
		}
	}
	return nil
}

// authorizeFields checks action on subjects at the highest classification among fields: writing
// a RED value needs the same clearance as reading one.
func (s *Server) authorizeFields(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, action authz.Action, schema privacy.Schema, fields []string) error {
	class := authz.Green
	for _, name := range fields {
		if f, ok := schema.Field(name); ok && f.Classification.Rank() > class.Rank() {
			class = f.Classification
		}
	}
	_, _, err := s.decide(r, tx, p, authz.Request{Action: action, Resource: authz.ResSubjects, Class: class})
	return err
}

type subjectValuesBody struct {
	Values map[string]*string `json:"values"`
}

// prepareSubject authorizes action, reads the schema (and, for an update, the subject's wrapped
// key) and seals the values: the read half of a write.
func (s *Server) prepareSubject(r *http.Request, p *tutela.Principal, action authz.Action, values map[string]*string) (*privacy.Sealed, error) {
	var schema privacy.Schema
	var wrapped []byte
	var tenantID string
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, action, authz.ResSubjects)
		if err != nil {
			return err
		}
		tenantID = t.ID
		if schema, err = tx.SubjectSchema(t.ID).Get(r.Context()); err != nil {
			return err
		}
		if err := s.authorizeFields(r, tx, p, action, schema, slices.Collect(maps.Keys(values))); err != nil {
			return err
		}
		if action == authz.Update {
			rec, err := tx.Subjects(t.ID).Get(r.Context(), r.PathValue("id"))
			if err != nil {
				return err
			}
			wrapped = rec.Stored.Wrapped
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if action == authz.Create {
		plain := make(map[string]string, len(values))
		for k, v := range values {
			if v == nil {
				return nil, tutela.FieldErrorf(k, "%s: a new subject's values cannot be null", k)
			}
			plain[k] = *v
		}
		return s.subjects().SealNew(r.Context(), tenantID, schema, plain)
	}
	return s.subjects().SealUpdate(r.Context(), tenantID, r.PathValue("id"), wrapped, schema, values)
}

func (s *Server) writeSubject(w http.ResponseWriter, r *http.Request, p *tutela.Principal, action authz.Action) {
	var req subjectValuesBody
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	sealed, err := s.prepareSubject(r, p, action, req.Values)
	if err != nil {
		middleware.WriteError(w, r, subjectErr(err))
		return
	}
	var out *sqlstore.Subject
	err = s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, action, authz.ResSubjects)
		if err != nil {
			return err
		}
		schema, err := tx.SubjectSchema(t.ID).Get(r.Context())
		if err != nil {
			return err
		}
		set, cleared := sealed.Fields()
		if err := s.authorizeFields(r, tx, p, action, schema, append(set, cleared...)); err != nil {
			return err
		}
		if action == authz.Create {
			out, err = tx.Subjects(t.ID).Create(r.Context(), sealed)
		} else {
			out, err = tx.Subjects(t.ID).Update(r.Context(), sealed)
		}
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	status := http.StatusOK
	if action == authz.Create {
		status = http.StatusCreated
	}
	middleware.WriteJSON(w, status, out)
}

// subjectErr maps the privacy package's sentinel errors to tutela errors.
func subjectErr(err error) error {
	if privacy.IsErased(err) {
		return sqlstore.ErrSubjectErased
	}
	return err
}

func (s *Server) createSubject(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	s.writeSubject(w, r, p, authz.Create)
}

func (s *Server) patchSubject(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	s.writeSubject(w, r, p, authz.Update)
}

func (s *Server) listSubjects(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	cursor, limit, err := pageParams(r)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var list []*sqlstore.Subject
	err = s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResSubjects)
		if err != nil {
			return err
		}
		list, err = tx.Subjects(t.ID).List(r.Context(), cursor, limit)
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
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"subjects": list, "next_cursor": next})
}

// purposeParam is the required ?purpose= of a read: a purpose name as the schema declares them.
func purposeParam(r *http.Request) (string, error) { return purposeFrom(r.URL.Query().Get("purpose")) }

// purposeFrom checks a read's declared purpose: required, a purpose name as the schema names them.
func purposeFrom(p string) (string, error) {
	if !privacy.ValidName(p) {
		return "", tutela.FieldErrorf("purpose", "purpose is required: the purpose of this read, as the subject schema names it")
	}
	return p, nil
}

type subjectView struct {
	*sqlstore.Subject
	Purpose string         `json:"purpose"`
	Values  map[string]any `json:"values"`
}

// fieldMask is the mask a principal sees field through: full when Decide allows READ at the
// field's classification, the field's own mask otherwise; the role's mask for
// "subjects.<field>" applies too, and the stricter of the two wins.
func fieldMask(pol *authz.Policy, d authz.Decision, f privacy.Field) authz.Mask {
	m := authz.MaskFull
	if !d.Allow {
		m = f.Mask
	}
	if pm, ok := pol.Masks[authz.ResSubjects+"."+f.Name]; ok && (!pm.Valid() || pm.Rank() > m.Rank()) {
		m = pm
		if !pm.Valid() {
			m = authz.MaskHidden // fail closed
		}
	}
	return m
}

// getSubject answers what readSubject builds for ?purpose=. The audit event records the purpose
// and the fields returned, never values.
func (s *Server) getSubject(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	purpose, err := purposeParam(r)
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var out subjectView
	err = s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Read, authz.ResSubjects)
		if err != nil {
			return err
		}
		rd, err := s.readSubject(r, tx, p, t, pol, r.PathValue("id"), purpose)
		if err != nil {
			return err
		}
		out = rd.view
		return tx.Record(r.Context(), "subject.read", t.ID, "subject", rd.view.ID, "", map[string]any{
			"purpose": purpose, "fields": nonNilStrings(rd.clear), "masked": nonNilStrings(rd.masked)})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, out)
}

// subjectRead is a subject's record as one purpose-bound read returns it to one caller, with
// the names of the fields returned in clear and masked (what an audit event may say), and the
// highest classification among the fields in clear (GREEN when none): what a later download of
// an export of this read must be cleared for.
type subjectRead struct {
	view          subjectView
	stored        *privacy.Stored
	clear, masked []string
	class         authz.Classification
}

// readSubject builds what a read of subject id for purpose returns to p, whose policy pol the
// caller loaded while authorizing in tenant t: the fields whose purposes include purpose, each
// in clear when p may READ subjects at the field's classification (RED in clear needs a fresh
// step-up, as every RED read) and masked otherwise. GET …/subjects/{id} and sealed exports share
// it, so an export never holds more than a read would show. The subject must be processable for
// purpose now (checkProcessing: declared purpose, consent, no objection or restriction),
// checked before any key opens.
func (s *Server) readSubject(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, t *tutela.Tenant, pol *authz.Policy, id, purpose string) (*subjectRead, error) {
	if pol.Partner != "" {
		// The share and its purpose first, so a subject shared for another purpose costs a
		// partner the same one probe as one never shared (or missing): nothing loaded, 404.
		if err := checkProcessing(r.Context(), r, tx, t.ID, id, purpose); err != nil {
			return nil, err
		}
	}
	schema, err := tx.SubjectSchema(t.ID).Get(r.Context())
	if err != nil {
		return nil, err
	}
	rec, err := tx.Subjects(t.ID).Get(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if err := checkProcessing(r.Context(), r, tx, t.ID, rec.ID, purpose); err != nil {
		return nil, err
	}
	var allowed []string
	masks := map[string]authz.Mask{}
	for _, f := range schema {
		if _, held := rec.Stored.Values[f.Name]; !held || !f.Allows(purpose) {
			continue
		}
		if pol.Partner != "" && f.Classification.Rank() > authz.Green.Rank() {
			continue // a partner sees GREEN fields only: not even their masked forms
		}
		d := authz.Decide(pol, authz.Request{Action: authz.Read, Resource: authz.ResSubjects, Class: f.Classification,
			Purpose: purpose, StepUpAt: p.StepUpAt}, s.d.Clock())
		m := fieldMask(pol, d, f)
		if m == authz.MaskFull {
			if err := s.requireStepUp(p, d); err != nil {
				return nil, err
			}
		}
		allowed = append(allowed, f.Name)
		masks[f.Name] = m
	}
	vals, err := s.subjects().Open(r.Context(), t.ID, &rec.Stored, allowed)
	if err != nil {
		return nil, subjectErr(err)
	}
	obj := make(map[string]any, len(vals))
	for k, v := range vals {
		obj[k] = v
	}
	s.masker.ApplyScoped(obj, masks, t.ID, authz.ResSubjects)
	out := &subjectRead{view: subjectView{Subject: &rec.Subject, Purpose: purpose, Values: obj}, stored: &rec.Stored,
		class: authz.Green}
	for _, name := range allowed {
		if masks[name] == authz.MaskFull {
			if f, _ := schema.Field(name); f.Classification.Rank() > out.class.Rank() {
				out.class = f.Classification
			}
			out.clear = append(out.clear, name)
		} else {
			out.masked = append(out.masked, name)
		}
	}
	return out, nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type subjectSearchRequest struct {
	Field   string `json:"field"`
	Value   string `json:"value"`
	Purpose string `json:"purpose"`
}

// searchByURLRefused answers the retired GET …/subjects/search?field=&value= with 405: a
// searched value in a URL ends up in proxy, server and browser logs and histories (ASVS 5.0
// 14.2.1). It reads nothing from the query, so the value goes nowhere.
func searchByURLRefused(w http.ResponseWriter, r *http.Request, _ *tutela.Principal) {
	w.Header().Set("Allow", http.MethodPost)
	middleware.WriteError(w, r, tutela.Errorf(tutela.EMETHODNOTALLOWED,
		"search with POST and a JSON body {field, value, purpose}: a value in the URL would be logged"))
}

// searchSubjects finds subjects by the exact (normalized) value of a searchable field through
// its blind index. The caller needs READ at the field's classification (a match confirms the
// value) and a purpose the field allows and the register declares. The value travels in the
// body, never the URL, and is neither logged nor audited: subject.search names the field. A
// search is processing of the subjects it returns: those the purpose may not process now
// (consent missing or withdrawn, an objection, a restriction) are left out as if they did not
// match, and the event counts them (omitted) without naming them.
func (s *Server) searchSubjects(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req subjectSearchRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	purpose, name, value := req.Purpose, req.Field, req.Value
	if !privacy.ValidName(purpose) {
		middleware.WriteError(w, r, tutela.FieldErrorf("purpose", "purpose is required: the purpose of this search, as the subject schema names it"))
		return
	}
	if !privacy.ValidName(name) {
		middleware.WriteError(w, r, tutela.FieldErrorf("field", "field is required: a searchable field of the subject schema"))
		return
	}
	if value == "" {
		middleware.WriteError(w, r, tutela.FieldErrorf("value", "value is required"))
		return
	}
	var ids []string
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResSubjects)
		if err != nil {
			return err
		}
		if err := tx.Consent(t.ID).Declared(r.Context(), purpose); err != nil {
			return err
		}
		schema, err := tx.SubjectSchema(t.ID).Get(r.Context())
		if err != nil {
			return err
		}
		f, ok := schema.Field(name)
		if !ok || !f.Searchable {
			return tutela.FieldErrorf("field", "%s is not a searchable field of this tenant's subject schema", name)
		}
		if !f.Allows(purpose) {
			return tutela.Errorf(tutela.EFORBIDDEN, "field %s is not allowed for purpose %s", name, purpose)
		}
		if _, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Read, Resource: authz.ResSubjects,
			Class: f.Classification, Purpose: purpose}); err != nil {
			return err
		}
		digests, err := s.subjects().SearchDigests(r.Context(), t.ID, f, value)
		if err != nil {
			return err
		}
		if ids, err = tx.Subjects(t.ID).Search(r.Context(), name, digests, sqlstore.MaxPageSize); err != nil {
			return err
		}
		omitted := 0
		if ids, omitted, err = processableSubjects(r.Context(), tx, t.ID, purpose, ids); err != nil {
			return err
		}
		return tx.Record(r.Context(), "subject.search", t.ID, "subject_schema", t.ID, "", map[string]any{
			"field": name, "purpose": purpose, "matches": len(ids), "omitted": omitted})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"subject_ids": ids})
}

type subjectEraseRequest struct {
	Reason     string `json:"reason"`
	LegalBasis string `json:"legal_basis"`
	approvalFields
}

// eraseSubject crypto-shreds a subject. DELETE on subjects is a sensitive action: a person needs
// a fresh second factor; a service account holding the permission may erase without one (an
// erasure pipeline), and the ledger and audit log name it as the actor.
func (s *Server) eraseSubject(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req subjectEraseRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if err := sqlstore.CheckErasureText(req.Reason, req.LegalBasis); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var e *sqlstore.Erasure
	var held *approvals.Request
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Delete, authz.ResSubjects)
		if err != nil {
			return err
		}
		id := r.PathValue("id")
		if req.ApprovalID == "" {
			// No request for a subject that does not exist (an approval named is checked, and
			// spent or refused, by the gate first).
			if _, err := tx.Subjects(t.ID).Get(r.Context(), id); err != nil {
				return err
			}
		}
		// An erasure is one whether a data-subject request or this call asks for it: the
		// tenant's dsr.erasure policy holds both, or the policy would be one DELETE away.
		if held, err = s.gateTenant(r, tx, p, t.ID, gated{Action: approvals.ActionErasure, TargetType: "subject", TargetID: id,
			Params: map[string]any{"subject": id, "reason": req.Reason, "legal_basis": req.LegalBasis}, approvalFields: req.approvalFields}); err != nil || held != nil {
			return err
		}
		e, err = tx.Subjects(t.ID).Erase(r.Context(), id, req.Reason, req.LegalBasis, sqlstore.ErasureRequest)
		return err
	})
	if wroteErrOrHeld(w, r, err, held) {
		return
	}
	middleware.WriteJSON(w, http.StatusOK, e)
}

type holdRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) placeHold(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req holdRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	var h *sqlstore.Hold
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResSubjects)
		if err != nil {
			return err
		}
		h, err = tx.Subjects(t.ID).PlaceHold(r.Context(), r.PathValue("id"), req.Reason)
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusCreated, h)
}

func (s *Server) releaseHold(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var h *sqlstore.Hold
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResSubjects)
		if err != nil {
			return err
		}
		h, err = tx.Subjects(t.ID).ReleaseHold(r.Context(), r.PathValue("id"), r.PathValue("hold"))
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, h)
}

func (s *Server) listHolds(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var holds []*sqlstore.Hold
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResSubjects)
		if err != nil {
			return err
		}
		holds, err = tx.Subjects(t.ID).Holds(r.Context(), r.PathValue("id"))
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"holds": holds})
}
