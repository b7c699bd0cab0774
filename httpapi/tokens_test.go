package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"tutela"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

func newTokenEnv(t *testing.T, d sqlstore.Dialect) *env {
	t.Helper()
	return newEnv(t, d, func(d *httpapi.Deps) { d.Keys = newVault(t, d.DB) })
}

// declareField adds a subject schema field with a classification, allowed for the purpose
// case_review (the schema's own API is another part of the privacy vault; the table is what the
// token vault reads).
func declareField(t *testing.T, e *env, tenantID, name, typ, class string) {
	t.Helper()
	now := e.clock.Now()
	if _, err := e.db.SQL().ExecContext(ctxBG, `INSERT INTO subject_fields (tenant_id, name, type, classification, purposes,
		retention_days, mask, searchable, created_at, updated_at) VALUES ($1, $2, $3, $4, '["case_review"]', 365, 'redacted', false, $5, $5)`,
		tenantID, name, typ, class, now); err != nil {
		t.Fatal(err)
	}
}

func TestDetokenize_NeedsPermissionPurposeAndClearance(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newTokenEnv(t, d)
			tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
			e.seed(t, "acme", "op@example.org", pw, "operator")
			e.seed(t, "acme", "aud@example.org", pw, "auditor")
			_, ben := e.seed(t, "acme", "ben@example.org", pw) // the person whose case reference it is
			declareField(t, e, tn.ID, "case_ref", "text", "YELLOW")
			admin := e.login(t, "acme", "admin@example.org", pw, "").AccessToken
			op := e.login(t, "acme", "op@example.org", pw, "").AccessToken
			aud := e.login(t, "acme", "aud@example.org", pw, "").AccessToken
			base := "/v1/tenants/" + tn.ID + "/tokens"

			// The operator may tokenize; the auditor may not.
			res, b := e.req(t, "POST", base, `{"field":"case_ref","person_id":"`+ben.ID+`","values":["JO-2026-000417"]}`, "", op)
			if res.StatusCode != 200 {
				t.Fatalf("operator tokenize: %d %s", res.StatusCode, b)
			}
			var tok struct{ Tokens []string }
			if err := json.Unmarshal(b, &tok); err != nil || len(tok.Tokens) != 1 || !strings.HasPrefix(tok.Tokens[0], "tok_") {
				t.Fatalf("tokenize answer %s", b)
			}
			res, b = e.req(t, "POST", base, `{"field":"case_ref","values":["x"]}`, "", aud)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			res, b = e.req(t, "POST", base, `{"field":"national_id","kind":"format_preserving","values":["9861234567"]}`, "", admin)
			if res.StatusCode != 200 {
				t.Fatalf("admin tokenize: %d %s", res.StatusCode, b)
			}
			var red struct{ Tokens []string }
			_ = json.Unmarshal(b, &red)

			detok := func(purpose, field, token string) string {
				return `{"purpose":"` + purpose + `","tokens":[{"field":"` + field + `","token":"` + token + `"}]}`
			}
			// No permission: refused, whatever the purpose.
			for _, auth := range []string{aud, op} {
				res, b = e.req(t, "POST", base+"/detokenize", detok("case review", "case_ref", tok.Tokens[0]), "", auth)
				wantError(t, res, b, 403, tutela.EFORBIDDEN)
			}
			// Permission but no purpose: refused.
			for _, p := range []string{"", "   "} {
				res, b = e.req(t, "POST", base+"/detokenize", detok(p, "case_ref", tok.Tokens[0]), "", admin)
				if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "purpose" {
					t.Fatalf("error names %q, want purpose", eb.Error.Field)
				}
			}
			// An undeclared field counts as RED: above a programme administrator's clearance.
			res, b = e.req(t, "POST", base+"/detokenize", detok("case review", "national_id", red.Tokens[0]), "", admin)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			// case_ref is a subject-schema field: the purpose must be one it allows.
			res, b = e.req(t, "POST", base+"/detokenize", detok("case review 417", "case_ref", tok.Tokens[0]), "", admin)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			// Permission, clearance and purpose: the value.
			res, b = e.req(t, "POST", base+"/detokenize", detok("case_review", "case_ref", tok.Tokens[0]), "", admin)
			if res.StatusCode != 200 || !strings.Contains(string(b), `"value":"JO-2026-000417"`) {
				t.Fatalf("detokenize: %d %s", res.StatusCode, b)
			}
			recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: tn.ID, Action: "token.detokenize"})
			if err != nil || len(recs) != 1 {
				t.Fatalf("%d token.detokenize events (%v), want 1: refusals are authz.denied", len(recs), err)
			}
			if d := recs[0].Event.Details; d["purpose"] != "case_review" || d["classification"] != "YELLOW" {
				t.Fatalf("audit details %v", d)
			}
			if c := string(recs[0].Canonical); strings.Contains(c, "JO-2026") || strings.Contains(c, tok.Tokens[0]) {
				t.Fatalf("audit event holds the value or token: %s", c)
			}
			denied, _, _ := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: tn.ID, Action: "authz.denied"})
			if len(denied) < 4 {
				t.Fatalf("%d authz.denied events, want the refusals audited", len(denied))
			}
			// Another tenant's admin cannot reach this tenant's vault; in their own, the token is unknown.
			other, _ := e.seed(t, "globex", "g@example.org", pw, "program_admin")
			declareField(t, e, other.ID, "case_ref", "text", "YELLOW")
			g := e.login(t, "globex", "g@example.org", pw, "").AccessToken
			res, b = e.req(t, "POST", base+"/detokenize", detok("case_review", "case_ref", tok.Tokens[0]), "", g)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = e.req(t, "POST", "/v1/tenants/"+other.ID+"/tokens/detokenize", detok("case_review", "case_ref", tok.Tokens[0]), "", g)
			if res.StatusCode != 200 || !strings.Contains(string(b), `"found":false`) || strings.Contains(string(b), "JO-2026") {
				t.Fatalf("other tenant's detokenize: %d %s", res.StatusCode, b)
			}
		})
	}
}

func TestMinimizationProfile_PutApplyGet(t *testing.T) {
	t.Parallel()
	e := newTokenEnv(t, sqlstore.SQLite)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	e.seed(t, "acme", "op@example.org", pw, "operator")
	declareField(t, e, tn.ID, "date_of_birth", "date", "RED")
	admin := e.login(t, "acme", "admin@example.org", pw, "").AccessToken
	op := e.login(t, "acme", "op@example.org", pw, "").AccessToken
	path := "/v1/tenants/" + tn.ID + "/minimization-profiles/ai-triage"
	profile := `{"fields":{"date_of_birth":{"action":"generalize"},"phone":{"action":"tokenize"},"language":{"action":"pass"},
		"address":{"action":"generalize","as":"region"}}}`
	res, b := e.req(t, "PUT", path, profile, "", op)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	res, b = e.req(t, "POST", path+"/apply", `{"record":{"language":"ar"}}`, "", admin)
	wantError(t, res, b, 404, tutela.ENOTFOUND)
	if res, b = e.req(t, "PUT", path, profile, "", admin); res.StatusCode != 200 {
		t.Fatalf("put: %d %s", res.StatusCode, b)
	}
	res, b = e.req(t, "PUT", path, `{"fields":{"x":{"action":"leak"}}}`, "", admin)
	wantError(t, res, b, 400, tutela.EINVALID)
	if res, b = e.req(t, "GET", path, "", "", op); res.StatusCode != 403 {
		t.Fatalf("operator read a profile: %d %s", res.StatusCode, b)
	}
	if res, b = e.req(t, "GET", path, "", "", admin); res.StatusCode != 200 || !strings.Contains(string(b), `"tokenize"`) {
		t.Fatalf("get: %d %s", res.StatusCode, b)
	}
	rec := `{"record":{"date_of_birth":"1990-01-01","phone":"+962791234567","language":"ar",
		"address":"12 Rainbow St, Amman, Jordan","name":"Layla Mansour"}}`
	res, b = e.req(t, "POST", path+"/apply", rec, "", op)
	if res.StatusCode != 200 {
		t.Fatalf("apply: %d %s", res.StatusCode, b)
	}
	var got struct{ Record map[string]string }
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Record["name"]; ok || got.Record["language"] != "ar" || got.Record["address"] != "Jordan" ||
		!strings.HasPrefix(got.Record["phone"], "tok_") || !strings.Contains(got.Record["date_of_birth"], "-") {
		t.Fatalf("minimized record %v", got.Record)
	}
	recs, _, _ := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: tn.ID, Action: "minimization_profile.apply"})
	if len(recs) != 1 {
		t.Fatalf("apply audit: %d events, want 1", len(recs))
	}
	// The record's values, whole: a fragment such as "1990" also turns up by chance in the
	// event's IDs and sealed fields (hex and base64).
	for _, v := range []string{"Layla", "1990-01-01", "+962791234567", "Rainbow"} {
		if c := string(recs[0].Canonical); strings.Contains(c, v) {
			t.Fatalf("apply audit holds %q: %s", v, c)
		}
	}
}
