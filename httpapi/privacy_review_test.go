package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"tutela"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// Regression tests for the privacy vault's security review (R1, R2, R3, R6 and ASVS 14.2.1).

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

// R6: "you cannot change what you cannot see". A programme administrator (YELLOW clearance,
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
