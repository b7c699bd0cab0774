package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/clocktest"
	"tutela/identity/token"
	"tutela/vault"
)

const (
	testIssuer   = "https://tutela.example.org"
	testAudience = "https://records.example.org"
	otherAud     = "https://other.example.org"
	testTenant   = "tenant-1"
	testSubject  = "user-1"
	testClientID = "sa-1"
	testSecret   = "tss_secret"
)

type fakeClock = clocktest.Clock

func newFakeClock() *fakeClock { return clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) }

// fakeTutela serves the three endpoints the client uses, backed by real token rings: the JWKS
// of every ring in served, introspection (active unless the jti is revoked) and the check API
// (authz.Decide over policies, or a fixed answer).
type fakeTutela struct {
	t     testing.TB
	clock *fakeClock
	srv   *httptest.Server
	ring  *token.Ring // the ring tokens are normally issued by

	mu       sync.Mutex
	served   []*token.Ring
	revoked  map[string]bool
	policies map[string]*authz.Policy // subject → policy, for the check API
	// stepUps holds sessions that stepped up at Tutela (sid → when), which the check API
	// passes to Decide. Tutela's check handler does not do that today (it decides with no
	// factor time, so every sensitive action needs step-up); an empty map is that server.
	stepUps map[string]time.Time

	introspectStatus atomic.Int64 // non-zero: answer introspection with this status
	checkStatus      atomic.Int64 // non-zero: answer checks with this status

	jwksFetches     atomic.Int64
	introspectCalls atomic.Int64
	checkCalls      atomic.Int64
}

func newRing(t testing.TB, clock *fakeClock, issuer string) *token.Ring {
	t.Helper()
	return newRingAlg(t, clock, issuer, token.EdDSA)
}

func newRingAlg(t testing.TB, clock *fakeClock, issuer string, alg token.Alg) *token.Ring {
	t.Helper()
	k := make([]byte, vault.MasterKeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	sealer, err := vault.NewLocalSealer(tutela.NewSecretBytes(k))
	if err != nil {
		t.Fatal(err)
	}
	r, err := token.NewRing(context.Background(), token.Config{Issuer: issuer, Audience: []string{testAudience, otherAud},
		Alg: alg, Clock: clock.Now}, &token.MemKeyStore{}, sealer)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newFakeTutela(t testing.TB) *fakeTutela {
	t.Helper()
	f := &fakeTutela{t: t, clock: newFakeClock(), revoked: map[string]bool{}, policies: map[string]*authz.Policy{},
		stepUps: map[string]time.Time{}}
	f.ring = newRing(t, f.clock, testIssuer)
	f.served = []*token.Ring{f.ring}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", f.jwks)
	mux.HandleFunc("POST /v1/auth/introspect", f.introspect)
	mux.HandleFunc("POST /v1/authz/check", f.check)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// serve adds a ring's keys to the JWKS (a rotation, or a foreign issuer's keys).
func (f *fakeTutela) serve(r *token.Ring) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served = append(f.served, r)
}

func (f *fakeTutela) revoke(jti string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked[jti] = true
}

func (f *fakeTutela) setPolicy(p *authz.Policy) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.policies[p.Subject] = p
}

// stepUp records that session sid proved a second factor at Tutela now (POST /v1/auth/step-up).
func (f *fakeTutela) stepUp(sid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stepUps[sid] = f.clock.Now()
}

// snapshot is a PolicySource over the same policies the check API answers from: a resource
// server's copy of Tutela's policies.
func (f *fakeTutela) snapshot(_ context.Context, tenant, subject string) (*authz.Policy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.policies[subject]; p != nil && p.TenantID == tenant {
		return p, nil
	}
	return nil, nil
}

func (f *fakeTutela) jwks(w http.ResponseWriter, _ *http.Request) {
	f.jwksFetches.Add(1)
	f.mu.Lock()
	rings := append([]*token.Ring(nil), f.served...)
	f.mu.Unlock()
	var all []json.RawMessage
	for _, r := range rings {
		b, err := r.JWKS()
		if err != nil {
			f.t.Error(err)
		}
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(b, &set); err != nil {
			f.t.Error(err)
		}
		all = append(all, set.Keys...)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": all})
}

// verify is what Tutela checks for both introspection and the check API: a token of one of
// its rings, for any audience it serves, not revoked.
func (f *fakeTutela) verify(tok string) (*token.Claims, bool) {
	f.mu.Lock()
	rings := append([]*token.Ring(nil), f.served...)
	f.mu.Unlock()
	for _, r := range rings {
		for _, aud := range []string{testAudience, otherAud} {
			if c, err := r.Verify(context.Background(), tok, aud); err == nil {
				f.mu.Lock()
				revoked := f.revoked[c.ID]
				f.mu.Unlock()
				return c, !revoked
			}
		}
	}
	return nil, false
}

func (f *fakeTutela) introspect(w http.ResponseWriter, r *http.Request) {
	f.introspectCalls.Add(1)
	if s := f.introspectStatus.Load(); s != 0 {
		http.Error(w, "{}", int(s))
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok || id != testClientID || secret != testSecret {
		http.Error(w, `{"error":{"code":"invalid_credentials"}}`, http.StatusUnauthorized)
		return
	}
	if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		http.Error(w, "{}", http.StatusUnsupportedMediaType)
		return
	}
	c, active := f.verify(r.PostFormValue("token"))
	w.Header().Set("Content-Type", "application/json")
	if !active {
		_, _ = io.WriteString(w, `{"active":false}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "sub": c.Subject, "tenant": c.Tenant,
		"exp": c.Expiry.Unix(), "sid": c.SessionID})
}

func (f *fakeTutela) check(w http.ResponseWriter, r *http.Request) {
	f.checkCalls.Add(1)
	if s := f.checkStatus.Load(); s != 0 {
		http.Error(w, "{}", int(s))
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	c, active := f.verify(tok)
	if !ok || !active {
		http.Error(w, `{"error":{"code":"unauthenticated"}}`, http.StatusUnauthorized)
		return
	}
	var req checkRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "{}", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	pol := f.policies[c.Subject]
	stepUpAt := f.stepUps[c.SessionID]
	f.mu.Unlock()
	if pol == nil {
		pol = &authz.Policy{TenantID: c.Tenant, Subject: c.Subject}
	}
	d := authz.Decide(pol, authz.Request{Action: req.Action, Resource: req.Resource, Class: req.Classification,
		Purpose: req.Purpose, StepUpAt: stepUpAt}, f.clock.Now())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(d)
}

// issue returns a token of ring r for the default test user, with claims changed by mods.
func (f *fakeTutela) issueWith(r *token.Ring, mods ...func(*token.Claims)) string {
	f.t.Helper()
	c := token.Claims{Subject: testSubject, Audience: []string{testAudience}, Tenant: testTenant, SessionID: "sess-1",
		TokenVersion: 1, AMR: []string{"pwd"}, AuthTime: f.clock.Now()}
	for _, m := range mods {
		m(&c)
	}
	tok, _, err := r.Issue(context.Background(), c)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// withMFA makes the token's session one whose sign-in proved a second factor at its auth_time,
// as Tutela's MFA sign-in writes it.
func withMFA(c *token.Claims) { c.AMR = []string{"pwd", "otp", "mfa"} }

func (f *fakeTutela) issue(mods ...func(*token.Claims)) string {
	f.t.Helper()
	return f.issueWith(f.ring, mods...)
}

func (f *fakeTutela) config() Config {
	return Config{BaseURL: f.srv.URL, Audience: testAudience, Issuer: testIssuer, ClientID: testClientID,
		ClientSecret: tutela.NewSecret(testSecret), Clock: f.clock.Now}
}

func (f *fakeTutela) client(mods ...func(*Config)) *Client {
	f.t.Helper()
	cfg := f.config()
	for _, m := range mods {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// result is what a request through the middleware produced.
type result struct {
	status    int
	challenge string
	code      string
	message   string
	claims    *Claims
	decision  *authz.Decision
	reached   bool // the handler behind the middleware ran
}

// serve sends one request with tok (none when empty) through mw to a handler that records
// what it saw in the context.
func serve(t testing.TB, mw func(http.Handler) http.Handler, tok string) result {
	t.Helper()
	var res result
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res.reached = true
		res.claims = ClaimsFrom(r.Context())
		res.decision = DecisionFrom(r.Context())
		w.WriteHeader(http.StatusOK)
	}))
	req := httptest.NewRequest(http.MethodGet, "/records/1", nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res.status = rec.Code
	res.challenge = rec.Header().Get("WWW-Authenticate")
	if rec.Code != http.StatusOK {
		var body struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("status %d: body %q is not a Tutela error: %v", rec.Code, rec.Body.Bytes(), err)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("error Content-Type %q", ct)
		}
		res.code, res.message = body.Error.Code, body.Error.Message
	}
	return res
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64json(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// parts splits a compact JWS and decodes its header and claims.
func parts(t testing.TB, tok string) (hdr, claims map[string]any, sig string) {
	t.Helper()
	s := strings.Split(tok, ".")
	if len(s) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	for i, dst := range []*map[string]any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(s[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return hdr, claims, s[2]
}

func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
}

// randomKid is a kid no JWKS holds.
func randomKid() string { return tutela.RandomToken(16) }

func httptestServer(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
