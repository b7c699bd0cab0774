package client

import (
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkMiddlewareVerify is the per-request cost of Require on the hot path: JWKS and
// revocation cached, policy evaluated locally, so no network call (asserted at the end).
func BenchmarkMiddlewareVerify(b *testing.B) {
	f := newFakeTutela(b)
	src := &staticPolicies{pol: testPolicy(f.clock.Now())}
	c := f.client(func(cfg *Config) { cfg.Policies = src.source })
	h := c.Require("READ", "records")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	req := httptest.NewRequest(http.MethodGet, "/records/1", nil)
	req.Header.Set("Authorization", "Bearer "+f.issue())
	serveOK := func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	serveOK() // warm the JWKS and revocation caches
	calls := f.jwksFetches.Load() + f.introspectCalls.Load() + f.checkCalls.Load()
	b.ReportAllocs()
	for b.Loop() {
		serveOK()
	}
	b.StopTimer()
	if n := f.jwksFetches.Load() + f.introspectCalls.Load() + f.checkCalls.Load(); n != calls {
		b.Fatalf("%d network calls during the benchmark", n-calls)
	}
}

// BenchmarkEd25519Verify is the floor BenchmarkMiddlewareVerify is compared with: the raw
// signature check of a token-sized message.
func BenchmarkEd25519Verify(b *testing.B) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 420)
	sig := ed25519.Sign(priv, msg)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad signature")
		}
	}
}
