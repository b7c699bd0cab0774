package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"tutela"
	"tutela/authz"
	"tutela/clocktest"
	"tutela/httpapi"
	"tutela/identity"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

var ctxBG = context.Background()

type decision struct {
	Allow       bool   `json:"allow"`
	Reason      string `json:"reason"`
	Obligations struct {
		StepUp  bool `json:"step_up_required"`
		Purpose bool `json:"purpose_required"`
	} `json:"obligations"`
}

func (e *env) check(t *testing.T, auth any, body string) decision {
	t.Helper()
	res, b := e.req(t, "POST", "/v1/authz/check", body, "", auth)
	if res.StatusCode != 200 {
		t.Fatalf("check %s: %d %s", body, res.StatusCode, b)
	}
	var d decision
	_ = json.Unmarshal(b, &d)
	return d
}

func TestAuthz_NoSelfEscalationAndNoGrantingWhatYouLack(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			tn, admin := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
			_, u := e.seed(t, "acme", "ana@example.org", pw)
			a := e.login(t, "acme", "admin@example.org", pw, "")
			base := "/v1/tenants/" + tn.ID + "/users/"
			// Nobody changes their own roles or grants.
			for _, c := range []struct{ method, path, body string }{
				{"PUT", base + admin.ID + "/roles/operator", ""},
				{"PUT", base + admin.ID + "/roles/super_admin", ""},
				{"DELETE", base + admin.ID + "/roles/program_admin", ""},
				{"POST", base + admin.ID + "/permissions", `{"resource":"keys","action":"MANAGE","effect":"allow"}`},
			} {
				res, body := e.req(t, c.method, c.path, c.body, "", a.AccessToken)
				wantError(t, res, body, 403, tutela.EFORBIDDEN)
			}
			// super_admin is conferred only by a super-admin.
			res, body := e.req(t, "PUT", base+u.ID+"/roles/super_admin", "", "", a.AccessToken)
			wantError(t, res, body, 403, tutela.EFORBIDDEN)
			// You cannot grant what you do not hold: a permission beyond yours, a classification
			// above your limit, or a custom role made of either.
			for _, body := range []string{
				`{"resource":"keys","action":"MANAGE","effect":"allow"}`,
				`{"resource":"records","action":"READ","max_classification":"RED","effect":"allow"}`,
				`{"resource":"records","action":"READ","effect":"allow"}`,
			} {
				res, b := e.req(t, "POST", base+u.ID+"/permissions", body, "", a.AccessToken)
				wantError(t, res, b, 403, tutela.EFORBIDDEN)
			}
			for _, body := range []string{
				`{"key":"keymaster","name":"K","clearance":"GREEN","permissions":[{"resource":"keys","action":"MANAGE"}]}`,
				`{"key":"redreader","name":"R","clearance":"RED","permissions":[{"resource":"records","action":"READ","max_classification":"GREEN"}]}`,
			} {
				res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/roles", body, "", a.AccessToken)
				wantError(t, res, b, 403, tutela.EFORBIDDEN)
			}
			// What the admin does hold, they can grant.
			res, body = e.req(t, "POST", "/v1/tenants/"+tn.ID+"/roles",
				`{"key":"caseworker","name":"Caseworker","clearance":"YELLOW","permissions":[{"resource":"records","action":"READ","max_classification":"YELLOW"}]}`, "", a.AccessToken)
			if res.StatusCode != 201 {
				t.Fatalf("create role: %d %s", res.StatusCode, body)
			}
			if res, b := e.req(t, "PUT", base+u.ID+"/roles/caseworker", "", "", a.AccessToken); res.StatusCode != 204 {
				t.Fatalf("grant custom role: %d %s", res.StatusCode, b)
			}
			ana := e.login(t, "acme", "ana@example.org", pw, "")
			if d := e.check(t, ana.AccessToken, `{"action":"READ","resource":"records","classification":"YELLOW"}`); !d.Allow {
				t.Fatalf("granted role not effective: %s", d.Reason)
			}
			// Ana, now holding a role, still cannot grant anything.
			res, body = e.req(t, "PUT", base+admin.ID+"/roles/operator", "", "", ana.AccessToken)
			wantError(t, res, body, 403, tutela.EFORBIDDEN)
		})
	}
}

func TestAuthz_SuperAdminGrantsAndLastProgramAdminStays(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, admin := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	_, u := e.seed(t, "acme", "ana@example.org", pw)
	root := e.login(t, "root", "root@example.org", pw, "")
	base := "/v1/tenants/" + tn.ID + "/users/"
	for _, c := range []struct{ method, path string }{
		{"DELETE", base + admin.ID + "/roles/program_admin"},
		{"DELETE", base + admin.ID},
		{"POST", base + admin.ID + "/disable"},
	} {
		res, body := e.req(t, c.method, c.path, "", "", root.AccessToken)
		wantError(t, res, body, 409, tutela.ECONFLICT)
	}
	// With a second programme administrator, the first may go.
	if res, b := e.req(t, "PUT", base+u.ID+"/roles/program_admin", "", "", root.AccessToken); res.StatusCode != 204 {
		t.Fatalf("grant: %d %s", res.StatusCode, b)
	}
	if res, b := e.req(t, "DELETE", base+admin.ID+"/roles/program_admin", "", "", root.AccessToken); res.StatusCode != 204 {
		t.Fatalf("revoke with another admin present: %d %s", res.StatusCode, b)
	}
	// A programme administrator cannot administer a user holding more than they do.
	e.seed(t, "acme", "other-root@example.org", pw, "super_admin")
	ana := e.login(t, "acme", "ana@example.org", pw, "")
	var otherRoot string
	_ = e.db.View(ctxBG, func(tx *sqlstore.Tx) error {
		x, err := tx.Users(tn.ID).ByEmail(ctxBG, "other-root@example.org")
		if err == nil {
			otherRoot = x.ID
		}
		return err
	})
	for _, path := range []string{base + otherRoot + "/disable", base + otherRoot + "/password-reset", base + otherRoot + "/revoke-sessions"} {
		res, body := e.req(t, "POST", path, "", "", ana.AccessToken)
		wantError(t, res, body, 403, tutela.EFORBIDDEN)
	}
}

func TestAuthz_ExpiryDenyAndClassification(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	_, u := e.seed(t, "acme", "ana@example.org", pw)
	e.seed(t, "root", "root@example.org", pw, "super_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	root := e.login(t, "root", "root@example.org", pw, "")
	base := "/v1/tenants/" + tn.ID + "/users/" + u.ID
	exp := e.clock.Now().Add(time.Hour).Format(time.RFC3339)
	if res, b := e.req(t, "PUT", base+"/roles/operator", `{"expires_at":"`+exp+`"}`, "", a.AccessToken); res.StatusCode != 204 {
		t.Fatalf("grant: %d %s", res.StatusCode, b)
	}
	ask := func(body string) decision {
		return e.check(t, a.AccessToken, `{"user_id":"`+u.ID+`",`+body[1:])
	}
	if d := ask(`{"action":"UPDATE","resource":"records"}`); !d.Allow {
		t.Fatalf("operator grant: %s", d.Reason)
	}
	// An explicit deny beats the role's grant.
	res, b := e.req(t, "POST", base+"/permissions", `{"resource":"records","action":"UPDATE","effect":"deny"}`, "", a.AccessToken)
	if res.StatusCode != 201 {
		t.Fatalf("deny: %d %s", res.StatusCode, b)
	}
	if d := ask(`{"action":"UPDATE","resource":"records"}`); d.Allow || !strings.Contains(d.Reason, "explicitly denied") {
		t.Fatalf("deny did not win: %+v", d)
	}
	// RED data: beyond the operator's YELLOW clearance.
	if d := ask(`{"action":"READ","resource":"records","classification":"RED","purpose":"case"}`); d.Allow {
		t.Fatal("RED read without clearance allowed")
	}
	// The super-admin has RED clearance but must state a purpose, and sensitive actions carry
	// a step-up obligation.
	if d := e.check(t, root.AccessToken, `{"action":"READ","resource":"records","classification":"RED"}`); d.Allow || !d.Obligations.Purpose {
		t.Fatalf("RED read without purpose: %+v", d)
	}
	if d := e.check(t, root.AccessToken, `{"action":"READ","resource":"records","classification":"RED","purpose":"safeguarding review"}`); !d.Allow || !d.Obligations.StepUp {
		t.Fatalf("RED read with purpose: %+v", d)
	}
	recs, _, err := e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{Action: "authz.red_access"})
	if err != nil || len(recs) != 1 || recs[0].Event.Details["purpose"] != "safeguarding review" {
		t.Fatalf("RED access not audited with its purpose: %v %+v", err, recs)
	}
	// The batch API records allowed RED access the same way, one event per allowed check.
	res, b = e.req(t, "POST", "/v1/authz/check/batch", `{"checks":[
		{"action":"READ","resource":"records","classification":"RED","purpose":"audit sample"},
		{"action":"READ","resource":"records","classification":"RED"},
		{"action":"READ","resource":"records","classification":"GREEN"}]}`, "", root.AccessToken)
	if res.StatusCode != 200 {
		t.Fatalf("batch: %d %s", res.StatusCode, b)
	}
	recs, _, err = e.db.AuditEvents(ctxBG, sqlstore.AuditFilter{Action: "authz.red_access"})
	if err != nil || len(recs) != 2 || recs[0].Event.Details["purpose"] != "audit sample" {
		t.Fatalf("batch RED access not audited: %v %+v", err, recs)
	}
	// The grant expires on its own.
	e.clock.Add(2 * time.Hour)
	a = e.login(t, "acme", "admin@example.org", pw, "")
	if d := e.check(t, a.AccessToken, `{"user_id":"`+u.ID+`","action":"READ","resource":"records"}`); d.Allow {
		t.Fatalf("expired grant still allows: %s", d.Reason)
	}
	// Explain names the grants involved.
	res, b = e.req(t, "GET", "/v1/authz/explain?user="+u.ID+"&action=UPDATE&resource=records", "", "", a.AccessToken)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"effect":"deny"`) {
		t.Fatalf("explain: %d %s", res.StatusCode, b)
	}
	// Batch form, bounded.
	res, b = e.req(t, "POST", "/v1/authz/check/batch", `{"checks":[{"action":"READ","resource":"users"},{"action":"MANAGE","resource":"keys"}]}`, "", a.AccessToken)
	var batch struct{ Results []decision }
	_ = json.Unmarshal(b, &batch)
	if res.StatusCode != 200 || len(batch.Results) != 2 || !batch.Results[0].Allow || batch.Results[1].Allow {
		t.Fatalf("batch: %d %s", res.StatusCode, b)
	}
	res, b = e.req(t, "POST", "/v1/authz/check/batch", `{"checks":[]}`, "", a.AccessToken)
	wantError(t, res, b, 400, tutela.EINVALID)
}

func TestAuthz_MaskingByClearanceAndFieldPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	e.seed(t, "acme", "auditor@example.org", pw, "auditor")
	e.seed(t, "acme", "ana.lopez@example.org", pw)
	a := e.login(t, "acme", "admin@example.org", pw, "")
	aud := e.login(t, "acme", "auditor@example.org", pw, "")
	// YELLOW clearance (admin) sees e-mail addresses; GREEN (auditor) sees them partly.
	_, full := e.req(t, "GET", "/v1/tenants/"+tn.ID+"/users?limit=200", "", "", a.AccessToken)
	_, masked := e.req(t, "GET", "/v1/tenants/"+tn.ID+"/users?limit=200", "", "", aud.AccessToken)
	if !strings.Contains(string(full), "ana.lopez@example.org") {
		t.Fatalf("admin list lacks the address: %s", full)
	}
	if strings.Contains(string(masked), "ana.lopez@example.org") || !strings.Contains(string(masked), "a***@example.org") {
		t.Fatalf("auditor list not masked: %s", masked)
	}
	var list struct{ Users []struct{ ID string } }
	_ = json.Unmarshal(full, &list)
	_, one := e.req(t, "GET", "/v1/tenants/"+tn.ID+"/users/"+list.Users[0].ID, "", "", aud.AccessToken)
	var single struct{ Email string }
	_ = json.Unmarshal(one, &single)
	if !strings.Contains(single.Email, "***@example.org") {
		t.Fatalf("single user not masked: %s", one)
	}
	// Security events carry IPs; GREEN sees a keyed hash, stable across responses.
	e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana.lopez@example.org", "wrong"), "203.0.113.77", nil)
	for i := 0; i < 5; i++ {
		e.req(t, "POST", "/v1/auth/login", loginBody("acme", "ana.lopez@example.org", "wrong"), "203.0.113.7"+string(rune('0'+i)), nil)
	}
	_, evs := e.req(t, "GET", "/v1/security-events", "", "", aud.AccessToken)
	if strings.Contains(string(evs), "203.0.113.7") || !strings.Contains(string(evs), `"ip":"h:`) {
		t.Fatalf("security event IPs not hashed for GREEN clearance: %s", evs)
	}
	// A custom role's field policy overrides the default: hidden.
	res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/roles",
		`{"key":"viewer","name":"Viewer","clearance":"GREEN","permissions":[{"resource":"users","action":"READ"}],"field_masks":{"users.email":"hidden"}}`, "", a.AccessToken)
	if res.StatusCode != 201 {
		t.Fatalf("role: %d %s", res.StatusCode, b)
	}
	_, v := e.seed(t, "acme", "viewer@example.org", pw)
	if res, b := e.req(t, "PUT", "/v1/tenants/"+tn.ID+"/users/"+v.ID+"/roles/viewer", "", "", a.AccessToken); res.StatusCode != 204 {
		t.Fatalf("grant: %d %s", res.StatusCode, b)
	}
	vw := e.login(t, "acme", "viewer@example.org", pw, "")
	_, hidden := e.req(t, "GET", "/v1/tenants/"+tn.ID+"/users", "", "", vw.AccessToken)
	if strings.Contains(string(hidden), `"email"`) {
		t.Fatalf("hidden field present: %s", hidden)
	}
}

// TestCrossTenant_EveryTenantRouteAnswers404 walks the route list: every route under
// /v1/tenants/{tenant} aimed at another tenant (by ID and by slug), with that tenant's real
// user ID, answers 404 exactly like a tenant that does not exist. New routes are covered
// automatically.
func TestCrossTenant_EveryTenantRouteAnswers404(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "tenant-a", "admin-a@example.org", pw, "program_admin")
	tb, ub := e.seed(t, "tenant-b", "user-b@example.org", pw, "operator")
	a := e.login(t, "tenant-a", "admin-a@example.org", pw, "")
	walked := 0
	for _, r := range e.srv.Routes() {
		if !strings.Contains(r.Pattern, "{tenant}") {
			continue
		}
		for _, ref := range []string{tb.ID, tb.Slug} {
			path := strings.NewReplacer("{tenant}", ref, "{id}", ub.ID, "{role}", "operator", "{grant}", tutela.NewID(),
				"{review}", tutela.NewID(), "{item}", tutela.NewID(), "{sa}", tutela.NewID(), "{secret}", tutela.NewID()).Replace(r.Pattern)
			body := ""
			if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
				body = "{}"
			}
			res, b := e.req(t, r.Method, path, body, "", a.AccessToken)
			if res.StatusCode != 404 {
				t.Errorf("%s %s as tenant A's admin = %d %s, want 404", r.Method, path, res.StatusCode, b)
			}
		}
		walked++
	}
	if walked < 15 {
		t.Fatalf("walked only %d tenant routes", walked)
	}
	// Routes that take IDs elsewhere: checks about B's user and B's session IDs.
	res, b := e.req(t, "POST", "/v1/authz/check", `{"user_id":"`+ub.ID+`","action":"READ","resource":"records"}`, "", a.AccessToken)
	wantError(t, res, b, 404, tutela.ENOTFOUND)
	bob := e.login(t, "tenant-b", "user-b@example.org", pw, "")
	res, b = e.req(t, "DELETE", "/v1/auth/sessions/"+bob.SessionID, "", "", a.AccessToken)
	wantError(t, res, b, 404, tutela.ENOTFOUND)
}

func TestAuthzCheck_MalformedQuestionsAre400(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	for body, field := range map[string]string{
		`{"action":"READ_ALL","resource":"records"}`:                     "action",
		`{"action":"READ","resource":"*"}`:                               "resource",
		`{"action":"READ","resource":"records","classification":"PINK"}`: "classification",
	} {
		res, b := e.req(t, "POST", "/v1/authz/check", body, "", a.AccessToken)
		if eb := wantError(t, res, b, 400, tutela.EINVALID); eb.Error.Field != field {
			t.Errorf("%s: field %q, want %q", body, eb.Error.Field, field)
		}
	}
	res, b := e.req(t, "GET", "/v1/authz/explain?action=READ", "", "", a.AccessToken)
	wantError(t, res, b, 400, tutela.EINVALID)
}

// BenchmarkAuthzCheckHTTP measures POST /v1/authz/check through the whole stack (bearer
// verification with token-version and session checks, policy load, decision) on SQLite.
func BenchmarkAuthzCheckHTTP(b *testing.B) { benchAuthzCheckHTTP(b, nil) }

// benchAuthzCheckHTTP is BenchmarkAuthzCheckHTTP with the store and the API tracing to tp (nil:
// tracing off, as by default).
func benchAuthzCheckHTTP(b *testing.B, tp trace.TracerProvider) {
	c := clocktest.New(time.Now().UTC())
	db := sqltest.Open(b, sqlstore.SQLite, sqlstore.Options{Clock: c.Now, Tracer: tp})
	ids := newIdentity(b, db, c.Now, identity.Config{}, nil)
	srv := httpapi.New(httpapi.Deps{DB: db, Identity: ids, Clock: c.Now, RateRPS: 1e9, RateBurst: 1e9, Tracer: tp})
	e := &env{srv: checkedServer{Server: srv}, db: db, clock: c, ids: ids} // no t: the benchmark measures the server alone
	e.seed(b, "acme", "admin@example.org", pw, "program_admin")
	g := e.login(b, "acme", "admin@example.org", pw, "")
	body := `{"action":"UPDATE","resource":"records","classification":"YELLOW"}`
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/v1/authz/check", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+g.AccessToken)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, r)
		if rec.Code != 200 {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

func TestAuthzPolicy_SnapshotDecidesLikeTheServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tn, _ := e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	_, u := e.seed(t, "acme", "ana@example.org", pw, "operator")
	_, ub := e.seed(t, "other", "bob@example.org", pw, "operator")
	a := e.login(t, "acme", "admin@example.org", pw, "")
	if res, b := e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+u.ID+"/permissions", `{"resource":"records","action":"PUBLISH","effect":"deny"}`, "", a.AccessToken); res.StatusCode != 201 {
		t.Fatalf("deny: %d %s", res.StatusCode, b)
	}
	res, b := e.req(t, "GET", "/v1/authz/policy?user="+u.ID, "", "", a.AccessToken)
	if res.StatusCode != 200 {
		t.Fatalf("policy: %d %s", res.StatusCode, b)
	}
	var pol authz.Policy
	if err := json.Unmarshal(b, &pol); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`"action":"READ","resource":"records"`, `"action":"PUBLISH","resource":"records"`,
		`"action":"MANAGE","resource":"roles"`, `"action":"READ","resource":"records","classification":"RED","purpose":"p"`} {
		server := e.check(t, a.AccessToken, `{"user_id":"`+u.ID+`",`+q+`}`)
		var req authz.Request
		_ = json.Unmarshal([]byte("{"+q+"}"), &req)
		if local := authz.Decide(&pol, req, e.clock.Now()); local.Allow != server.Allow {
			t.Errorf("%s: local %v, server %v", q, local.Allow, server.Allow)
		}
	}
	res, b = e.req(t, "GET", "/v1/authz/policy?user="+ub.ID, "", "", a.AccessToken)
	wantError(t, res, b, 404, tutela.ENOTFOUND)
	ana := e.login(t, "acme", "ana@example.org", pw, "")
	res, b = e.req(t, "GET", "/v1/authz/policy?user=00000000-0000-7000-8000-000000000009", "", "", ana.AccessToken)
	wantError(t, res, b, 403, tutela.EFORBIDDEN)
}
