package httpapi_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// syncBuffer collects the server's log output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const subjectSchemaJSON = `{"fields":[
 {"name":"full_name","type":"name","classification":"YELLOW","purposes":["case_management","aid"],"retention_days":365,"mask":"partial","searchable":true},
 {"name":"national_id","type":"national_id","classification":"RED","purposes":["case_management"],"retention_days":3650,"mask":"hashed","searchable":true},
 {"name":"notes","type":"text","classification":"RED","purposes":["case_management"],"retention_days":90,"mask":"hidden","searchable":false},
 {"name":"phone","type":"phone","classification":"YELLOW","purposes":["aid"],"retention_days":30,"mask":"partial","searchable":true}]}`

// The plaintext values a subject holds in these tests: none may appear in the audit log or logs.
var subjectSecrets = []string{"Lovelace", "AB-947 381", "AB947381", "Marylebone", "7946 0958"}

type subjectEnv struct {
	*env
	logs                   *syncBuffer
	tenant                 *tutela.Tenant
	admin, operator, root  string
	auditor, otherAdmin    string
	base, otherTenantsBase string
}

func newSubjectEnv(t *testing.T, d sqlstore.Dialect, opts ...func(*httpapi.Deps)) *subjectEnv {
	t.Helper()
	logs := &syncBuffer{}
	e := newEnv(t, d, func(deps *httpapi.Deps) {
		deps.Keys = newVault(t, deps.DB)
		deps.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		for _, o := range opts {
			o(deps)
		}
	})
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	e.seed(t, "acme", "op@example.org", pw, "operator")
	e.seed(t, "acme", "aud@example.org", pw, "auditor")
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	other, _ := e.seed(t, "other", "admin@other.example.org", pw, "program_admin")
	se := &subjectEnv{env: e, logs: logs, tenant: tn,
		admin:      e.login(t, "acme", "admin@example.org", pw, "").AccessToken,
		operator:   e.login(t, "acme", "op@example.org", pw, "").AccessToken,
		auditor:    e.login(t, "acme", "aud@example.org", pw, "").AccessToken,
		root:       e.login(t, "root", "root@example.org", pw, "").AccessToken,
		otherAdmin: e.login(t, "other", "admin@other.example.org", pw, "").AccessToken,
		base:       "/v1/tenants/" + tn.ID, otherTenantsBase: "/v1/tenants/" + other.ID,
	}
	// The super-admin declares it: RED fields need a RED-cleared author.
	if res, b := e.req(t, "PUT", se.base+"/subject-schema", subjectSchemaJSON, "", se.root); res.StatusCode != 200 {
		t.Fatalf("put schema: %d %s", res.StatusCode, b)
	}
	return se
}

// create makes Ada as the super-admin (RED fields need RED clearance to write).
func (se *subjectEnv) create(t *testing.T) string {
	t.Helper()
	return se.createWith(t, `{"values":{"full_name":"Ada Lovelace","national_id":"AB-947 381",
		"notes":"Lives near Marylebone","phone":"+44 20 7946 0958"}}`)
}

// createWith makes a subject of body (a POST …/subjects body) as the super-admin and returns its ID.
func (se *subjectEnv) createWith(t *testing.T, body string) string {
	t.Helper()
	res, b := se.req(t, "POST", se.base+"/subjects", body, "", se.root)
	if res.StatusCode != 201 {
		t.Fatalf("create: %d %s", res.StatusCode, b)
	}
	var s struct{ ID string }
	mustUnmarshal(t, b, &s)
	return s.ID
}

func (se *subjectEnv) read(t *testing.T, id, purpose, auth string) map[string]any {
	t.Helper()
	res, b := se.req(t, "GET", se.base+"/subjects/"+id+"?purpose="+purpose, "", "", auth)
	if res.StatusCode != 200 {
		t.Fatalf("read: %d %s", res.StatusCode, b)
	}
	var v struct {
		Values map[string]any `json:"values"`
	}
	mustUnmarshal(t, b, &v)
	return v.Values
}

// noValueLeaked checks the audit log and the server's logs for every plaintext value.
func (se *subjectEnv) noValueLeaked(t *testing.T) {
	t.Helper()
	all := bytes.Join(auditCanonicals(t, se.db), nil)
	logs := se.logs.String()
	for _, v := range subjectSecrets {
		if bytes.Contains(all, []byte(v)) {
			t.Errorf("audit log holds %q", v)
		}
		if strings.Contains(logs, v) || strings.Contains(logs, url.QueryEscape(v)) {
			t.Errorf("logs hold %q", v)
		}
	}
}

func TestSubjects_ReadWithoutREDGetsMaskAndPurposeFilters(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			se := newSubjectEnv(t, d)
			id := se.create(t)
			// The operator (YELLOW clearance) reads for case management: the YELLOW name in
			// clear, the RED national ID as its mask (a keyed hash, not the value), the RED notes
			// hidden by their mask, the phone absent (not allowed for this purpose).
			got := se.read(t, id, "case_management", se.operator)
			if got["full_name"] != "Ada Lovelace" {
				t.Errorf("full_name = %v", got["full_name"])
			}
			nid, _ := got["national_id"].(string)
			// The mask is 32 hex digits, which may contain "947" by chance: test for the
			// value itself, not a fragment of it.
			if !strings.HasPrefix(nid, "h:") || len(nid) != 34 || strings.Contains(nid, "AB") {
				t.Errorf("national_id for a YELLOW caller = %q, want the hashed mask", nid)
			}
			if _, ok := got["notes"]; ok {
				t.Error("notes (mask hidden) returned to a YELLOW caller")
			}
			if _, ok := got["phone"]; ok {
				t.Error("phone returned for a purpose it does not allow")
			}
			// For aid: the phone comes back, the national ID does not.
			got = se.read(t, id, "aid", se.operator)
			if got["phone"] != "+44 20 7946 0958" || got["national_id"] != nil || got["notes"] != nil {
				t.Errorf("aid read = %v", got)
			}
			// RED clearance reads the value.
			got = se.read(t, id, "case_management", se.root)
			if got["national_id"] != "AB-947 381" || got["notes"] != "Lives near Marylebone" {
				t.Errorf("RED reader got %v", got)
			}
			// A role's field mask for subjects.<field> applies even to a caller cleared for the
			// field: the stricter wins.
			res, b := se.req(t, "POST", se.base+"/roles", `{"key":"caseworker","name":"Caseworker","clearance":"RED",
				"permissions":[{"resource":"subjects","action":"READ","max_classification":"RED"}],
				"field_masks":{"subjects.national_id":"partial","subjects.notes":"full"}}`, "", se.root)
			if res.StatusCode != 201 {
				t.Fatalf("create role: %d %s", res.StatusCode, b)
			}
			_, cw := se.seed(t, "acme", "cw@example.org", pw)
			if res, b := se.req(t, "PUT", se.base+"/users/"+cw.ID+"/roles/caseworker", "", "", se.root); res.StatusCode != 204 {
				t.Fatalf("grant: %d %s", res.StatusCode, b)
			}
			got = se.read(t, id, "case_management", se.login(t, "acme", "cw@example.org", pw, "").AccessToken)
			if got["national_id"] != "****** 381" || got["notes"] != "Lives near Marylebone" {
				t.Errorf("caseworker (RED, national_id masked partial by role) got %v", got)
			}
			// The purpose is required and must be in the register; a declared purpose no field
			// allows returns no values.
			res, b = se.req(t, "GET", se.base+"/subjects/"+id, "", "", se.operator)
			wantError(t, res, b, 400, tutela.EINVALID)
			res, b = se.req(t, "GET", se.base+"/subjects/"+id+"?purpose=marketing", "", "", se.operator)
			if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != "purpose" {
				t.Errorf("undeclared purpose: error names %q", eb.Error.Field)
			}
			if got := se.read(t, id, "case_review", se.operator); len(got) != 0 {
				t.Errorf("purpose no field allows got %v", got)
			}
			// Another tenant's administrator: not found. The auditor reads no people's data.
			res, b = se.req(t, "GET", se.otherTenantsBase+"/subjects/"+id+"?purpose=aid", "", "", se.otherAdmin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = se.req(t, "GET", se.base+"/subjects/"+id+"?purpose=aid", "", "", se.otherAdmin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = se.req(t, "GET", se.base+"/subjects/"+id+"?purpose=aid", "", "", se.auditor)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			// The operator cannot write a RED field.
			res, b = se.req(t, "PATCH", se.base+"/subjects/"+id, `{"values":{"national_id":"ZZ 1"}}`, "", se.operator)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			// subject.read records the purpose and field names.
			var details []byte
			if err := se.db.SQL().QueryRowContext(ctxBG, `SELECT canonical FROM audit_events WHERE action = 'subject.read' ORDER BY pos LIMIT 1`).Scan(&details); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{`"purpose":"case_management"`, `"fields":["full_name"]`, `"masked":["national_id","notes"]`} {
				if !bytes.Contains(details, []byte(want)) {
					t.Errorf("subject.read event %s lacks %s", details, want)
				}
			}
			se.noValueLeaked(t)
		})
	}
}

// searchBody is a POST …/subjects/search body.
func searchBody(field, value, purpose string) string {
	b, _ := json.Marshal(map[string]string{"field": field, "value": value, "purpose": purpose})
	return string(b)
}

func TestSubjects_SearchExactAndUpdate(t *testing.T) {
	t.Parallel()
	se := newSubjectEnv(t, sqlstore.SQLite)
	id := se.create(t)
	search := func(field, value, purpose, auth string) []string {
		t.Helper()
		res, b := se.req(t, "POST", se.base+"/subjects/search", searchBody(field, value, purpose), "", auth)
		if res.StatusCode != 200 {
			t.Fatalf("search %s: %d %s", field, res.StatusCode, b)
		}
		var v struct {
			IDs []string `json:"subject_ids"`
		}
		mustUnmarshal(t, b, &v)
		return v.IDs
	}
	if got := search("full_name", "  ADA lovelace", "aid", se.operator); len(got) != 1 || got[0] != id {
		t.Fatalf("case/space variant: %v", got)
	}
	if got := search("phone", "+44 (20) 7946-0958", "aid", se.operator); len(got) != 1 {
		t.Fatalf("phone variant: %v", got)
	}
	for _, v := range []string{"Ada Lovelac", "Ada", "Ada Lovelace Byron"} {
		if got := search("full_name", v, "aid", se.operator); len(got) != 0 {
			t.Fatalf("near value %q matched %v", v, got)
		}
	}
	if got := search("national_id", "ab947381", "case_management", se.root); len(got) != 1 {
		t.Fatalf("national_id: %v", got)
	}
	// A RED field is searched only with RED clearance; a field not allowed for the purpose, or
	// not searchable, is refused.
	res, b := se.req(t, "POST", se.base+"/subjects/search", searchBody("national_id", "AB947381", "case_management"), "", se.operator)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	res, b = se.req(t, "POST", se.base+"/subjects/search", searchBody("phone", "+44 20 7946 0958", "case_management"), "", se.operator)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
	res, b = se.req(t, "POST", se.base+"/subjects/search", searchBody("notes", "x", "case_management"), "", se.root)
	wantError(t, res, b, 400, tutela.EINVALID)
	// An update reindexes: the old name no longer matches, the new one does; null clears.
	res, b = se.req(t, "PATCH", se.base+"/subjects/"+id, `{"values":{"full_name":"Augusta Lovelace King","phone":null}}`, "", se.operator)
	if res.StatusCode != 200 {
		t.Fatalf("patch: %d %s", res.StatusCode, b)
	}
	if got := search("full_name", "Ada Lovelace", "aid", se.operator); len(got) != 0 {
		t.Fatalf("old value still found: %v", got)
	}
	if got := search("full_name", "augusta lovelace king", "aid", se.operator); len(got) != 1 {
		t.Fatalf("new value not found: %v", got)
	}
	if got := se.read(t, id, "aid", se.operator); got["phone"] != nil {
		t.Fatalf("cleared phone still read: %v", got)
	}
	// An invalid value is refused and changes nothing.
	res, b = se.req(t, "PATCH", se.base+"/subjects/"+id, `{"values":{"full_name":"bad\u202ename"}}`, "", se.operator)
	wantError(t, res, b, 400, tutela.EINVALID)
	// The schema cannot drop a field that holds values.
	res, b = se.req(t, "PUT", se.base+"/subject-schema", `{"fields":[]}`, "", se.root)
	wantError(t, res, b, 409, tutela.ECONFLICT)
	se.noValueLeaked(t)
}

func TestSubjects_EraseNeedsReasonRespectsHoldsAndShreds(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			se := newSubjectEnv(t, d)
			id := se.create(t)
			path := se.base + "/subjects/" + id
			// No reason, no legal basis: 400 and nothing changes.
			for _, body := range []string{`{"legal_basis":"GDPR Art. 17(1)(a)"}`, `{"reason":"asked by the person"}`, `{"reason":" ","legal_basis":"x"}`} {
				res, b := se.req(t, "DELETE", path, body, "", se.admin)
				wantError(t, res, b, 400, tutela.EINVALID)
			}
			if got := se.read(t, id, "aid", se.operator); got["full_name"] != "Ada Lovelace" {
				t.Fatalf("after refused erasures: %v", got)
			}
			// The operator may not place holds nor erase.
			res, b := se.req(t, "POST", path+"/holds", `{"reason":"litigation"}`, "", se.operator)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			res, b = se.req(t, "DELETE", path, `{"reason":"r","legal_basis":"l"}`, "", se.operator)
			wantError(t, res, b, 403, tutela.EFORBIDDEN)
			// A hold blocks erasure, naming its reason.
			res, b = se.req(t, "POST", path+"/holds", `{"reason":"litigation 2026-114"}`, "", se.admin)
			if res.StatusCode != 201 {
				t.Fatalf("place hold: %d %s", res.StatusCode, b)
			}
			var hold struct{ ID string }
			mustUnmarshal(t, b, &hold)
			erase := `{"reason":"asked by the person","legal_basis":"GDPR Art. 17(1)(a)"}`
			res, b = se.req(t, "DELETE", path, erase, "", se.admin)
			eb := wantError(t, res, b, 409, tutela.ECONFLICT)
			if !strings.Contains(eb.Error.Message, "litigation 2026-114") {
				t.Errorf("hold refusal %q does not name the reason", eb.Error.Message)
			}
			res, b = se.req(t, "GET", path+"/holds", "", "", se.operator)
			if res.StatusCode != 200 || !bytes.Contains(b, []byte(hold.ID)) {
				t.Fatalf("list holds: %d %s", res.StatusCode, b)
			}
			if res, b := se.req(t, "DELETE", path+"/holds/"+hold.ID, "", "", se.admin); res.StatusCode != 200 {
				t.Fatalf("release: %d %s", res.StatusCode, b)
			}
			res, b = se.req(t, "DELETE", path+"/holds/"+hold.ID, "", "", se.admin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			// Erased: the key is gone, every read says so.
			res, b = se.req(t, "DELETE", path, erase, "", se.admin)
			if res.StatusCode != 200 {
				t.Fatalf("erase: %d %s", res.StatusCode, b)
			}
			var er struct {
				PersonID string `json:"person_id"`
				Trigger  string `json:"trigger"`
			}
			mustUnmarshal(t, b, &er)
			if er.PersonID != id || er.Trigger != "request" {
				t.Fatalf("erasure = %s", b)
			}
			res, b = se.req(t, "GET", path+"?purpose=aid", "", "", se.operator)
			if eb := wantError(t, res, b, 404, tutela.ENOTFOUND); eb.Error.Message != "subject was erased" {
				t.Errorf("read after erasure: %q", eb.Error.Message)
			}
			res, b = se.req(t, "PATCH", path, `{"values":{"full_name":"Ada"}}`, "", se.operator)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			res, b = se.req(t, "DELETE", path, erase, "", se.admin)
			wantError(t, res, b, 404, tutela.ENOTFOUND)
			var keys int
			if err := se.db.SQL().QueryRowContext(ctxBG, `SELECT count(*) FROM person_keys WHERE person_id = $1`, id).Scan(&keys); err != nil || keys != 0 {
				t.Fatalf("person_keys rows after erasure: %d (%v)", keys, err)
			}
			res, b = se.req(t, "POST", se.base+"/subjects/search", searchBody("full_name", "Ada Lovelace", "aid"), "", se.operator)
			if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"subject_ids":[]`)) {
				t.Fatalf("search after erasure: %d %s", res.StatusCode, b)
			}
			res, b = se.req(t, "GET", se.base+"/subjects", "", "", se.operator)
			var list struct{ Subjects []json.RawMessage }
			mustUnmarshal(t, b, &list)
			if res.StatusCode != 200 || len(list.Subjects) != 0 {
				t.Fatalf("list after erasure: %d %s", res.StatusCode, b)
			}
			se.noValueLeaked(t)
		})
	}
}

// With step-up enforced: the schema (MANAGE), a RED value in clear and an erasure each need a
// second factor proved in the last 5 minutes; a read that returns RED fields masked does not.
func TestSubjects_StepUpForSchemaREDValuesAndErasure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, withMFA)
	tn, admin, adminSecret := adminWithFactor(t, e)
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	root := e.login(t, "root", "root@example.org", pw, "")
	rootSecret := e.enrolTOTP(t, root.cookie)
	base := "/v1/tenants/" + tn.ID
	e.clock.Add(6 * time.Minute)
	res, b := e.req(t, "PUT", base+"/subject-schema", subjectSchemaJSON, "", root.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	e.stepUp(t, root.cookie, rootSecret)
	if res, b := e.req(t, "PUT", base+"/subject-schema", subjectSchemaJSON, "", root.cookie); res.StatusCode != 200 {
		t.Fatalf("put schema after step-up: %d %s", res.StatusCode, b)
	}
	res, b = e.req(t, "POST", base+"/subjects", `{"values":{"full_name":"Ada Lovelace","national_id":"AB-947 381"}}`, "", root.cookie)
	if res.StatusCode != 201 {
		t.Fatalf("create: %d %s", res.StatusCode, b)
	}
	var s struct{ ID string }
	mustUnmarshal(t, b, &s)
	path := base + "/subjects/" + s.ID
	e.clock.Add(6 * time.Minute)
	// The RED value in clear needs a fresh second factor; the YELLOW administrator, who gets it
	// masked, does not.
	res, b = e.req(t, "GET", path+"?purpose=case_management", "", "", root.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	res, b = e.req(t, "GET", path+"?purpose=case_management", "", "", admin.cookie)
	if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"national_id":"h:`)) {
		t.Fatalf("masked read: %d %s", res.StatusCode, b)
	}
	e.stepUp(t, root.cookie, rootSecret)
	res, b = e.req(t, "GET", path+"?purpose=case_management", "", "", root.cookie)
	if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"national_id":"AB-947 381"`)) {
		t.Fatalf("RED read after step-up: %d %s", res.StatusCode, b)
	}
	erase := `{"reason":"asked by the person","legal_basis":"GDPR Art. 17(1)(a)"}`
	res, b = e.req(t, "DELETE", path, erase, "", admin.cookie)
	wantError(t, res, b, 401, tutela.ESTEPUPREQUIRED)
	e.stepUp(t, admin.cookie, adminSecret)
	if res, b := e.req(t, "DELETE", path, erase, "", admin.cookie); res.StatusCode != 200 {
		t.Fatalf("erase after step-up: %d %s", res.StatusCode, b)
	}
}
