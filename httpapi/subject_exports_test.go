package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

type exportCreated struct {
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (se *subjectEnv) export(t *testing.T, id, body, auth string) exportCreated {
	t.Helper()
	res, b := se.req(t, "POST", se.base+"/subjects/"+id+"/exports", body, "", auth)
	if res.StatusCode != 201 {
		t.Fatalf("create export: %d %s", res.StatusCode, b)
	}
	var x exportCreated
	mustUnmarshal(t, b, &x)
	return x
}

func (se *subjectEnv) download(t *testing.T, id, exportID, auth string) map[string]any {
	t.Helper()
	res, b := se.req(t, "GET", se.base+"/subjects/"+id+"/exports/"+exportID, "", "", auth)
	if res.StatusCode != 200 {
		t.Fatalf("download export: %d %s", res.StatusCode, b)
	}
	var doc struct {
		ExportID string         `json:"export_id"`
		ID       string         `json:"id"`
		Purpose  string         `json:"purpose"`
		Values   map[string]any `json:"values"`
	}
	mustUnmarshal(t, b, &doc)
	if doc.ExportID != exportID || doc.ID != id {
		t.Fatalf("export document names export %s subject %s", doc.ExportID, doc.ID)
	}
	return doc.Values
}

func sameValues(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// An export holds exactly what a read for its purpose returns to its maker, sealed: the bytes
// stored hold no value, other tenants and callers without EXPORT are refused, it expires, and
// erasing the subject ends it.
func TestSubjectExports_SealedReadRefusalsExpiryAndErasure(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			se := newSubjectEnv(t, d)
			id := se.create(t)
			exports := se.base + "/subjects/" + id + "/exports"

			// The YELLOW administrator's export is their read: the RED national ID masked, the
			// RED notes hidden. The super-admin's holds the RED values.
			x := se.export(t, id, `{"purpose":"case_management"}`, se.admin)
			if want := se.clock.Now().UTC().Truncate(time.Microsecond).Add(24 * time.Hour); !x.ExpiresAt.Equal(want) {
				t.Errorf("expires_at = %v, want %v", x.ExpiresAt, want)
			}
			got := se.download(t, id, x.ID, se.admin)
			if read := se.read(t, id, "case_management", se.admin); !sameValues(got, read) || got["notes"] != nil {
				t.Fatalf("export %v differs from the read %v", got, read)
			}
			xr := se.export(t, id, `{"purpose":"case_management","ttl_seconds":3600}`, se.root)
			if got := se.download(t, id, xr.ID, se.root); got["national_id"] != "AB-947 381" || got["notes"] != "Lives near Marylebone" {
				t.Fatalf("RED export = %v", got)
			}
			// The masked value is a digest ("h:" and 32 hex digits): looked for whole, since two
			// bytes like "h:" turn up in random ciphertext about once in a hundred runs.
			masked, _ := got["national_id"].(string)
			if !strings.HasPrefix(masked, "h:") || len(masked) != 34 {
				t.Fatalf("masked national_id in the export = %v, want h: and a digest", got["national_id"])
			}
			for _, blob := range rawColumn(t, se, `SELECT ciphertext FROM subject_exports`) {
				for _, v := range append(subjectSecrets, "Ada", masked) {
					if bytes.Contains(blob, []byte(v)) {
						t.Fatalf("subject_exports holds %q in clear", v)
					}
				}
			}

			// Refusals: no purpose, a TTL out of bounds, no EXPORT permission, another tenant.
			for _, body := range []string{`{}`, `{"purpose":""}`, `{"purpose":"aid","ttl_seconds":59}`, `{"purpose":"aid","ttl_seconds":604801}`} {
				res, b := se.req(t, "POST", exports, body, "", se.admin)
				wantError(t, res, b, 400, tutela.EINVALID)
			}
			for _, auth := range []string{se.operator, se.auditor} {
				res, b := se.req(t, "POST", exports, `{"purpose":"aid"}`, "", auth)
				wantError(t, res, b, 403, tutela.EFORBIDDEN)
				res, b = se.req(t, "GET", exports+"/"+x.ID, "", "", auth)
				wantError(t, res, b, 403, tutela.EFORBIDDEN)
			}
			res, b := se.req(t, "POST", exports, `{"purpose":"aid"}`, "", se.otherAdmin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = se.req(t, "GET", exports+"/"+x.ID, "", "", se.otherAdmin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = se.req(t, "GET", se.otherTenantsBase+"/subjects/"+id+"/exports/"+x.ID, "", "", se.otherAdmin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)

			// The list shows IDs and times; the audit log names the export, purpose and fields.
			res, b = se.req(t, "GET", exports, "", "", se.operator)
			if res.StatusCode != 200 || !bytes.Contains(b, []byte(x.ID)) || !bytes.Contains(b, []byte(xr.ID)) {
				t.Fatalf("list exports: %d %s", res.StatusCode, b)
			}
			var created, downloaded []byte
			if err := se.db.SQL().QueryRowContext(ctxBG, `SELECT canonical FROM audit_events WHERE action = 'subject.export' ORDER BY pos LIMIT 1`).Scan(&created); err != nil {
				t.Fatal(err)
			}
			if err := se.db.SQL().QueryRowContext(ctxBG, `SELECT canonical FROM audit_events WHERE action = 'subject.export_download' ORDER BY pos LIMIT 1`).Scan(&downloaded); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{x.ID, `"purpose":"case_management"`, `"fields":["full_name"]`, `"masked":["national_id","notes"]`} {
				if !bytes.Contains(created, []byte(want)) {
					t.Errorf("subject.export %s lacks %s", created, want)
				}
			}
			for _, want := range []string{x.ID, `"fields":["full_name","national_id"]`} {
				if !bytes.Contains(downloaded, []byte(want)) {
					t.Errorf("subject.export_download %s lacks %s", downloaded, want)
				}
			}

			// Expiry: served until ttl_seconds have passed, then 404 saying so.
			short := se.export(t, id, `{"purpose":"aid","ttl_seconds":60}`, se.admin)
			se.download(t, id, short.ID, se.admin)
			se.clock.Add(time.Minute)
			res, b = se.req(t, "GET", exports+"/"+short.ID, "", "", se.admin)
			if eb := wantError(t, res, b, 404, tutela.ENOTFOUND); eb.Error.Message != "export expired; make a new one" {
				t.Errorf("expired export: %q", eb.Error.Message)
			}

			// A ciphertext moved to another export row does not open (and says nothing of it).
			if _, err := se.db.SQL().ExecContext(ctxBG, `UPDATE subject_exports SET ciphertext = (SELECT ciphertext FROM subject_exports WHERE id = $1) WHERE id = $2`, xr.ID, x.ID); err != nil {
				t.Fatal(err)
			}
			res, b = se.req(t, "GET", exports+"/"+x.ID, "", "", se.admin)
			wantError(t, res, b, 500, tutela.EINTERNAL)
			if bytes.Contains(b, []byte("AB-947")) {
				t.Fatalf("a refused download leaked a value: %s", b)
			}

			// Erased: every export route says so and the rows are gone.
			if res, b := se.req(t, "DELETE", se.base+"/subjects/"+id, `{"reason":"asked by the person","legal_basis":"GDPR Art. 17(1)(a)"}`, "", se.admin); res.StatusCode != 200 {
				t.Fatalf("erase: %d %s", res.StatusCode, b)
			}
			for _, c := range []struct{ method, path, body string }{
				{"GET", exports + "/" + xr.ID, ""}, {"GET", exports, ""}, {"POST", exports, `{"purpose":"aid"}`},
			} {
				res, b := se.req(t, c.method, c.path, c.body, "", se.root)
				if eb := wantError(t, res, b, 404, tutela.ENOTFOUND); eb.Error.Message != "subject was erased" {
					t.Errorf("%s %s after erasure: %q", c.method, c.path, eb.Error.Message)
				}
			}
			if n := len(rawColumn(t, se, `SELECT ciphertext FROM subject_exports`)); n != 0 {
				t.Fatalf("%d export rows left after erasure", n)
			}
			se.noValueLeaked(t)
		})
	}
}

func rawColumn(t *testing.T, se *subjectEnv, q string) [][]byte {
	t.Helper()
	return columnBytes(t, se.db, q)
}

// columnBytes is the one column q selects, row by row.
func columnBytes(t *testing.T, db *sqlstore.DB, q string) [][]byte {
	t.Helper()
	rows, err := db.SQL().QueryContext(ctxBG, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// EXPORT is sensitive: making and downloading an export need a fresh second factor.
func TestSubjectExports_NeedStepUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, admin, adminSecret := adminWithFactor(t, e)
	base := "/v1/tenants/" + tn.ID
	e.stepUp(t, admin.cookie, adminSecret)
	putSchemaAsPlatform(t, e, tn.ID, subjectSchemaJSON)
	res, b := e.req(t, "POST", base+"/subjects", `{"values":{"full_name":"Ada Lovelace"}}`, "", admin.cookie)
	if res.StatusCode != 201 {
		t.Fatalf("create: %d %s", res.StatusCode, b)
	}
	var s struct{ ID string }
	mustUnmarshal(t, b, &s)
	exports := base + "/subjects/" + s.ID + "/exports"
	e.clock.Add(6 * time.Minute)
	res, b = e.req(t, "POST", exports, `{"purpose":"aid"}`, "", admin.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	e.stepUp(t, admin.cookie, adminSecret)
	res, b = e.req(t, "POST", exports, `{"purpose":"aid"}`, "", admin.cookie)
	if res.StatusCode != 201 {
		t.Fatalf("export after step-up: %d %s", res.StatusCode, b)
	}
	var x exportCreated
	mustUnmarshal(t, b, &x)
	e.clock.Add(6 * time.Minute)
	res, b = e.req(t, "GET", exports+"/"+x.ID, "", "", admin.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	e.stepUp(t, admin.cookie, adminSecret)
	if res, b := e.req(t, "GET", exports+"/"+x.ID, "", "", admin.cookie); res.StatusCode != 200 || !bytes.Contains(b, []byte("Ada Lovelace")) {
		t.Fatalf("download after step-up: %d %s", res.StatusCode, b)
	}
}

// The erasure ledger is readable with READ on subjects or on audit (the auditor reads no
// person's data, yet sees that erasures happened), paginated, and scoped to the tenant.
func TestErasures_LedgerForSubjectOrAuditReaders(t *testing.T) {
	t.Parallel()
	se := newSubjectEnv(t, sqlstore.SQLite)
	a, b := se.create(t), se.create(t)
	for _, id := range []string{a, b} {
		if res, body := se.req(t, "DELETE", se.base+"/subjects/"+id, `{"reason":"asked by the person","legal_basis":"GDPR Art. 17(1)(a)"}`, "", se.admin); res.StatusCode != 200 {
			t.Fatalf("erase: %d %s", res.StatusCode, body)
		}
	}
	type page struct {
		Erasures []struct {
			ID         string `json:"id"`
			PersonID   string `json:"person_id"`
			Kind       string `json:"kind"`
			ActorType  string `json:"actor_type"`
			ActorID    string `json:"actor_id"`
			Trigger    string `json:"trigger"`
			Reason     string `json:"reason"`
			LegalBasis string `json:"legal_basis"`
		} `json:"erasures"`
		Next string `json:"next_cursor"`
	}
	for name, auth := range map[string]string{"auditor": se.auditor, "operator": se.operator, "super-admin": se.root} {
		res, body := se.req(t, "GET", se.base+"/erasures", "", "", auth)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d %s", name, res.StatusCode, body)
		}
		var p page
		mustUnmarshal(t, body, &p)
		if len(p.Erasures) != 2 || p.Erasures[0].PersonID != a || p.Erasures[1].PersonID != b {
			t.Fatalf("%s: ledger %s", name, body)
		}
		e := p.Erasures[0]
		if e.Kind != "subject" || e.Trigger != "request" || e.ActorType != "user" || e.ActorID == "" ||
			e.Reason != "asked by the person" || e.LegalBasis != "GDPR Art. 17(1)(a)" {
			t.Fatalf("%s: entry %+v", name, e)
		}
	}
	res, body := se.req(t, "GET", se.base+"/erasures?limit=1", "", "", se.auditor)
	var p1 page
	mustUnmarshal(t, body, &p1)
	if res.StatusCode != 200 || len(p1.Erasures) != 1 || p1.Next != p1.Erasures[0].ID {
		t.Fatalf("first page: %d %s", res.StatusCode, body)
	}
	res, body = se.req(t, "GET", se.base+"/erasures?limit=1&cursor="+p1.Next, "", "", se.auditor)
	var p2 page
	mustUnmarshal(t, body, &p2)
	if res.StatusCode != 200 || len(p2.Erasures) != 1 || p2.Erasures[0].PersonID != b {
		t.Fatalf("second page: %d %s", res.StatusCode, body)
	}
	// Neither permission: refused. Another tenant: not found, and its own ledger is empty.
	// (A user with no role: the partner role, which held neither, is now only for partners'
	// users, issue 18.)
	se.seed(t, "acme", "nobody@example.org", pw)
	nobody := se.login(t, "acme", "nobody@example.org", pw, "").AccessToken
	res, body = se.req(t, "GET", se.base+"/erasures", "", "", nobody)
	wantError(t, res, body, 403, tutela.EFORBIDDEN)
	res, body = se.req(t, "GET", se.base+"/erasures", "", "", se.otherAdmin)
	wantError(t, res, body, 404, tutela.ENOTFOUND)
	res, body = se.req(t, "GET", se.otherTenantsBase+"/erasures", "", "", se.otherAdmin)
	var empty page
	mustUnmarshal(t, body, &empty)
	if res.StatusCode != 200 || len(empty.Erasures) != 0 || !json.Valid(body) {
		t.Fatalf("other tenant's ledger: %d %s", res.StatusCode, body)
	}
}

// putSchemaAsPlatform writes a subject schema through the store, as a platform operator's tool
// would: for tests whose caller may not see every field (a schema change needs READ at each
// field's classification) but must read a tenant that has them.
func putSchemaAsPlatform(t *testing.T, e *env, tenantID, schemaJSON string) {
	t.Helper()
	var body struct{ Fields privacy.Schema }
	if err := json.Unmarshal([]byte(schemaJSON), &body); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Update(context.Background(), func(tx *sqlstore.Tx) error {
		return tx.SubjectSchema(tenantID).Put(context.Background(), body.Fields)
	}); err != nil {
		t.Fatal(err)
	}
}
