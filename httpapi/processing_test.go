package httpapi_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

type processingEnv struct {
	*env
	tenant                         *tutela.Tenant
	admin, operator, auditor, root string
	otherAdmin                     string
	base, otherBase                string
	adminID                        string
}

// newProcessingEnv: tenant acme with a programme administrator, an operator and an auditor,
// purposes cash_aid (consent) and case_management (contract), and a schema whose phone field is
// also processed for marketing, which the register lacks.
func newProcessingEnv(t *testing.T, d sqlstore.Dialect) *processingEnv {
	t.Helper()
	e := newEnv(t, d, nil)
	tn, admin := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	e.seed(t, "acme", "op@example.org", pw, "operator")
	e.seed(t, "acme", "aud@example.org", pw, "auditor")
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	other, _ := e.seed(t, "other", "admin@other.example.org", pw, "program_admin")
	pe := &processingEnv{env: e, tenant: tn, adminID: admin.ID,
		admin:      e.login(t, "acme", "admin@example.org", pw, "").AccessToken,
		operator:   e.login(t, "acme", "op@example.org", pw, "").AccessToken,
		auditor:    e.login(t, "acme", "aud@example.org", pw, "").AccessToken,
		root:       e.login(t, "root", "root@example.org", pw, "").AccessToken,
		otherAdmin: e.login(t, "other", "admin@other.example.org", pw, "").AccessToken,
		base:       "/v1/tenants/" + tn.ID, otherBase: "/v1/tenants/" + other.ID,
	}
	for _, id := range []string{tn.ID, other.ID} {
		pe.setSchema(t, id, []string{"cash_aid", "marketing"})
		if err := e.db.Update(context.Background(), func(tx *sqlstore.Tx) error {
			for _, p := range []*privacy.Purpose{
				{Name: "cash_aid", Description: "Cash assistance", LawfulBasis: privacy.BasisConsent, NoticeID: "aid_notice", NoticeVersion: 1, ConsentMinVersion: 1},
				{Name: "case_management", Description: "Case files", LawfulBasis: privacy.BasisContract},
			} {
				if _, err := tx.Consent(id).PutPurpose(context.Background(), p); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return pe
}

func (pe *processingEnv) setSchema(t *testing.T, tenantID string, phonePurposes []string) {
	t.Helper()
	schema := privacy.Schema{
		{Name: "full_name", Type: privacy.FieldName, Classification: authz.Yellow, Purposes: []string{"case_management", "cash_aid"},
			RetentionDays: 365, Mask: authz.MaskPartial},
		{Name: "national_id", Type: privacy.FieldNationalID, Classification: authz.Red, Purposes: []string{"case_management"},
			RetentionDays: 3650, Mask: authz.MaskHashed},
		{Name: "phone", Type: privacy.FieldPhone, Classification: authz.Yellow, Purposes: phonePurposes,
			RetentionDays: 30, Mask: authz.MaskPartial},
	}
	if err := pe.db.Update(context.Background(), func(tx *sqlstore.Tx) error {
		return tx.SubjectSchema(tenantID).Put(context.Background(), schema)
	}); err != nil {
		t.Fatal(err)
	}
}

func (pe *processingEnv) must(t *testing.T, method, path, body, auth string, status int) []byte {
	t.Helper()
	res, b := pe.req(t, method, path, body, "", auth)
	if res.StatusCode != status {
		t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, b, status)
	}
	return b
}

func parseCSV(t *testing.T, b []byte) []map[string]string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil || len(rows) == 0 {
		t.Fatalf("CSV does not parse back: %v\n%s", err, b)
	}
	out := []map[string]string{}
	for _, r := range rows[1:] {
		m := map[string]string{}
		for i, h := range rows[0] {
			m[h] = r[i]
		}
		out = append(out, m)
	}
	return out
}

const caseRecord = `{"subject_categories":["beneficiaries"],"recipients":["Partner NGOs","Auditors"],
	"transfers":[{"country":"US","recipient":"Cloud host"},{"country":"CH","recipient":"HQ","safeguard":"adequacy"}],
	"retention_note":"Closed cases: 10 years","security_measures":"Per-subject encryption"}`

// The JSON record and its CSV export carry the same facts, both follow the live schema, and
// the gaps move as declarations arrive.
func TestRecordsOfProcessing_JSONAndCSVSameFactsFollowLiveSchema(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			pe := newProcessingEnv(t, d)
			rop := pe.base + "/records-of-processing"
			pe.must(t, "PUT", pe.base+"/controller", `{"name":"Acme Relief","contact":"privacy@acme.example","dpo_contact":"dpo@acme.example"}`, pe.admin, 200)
			pe.must(t, "PUT", rop+"/case_management", caseRecord, pe.admin, 201)
			pe.must(t, "PUT", rop+"/case_management", caseRecord, pe.admin, 200)

			var doc privacy.RecordsOfProcessing
			mustUnmarshal(t, pe.must(t, "GET", rop, "", pe.auditor, 200), &doc)
			// The purposes this test declares and uses; the seed declares others (aid, ai_triage,
			// case_review), which rightly show as purposes without a record.
			var gaps []string
			for _, g := range doc.Gaps {
				if g.Purpose == "cash_aid" || g.Purpose == "case_management" || g.Purpose == "marketing" {
					gaps = append(gaps, g.Kind+"/"+g.Purpose)
				}
			}
			if strings.Join(gaps, ",") != "transfer_without_safeguard/case_management,purpose_without_record/cash_aid,purpose_not_in_register/marketing" {
				t.Fatalf("gaps = %v", gaps)
			}
			res, b := pe.req(t, "GET", rop+"?format=csv", "", "", pe.auditor)
			if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") ||
				res.Header.Get("Content-Disposition") != `attachment; filename="records-of-processing-acme.csv"` {
				t.Fatalf("CSV: %d %v", res.StatusCode, res.Header)
			}
			rows := parseCSV(t, b)
			// Every (purpose, data category) of the JSON is a CSV row with the same facts, and no more.
			n, bare := 0, 0
			for _, p := range doc.Purposes {
				if len(p.DataCategories) == 0 {
					// A purpose no field uses (the seed's aid, ai_triage, case_review) is one row
					// with no field.
					if r := rows[n]; r["purpose"] != p.Purpose || r["field"] != "" || r["lawful_basis"] != string(p.LawfulBasis) {
						t.Errorf("CSV row %v differs from JSON purpose %s without fields", r, p.Purpose)
					}
					n++
					bare++
					continue
				}
				for _, c := range p.DataCategories {
					r := rows[n]
					n++
					if r["purpose"] != p.Purpose || r["field"] != c.Field || r["classification"] != string(c.Classification) ||
						r["field_retention_days"] != itoa(c.RetentionDays) || r["purpose_retention_days"] != itoa(p.RetentionDays) ||
						r["lawful_basis"] != string(p.LawfulBasis) || r["recipients"] != strings.Join(p.Recipients, "; ") ||
						r["in_register"] != map[bool]string{true: "true", false: "false"}[p.InRegister] {
						t.Errorf("CSV row %v differs from JSON %s/%s", r, p.Purpose, c.Field)
					}
				}
			}
			if n != len(rows) || n-bare != 5 || bare != 3 {
				t.Fatalf("CSV has %d rows, JSON %d (purpose, category) pairs and %d purposes without fields, want 5 and 3", len(rows), n-bare, bare)
			}
			var cm map[string]string
			for _, r := range rows {
				if r["purpose"] == "case_management" && r["field"] == "national_id" {
					cm = r
				}
			}
			if cm["purpose"] != "case_management" || cm["transfers"] != "US: Cloud host [none]; CH: HQ [adequacy]" ||
				cm["gaps"] != "transfer_without_safeguard" || cm["security_measures"] != "Per-subject encryption" {
				t.Fatalf("case_management row = %v", cm)
			}

			// Giving phone the purpose case_management changes the record, not the declaration.
			pe.setSchema(t, pe.tenant.ID, []string{"cash_aid", "case_management"})
			mustUnmarshal(t, pe.must(t, "GET", rop, "", pe.auditor, 200), &doc)
			for _, p := range doc.Purposes {
				if p.Purpose == "case_management" && (len(p.DataCategories) != 3 || p.DataCategories[2].Field != "phone") {
					t.Fatalf("case_management after the schema change = %+v", p)
				}
				if p.Purpose == "marketing" {
					t.Fatal("marketing still listed")
				}
			}

			// The audit log names the actor and the fields changed, never the declared values.
			var canonical string
			if err := pe.db.SQL().QueryRowContext(ctxBG, `SELECT canonical FROM audit_events WHERE action = 'processing.controller_update'`).Scan(&canonical); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(canonical, pe.adminID) || strings.Contains(canonical, "dpo@acme.example") {
				t.Fatalf("controller event = %s", canonical)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// The operator may not read the record; the auditor reads and exports but changes nothing;
// another tenant's administrator gets 404 for everything of acme's.
func TestRecordsOfProcessing_PermissionsAndTenantIsolation(t *testing.T) {
	t.Parallel()
	pe := newProcessingEnv(t, sqlstore.SQLite)
	rop, subs := pe.base+"/records-of-processing", pe.base+"/subprocessors"
	var sp privacy.Subprocessor
	mustUnmarshal(t, pe.must(t, "POST", subs, `{"name":"Hoster","service":"Hosting","locations":["DE"],"contract_ref":"DPA-1"}`, pe.admin, 201), &sp)

	for _, path := range []string{rop, rop + "?format=csv", subs, subs + "?format=csv"} {
		res, b := pe.req(t, "GET", path, "", "", pe.operator)
		wantError(t, res, b, 403, tutela.EFORBIDDEN)
		pe.must(t, "GET", path, "", pe.auditor, 200)
		res, b = pe.req(t, "GET", path, "", "", pe.otherAdmin)
		wantError(t, res, b, 404, tutela.ENOTFOUND)
	}
	writes := []struct{ method, path, body string }{
		{"PUT", rop + "/cash_aid", `{"recipients":["x"]}`},
		{"PUT", pe.base + "/controller", `{"name":"X","contact":"x"}`},
		{"POST", subs, `{"name":"X","service":"x","locations":["FR"],"contract_ref":"x"}`},
		{"PATCH", subs + "/" + sp.ID, `{"name":"hijacked"}`},
		{"DELETE", subs + "/" + sp.ID, ""},
	}
	for _, w := range writes {
		for _, who := range []string{pe.auditor, pe.operator} {
			res, b := pe.req(t, w.method, w.path, w.body, "", who)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
		}
		res, b := pe.req(t, w.method, w.path, w.body, "", pe.otherAdmin)
		wantError(t, res, b, 404, tutela.ENOTFOUND)
	}
	// Acme's sub-processor through the other tenant's own path: not found, unchanged.
	for _, m := range []string{"PATCH", "DELETE"} {
		body := ""
		if m == "PATCH" {
			body = `{"name":"hijacked"}`
		}
		res, b := pe.req(t, m, pe.otherBase+"/subprocessors/"+sp.ID, body, "", pe.otherAdmin)
		wantError(t, res, b, 404, tutela.ENOTFOUND)
	}
	var list struct{ Subprocessors []privacy.Subprocessor }
	mustUnmarshal(t, pe.must(t, "GET", subs, "", pe.admin, 200), &list)
	if len(list.Subprocessors) != 1 || list.Subprocessors[0].Name != "Hoster" || list.Subprocessors[0].Status != privacy.SubprocessorActive {
		t.Fatalf("acme's register after refused writes = %+v", list)
	}
	var doc privacy.RecordsOfProcessing
	mustUnmarshal(t, pe.must(t, "GET", rop, "", pe.admin, 200), &doc)
	if doc.Controller != nil {
		t.Fatalf("a refused controller write was stored: %+v", doc.Controller)
	}
	// The platform super-admin reads any tenant's.
	pe.must(t, "GET", rop, "", pe.root, 200)
}

// A sub-processor named like a formula comes out of the CSV as text, and the CSV parses back
// to the register; removal keeps the row, dated.
func TestSubprocessors_CSVInjectionAndRemovalHistory(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			pe := newProcessingEnv(t, d)
			subs := pe.base + "/subprocessors"
			evil := `=cmd|' /C calc'!A0`
			body, _ := json.Marshal(map[string]any{"name": evil, "service": "+SUM(1,2)", "locations": []string{"US", "IE"},
				"data_categories": []string{"contact", "@risk"}, "transfer_safeguard": "scc", "contract_ref": "-DPA-9"})
			var sp privacy.Subprocessor
			mustUnmarshal(t, pe.must(t, "POST", subs, string(body), pe.admin, 201), &sp)
			if sp.Name != evil || sp.Status != privacy.SubprocessorActive {
				t.Fatalf("stored as %+v", sp)
			}
			res, b := pe.req(t, "GET", subs+"?format=csv", "", "", pe.auditor)
			if res.StatusCode != 200 || res.Header.Get("Content-Disposition") != `attachment; filename="subprocessors-acme.csv"` {
				t.Fatalf("CSV: %d %v", res.StatusCode, res.Header)
			}
			rows := parseCSV(t, b)
			if len(rows) != 1 {
				t.Fatalf("rows = %v", rows)
			}
			r := rows[0]
			if r["id"] != sp.ID || r["name"] != "'"+evil || r["service"] != "'+SUM(1,2)" || r["contract_ref"] != "'-DPA-9" ||
				r["locations"] != "US; IE" || r["data_categories"] != "contact; @risk" || r["status"] != "active" || r["removed_at"] != "" {
				t.Fatalf("CSV row = %v", r)
			}
			if strings.Contains(string(b), ","+evil) || !strings.Contains(string(b), sp.ID+",'"+evil+",") {
				t.Fatalf("formula not neutralized: %s", b)
			}

			// PATCH changes what it names; DELETE marks removed, and the row stays.
			var patched privacy.Subprocessor
			mustUnmarshal(t, pe.must(t, "PATCH", subs+"/"+sp.ID, `{"service":"Hosting","locations":["IE"]}`, pe.admin, 200), &patched)
			if patched.Service != "Hosting" || strings.Join(patched.Locations, ",") != "IE" || patched.Name != evil {
				t.Fatalf("patched = %+v", patched)
			}
			var removed privacy.Subprocessor
			mustUnmarshal(t, pe.must(t, "DELETE", subs+"/"+sp.ID, "", pe.admin, 200), &removed)
			if removed.Status != privacy.SubprocessorRemoved || removed.RemovedAt == nil {
				t.Fatalf("removed = %+v", removed)
			}
			res, b = pe.req(t, "DELETE", subs+"/"+sp.ID, "", "", pe.admin)
			wantError(t, res, b, 409, tutela.ECONFLICT)
			res, b = pe.req(t, "PATCH", subs+"/"+sp.ID, `{"service":"x"}`, "", pe.admin)
			wantError(t, res, b, 409, tutela.ECONFLICT)
			var list struct{ Subprocessors []privacy.Subprocessor }
			mustUnmarshal(t, pe.must(t, "GET", subs, "", pe.auditor, 200), &list)
			if len(list.Subprocessors) != 0 {
				t.Fatalf("removed sub-processor listed by default: %+v", list)
			}
			mustUnmarshal(t, pe.must(t, "GET", subs+"?include_removed=true", "", pe.auditor, 200), &list)
			if len(list.Subprocessors) != 1 || list.Subprocessors[0].Status != privacy.SubprocessorRemoved {
				t.Fatalf("history = %+v", list)
			}
			rows = parseCSV(t, pe.must(t, "GET", subs+"?format=csv&include_removed=true", "", pe.auditor, 200))
			if len(rows) != 1 || rows[0]["status"] != "removed" || rows[0]["removed_at"] == "" {
				t.Fatalf("CSV history = %v", rows)
			}
		})
	}
}

// Bad input is a 400 naming the field (or 404 for a purpose outside the register), and nothing
// is stored.
func TestRecordsOfProcessing_ValidationErrors(t *testing.T) {
	t.Parallel()
	pe := newProcessingEnv(t, sqlstore.SQLite)
	rop, subs := pe.base+"/records-of-processing", pe.base+"/subprocessors"
	cases := []struct{ method, path, body, field string }{
		{"PUT", rop + "/cash_aid", `{"transfers":[{"country":"UK","recipient":"R","safeguard":"scc"}]}`, "transfers"},
		{"PUT", rop + "/cash_aid", `{"transfers":[{"country":"US","recipient":"R","safeguard":"other"}]}`, "transfers"},
		{"PUT", rop + "/cash_aid", `{"recipients":["a\u202eb"]}`, "recipients"},
		{"PUT", pe.base + "/controller", `{"name":"","contact":"x"}`, "name"},
		{"POST", subs, `{"name":"X","service":"x","locations":["ZZ"],"contract_ref":"x"}`, "locations"},
		{"POST", subs, `{"name":"X","service":"x","locations":["DE"]}`, "contract_ref"},
		{"GET", rop + "?format=xml", "", "format"},
		{"GET", subs + "?include_removed=yes", "", "include_removed"},
	}
	for _, c := range cases {
		res, b := pe.req(t, c.method, c.path, c.body, "", pe.admin)
		if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != c.field {
			t.Errorf("%s %s %s: field %q, want %q", c.method, c.path, c.body, eb.Error.Field, c.field)
		}
	}
	for _, purpose := range []string{"marketing", "Not-A-Name"} {
		res, b := pe.req(t, "PUT", rop+"/"+purpose, `{}`, "", pe.admin)
		wantError(t, res, b, 404, tutela.ENOTFOUND)
	}
	var doc privacy.RecordsOfProcessing
	mustUnmarshal(t, pe.must(t, "GET", rop, "", pe.admin, 200), &doc)
	for _, p := range doc.Purposes {
		if p.Declared {
			t.Fatalf("a refused declaration was stored: %+v", p)
		}
	}
}
