package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"tutela"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/privacy"
	"tutela/sqlstore"
)

// tokenRoutes serves the token vault and minimization profiles (issue 13); they need the vault.
func (s *Server) tokenRoutes() {
	if s.d.Keys == nil {
		return
	}
	s.handle("POST", "/v1/tenants/{tenant}/tokens", false, s.authed(false, s.tokenize))
	s.handle("POST", "/v1/tenants/{tenant}/tokens/detokenize", false, s.authed(false, s.detokenize))
	s.handle("GET", "/v1/tenants/{tenant}/minimization-profiles/{purpose}", false, s.authed(false, s.getProfile))
	s.handle("PUT", "/v1/tenants/{tenant}/minimization-profiles/{purpose}", false, s.authed(false, s.putProfile))
	s.handle("POST", "/v1/tenants/{tenant}/minimization-profiles/{purpose}/apply", false, s.authed(false, s.applyProfile))
}

func (s *Server) tokenizer() privacy.Tokenizer { return privacy.Tokenizer{Vault: s.d.Keys} }

// withTokenKeys runs fn (one store transaction) and, when the tenant's token keysets do not
// exist yet, creates them and runs it once more. Keysets are created outside the transaction
// (SQLite has one writer), and only after fn has authorized the caller and named the tenant.
func (s *Server) withTokenKeys(ctx context.Context, fn func(tenantID *string) error) error {
	var tenantID string
	err := fn(&tenantID)
	if !errors.Is(err, privacy.ErrNoTokenKeys) || tenantID == "" {
		return err
	}
	if err := s.tokenizer().Prepare(ctx, tenantID); err != nil {
		return err
	}
	return fn(&tenantID)
}

type tokenizeRequest struct {
	Field    string            `json:"field"`
	Kind     privacy.TokenKind `json:"kind"`
	PersonID string            `json:"person_id"`
	Values   []string          `json:"values"`
}

// tokenize is CREATE on tokens. The audit event names the field, kind and count, never values.
func (s *Server) tokenize(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req tokenizeRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	if req.Kind == "" {
		req.Kind = privacy.Deterministic
	}
	q := sqlstore.TokenizeRequest{Field: req.Field, Kind: req.Kind, PersonID: req.PersonID, Values: req.Values}
	var toks []string
	err := s.withTokenKeys(r.Context(), func(tenantID *string) error {
		return s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
			t, _, err := s.authorize(r, tx, p, authz.Create, authz.ResTokens)
			if err != nil {
				return err
			}
			*tenantID = t.ID
			if toks, err = tx.TokenVault(t.ID, s.tokenizer()).Tokenize(r.Context(), q); err != nil {
				return err
			}
			targetType, targetID := "", ""
			if q.PersonID != "" {
				targetType, targetID = "person", q.PersonID
			}
			return tx.Record(r.Context(), "token.tokenize", t.ID, targetType, targetID, "",
				map[string]any{"field": q.Field, "kind": string(q.Kind), "count": len(q.Values)})
		})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"field": q.Field, "kind": q.Kind, "tokens": toks})
}

type detokenizeRequest struct {
	Purpose string              `json:"purpose"`
	Tokens  []sqlstore.TokenRef `json:"tokens"`
}

// maxPurpose bounds a stated purpose (it goes into the audit log).
const maxPurpose = 200

// detokenizedView is one answer as the caller may see it: Mask names the mask applied to the
// value (empty when shown in clear; "hidden" leaves no value).
type detokenizedView struct {
	sqlstore.Detokenized
	Mask authz.Mask `json:"mask,omitempty"`
}

// detokenize is READ on tokens at the most sensitive classification among the fields asked
// for (undeclared fields count as RED), with a stated purpose that goes into the audit event
// with the field names and counts. A field of the subject schema is a person's data, so a
// token must not be a way around the subject read path: the purpose must be one
// the field allows (403 naming field and purpose otherwise), the caller needs READ on subjects
// at the field's classification too, and the value comes back through the same mask as a
// subject read (fieldMask: the role's subjects.<field> mask applies). A value of a schema field
// is bound to its subject, so it is returned only while that subject may be processed for the
// purpose (consentHolderCheck, before the value opens; a refusal refuses the whole request).
// Neither tokens nor values are audited: the event says who re-identified how much of what,
// and why.
func (s *Server) detokenize(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req detokenizeRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	req.Purpose = strings.TrimSpace(req.Purpose)
	var out []detokenizedView
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, pol, err := s.authorize(r, tx, p, authz.Read, authz.ResTokens)
		if err != nil {
			return err
		}
		switch {
		case req.Purpose == "":
			return tutela.FieldErrorf("purpose", "purpose is required: say why these values are needed")
		case len(req.Purpose) > maxPurpose || !tutela.ValidText(req.Purpose):
			return tutela.FieldErrorf("purpose", "purpose must be text of at most %d bytes", maxPurpose)
		}
		if err := sqlstore.CheckTokenRefs(req.Tokens); err != nil {
			return err
		}
		schema, err := tx.SubjectSchema(t.ID).Get(r.Context())
		if err != nil {
			return err
		}
		tv := tx.TokenVault(t.ID, s.tokenizer())
		var fields []string
		class := authz.Green
		masks := map[string]authz.Mask{}
		for _, ref := range req.Tokens {
			if slices.Contains(fields, ref.Field) {
				continue
			}
			fields = append(fields, ref.Field)
			c, err := tv.FieldClass(r.Context(), ref.Field)
			if err != nil {
				return err
			}
			if c.Rank() > class.Rank() {
				class = c
			}
			if f, ok := schema.Field(ref.Field); ok {
				if masks[f.Name], err = s.detokenizeSubjectField(r, tx, p, pol, f, req.Purpose); err != nil {
					return err
				}
			}
		}
		if _, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Read, Resource: authz.ResTokens, Class: class,
			Purpose: req.Purpose}); err != nil {
			return err
		}
		vals, err := tv.WithHolderCheck(consentHolderCheck(r, tx, t.ID, req.Purpose, schema)).Detokenize(r.Context(), req.Tokens)
		if err != nil {
			return err
		}
		found := 0
		var masked []string
		out = make([]detokenizedView, len(vals))
		for i, d := range vals {
			out[i] = detokenizedView{Detokenized: d}
			if !d.Found {
				continue
			}
			found++
			if m, ok := masks[d.Field]; ok && m != authz.MaskFull {
				obj := map[string]any{d.Field: d.Value}
				s.masker.ApplyScoped(obj, map[string]authz.Mask{d.Field: m}, t.ID, authz.ResSubjects)
				out[i].Value, _ = obj[d.Field].(string)
				out[i].Mask = m
				if !slices.Contains(masked, d.Field) {
					masked = append(masked, d.Field)
				}
			}
		}
		slices.Sort(fields)
		slices.Sort(masked)
		return tx.Record(r.Context(), "token.detokenize", t.ID, "", "", "", map[string]any{
			"purpose": req.Purpose, "fields": fields, "masked": nonNilStrings(masked), "classification": string(class),
			"count": len(out), "found": found})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"values": out})
}

// detokenizeSubjectField authorizes detokenizing values of subject-schema field f for purpose
// as a subject read would: the purpose must be one f allows (the subject read returns no such
// field; here the request is refused, naming both), READ on subjects at f's classification is
// required, and the mask is the subject read's (fieldMask, one rule for both paths).
func (s *Server) detokenizeSubjectField(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, pol *authz.Policy, f privacy.Field, purpose string) (authz.Mask, error) {
	if !f.Allows(purpose) {
		reason := "field " + f.Name + " is not allowed for purpose " + strconv.Quote(purpose) + " by the subject schema"
		noteDenial(r.Context(), denial{action: string(authz.Read), resource: authz.ResSubjects,
			targetTenant: r.PathValue("tenant"), reason: reason})
		return "", tutela.Errorf(tutela.EFORBIDDEN, "%s", reason)
	}
	_, d, err := s.decide(r, tx, p, authz.Request{Action: authz.Read, Resource: authz.ResSubjects, Class: f.Classification,
		Purpose: purpose})
	if err != nil {
		return "", err
	}
	return fieldMask(pol, d, f), nil
}

func (s *Server) getProfile(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var prof *privacy.Profile
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Read, authz.ResTokens)
		if err != nil {
			return err
		}
		prof, err = tx.MinimizationProfiles(t.ID).Get(r.Context(), r.PathValue("purpose"))
		return err
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, prof)
}

type profileRequest struct {
	Fields map[string]privacy.Rule `json:"fields"`
}

// putProfile is MANAGE on tokens (a sensitive action: step-up): a profile decides what leaves
// the tenant for a purpose, as much a data-protection decision as a grant.
func (s *Server) putProfile(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req profileRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	prof := &privacy.Profile{Purpose: r.PathValue("purpose"), Fields: req.Fields}
	err := s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
		t, _, err := s.authorize(r, tx, p, authz.Manage, authz.ResTokens)
		if err != nil {
			return err
		}
		return tx.MinimizationProfiles(t.ID).Put(r.Context(), prof)
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, prof)
}

type applyRequest struct {
	Record    map[string]string `json:"record"`
	SubjectID string            `json:"subject_id"`
}

// applyProfile minimizes a record the caller holds: CREATE on tokens, since tokenize rules mint
// tokens (deterministic). With subject_id the record is that subject's and every token is bound
// to them (sealed under their key, shredded by their erasure); a tokenize rule on a field of the
// subject schema needs it (a tenant-held token of a person's value would survive the
// person's erasure). Audited with the purpose and field names only.
func (s *Server) applyProfile(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	var req applyRequest
	if err := middleware.DecodeJSON(w, r, &req); err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	purpose := r.PathValue("purpose")
	var out map[string]any
	err := s.withTokenKeys(r.Context(), func(tenantID *string) error {
		return s.d.DB.Update(r.Context(), func(tx *sqlstore.Tx) error {
			t, _, err := s.authorize(r, tx, p, authz.Create, authz.ResTokens)
			if err != nil {
				return err
			}
			*tenantID = t.ID
			if err := checkRecord(req.Record); err != nil {
				return err
			}
			prof, err := tx.MinimizationProfiles(t.ID).Get(r.Context(), purpose)
			if err != nil {
				return err
			}
			tv := tx.TokenVault(t.ID, s.tokenizer())
			types, err := tv.FieldTypes(r.Context())
			if err != nil {
				return err
			}
			if err := s.checkApplySubject(r, tx, p, t.ID, prof, req, types); err != nil {
				return err
			}
			tokenize := func(field, value string) (string, error) {
				toks, err := tv.Tokenize(r.Context(), sqlstore.TokenizeRequest{Field: field, Kind: privacy.Deterministic,
					PersonID: req.SubjectID, Values: []string{value}})
				if err != nil {
					return "", err
				}
				return toks[0], nil
			}
			if out, err = privacy.Minimize(prof, req.Record, types, tokenize, s.d.Clock()); err != nil {
				return err
			}
			in, kept := make([]string, 0, len(req.Record)), make([]string, 0, len(out))
			for f := range req.Record {
				in = append(in, f)
			}
			for f := range out {
				kept = append(kept, f)
			}
			slices.Sort(in)
			slices.Sort(kept)
			details := map[string]any{"purpose": purpose, "fields_in": in, "fields_out": kept}
			if req.SubjectID != "" {
				details["subject_id"] = req.SubjectID
			}
			return tx.Record(r.Context(), "minimization_profile.apply", t.ID, "minimization_profile", purpose, "", details)
		})
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"purpose": purpose, "record": out})
}

// checkApplySubject refuses, before any token is minted, a record whose subject-schema fields
// the profile tokenizes without subject_id, and a subject_id that is not a live subject of the
// tenant. Naming a subject needs READ on subjects: the answer tells whether they exist.
func (s *Server) checkApplySubject(r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, tenantID string, prof *privacy.Profile, req applyRequest, types map[string]privacy.FieldType) error {
	if req.SubjectID != "" {
		if !tutela.ValidID(req.SubjectID) {
			return tutela.FieldErrorf("subject_id", "subject_id must be a subject's ID")
		}
		if _, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Read, Resource: authz.ResSubjects}); err != nil {
			return err
		}
		_, err := tx.Subjects(tenantID).Get(r.Context(), req.SubjectID)
		return err
	}
	for field := range req.Record {
		if _, schema := types[field]; schema && prof.Fields[field].Action == privacy.Tokenize {
			return tutela.FieldErrorf("subject_id", "field %s is a field of the subject schema: tokenizing it needs subject_id, the subject the record belongs to (their token goes with their erasure)", field)
		}
	}
	return nil
}

func checkRecord(rec map[string]string) error {
	if len(rec) == 0 || len(rec) > privacy.MaxProfileFields {
		return tutela.FieldErrorf("record", "record must hold 1 to %d fields", privacy.MaxProfileFields)
	}
	for f := range rec {
		if !privacy.ValidTokenField(f) {
			return tutela.FieldErrorf("record", "record keys must be field names (lowercase letters, digits, _)")
		}
	}
	return nil
}
