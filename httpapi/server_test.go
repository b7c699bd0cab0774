package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"tutela"
	"tutela/clocktest"
	"tutela/config"
	"tutela/httpapi"
	"tutela/identity"
	"tutela/identity/token"
	"tutela/jobs"
	"tutela/mail"
	"tutela/mfa"
	"tutela/password"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// fastHasher keeps argon2id but with test-sized memory so suites stay quick.
func fastHasher(t testing.TB) *password.Hasher {
	t.Helper()
	p := password.DefaultParams()
	p.Memory, p.Time = 64, 1
	h, err := password.NewHasher(p, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type clock = clocktest.Clock

type env struct {
	srv   checkedServer
	db    *sqlstore.DB
	clock *clock
	ids   *identity.Service
	mail  *mail.Recorder
}

func newEnv(t *testing.T, d sqlstore.Dialect, mod func(*httpapi.Deps)) *env {
	t.Helper()
	c := clocktest.New(time.Now().UTC())
	return newEnvOn(t, sqltest.Open(t, d, sqlstore.Options{Clock: c.Now}), c, mod)
}

// newEnvOn is newEnv over a store the test opened itself, whose clock is c.
func newEnvOn(t *testing.T, db *sqlstore.DB, c *clock, mod func(*httpapi.Deps)) *env {
	t.Helper()
	mailer := &mail.Recorder{}
	deps := httpapi.Deps{DB: db, Clock: c.Now, RateRPS: 1000, RateBurst: 1000}
	if mod != nil {
		mod(&deps)
	}
	cfg := identity.Config{Resources: []string{testResource}}
	if deps.EnforceStepUp {
		cfg.MFARoles = config.Default().Auth.MFARoles // as production
	}
	ids := newIdentity(t, db, c.Now, cfg, mailer)
	if deps.EnforceStepUp {
		ids.MFA = newMFA(t, db, c.Now)
		deps.Keys = newVault(t, db)
	}
	deps.Identity = ids
	return &env{srv: checkedServer{Server: httpapi.New(deps), t: t}, db: db, clock: c, ids: ids, mail: mailer}
}

// testResource is the resource server every test env registers (auth.resources).
const testResource = "https://records.example.org"

// withMFA turns on second factors, mandatory MFA for admin roles and step-up enforcement, as
// production runs.
func withMFA(d *httpapi.Deps) { d.EnforceStepUp = true }

func newVault(t testing.TB, db *sqlstore.DB) *vault.Vault {
	t.Helper()
	return sqltest.AttachVault(t, db) // one vault (one KEK) for every keyset of the test database
}

func newMFA(t testing.TB, db *sqlstore.DB, now tutela.Clock) *mfa.Service {
	t.Helper()
	sealer, err := vault.NewLocalSealer(tutela.NewSecretBytes(bytes.Repeat([]byte{9}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := mfa.New(db, sealer, now, mfa.WebAuthnConfig{RPID: "tutela.test", RPDisplayName: "Tutela", RPOrigins: []string{"https://tutela.test"}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newIdentity(t testing.TB, db *sqlstore.DB, now tutela.Clock, cfg identity.Config, mailer mail.Sender) *identity.Service {
	t.Helper()
	sealer, err := vault.NewLocalSealer(tutela.NewSecretBytes(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := token.NewRing(context.Background(), token.Config{Issuer: "https://tutela.test",
		Audience: append([]string{"tutela"}, cfg.Resources...), Clock: now}, identity.KeyStore{DB: db}, sealer)
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	jobSealer, err := vault.NewLocalSealer(tutela.NewSecretBytes(bytes.Repeat([]byte{8}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return identity.New(identity.Deps{DB: db, Hasher: fastHasher(t), Policy: password.DefaultPolicy(), Tokens: ring,
		Mailer: mailer, Jobs: jobs.New(db, jobSealer, jobs.Options{}), PublicURL: "https://tutela.test", Clock: now}, cfg)
}

// deliver runs every queued job that is due (the e-mails requests queued), as the worker every
// node runs would.
func deliver(t testing.TB, ids *identity.Service) {
	t.Helper()
	if _, err := ids.Jobs.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
}

type errorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
		Field     string `json:"field"`
	} `json:"error"`
}

func (e *env) do(t *testing.T, method, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

func wantError(t *testing.T, res *http.Response, body []byte, status int, code string) errorBody {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("status %d, body %q is not a JSON error: %v", res.StatusCode, body, err)
	}
	if res.StatusCode != status || eb.Error.Code != code {
		t.Fatalf("got %d %q (%s), want %d %q", res.StatusCode, eb.Error.Code, eb.Error.Message, status, code)
	}
	if eb.Error.RequestID == "" || eb.Error.RequestID != res.Header.Get("X-Request-ID") {
		t.Fatalf("request_id %q does not match header %q", eb.Error.RequestID, res.Header.Get("X-Request-ID"))
	}
	return eb
}

func TestOpenAPI_ValidDocumentCoveringEveryRoute(t *testing.T) {
	t.Parallel()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpapi.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("OpenAPI document invalid: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %q, want 3.1", doc.OpenAPI)
	}
	e := newEnv(t, sqlstore.SQLite, withMFA) // every optional route registered
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	for _, r := range e.srv.Routes() {
		// A trailing wildcard ({name...}, a model name holding "/") is {name*} in the document,
		// the form kin-openapi's router matches across segments.
		key := r.Method + " " + strings.ReplaceAll(r.Pattern, "...}", "*}")
		if !documented[key] {
			t.Errorf("route %s is not in openapi.json", key)
		}
		delete(documented, key)
	}
	for k := range documented {
		t.Errorf("openapi.json documents %s, which the server does not serve", k)
	}
	res, body := e.do(t, "GET", "/v1/openapi.json", "")
	if res.StatusCode != 200 || string(body) != string(httpapi.OpenAPI()) {
		t.Fatalf("GET /v1/openapi.json = %d", res.StatusCode)
	}
}

func TestProbes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	for _, p := range []string{"/healthz", "/readyz"} {
		if res, body := e.do(t, "GET", p, ""); res.StatusCode != 200 {
			t.Errorf("%s = %d %s", p, res.StatusCode, body)
		}
	}
	e.db.Close()
	res, body := e.do(t, "GET", "/readyz", "")
	wantError(t, res, body, 503, tutela.EUNAVAILABLE)
	if res, _ := e.do(t, "GET", "/healthz", ""); res.StatusCode != 200 {
		t.Errorf("healthz depends on the database: %d", res.StatusCode)
	}
}

func TestReadyz_PendingMigrationsNotReady(t *testing.T) {
	t.Parallel()
	db, err := sqlstore.Open(context.Background(), sqltest.DSN(t, sqlstore.SQLite), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv := httpapi.New(httpapi.Deps{DB: db})
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "migrations pending") {
		t.Fatalf("readyz before migrate = %d %s", rec.Code, rec.Body)
	}
}

func TestEveryRoute_SecurityHeadersAndRequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	want := map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": "default-src 'none'",
		"Cache-Control":           "no-store",
	}
	for _, r := range append(e.srv.Routes(), httpapi.Route{Method: "GET", Pattern: "/no/such/route"}) {
		res, _ := e.do(t, r.Method, r.Pattern, "", "X-Request-ID", "trace-abc_123")
		for h, v := range want {
			if h == "Cache-Control" && r.Pattern == "/.well-known/jwks.json" {
				v = "public" // public keys are meant to be cached briefly
			}
			if !strings.Contains(res.Header.Get(h), v) {
				t.Errorf("%s %s: %s = %q, want %q", r.Method, r.Pattern, h, res.Header.Get(h), v)
			}
		}
		if res.Header.Get("Strict-Transport-Security") != "" {
			t.Errorf("%s %s: HSTS sent over plaintext", r.Method, r.Pattern)
		}
		if got := res.Header.Get("X-Request-ID"); got != "trace-abc_123" {
			t.Errorf("%s %s: request id %q not echoed", r.Method, r.Pattern, got)
		}
	}
	tlsEnv := newEnv(t, sqlstore.SQLite, func(d *httpapi.Deps) { d.TLS = true })
	res, _ := tlsEnv.do(t, "GET", "/healthz", "")
	if !strings.Contains(res.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("HSTS missing with TLS: %q", res.Header.Get("Strict-Transport-Security"))
	}
}

func TestUnknownRoute_JSON404(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	res, body := e.do(t, "GET", "/v1/nothing-here", "")
	wantError(t, res, body, 404, tutela.ENOTFOUND)
}

func TestMetrics_LabelsByRoutePattern(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	e.do(t, "GET", "/healthz", "")
	e.do(t, "GET", "/v1/"+tutela.NewID(), "")
	rec := httptest.NewRecorder()
	e.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	for _, want := range []string{
		`tutela_http_requests_total{method="GET",route="GET /healthz",status="200"} 1`,
		`route="unmatched",status="404"`,
		`tutela_http_request_duration_seconds_bucket`,
		`tutela_build_info{`,
		`go_sql_max_open_connections{db_name="tutela"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, "/v1/0") || strings.Contains(text, `route="/v1/`) {
		t.Error("raw paths leak into metric labels")
	}
}

func TestRateLimit_FloodGets429AndSpoofedXFFDoesNotHelp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, func(d *httpapi.Deps) { d.RateRPS, d.RateBurst = 1, 3 })
	flood := func(hdr ...string) *http.Response {
		req := httptest.NewRequest("GET", "/v1/openapi.json", nil)
		req.RemoteAddr = "203.0.113.9:5555"
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		return rec.Result()
	}
	for i := range 3 {
		if res := flood(); res.StatusCode != 200 {
			t.Fatalf("request %d within burst = %d", i, res.StatusCode)
		}
	}
	res := flood()
	body, _ := io.ReadAll(res.Body)
	wantError(t, res, body, 429, tutela.ERATELIMITED)
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	// No trusted proxies are configured: a forged X-Forwarded-For must not buy a fresh bucket.
	for i := range 5 {
		if res := flood("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i)); res.StatusCode != 429 {
			t.Fatalf("spoofed XFF evaded the limit: %d", res.StatusCode)
		}
	}
	// Probes stay reachable for the load balancer during a flood.
	req := httptest.NewRequest("GET", "/healthz", nil)
	req.RemoteAddr = "203.0.113.9:5555"
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("healthz rate limited: %d", rec.Code)
	}
	e.clock.Add(2 * time.Second)
	if res := flood(); res.StatusCode != 200 {
		t.Fatalf("bucket did not refill: %d", res.StatusCode)
	}
}

func bootstrap(t *testing.T, e *env) string {
	t.Helper()
	res, err := identity.Bootstrap(context.Background(), e.db, "acme", "ana@example.org", "eu")
	if err != nil {
		t.Fatal(err)
	}
	return res.Token.Reveal()
}

const goodPassword = "violet quartz lantern 7 harbour"

func setupBody(tok, pw string) string {
	b, _ := json.Marshal(map[string]string{"token": tok, "password": pw})
	return string(b)
}

func TestSetup_ExchangesTokenOnceForPassword(t *testing.T) {
	t.Parallel()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, nil)
			tok := bootstrap(t, e)

			// A weak password is refused and names the rule, without spending the token.
			res, body := e.do(t, "POST", "/v1/auth/setup", setupBody(tok, "short"))
			if eb := wantError(t, res, body, 400, tutela.EINVALID); eb.Error.Field != "password" {
				t.Fatalf("field = %q", eb.Error.Field)
			}
			res, body = e.do(t, "POST", "/v1/auth/setup", setupBody(tok, "ana@example.org acme"))
			wantError(t, res, body, 400, tutela.EINVALID)

			res, body = e.do(t, "POST", "/v1/auth/setup", setupBody(tok, goodPassword))
			if res.StatusCode != 204 {
				t.Fatalf("setup = %d %s", res.StatusCode, body)
			}
			// Replay.
			res, body = e.do(t, "POST", "/v1/auth/setup", setupBody(tok, goodPassword+"x"))
			wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)

			// The stored password is an argon2id hash of what was sent, never the text.
			var hash string
			_ = e.db.View(context.Background(), func(tx *sqlstore.Tx) error {
				tn, err := tx.TenantBySlug(context.Background(), "acme")
				if err != nil {
					return err
				}
				u, err := tx.Users(tn.ID).ByEmail(context.Background(), "ana@example.org")
				if err != nil {
					return err
				}
				hash, _, err = tx.Users(tn.ID).PasswordHash(context.Background(), u.ID)
				return err
			})
			if !strings.HasPrefix(hash, "$argon2id$") || strings.Contains(hash, goodPassword) {
				t.Fatalf("stored hash %q", hash)
			}
			ok, _, err := fastHasher(t).Verify(context.Background(), goodPassword, hash)
			if err != nil || !ok {
				t.Fatalf("stored hash does not verify: %v", err)
			}
		})
	}
}

func TestSetup_RejectsBadTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tok := bootstrap(t, e)
	flipped := []byte(tok)
	flipped[0] ^= 1
	for _, bad := range []string{"", "x", strings.Repeat("0", 64), string(flipped), strings.ToUpper(tok)} {
		res, body := e.do(t, "POST", "/v1/auth/setup", setupBody(bad, goodPassword))
		wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
	}
	e.clock.Add(identity.SetupTokenTTL + time.Second)
	res, body := e.do(t, "POST", "/v1/auth/setup", setupBody(tok, goodPassword))
	wantError(t, res, body, 401, tutela.EUNAUTHENTICATED)
}

func TestSetup_ConcurrentExchangeSucceedsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, nil)
	tok := bootstrap(t, e)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			res, _ := e.do(t, "POST", "/v1/auth/setup", setupBody(tok, fmt.Sprintf("%s %d", goodPassword, i)))
			if res.StatusCode == 204 {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("token set %d passwords, want 1", ok.Load())
	}
}

func TestSetup_MalformedAndOversizedBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqlstore.SQLite, func(d *httpapi.Deps) { d.BodyLimit = 1024 })
	tok := bootstrap(t, e)
	cases := []struct {
		name, body string
		status     int
		code       string
		field      string
	}{
		{"unknown field", `{"token":"` + tok + `","password":"x","admin":true}`, 400, tutela.EINVALID, "admin"},
		{"wrong type", `{"token":"` + tok + `","password":12}`, 400, tutela.EINVALID, "password"},
		{"trailing data", `{"token":"a","password":"b"} {}`, 400, tutela.EINVALID, ""},
		{"not json", `token=a`, 400, tutela.EINVALID, ""},
		{"oversized", `{"token":"` + strings.Repeat("a", 2048) + `"}`, 413, tutela.ETOOLARGE, ""},
	}
	for _, c := range cases {
		res, body := e.do(t, "POST", "/v1/auth/setup", c.body)
		eb := wantError(t, res, body, c.status, c.code)
		if eb.Error.Field != c.field {
			t.Errorf("%s: field = %q, want %q", c.name, eb.Error.Field, c.field)
		}
	}
	req := httptest.NewRequest("POST", "/v1/auth/setup", strings.NewReader(setupBody(tok, goodPassword)))
	req.Header.Set("Content-Type", "text/plain")
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	if rec.Code != 415 {
		t.Fatalf("text/plain body = %d, want 415", rec.Code)
	}
	// None of the bad requests spent the token.
	if res, body := e.do(t, "POST", "/v1/auth/setup", setupBody(tok, goodPassword)); res.StatusCode != 204 {
		t.Fatalf("token no longer works after bad requests: %d %s", res.StatusCode, body)
	}
}

func BenchmarkServeHealthz(b *testing.B) {
	db := sqltest.Open(b, sqlstore.SQLite, sqlstore.Options{})
	srv := httpapi.New(httpapi.Deps{DB: db})
	req := httptest.NewRequest("GET", "/healthz", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
