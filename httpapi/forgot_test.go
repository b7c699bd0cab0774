package httpapi_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/httpapi"
	"tutela/identity"
	"tutela/mail"
	"tutela/mail/mailtest"
	"tutela/password"
	"tutela/sqlstore"
)

var codeRE = regexp.MustCompile(`\b[0-9a-f]{64}\b`)

func TestForgotPassword_EmailsCodeOverSMTPOnlyForRealAccounts(t *testing.T) {
	t.Parallel()
	sink := mailtest.NewServer(t)
	smtp, err := mail.NewSMTPSender(mail.SMTPConfig{Addr: sink.Addr(), From: "noreply@tutela.test", TLS: mail.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, sqlstore.SQLite, nil)
	ids := newIdentity(t, e.db, e.clock.Now, identity.Config{}, smtp)
	e.srv = checkedServer{Server: httpapi.New(httpapi.Deps{DB: e.db, Identity: ids, Clock: e.clock.Now, RateRPS: 1000, RateBurst: 1000}), t: t}
	e.seed(t, "acme", "ana@example.org", pw)
	old := e.login(t, "acme", "ana@example.org", pw, "")

	ask := func(email string) (*http.Response, []byte) {
		return e.req(t, "POST", "/v1/auth/password/forgot", `{"tenant":"acme","email":"`+email+`"}`, "", nil)
	}
	r1, b1 := ask("nobody@example.org")
	r2, b2 := ask("ana@example.org")
	if r1.StatusCode != 202 || r2.StatusCode != 202 || string(b1) != string(b2) {
		t.Fatalf("responses differ: %d %s / %d %s", r1.StatusCode, b1, r2.StatusCode, b2)
	}
	deliver(t, ids) // the worker sends what the requests queued
	msgs := sink.Messages()
	if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != "ana@example.org" {
		t.Fatalf("want exactly one e-mail to ana, got %+v", msgs)
	}
	body, _ := io.ReadAll(quotedprintable.NewReader(strings.NewReader(string(msgs[0].Data))))
	code := codeRE.FindString(string(body))
	if code == "" {
		t.Fatalf("no code in e-mail:\n%s", body)
	}
	const next = "granite meadow lantern 44 swallow"
	res, b := e.req(t, "POST", "/v1/auth/password/reset", `{"token":"`+code+`","new_password":"`+next+`"}`, "", nil)
	if res.StatusCode != 204 {
		t.Fatalf("reset with e-mailed code: %d %s", res.StatusCode, b)
	}
	if res, _ := e.req(t, "GET", "/v1/auth/me", "", "", old.cookie); res.StatusCode != 401 {
		t.Fatal("session survived the reset")
	}
	e.login(t, "acme", "ana@example.org", next, "")
	// At most three codes an hour per account.
	for range 5 {
		ask("ana@example.org")
	}
	deliver(t, ids)
	codes := 0
	for _, m := range sink.Messages() {
		if strings.Contains(string(m.Data), "Subject: Reset your password") {
			codes++
		}
	}
	if codes != 3 {
		t.Fatalf("%d codes e-mailed after 6 requests, want 3 (hourly cap)", codes)
	}
}

func TestIntrospect_ServiceAccountSeesOnlyActiveTokensOfItsTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	e.seed(t, "other", "olga@example.org", pw)
	ctx := context.Background()
	sa, secret, err := e.ids.CreateServiceAccount(ctx, "acme", "billing-api")
	if err != nil {
		t.Fatal(err)
	}
	var stored [][]byte
	_ = e.db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		_, stored, err = tx.ServiceAccountSecretHashes(ctx, sa.ClientID)
		return err
	})
	if len(stored) != 1 || strings.Contains(string(stored[0]), secret.Reveal()) {
		t.Fatal("secret not stored as a hash")
	}
	ana := e.login(t, "acme", "ana@example.org", pw, "")
	olga := e.login(t, "other", "olga@example.org", pw, "")
	introspect := func(tok string, basic bool, id, sec string) (int, map[string]any) {
		form := url.Values{"token": {tok}}
		if !basic {
			form.Set("client_id", id)
			form.Set("client_secret", sec)
		}
		r := httptest.NewRequest("POST", "/v1/auth/introspect", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+sec)))
		}
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, r)
		var out map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}
	code, out := introspect(ana.AccessToken, true, sa.ClientID, secret.Reveal())
	if code != 200 || out["active"] != true || out["sub"] != ana.UserID || out["tenant"] != ana.TenantID {
		t.Fatalf("active token: %d %v", code, out)
	}
	if code, out = introspect(ana.AccessToken, false, sa.ClientID, secret.Reveal()); out["active"] != true {
		t.Fatalf("client_secret_post: %d %v", code, out)
	}
	// Another tenant's valid token, a refresh token, garbage: all simply inactive.
	for _, tok := range []string{olga.AccessToken, ana.RefreshToken, "garbage"} {
		if code, out := introspect(tok, true, sa.ClientID, secret.Reveal()); code != 200 || out["active"] != false || len(out) != 1 {
			t.Fatalf("introspect(%.12s…) = %d %v, want only active:false", tok, code, out)
		}
	}
	// Wrong secret or unknown client: 401, nothing about the token.
	for _, c := range [][2]string{{sa.ClientID, secret.Reveal() + "x"}, {"sa_unknown", secret.Reveal()}, {sa.ClientID, ""}} {
		if code, _ := introspect(ana.AccessToken, true, c[0], c[1]); code != 401 {
			t.Fatalf("bad client credentials accepted: %d", code)
		}
	}
	// Revocation shows at once: log out, and the still-unexpired token is inactive.
	if res, _ := e.req(t, "POST", "/v1/auth/logout", "", "", ana.AccessToken); res.StatusCode != 204 {
		t.Fatal("logout failed")
	}
	if _, out := introspect(ana.AccessToken, true, sa.ClientID, secret.Reveal()); out["active"] != false {
		t.Fatalf("revoked token still active: %v", out)
	}
	// JSON instead of a form is refused.
	r := httptest.NewRequest("POST", "/v1/auth/introspect", strings.NewReader(`{"token":"x"}`))
	r.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, r)
	if rec.Code != 415 {
		t.Fatalf("json body: %d", rec.Code)
	}
}

func TestLogin_HashingOverloadAnswers503WithRetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.seed(t, "acme", "ana@example.org", pw)
	p := password.DefaultParams()
	p.Memory, p.Time = 8*1024, 3
	slow, err := password.NewHasher(p, 1, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ring := e.ids.Tokens
	ids := identity.New(identity.Deps{DB: e.db, Hasher: slow, Policy: password.DefaultPolicy(), Tokens: ring, Clock: e.clock.Now}, identity.Config{})
	srv := httpapi.New(httpapi.Deps{DB: e.db, Identity: ids, Clock: e.clock.Now, RateRPS: 1000, RateBurst: 1000})
	var mu sync.Mutex
	statuses := map[int]int{}
	retry := ""
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			r := httptest.NewRequest("POST", "/v1/auth/login", strings.NewReader(loginBody("acme", "nobody"+tutela.RandomToken(2)+"@example.org", "wrong password")))
			r.Header.Set("Content-Type", "application/json")
			r.RemoteAddr = fmt.Sprintf("198.51.100.%d:1", i+1)
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, r)
			mu.Lock()
			defer mu.Unlock()
			statuses[rec.Code]++
			if rec.Code == 503 {
				retry = rec.Header().Get("Retry-After")
			}
		})
	}
	wg.Wait()
	if statuses[503] == 0 || retry == "" {
		t.Fatalf("no 503 with Retry-After under a login flood with one hashing slot: %v", statuses)
	}
	if statuses[500] != 0 {
		t.Fatalf("overload produced 500s: %v", statuses)
	}
}

// ASVS 5.0 2.7.2: an e-mailed reset code works for ten minutes by default, and the e-mail says
// so; auth.reset_code_ttl changes both.
func TestForgotPassword_CodeExpiresAfterResetCodeTTL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ttl  time.Duration
		text string
	}{{0, "within 10 minutes"}, {3 * time.Minute, "within 3 minutes"}} {
		e := newEnv(t, sqlstore.SQLite, nil)
		e.ids = newIdentity(t, e.db, e.clock.Now, identity.Config{ResetCodeTTL: tc.ttl}, e.mail)
		e.srv = checkedServer{Server: httpapi.New(httpapi.Deps{DB: e.db, Identity: e.ids, Clock: e.clock.Now, RateRPS: 1000, RateBurst: 1000}), t: t}
		e.seed(t, "acme", "ana@example.org", pw)
		requestCode := func() string {
			t.Helper()
			e.mail.Reset()
			if res, b := e.req(t, "POST", "/v1/auth/password/forgot", `{"tenant":"acme","email":"ana@example.org"}`, "", nil); res.StatusCode != 202 {
				t.Fatalf("forgot: %d %s", res.StatusCode, b)
			}
			deliver(t, e.ids)
			msgs := e.mail.Messages()
			if len(msgs) != 1 || !strings.Contains(msgs[0].Text, tc.text) {
				t.Fatalf("reset e-mail %+v does not say %q", msgs, tc.text)
			}
			return codeRE.FindString(msgs[0].Text)
		}
		ttl := cmp.Or(tc.ttl, identity.DefaultResetCodeTTL)
		reset := func(code string) int {
			res, _ := e.req(t, "POST", "/v1/auth/password/reset", `{"token":"`+code+`","new_password":"granite meadow lantern 44 swallow"}`, "", nil)
			return res.StatusCode
		}
		late := requestCode()
		e.clock.Add(ttl)
		if got := reset(late); got != 401 {
			t.Fatalf("ttl %v: code used %v after it was sent: %d, want 401", tc.ttl, ttl, got)
		}
		onTime := requestCode()
		e.clock.Add(ttl - time.Second)
		if got := reset(onTime); got != 204 {
			t.Fatalf("ttl %v: code used within its lifetime: %d, want 204", tc.ttl, got)
		}
	}
}

// Anonymous forgot-password requests cannot grow the job queue without bound (ASVS 5.0 2.4.1):
// past the tenant's cap every request, for an account that exists or not, gets the same 503 with
// Retry-After and queues nothing, while another tenant's requests are still taken; once the
// backlog drains, requests are taken again.
func TestForgotPassword_QueueCappedAnswers503ForEveryAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	acme, _ := e.seed(t, "acme", "ana@example.org", pw)
	e.seed(t, "globex", "gil@example.org", pw)
	ask := func(email string) (*http.Response, []byte) {
		return e.req(t, "POST", "/v1/auth/password/forgot", `{"tenant":"acme","email":"`+email+`"}`, "", nil)
	}
	// The flood, queued directly: over HTTP it would meet the per-IP rate limit first, which an
	// attacker with many addresses does not.
	flood := make([]*sqlstore.Job, sqlstore.MaxPendingResetRequests-1)
	for i := range flood {
		j, err := e.ids.Jobs.Prepare(identity.JobPasswordReset, acme.ID, fmt.Appendf(nil, `{"tenant":"acme","email":"x%d@example.org"}`, i))
		if err != nil {
			t.Fatal(err)
		}
		flood[i] = j
	}
	err := e.db.Update(context.Background(), func(tx *sqlstore.Tx) error {
		for _, j := range flood {
			if err := tx.EnqueueJob(context.Background(), j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res, b := ask("nobody@example.org"); res.StatusCode != 202 {
		t.Fatalf("last request under the cap: %d %s", res.StatusCode, b)
	}
	pending := func() int64 {
		var c sqlstore.JobCounts
		if err := e.db.View(context.Background(), func(tx *sqlstore.Tx) (err error) { c, err = tx.CountJobs(context.Background()); return err }); err != nil {
			t.Fatal(err)
		}
		return c.Pending
	}
	var bodies []string
	for _, email := range []string{"ana@example.org", "nobody@example.org"} {
		res, b := ask(email)
		eb := wantError(t, res, b, 503, tutela.EUNAVAILABLE)
		if ra := res.Header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Fatalf("Retry-After %q", ra)
		}
		bodies = append(bodies, eb.Error.Code+eb.Error.Message)
	}
	if bodies[0] != bodies[1] {
		t.Fatalf("answers differ by account: %q", bodies)
	}
	if n := pending(); n != sqlstore.MaxPendingResetRequests {
		t.Fatalf("%d jobs pending, want the cap %d", n, sqlstore.MaxPendingResetRequests)
	}
	if res, b := e.req(t, "POST", "/v1/auth/password/forgot", `{"tenant":"globex","email":"gil@example.org"}`, "", nil); res.StatusCode != 202 {
		t.Fatalf("another tenant refused by acme's flood: %d %s", res.StatusCode, b)
	}
	deliver(t, e.ids) // the worker drains the backlog
	if n := pending(); n != 0 {
		t.Fatalf("%d jobs pending after the worker ran", n)
	}
	if res, b := ask("ana@example.org"); res.StatusCode != 202 {
		t.Fatalf("after the backlog drained: %d %s", res.StatusCode, b)
	}
}
