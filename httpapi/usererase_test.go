package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/authz"
	"tutela/clocktest"
	"tutela/httpapi"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// Distinctive request data of the user who is erased.
const (
	eraseUA = "ZanzibarBrowser/7.7 (erase-marker)"
	eraseIP = "203.0.113.88"
)

// reqAs is e.req from ip with a user agent of its own.
func (e *env) reqAs(t *testing.T, method, path, body, ip, ua string, auth any) (*http.Response, []byte) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	r.RemoteAddr = ip + ":40000"
	r.Header.Set("User-Agent", ua)
	if tok, ok := auth.(string); ok {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, r)
	return rec.Result(), rec.Body.Bytes()
}

// sqliteBytes is the SQLite file at path with its WAL checkpointed into it.
func sqliteBytes(t *testing.T, db *sqlstore.DB, path string) []byte {
	t.Helper()
	if _, err := db.SQL().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func auditOf(t *testing.T, e *env, actor string, auth any) []httpapi.AuditEventView {
	t.Helper()
	res, body := e.req(t, "GET", "/v1/audit/events?limit=1000&actor="+actor, "", "", auth)
	var page auditPage
	if err := json.Unmarshal(body, &page); err != nil || res.StatusCode != 200 {
		t.Fatalf("audit events: %d %s", res.StatusCode, body)
	}
	return page.Events
}

// Issue 13: erasing a user over HTTP needs reason and legal basis and a person's fresh step-up;
// afterwards the user cannot sign in, their sessions are gone, the erasure is in the ledger,
// the IP and user agent of their audit events read [erased] (and were never in the database
// file in plaintext), and the audit log still verifies.
func TestEraseUser_ShredsAndLogStillVerifies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := sqltest.DSN(t, sqlstore.SQLite)
	c := clocktest.New(time.Now().UTC())
	db, err := sqlstore.Open(ctx, path, sqlstore.Options{Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sqltest.AttachVault(t, db)
	skey, vkey, _ := audit.GenerateKey(origin)
	signer, _ := audit.NewSigner(skey)
	seq := sqlstore.NewSequencer(db, signer, origin, sqlstore.SequencerOptions{Clock: c.Now})
	e := newEnvOn(t, db, c, func(d *httpapi.Deps) { withMFA(d); d.AuditVerifierKey = vkey })
	verify := func(when string) {
		t.Helper()
		if _, err := seq.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := audit.Verify(ctx, db.AuditSource(), vkey, origin, nil); err != nil {
			t.Fatalf("audit verify %s: %v", when, err)
		}
	}

	tn, a, secret := adminWithFactor(t, e)
	_, ana := e.seed(t, "acme", "ana@example.org", pw)
	res, body := e.reqAs(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", pw), eraseIP, eraseUA, nil)
	if res.StatusCode != 200 {
		t.Fatalf("ana login: %d %s", res.StatusCode, body)
	}
	var g grant
	_ = json.Unmarshal(body, &g)
	if res, body := e.reqAs(t, "GET", "/v1/auth/me", "", eraseIP, eraseUA, g.AccessToken); res.StatusCode != 200 {
		t.Fatalf("ana me: %d %s", res.StatusCode, body)
	}
	if b := sqliteBytes(t, db, path); bytes.Contains(b, []byte(eraseUA)) || bytes.Contains(b, []byte(eraseIP)) {
		t.Fatal("the database file holds the user's IP or user agent in plaintext")
	}
	// An authorized reader sees them opened.
	e.stepUp(t, a.cookie, secret)
	evs := auditOf(t, e, ana.ID, a.cookie)
	if len(evs) == 0 || evs[0].UserAgent != eraseUA || evs[0].SourceIP != eraseIP {
		t.Fatalf("ana's events as the admin reads them: %+v", evs)
	}

	erase := "/v1/tenants/" + tn.ID + "/users/" + ana.ID + "/erase"
	const ok = `{"reason":"data subject request","legal_basis":"GDPR Art. 17(1)(a)"}`
	for _, bad := range []string{`{"legal_basis":"GDPR Art. 17"}`, `{"reason":"asked"}`, `{"reason":" ","legal_basis":"x"}`} {
		res, body := e.req(t, "POST", erase, bad, "", a.cookie)
		wantError(t, res, body, 400, tutela.EINVALID)
	}
	// A service account holding users DELETE is refused: erasure needs a person.
	sa := e.createSAWith(t, tn.ID, authz.Permission{Resource: authz.ResUsers, Action: authz.Delete},
		authz.Permission{Resource: authz.ResUsers, Action: authz.Read})
	code, tok := e.clientToken(t, sa.SA.ClientID, sa.Secret, "")
	if code != 200 {
		t.Fatalf("token: %d %v", code, tok)
	}
	res, body = e.req(t, "POST", erase, ok, "", tok["access_token"].(string))
	wantError(t, res, body, 403, tutela.EFORBIDDEN)
	// Nobody erases themselves.
	res, body = e.req(t, "POST", "/v1/tenants/"+tn.ID+"/users/"+a.UserID+"/erase", ok, "", a.cookie)
	wantError(t, res, body, 403, tutela.EFORBIDDEN)
	// Without a fresh second factor.
	e.clock.Add(6 * time.Minute)
	res, body = e.req(t, "POST", erase, ok, "", a.cookie)
	wantError(t, res, body, 401, tutela.ESTEPUPREQUIRED)
	if res, body := e.req(t, "GET", "/v1/tenants/"+tn.ID+"/users/"+ana.ID, "", "", a.cookie); res.StatusCode != 200 {
		t.Fatalf("a refused erasure changed something: %d %s", res.StatusCode, body)
	}

	e.stepUp(t, a.cookie, secret)
	if res, body := e.req(t, "POST", erase, ok, "", a.cookie); res.StatusCode != 204 {
		t.Fatalf("erase: %d %s", res.StatusCode, body)
	}
	if res, _ := e.reqAs(t, "POST", "/v1/auth/login", loginBody("acme", "ana@example.org", pw), eraseIP, eraseUA, nil); res.StatusCode != 401 {
		t.Fatalf("erased user signs in: %d", res.StatusCode)
	}
	if res, _ := e.reqAs(t, "GET", "/v1/auth/me", "", eraseIP, eraseUA, g.AccessToken); res.StatusCode != 401 {
		t.Fatalf("erased user's token still works: %d", res.StatusCode)
	}
	res, body = e.req(t, "GET", "/v1/tenants/"+tn.ID+"/users/"+ana.ID, "", "", a.cookie)
	wantError(t, res, body, 404, tutela.ENOTFOUND)
	if err := db.View(ctx, func(tx *sqlstore.Tx) error {
		if ss, err := tx.Users(tn.ID).Sessions(ctx, ana.ID); err != nil || len(ss) != 0 {
			t.Errorf("sessions after erasure: %+v, %v", ss, err)
		}
		es, err := tx.Erasures(ctx, tn.ID, "", 10)
		if err != nil || len(es) != 1 || es[0].PersonID != ana.ID || es[0].Kind != sqlstore.PersonUser ||
			es[0].ActorID != a.UserID || es[0].LegalBasis != "GDPR Art. 17(1)(a)" {
			t.Errorf("erasure ledger: %+v, %v", es, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	after := auditOf(t, e, ana.ID, a.cookie)
	if len(after) != len(evs) {
		t.Fatalf("ana's events: %d before the erasure, %d after", len(evs), len(after))
	}
	for _, ev := range after {
		if ev.SourceIP != sqlstore.ErasedPlaceholder || ev.UserAgent != sqlstore.ErasedPlaceholder {
			t.Errorf("%s of the erased user reads %q %q", ev.Action, ev.SourceIP, ev.UserAgent)
		}
	}
	verify("after the erasure")
	if b := sqliteBytes(t, db, path); bytes.Contains(b, []byte(eraseUA)) || bytes.Contains(b, []byte(eraseIP)) {
		t.Fatal("the database file holds the user's IP or user agent in plaintext after the erasure")
	}
}

// A failed sign-in (and a forgot-password request) for an address with no account stores that
// address nowhere in plaintext: not in the sign-in history, the security events, the audit log
// (details carry IDs and field names only) nor the queued job; nor the caller's IP and user agent.
func TestUnknownAddress_NotStoredInPlaintext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := sqltest.DSN(t, sqlstore.SQLite)
	c := clocktest.New(time.Now().UTC())
	db, err := sqlstore.Open(ctx, path, sqlstore.Options{Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sqltest.AttachVault(t, db)
	e := newEnvOn(t, db, c, nil)
	e.seed(t, "acme", "admin@example.org", pw, "program_admin")
	const stranger = "qwertzuiop.stranger@example.org"
	for range 3 {
		res, _ := e.reqAs(t, "POST", "/v1/auth/login", loginBody("acme", stranger, "wrong-password-1"), eraseIP, eraseUA, nil)
		if res.StatusCode != 401 {
			t.Fatalf("sign-in for an unknown address: %d", res.StatusCode)
		}
	}
	res, body := e.reqAs(t, "POST", "/v1/auth/password/forgot", `{"tenant":"acme","email":"`+stranger+`"}`, eraseIP, eraseUA, nil)
	if res.StatusCode >= 300 {
		t.Fatalf("forgot: %d %s", res.StatusCode, body)
	}
	deliver(t, e.ids)
	b := bytes.ToLower(sqliteBytes(t, db, path))
	for _, v := range []string{stranger, "qwertzuiop", eraseIP, strings.ToLower(eraseUA)} {
		if bytes.Contains(b, []byte(v)) {
			t.Errorf("the database file holds %q in plaintext", v)
		}
	}
	// The attempts are recorded, for those who may read them.
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Action: "auth.login", Limit: 100})
	if err != nil || len(recs) != 3 {
		t.Fatalf("auth.login events: %d, %v", len(recs), err)
	}
	if e := recs[0].Event; e.SourceIP != eraseIP || e.UserAgent != eraseUA {
		t.Errorf("failed sign-in event reads %q %q", e.SourceIP, e.UserAgent)
	}
}
