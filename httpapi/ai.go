package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"tutela"
	"tutela/ai"
	"tutela/ai/redact"
	"tutela/ai/upstream"
	"tutela/audit"
	"tutela/authz"
	"tutela/httpapi/middleware"
	"tutela/privacy"
	"tutela/sqlstore"
)

// The AI privacy gateway (issue 16): OpenAI-compatible endpoints under /v1/ai/ that forward a
// caller's request to the tenant's provider only after every value of the subjects it names, and
// every identifier a detector finds, has been replaced by a placeholder; the answer comes back
// with the placeholders the caller may read restored. Each call is two audit events: ai.prompt_sent
// (written before anything leaves: what was replaced, what was attached) and ai.inference
// (status, token counts, latency), never prompt or answer content.

// aiRoutes registers the gateway; it needs the vault (subjects' values) and an upstream client.
func (s *Server) aiRoutes() {
	s.handle("GET", "/v1/ai/models", false, s.authed(false, s.aiModels))
	s.handle("POST", "/v1/ai/chat/completions", false, s.authed(false, s.aiChat))
	s.handle("POST", "/v1/ai/embeddings", false, s.authed(false, s.aiEmbeddings))
}

// MaxAIText bounds the text one call has redacted, all strings together (about 64,000 tokens).
// Redaction is linear in the text but costs up to a few microseconds per byte on hostile input
// (long runs of digit groups), so an unbounded request could hold a core for seconds.
const MaxAIText = 256 << 10

// MaxAISubjects bounds the subjects one call may name: each is a consent check and a decryption.
const MaxAISubjects = 20

// aiOptions are Tutela's part of a gateway call: the body's "tutela" object, or the headers
// Tutela-Purpose, Tutela-Subjects (comma-separated IDs) and Tutela-Attach (for SDKs that set
// headers more easily than extra body fields).
type aiOptions struct {
	Purpose  string   `json:"purpose"`
	Subjects []string `json:"subjects"`
	// Attach adds the subjects' records, minimized by the purpose's profile, as a system message.
	Attach bool `json:"attach"`
}

// aiOptionsFrom merges the body's options with the headers': either may carry each, both only
// if they agree (an SDK may set the purpose as a default header and the subjects per call).
func aiOptionsFrom(r *http.Request, body *aiOptions) (aiOptions, error) {
	var h aiOptions
	h.Purpose = strings.TrimSpace(r.Header.Get("Tutela-Purpose"))
	if v := strings.TrimSpace(r.Header.Get("Tutela-Subjects")); v != "" {
		for id := range strings.SplitSeq(v, ",") {
			h.Subjects = append(h.Subjects, strings.TrimSpace(id))
		}
	}
	switch v := strings.TrimSpace(r.Header.Get("Tutela-Attach")); v {
	case "", "false":
	case "true":
		h.Attach = true
	default:
		return aiOptions{}, tutela.FieldErrorf("Tutela-Attach", "Tutela-Attach must be true or false")
	}
	o := h
	if body != nil {
		// Each member may come from either place; given in both, it must agree.
		switch {
		case h.Purpose != "" && body.Purpose != "" && h.Purpose != body.Purpose:
			return aiOptions{}, tutela.FieldErrorf("tutela.purpose", "tutela.purpose and the Tutela-Purpose header disagree")
		case len(h.Subjects) > 0 && len(body.Subjects) > 0 && !slices.Equal(h.Subjects, body.Subjects):
			return aiOptions{}, tutela.FieldErrorf("tutela.subjects", "tutela.subjects and the Tutela-Subjects header disagree")
		}
		if body.Purpose != "" {
			o.Purpose = body.Purpose
		}
		if len(body.Subjects) > 0 {
			o.Subjects = body.Subjects
		}
		o.Attach = h.Attach || body.Attach
	}
	if !privacy.ValidName(o.Purpose) {
		return aiOptions{}, tutela.FieldErrorf("tutela.purpose", "a purpose is required (tutela.purpose or the Tutela-Purpose header)")
	}
	if len(o.Subjects) > MaxAISubjects {
		return aiOptions{}, tutela.FieldErrorf("tutela.subjects", "at most %d subjects per call", MaxAISubjects)
	}
	seen := map[string]bool{}
	for _, id := range o.Subjects {
		if !tutela.ValidID(id) || seen[id] {
			return aiOptions{}, tutela.FieldErrorf("tutela.subjects", "subjects must be distinct subject IDs")
		}
		seen[id] = true
	}
	if o.Attach && len(o.Subjects) == 0 {
		return aiOptions{}, tutela.FieldErrorf("tutela.attach", "attach needs subjects")
	}
	return o, nil
}

// aiCall is one gateway call once it is admitted: where it goes, the redactor that made its
// placeholders, and what the caller may have restored.
type aiCall struct {
	tenant   *tutela.Tenant
	opts     aiOptions
	model    *ai.Model
	provider *ai.Provider
	target   upstream.Target
	purpose  *ai.Purpose
	red      *redact.Redactor
	// readable holds "i/field" for each subject field the caller may READ for the purpose:
	// only those placeholders are restored in the answer.
	readable map[string]bool
	// attached and withheld are the field names of the minimized records attached (released,
	// and withheld from this caller), for the audit event.
	attached, withheld []string
	subjectIDs         []string
	start              time.Time
	requestID          string
	// sentChars is the size of the request sent, for estimating tokens a provider does not report.
	sentChars int
	// textBytes counts the text redacted so far, against MaxAIText.
	textBytes int
	// jsonMode is set when the caller asked for a JSON answer (response_format).
	jsonMode bool
}

// redact replaces text's identifying values, within the call's MaxAIText.
func (call *aiCall) redact(text string) (string, error) {
	call.textBytes += len(text)
	if call.textBytes > MaxAIText {
		return "", tutela.Errorf(tutela.ETOOLARGE, "a gateway call carries at most %d KiB of text", MaxAIText>>10)
	}
	return call.red.Redact(text), nil
}

// aiSubject is a named subject's values, opened for redaction (all of them: a value is
// replaced whether or not the caller could read it) and, when attach is on, its minimized record.
type aiSubject struct {
	id        string
	fields    []redact.Field
	minimized map[string]any
}

// aiPrepare admits a call in one transaction: authorization (CREATE on ai; READ on subjects
// when subjects are named), the purpose's gateway policy and model, the consent gate of each
// subject, the tenant's rate limit and budgets, the provider's keys, then build (which redacts
// the request through call.red and returns the outbound body), then the ai.prompt_sent event.
// Nothing leaves unless this transaction commits.
func (s *Server) aiPrepare(r *http.Request, p *tutela.Principal, opts aiOptions, modelName string, kind ai.ModelKind,
	build func(call *aiCall, subjects []aiSubject) ([]byte, error)) (*aiCall, []byte, error) {
	call := &aiCall{opts: opts, start: time.Now(), subjectIDs: nonNilStrings(opts.Subjects),
		requestID: middleware.RequestIDFrom(r.Context())}
	var out []byte
	ctx, cancel := context.WithTimeout(r.Context(), s.d.DBTimeout)
	defer cancel()
	err := s.withTokenKeys(ctx, func(tenantID *string) error {
		return s.d.DB.Update(ctx, func(tx *sqlstore.Tx) error {
			t, err := tx.Tenant(ctx, p.TenantID)
			if err != nil {
				return err
			}
			*tenantID, call.tenant = t.ID, t
			pol, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Create, Resource: authz.ResAI, Purpose: opts.Purpose})
			if err != nil {
				return err
			}
			store := tx.AI(t.ID)
			if call.purpose, err = store.Purpose(ctx, opts.Purpose); err != nil {
				if tutela.ErrorCode(err) == tutela.ENOTFOUND {
					return aiDenied(r, opts.Purpose, tutela.Errorf(tutela.EFORBIDDEN, "purpose %q may not use the AI gateway", opts.Purpose))
				}
				return err
			}
			// The purpose must still be in the register (it was when the policy was saved):
			// processing needs a declared lawful basis, subjects named or not.
			if err := tx.Consent(t.ID).Declared(ctx, opts.Purpose); err != nil {
				return err
			}
			if !slices.Contains(call.purpose.Models, modelName) {
				return aiDenied(r, opts.Purpose, tutela.Errorf(tutela.EFORBIDDEN, "model %q is not allowed for purpose %q", modelName, opts.Purpose))
			}
			if call.model, err = store.Model(ctx, modelName); err != nil {
				return err
			}
			if call.model.Kind != kind {
				return tutela.FieldErrorf("model", "model %q is a %s model", modelName, call.model.Kind)
			}
			if call.provider, err = store.ProviderSettings(ctx, call.model.ProviderID); err != nil {
				return err
			}
			if call.provider.Disabled {
				return tutela.Errorf(tutela.EUNAVAILABLE, "the provider of model %q is disabled", modelName)
			}
			settings, err := store.Settings(ctx)
			if err != nil {
				return err
			}
			subjects, err := s.aiSubjects(ctx, r, tx, p, pol, call)
			if err != nil {
				return err
			}
			keys, err := store.Keys(ctx, call.provider.ID)
			if err != nil {
				return err
			}
			if len(keys) == 0 && call.provider.AuthStyle != ai.AuthNone {
				return tutela.Errorf(tutela.ENOTCONFIGURED, "the provider of model %q has no API key", modelName)
			}
			call.target = upstream.Target{Provider: *call.provider, Keys: keys}
			if err := store.Admit(ctx, settings); err != nil {
				return err
			}
			fields := make([]redact.Subject, len(subjects))
			for i, sub := range subjects {
				fields[i] = redact.Subject{ID: sub.id, Fields: sub.fields}
			}
			call.red = redact.New(fields, redact.Options{Countries: idCountries(settings, t)})
			if out, err = build(call, subjects); err != nil {
				return err
			}
			call.sentChars = len(out)
			return tx.Record(ctx, "ai.prompt_sent", t.ID, "ai_model", modelName, "", call.sentDetails())
		})
	})
	if err != nil {
		return nil, nil, err
	}
	return call, out, nil
}

// idCountries are the national ID formats detected for the tenant: its id_countries, or, when
// it set none, the country its data region names ("jo", "gb-london" → JO, GB; a region that is
// not a country, such as "eu", names none).
func idCountries(st *ai.Settings, t *tutela.Tenant) []string {
	if len(st.IDCountries) > 0 || len(t.Region) < 2 {
		return st.IDCountries
	}
	return []string{strings.ToUpper(t.Region[:2])}
}

// aiDenied notes a refusal of the gateway for the request's authz.denied event.
func aiDenied(r *http.Request, purpose string, err *tutela.Error) error {
	noteDenial(r.Context(), denial{action: string(authz.Create), resource: authz.ResAI, purpose: purpose, reason: err.Message})
	return err
}

// aiSubjects opens the named subjects: READ on subjects for the purpose, the consent gate, every
// stored value (for redaction), which fields the caller may have restored, and with attach the
// minimized records.
func (s *Server) aiSubjects(ctx context.Context, r *http.Request, tx *sqlstore.Tx, p *tutela.Principal, pol *authz.Policy, call *aiCall) ([]aiSubject, error) {
	if len(call.opts.Subjects) == 0 {
		return nil, nil
	}
	purpose := call.opts.Purpose
	if _, err := s.decideWith(r, p, pol, authz.Request{Action: authz.Read, Resource: authz.ResSubjects, Purpose: purpose}); err != nil {
		return nil, err
	}
	t := call.tenant
	schema, err := tx.SubjectSchema(t.ID).Get(ctx)
	if err != nil {
		return nil, err
	}
	var prof *privacy.Profile
	if call.opts.Attach {
		if prof, err = tx.MinimizationProfiles(t.ID).Get(ctx, purpose); err != nil {
			return nil, err
		}
	}
	call.readable = map[string]bool{}
	out := make([]aiSubject, 0, len(call.opts.Subjects))
	attached, withheld := map[string]bool{}, map[string]bool{}
	for i, id := range call.opts.Subjects {
		rec, err := tx.Subjects(t.ID).Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := checkProcessing(ctx, r, tx, t.ID, rec.ID, purpose); err != nil {
			return nil, err
		}
		var names []string
		for _, f := range schema {
			if _, held := rec.Stored.Values[f.Name]; held {
				names = append(names, f.Name)
			}
		}
		vals, err := s.subjects().Open(ctx, t.ID, &rec.Stored, names)
		if err != nil {
			return nil, subjectErr(err)
		}
		sub := aiSubject{id: rec.ID}
		for _, name := range names {
			f, _ := schema.Field(name)
			d := authz.Decide(pol, authz.Request{Action: authz.Read, Resource: authz.ResSubjects, Class: f.Classification,
				Purpose: purpose, StepUpAt: p.StepUpAt}, s.d.Clock())
			// A value is restored only where a plain read would show it in full, step-up included.
			readable := f.Allows(purpose) && fieldMask(pol, d, f) == authz.MaskFull && s.requireStepUp(p, d) == nil
			if readable {
				call.readable[aiFieldKey(i, name)] = true
			}
			// A field the caller may not read is opaque: each text of theirs that matched it gets
			// its own placeholder, restored as they wrote it (never the stored value).
			sub.fields = append(sub.fields, redact.Field{Name: name, Type: f.Type, Value: vals[name], Opaque: !readable})
		}
		if prof != nil {
			sub.minimized, err = s.aiMinimize(ctx, tx, t.ID, rec.ID, prof, schema, vals, func(name string) bool {
				return call.readable[aiFieldKey(i, name)]
			}, attached, withheld)
			if err != nil {
				return nil, err
			}
		}
		out = append(out, sub)
	}
	call.attached, call.withheld = sortedKeys(attached), sortedKeys(withheld)
	return out, nil
}

func aiFieldKey(i int, field string) string { return strconv.Itoa(i) + "/" + field }

// aiMinimize applies the purpose's profile to one subject as GET …/subjects/{id}/minimized does:
// a field leaves only when the profile releases it and the caller could read it in full.
func (s *Server) aiMinimize(ctx context.Context, tx *sqlstore.Tx, tenantID, subjectID string, prof *privacy.Profile,
	schema privacy.Schema, vals map[string]string, readable func(string) bool, attached, withheld map[string]bool) (map[string]any, error) {
	release := map[string]string{}
	types := map[string]privacy.FieldType{}
	for _, f := range schema {
		rule, listed := prof.Fields[f.Name]
		v, held := vals[f.Name]
		if !held || !listed || rule.Action == privacy.Drop {
			continue
		}
		if !readable(f.Name) {
			withheld[f.Name] = true
			continue
		}
		release[f.Name], types[f.Name] = v, f.Type
	}
	tv := tx.TokenVault(tenantID, s.tokenizer())
	tokenize := func(field, value string) (string, error) {
		toks, err := tv.Tokenize(ctx, sqlstore.TokenizeRequest{Field: field, Kind: privacy.Deterministic,
			PersonID: subjectID, Values: []string{value}})
		if err != nil {
			return "", err
		}
		return toks[0], nil
	}
	m, err := privacy.Minimize(prof, release, types, tokenize, s.d.Clock())
	if err != nil {
		return nil, err
	}
	for f := range m {
		attached[f] = true
	}
	return m, nil
}

// attachment is the system message carrying the subjects' minimized records.
func (call *aiCall) attachment(subjects []aiSubject) (string, error) {
	var b strings.Builder
	b.WriteString("Records of the people this conversation is about, minimized for the purpose \"")
	b.WriteString(call.opts.Purpose)
	b.WriteString("\". In the conversation, their details appear as placeholders in square brackets; keep placeholders exactly as written.\n")
	for i, sub := range subjects {
		j, err := json.Marshal(sub.minimized)
		if err != nil {
			return "", err
		}
		b.WriteString("Person S")
		b.WriteString(strconv.Itoa(i + 1))
		b.WriteString(": ")
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// allow reports whether the caller may have ph's value: a subject's field only where a plain
// read would show it in full; a detected identifier is what the caller wrote, so always.
func (call *aiCall) allow(ph redact.Placeholder) bool {
	if ph.Subject < 0 {
		return true
	}
	return call.readable[aiFieldKey(ph.Subject, ph.Field)]
}

// restoreValue is what a placeholder becomes in the answer: the stored value where allow says
// so; for a field the caller may not read, the redactor made one placeholder per text they wrote
// (opaque), holding that text. A stored value they may not read never comes back, and neither
// does a sign of which of their words matched it.
func (call *aiCall) restoreValue(ph redact.Placeholder) (string, bool) {
	if call.allow(ph) {
		return ph.Value, true
	}
	return ph.Written, ph.Written != ""
}

// newRestorer is the call's Restorer.
func (call *aiCall) newRestorer() *redact.Restorer { return call.red.RestorerFunc(call.restoreValue) }

// restoredFields names the subject fields x gave back their stored value.
func (call *aiCall) restoredFields(x *redact.Restorer) []string {
	seen := map[string]bool{}
	for _, ph := range x.Restored() {
		if ph.Subject >= 0 && call.allow(ph) {
			seen[ph.Field] = true
		}
	}
	return sortedKeys(seen)
}

// sentDetails is what ai.prompt_sent records: names, IDs and counts, never a value.
func (call *aiCall) sentDetails() map[string]any {
	fields := map[string]bool{}
	detected := map[string]any{}
	n := 0
	for _, ph := range call.red.Placeholders() {
		n += ph.Uses
		if ph.Subject >= 0 {
			fields[ph.Field] = true
		} else {
			c, _ := detected[ph.Field].(int)
			detected[ph.Field] = c + ph.Uses
		}
	}
	d := call.baseDetails()
	d["fields_replaced"] = toAny(sortedKeys(fields))
	d["placeholders"] = n
	d["detected"] = detected
	d["attached_fields"] = toAny(call.attached)
	d["withheld_fields"] = toAny(call.withheld)
	return d
}

func (call *aiCall) baseDetails() map[string]any {
	return map[string]any{"purpose": call.opts.Purpose, "model": call.model.Name, "upstream_model": call.model.Upstream,
		"provider": call.provider.Name, "provider_id": call.provider.ID, "subjects": toAny(call.subjectIDs)}
}

// aiResult is what the call's end records.
type aiResult struct {
	err              error
	status           int // the provider's HTTP status (0: none)
	prompt, complete int64
	estimated        bool
	keyID            string
	attempts         int
	restored         []string
	flags            []redact.Flag
	stream           bool
}

// newAIResult starts the result of a call whose provider request ended with err: a failure
// after attempts keeps the provider's last status, the attempts and the key, for the record.
func newAIResult(err error, stream bool) aiResult {
	res := aiResult{err: err, stream: stream}
	var f *upstream.Failure
	if errors.As(err, &f) {
		res.status, res.attempts, res.keyID = f.Status, f.Attempts, f.KeyID
	}
	return res
}

// aiFinish records the call's end: the tokens against the tenant's budgets, the ai.inference
// event, and the request's own api.request event for status, the HTTP status the caller is about
// to get (one transaction instead of two: auditRequests then leaves it out). A call whose end
// cannot be recorded fails: every inference is on the record.
func (s *Server) aiFinish(r *http.Request, call *aiCall, res aiResult, status int) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.d.DBTimeout)
	defer cancel()
	d := call.baseDetails()
	outcome := audit.OutcomeSuccess
	d["status"] = "ok"
	if res.err != nil {
		outcome = audit.OutcomeError
		d["status"] = tutela.ErrorCode(res.err)
	}
	if res.status != 0 {
		d["provider_status"] = res.status
	}
	d["usage"] = map[string]any{"prompt": res.prompt, "completion": res.complete, "total": res.prompt + res.complete, "estimated": res.estimated}
	d["latency_ms"] = time.Since(call.start).Milliseconds()
	d["attempts"] = res.attempts
	if res.keyID != "" {
		d["key_id"] = res.keyID
	}
	d["stream"] = res.stream
	d["restored_fields"] = toAny(nonNilStrings(res.restored))
	flagged := map[string]any{}
	for _, f := range res.flags {
		c, _ := flagged[f.Kind].(int)
		flagged[f.Kind] = c + 1
	}
	d["flagged"] = flagged
	s.aiMetrics.observe(call, res)
	return s.d.DB.Update(ctx, func(tx *sqlstore.Tx) error {
		if n := res.prompt + res.complete; n > 0 {
			if err := tx.AI(call.tenant.ID).AddTokens(ctx, n); err != nil {
				return err
			}
		}
		return tx.AuditMany(ctx, sqlstore.EventFromContext(ctx, "ai.inference", call.tenant.ID, "ai_model", call.model.Name, outcome, d),
			s.requestRecorded(r, status, time.Since(call.start)))
	})
}

// aiModels lists the models the tenant allows, in OpenAI's list format (GET /v1/models), with
// the purposes that may use each.
func (s *Server) aiModels(w http.ResponseWriter, r *http.Request, p *tutela.Principal) {
	type model struct {
		ID       string   `json:"id"`
		Object   string   `json:"object"`
		Created  int64    `json:"created"`
		OwnedBy  string   `json:"owned_by"`
		Kind     string   `json:"kind"`
		Purposes []string `json:"purposes"`
	}
	var list []model
	err := s.d.DB.View(r.Context(), func(tx *sqlstore.Tx) error {
		if _, _, err := s.decide(r, tx, p, authz.Request{Action: authz.Create, Resource: authz.ResAI}); err != nil {
			return err
		}
		store := tx.AI(p.TenantID)
		models, err := store.Models(r.Context())
		if err != nil {
			return err
		}
		purposes, err := store.Purposes(r.Context())
		if err != nil {
			return err
		}
		providers, err := store.Providers(r.Context())
		if err != nil {
			return err
		}
		names := map[string]string{}
		for _, pr := range providers {
			names[pr.ID] = pr.Name
		}
		list = make([]model, 0, len(models))
		for _, m := range models {
			var ps []string
			for _, pu := range purposes {
				if slices.Contains(pu.Models, m.Name) {
					ps = append(ps, pu.Purpose)
				}
			}
			list = append(list, model{ID: m.Name, Object: "model", Created: m.CreatedAt.Unix(), OwnedBy: names[m.ProviderID],
				Kind: string(m.Kind), Purposes: nonNilStrings(ps)})
		}
		return nil
	})
	if err != nil {
		middleware.WriteError(w, r, err)
		return
	}
	middleware.WriteJSON(w, http.StatusOK, map[string]any{"object": "list", "data": list})
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
