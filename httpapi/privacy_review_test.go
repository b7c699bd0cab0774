package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// Regression tests for the privacy vault's security review (schema changes, subject tokens, detokenization, hashed masks, ASVS 14.2.1).

// schemaWith returns the test schema with the definition of one field replaced.
func schemaWith(t *testing.T, field, def string) string {
	t.Helper()
	var doc struct {
		Fields []map[string]any `json:"fields"`
	}
	mustUnmarshal(t, []byte(subjectSchemaJSON), &doc)
	var repl map[string]any
	if def != "" {
		mustUnmarshal(t, []byte(def), &repl)
	}
	out := doc.Fields[:0]
	for _, f := range doc.Fields {
		if f["name"] != field {
			out = append(out, f)
		}
	}
	if repl != nil {
		out = append(out, repl)
	}
	b, err := json.Marshal(map[string]any{"fields": out})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// userWithRole creates a custom RED-cleared role key with perms (JSON permission objects) and
// masks (JSON field_masks members), grants it to a new user and returns their access token.
func (se *subjectEnv) userWithRole(t *testing.T, key, perms, masks string) string {
	t.Helper()
	res, b := se.req(t, "POST", se.base+"/roles", `{"key":"`+key+`","name":"`+key+`","clearance":"RED","permissions":[`+perms+`],"field_masks":{`+masks+`}}`, "", se.root)
	if res.StatusCode != 201 {
		t.Fatalf("create role: %d %s", res.StatusCode, b)
	}
	_, u := se.seed(t, "acme", key+"@example.org", pw)
	if res, b := se.req(t, "PUT", se.base+"/users/"+u.ID+"/roles/"+key, "", "", se.root); res.StatusCode != 204 {
		t.Fatalf("grant: %d %s", res.StatusCode, b)
	}
	return se.login(t, "acme", key+"@example.org", pw, "").AccessToken
}

// You cannot change what you cannot see: a programme administrator (YELLOW clearance,
// MANAGE on subjects) may not lower a RED field to YELLOW, relax its mask, add a purpose to it,
// remove it or add a RED field: each would let them (or a role they grant) read what they are
// not cleared for. The refusal is audited and changes nothing.
func TestSubjectSchema_CannotLowerWhatYouDoNotHold(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			se := newSubjectEnv(t, d)
			id := se.create(t)
			nid := `{"name":"national_id","type":"national_id","classification":"%s","purposes":[%s],"retention_days":3650,"mask":"%s","searchable":true}`
			fill := func(class, purposes, mask string) string {
				s := strings.Replace(nid, "%s", class, 1)
				s = strings.Replace(s, "%s", purposes, 1)
				return strings.Replace(s, "%s", mask, 1)
			}
			for name, schema := range map[string]string{
				"lower RED to YELLOW": schemaWith(t, "national_id", fill("YELLOW", `"case_management"`, "hashed")),
				"relax the mask":      schemaWith(t, "national_id", fill("RED", `"case_management"`, "partial")),
				"add a purpose":       schemaWith(t, "national_id", fill("RED", `"case_management","aid"`, "hashed")),
				"remove a RED field":  schemaWith(t, "notes", ""),
				"add a RED field": schemaWith(t, "diagnosis", `{"name":"diagnosis","type":"text","classification":"RED",
					"purposes":["case_management"],"retention_days":30,"mask":"full","searchable":false}`),
			} {
				res, b := se.req(t, "PUT", se.base+"/subject-schema", schema, "", se.admin)
				if eb := wantError(t, res, b, 403, tutela.EFORBIDDEN); !strings.Contains(eb.Error.Message, "RED") {
					t.Errorf("%s: refusal %q does not say what clearance it needs", name, eb.Error.Message)
				}
			}
			// Nothing changed: the schema still says RED/hashed, and the admin still gets the mask.
			res, b := se.req(t, "GET", se.base+"/subject-schema", "", "", se.admin)
			if res.StatusCode != 200 || !strings.Contains(string(b), `"name":"national_id","type":"national_id","classification":"RED","purposes":["case_management"],"retention_days":3650,"mask":"hashed"`) ||
				!strings.Contains(string(b), `"notes"`) || strings.Contains(string(b), "diagnosis") {
				t.Fatalf("schema after refusals: %d %s", res.StatusCode, b)
			}
			if got, _ := se.read(t, id, "case_management", se.admin)["national_id"].(string); !strings.HasPrefix(got, "h:") {
				t.Fatalf("admin reads national_id as %q after the refused downgrade", got)
			}
			denied, _, err := se.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: se.tenant.ID, Action: "authz.denied"})
			if err != nil || len(denied) < 5 {
				t.Fatalf("%d authz.denied events (%v), want every refusal audited", len(denied), err)
			}
			updates, _, _ := se.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: se.tenant.ID, Action: "subject_schema.update"})
			if len(updates) != 1 {
				t.Fatalf("%d subject_schema.update events, want only the setup's", len(updates))
			}
			// A field within the admin's clearance they may change.
			phone := schemaWith(t, "phone", `{"name":"phone","type":"phone","classification":"YELLOW","purposes":["aid"],
				"retention_days":60,"mask":"partial","searchable":true}`)
			if res, b := se.req(t, "PUT", se.base+"/subject-schema", phone, "", se.admin); res.StatusCode != 200 {
				t.Fatalf("admin changes a YELLOW field: %d %s", res.StatusCode, b)
			}
			// A RED-cleared caller may lower it; the audit event says from what to what.
			lowered := strings.Replace(phone, `"classification":"RED","mask":"hashed","name":"national_id"`,
				`"classification":"YELLOW","mask":"hashed","name":"national_id"`, 1)
			if lowered == phone {
				t.Fatalf("test schema not rewritten: %s", phone)
			}
			if res, b := se.req(t, "PUT", se.base+"/subject-schema", lowered, "", se.root); res.StatusCode != 200 {
				t.Fatalf("root lowers national_id: %d %s", res.StatusCode, b)
			}
			updates, _, _ = se.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: se.tenant.ID, Action: "subject_schema.update"})
			if len(updates) != 3 {
				t.Fatalf("%d subject_schema.update events, want 3", len(updates))
			}
			var c string
			for _, u := range updates {
				if strings.Contains(string(u.Canonical), `"old":{"classification":"RED"`) {
					c = string(u.Canonical)
				}
			}
			for _, want := range []string{`"field":"national_id"`, `"new":{"classification":"YELLOW","mask":"hashed","purposes":["case_management"]}`,
				`"old":{"classification":"RED","mask":"hashed","purposes":["case_management"]}`} {
				if !strings.Contains(c, want) {
					t.Errorf("schema audit event lacks %s: %s", want, c)
				}
			}
			if got := se.read(t, id, "case_management", se.admin)["national_id"]; got != "AB-947 381" {
				t.Errorf("after the cleared downgrade the admin reads %v", got)
			}
			se.noValueLeaked(t)
		})
	}
}

// A value of a subject-schema field tokenized through a minimization profile is bound to the
// subject (sealed under their key), so erasing them shreds it; without subject_id the profile
// may not tokenize such a field, and POST …/tokens without person_id is refused likewise.
func TestMinimizedToken_GoesWithTheSubjectsErasure(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			se := newSubjectEnv(t, d)
			id := se.create(t)
			prof := se.base + "/minimization-profiles/ai-triage"
			if res, b := se.req(t, "PUT", prof, `{"fields":{"national_id":{"action":"tokenize"},"language":{"action":"tokenize"}}}`, "", se.root); res.StatusCode != 200 {
				t.Fatalf("put profile: %d %s", res.StatusCode, b)
			}
			// Tenant-held tokens of a person's value are refused, and nothing is minted.
			res, b := se.req(t, "POST", prof+"/apply", `{"record":{"national_id":"AB-947 381"}}`, "", se.root)
			if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "subject_id" {
				t.Fatalf("apply without subject_id names %q", eb.Error.Field)
			}
			res, b = se.req(t, "POST", se.base+"/tokens", `{"field":"national_id","values":["AB-947 381"]}`, "", se.root)
			if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "person_id" {
				t.Fatalf("tokenize without person_id names %q", eb.Error.Field)
			}
			var n int
			if err := se.db.SQL().QueryRowContext(ctxBG, `SELECT count(*) FROM token_values`).Scan(&n); err != nil || n != 0 {
				t.Fatalf("%d token values after refusals (%v)", n, err)
			}
			// A value that belongs to no person (not a schema field) may still be tenant-held.
			if res, b := se.req(t, "POST", prof+"/apply", `{"record":{"language":"ar"}}`, "", se.root); res.StatusCode != 200 {
				t.Fatalf("apply a non-schema field: %d %s", res.StatusCode, b)
			}
			// Bound to Ada: detokenizes while she exists, not after her erasure.
			res, b = se.req(t, "POST", prof+"/apply", `{"subject_id":"`+id+`","record":{"national_id":"AB-947 381","language":"ar"}}`, "", se.root)
			if res.StatusCode != 200 {
				t.Fatalf("apply: %d %s", res.StatusCode, b)
			}
			var out struct{ Record map[string]string }
			mustUnmarshal(t, b, &out)
			// Naming a subject needs READ on subjects (the answer tells whether they exist).
			minimizer := se.userWithRole(t, "minimizer", `{"resource":"tokens","action":"CREATE","max_classification":"RED"}`, "")
			res, b = se.req(t, "POST", prof+"/apply", `{"subject_id":"`+id+`","record":{"national_id":"AB-947 381"}}`, "", minimizer)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			detok := `{"purpose":"case_management","tokens":[{"field":"national_id","token":"` + out.Record["national_id"] + `"},
				{"field":"language","token":"` + out.Record["language"] + `"}]}`
			res, b = se.req(t, "POST", se.base+"/tokens/detokenize", detok, "", se.root)
			if res.StatusCode != 200 || !strings.Contains(string(b), `"value":"AB-947 381"`) {
				t.Fatalf("detokenize before erasure: %d %s", res.StatusCode, b)
			}
			if res, b := se.req(t, "DELETE", se.base+"/subjects/"+id, `{"reason":"asked","legal_basis":"GDPR Art. 17(1)(a)"}`, "", se.root); res.StatusCode != 200 {
				t.Fatalf("erase: %d %s", res.StatusCode, b)
			}
			res, b = se.req(t, "POST", se.base+"/tokens/detokenize", detok, "", se.root)
			var got struct {
				Values []struct {
					Field string
					Found bool
					Value string
				}
			}
			mustUnmarshal(t, b, &got)
			if res.StatusCode != 200 || len(got.Values) != 2 || got.Values[0].Found || strings.Contains(string(b), "AB-947") {
				t.Fatalf("erased subject's national ID still detokenizes: %d %s", res.StatusCode, b)
			}
			// "ar" is also held by the tenant (the earlier apply): that copy is not Ada's.
			if !got.Values[1].Found || got.Values[1].Value != "ar" {
				t.Fatalf("tenant-held language token lost with Ada: %s", b)
			}
			// An erased or unknown subject cannot be named.
			res, b = se.req(t, "POST", prof+"/apply", `{"subject_id":"`+id+`","record":{"national_id":"AB-947 381"}}`, "", se.root)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = se.req(t, "POST", prof+"/apply", `{"subject_id":"`+tutela.NewID()+`","record":{"national_id":"AB-947 381"}}`, "", se.root)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			se.noValueLeaked(t)
		})
	}
}

// A token of a subject-schema field is not a way around the subject read path. Detokenizing
// needs a purpose the field allows, READ on subjects at its classification (besides READ on
// tokens), and the value comes back through the role's subjects.<field> mask.
func TestDetokenize_FollowsTheSubjectReadRules(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			se := newSubjectEnv(t, d)
			id := se.create(t)
			res, b := se.req(t, "POST", se.base+"/tokens", `{"field":"national_id","person_id":"`+id+`","values":["AB-947 381"]}`, "", se.root)
			if res.StatusCode != 200 {
				t.Fatalf("tokenize: %d %s", res.StatusCode, b)
			}
			var tk struct{ Tokens []string }
			mustUnmarshal(t, b, &tk)
			detok := func(purpose string) string {
				return `{"purpose":"` + purpose + `","tokens":[{"field":"national_id","token":"` + tk.Tokens[0] + `"}]}`
			}
			// A purpose the schema does not allow for national_id: refused, naming field and purpose,
			// even for the super-admin (the subject read would not return the field at all).
			for _, purpose := range []string{"marketing", "aid", "case management"} {
				res, b = se.req(t, "POST", se.base+"/tokens/detokenize", detok(purpose), "", se.root)
				eb := wantError(t, res, b, 403, tutela.EFORBIDDEN)
				if !strings.Contains(eb.Error.Message, "national_id") || !strings.Contains(eb.Error.Message, purpose) {
					t.Errorf("refusal %q does not name the field and the purpose", eb.Error.Message)
				}
			}
			res, b = se.req(t, "POST", se.base+"/tokens/detokenize", detok("case_management"), "", se.root)
			if res.StatusCode != 200 || !strings.Contains(string(b), `"value":"AB-947 381"`) || strings.Contains(string(b), `"mask"`) {
				t.Fatalf("allowed purpose: %d %s", res.StatusCode, b)
			}
			// READ on tokens at RED is not enough without READ on subjects at RED.
			role := func(key, perms, masks string) string { return se.userWithRole(t, key, perms, masks) }
			tokensOnly := role("detok", `{"resource":"tokens","action":"READ","max_classification":"RED"}`, "")
			res, b = se.req(t, "POST", se.base+"/tokens/detokenize", detok("case_management"), "", tokensOnly)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			// The role's field mask applies to detokenized values as to subject reads.
			cw := role("caseworker", `{"resource":"tokens","action":"READ","max_classification":"RED"},
				{"resource":"subjects","action":"READ","max_classification":"RED"}`, `"subjects.national_id":"partial"`)
			res, b = se.req(t, "POST", se.base+"/tokens/detokenize", detok("case_management"), "", cw)
			if res.StatusCode != 200 || !strings.Contains(string(b), `"value":"****** 381"`) || !strings.Contains(string(b), `"mask":"partial"`) {
				t.Fatalf("caseworker (national_id masked partial by role): %d %s", res.StatusCode, b)
			}
			if got := se.read(t, id, "case_management", cw)["national_id"]; got != "****** 381" {
				t.Fatalf("subject read for the same caseworker: %v", got)
			}
			recs, _, err := se.db.AuditEvents(ctxBG, sqlstore.AuditFilter{TenantID: se.tenant.ID, Action: "token.detokenize"})
			if err != nil || len(recs) != 2 {
				t.Fatalf("%d token.detokenize events (%v), want 2 (refusals are authz.denied)", len(recs), err)
			}
			// The super-admin's denials are recorded under their own (platform) tenant.
			denied, _, _ := se.db.AuditEvents(ctxBG, sqlstore.AuditFilter{Action: "authz.denied"})
			if len(denied) < 4 {
				t.Fatalf("%d authz.denied events, want the 4 refusals", len(denied))
			}
			se.noValueLeaked(t)
		})
	}
}

// The hashed mask is bound to tenant and field. The same national ID masked in two tenants
// gives two unrelated strings (no cross-tenant guess confirmation); within one tenant and field,
// equal values keep equal masks.
func TestHashedMask_DiffersAcrossTenants(t *testing.T) {
	t.Parallel()
	se := newSubjectEnv(t, sqlstore.SQLite)
	id := se.create(t)
	twin := se.create(t) // another subject with the same values
	if res, b := se.req(t, "PUT", se.otherTenantsBase+"/subject-schema", subjectSchemaJSON, "", se.root); res.StatusCode != 200 {
		t.Fatalf("other schema: %d %s", res.StatusCode, b)
	}
	res, b := se.req(t, "POST", se.otherTenantsBase+"/subjects", `{"values":{"full_name":"A. L.","national_id":"AB-947 381"}}`, "", se.root)
	if res.StatusCode != 201 {
		t.Fatalf("other create: %d %s", res.StatusCode, b)
	}
	var o struct{ ID string }
	mustUnmarshal(t, b, &o)
	a, _ := se.read(t, id, "case_management", se.operator)["national_id"].(string)
	a2, _ := se.read(t, twin, "case_management", se.operator)["national_id"].(string)
	res, b = se.req(t, "GET", se.otherTenantsBase+"/subjects/"+o.ID+"?purpose=case_management", "", "", se.otherAdmin)
	var v struct{ Values map[string]any }
	mustUnmarshal(t, b, &v)
	other, _ := v.Values["national_id"].(string)
	if res.StatusCode != 200 || !strings.HasPrefix(a, "h:") || !strings.HasPrefix(other, "h:") {
		t.Fatalf("masks: tenant A %q, tenant B %q (%d)", a, other, res.StatusCode)
	}
	if a == other {
		t.Fatalf("hashed masks equal across tenants: %s", a)
	}
	if a2 != a {
		t.Fatalf("equal values in one tenant and field masked differently: %s, %s", a, a2)
	}
}

// ASVS 5.0 14.2.1: a searched value never travels in a URL (proxies, servers and browsers log
// URLs). The search is POST with a JSON body; the old GET form answers 405 pointing to POST,
// without reading, logging or auditing the value.
func TestSubjectSearch_ValueNeverInTheURL(t *testing.T) {
	t.Parallel()
	se := newSubjectEnv(t, sqlstore.SQLite)
	id := se.create(t)
	res, b := se.req(t, "GET", se.base+"/subjects/search?field=national_id&value=AB-947+381&purpose=case_management", "", "", se.root)
	eb := wantError(t, res, b, 405, tutela.EMETHODNOTALLOWED)
	if res.Header.Get("Allow") != "POST" || !strings.Contains(eb.Error.Message, "POST") {
		t.Fatalf("GET search: Allow %q, message %q", res.Header.Get("Allow"), eb.Error.Message)
	}
	// Unauthenticated, the GET form is a 401 like every other non-public route.
	res, b = se.req(t, "GET", se.base+"/subjects/search?field=national_id&value=AB-947+381", "", "", nil)
	wantError(t, res, b, 401, tutela.EUNAUTHENTICATED)
	res, b = se.req(t, "POST", se.base+"/subjects/search", searchBody("national_id", "AB-947 381", "case_management"), "", se.root)
	if res.StatusCode != 200 || !strings.Contains(string(b), id) {
		t.Fatalf("POST search: %d %s", res.StatusCode, b)
	}
	for _, body := range []string{searchBody("national_id", "AB-947 381", ""), searchBody("national_id", "", "case_management"),
		`{"field":"national_id","value":"AB-947 381","purpose":"case_management","extra":1}`} {
		res, b = se.req(t, "POST", se.base+"/subjects/search", body, "", se.root)
		wantError(t, res, b, 400, tutela.EINVALID)
	}
	se.noValueLeaked(t)
}
