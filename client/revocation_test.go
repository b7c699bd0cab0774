package client

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"tutela"
)

func jtiOf(t testing.TB, tok string) string {
	t.Helper()
	_, claims, _ := parts(t, tok)
	return claims["jti"].(string)
}

func TestRevocation_InactiveTokenRefused(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	c := f.client()
	tok := f.issue()
	f.revoke(jtiOf(t, tok))
	res := serve(t, c.Authenticate, tok)
	if res.status != http.StatusUnauthorized || res.code != tutela.EUNAUTHENTICATED || res.challenge == "Bearer" {
		t.Fatalf("revoked token: %+v", res)
	}
	_, err := c.Verify(context.Background(), tok)
	wantErr(t, err, ErrRevoked)
	// The signature alone is still fine: only Verify asks about revocation.
	if _, err := c.VerifySignature(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
}

// TestRevocation_CachedForTTL: one introspection per token per RevocationTTL, however many
// requests; a revocation is seen once the entry expires, and then stays seen.
func TestRevocation_CachedForTTL(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	c := f.client()
	tok := f.issue()
	ok := func(want int) {
		t.Helper()
		if res := serve(t, c.Authenticate, tok); res.status != want {
			t.Fatalf("status %d (%s), want %d", res.status, res.message, want)
		}
	}
	for range 20 {
		ok(http.StatusOK)
	}
	if n := f.introspectCalls.Load(); n != 1 {
		t.Fatalf("%d introspections for 20 requests, want 1", n)
	}
	f.revoke(jtiOf(t, tok))
	f.clock.Add(DefaultRevocationTTL - time.Second)
	ok(http.StatusOK) // still cached: the documented window
	f.clock.Add(time.Second)
	ok(http.StatusUnauthorized)
	if n := f.introspectCalls.Load(); n != 2 {
		t.Fatalf("%d introspections, want 2", n)
	}
	for range 5 {
		ok(http.StatusUnauthorized)
	}
	if n := f.introspectCalls.Load(); n != 2 {
		t.Fatalf("inactive answer not cached: %d introspections, want 2", n)
	}
	// Another token is introspected on its own.
	if res := serve(t, c.Authenticate, f.issue()); res.status != http.StatusOK {
		t.Fatal(res)
	}
	if n := f.introspectCalls.Load(); n != 3 {
		t.Fatalf("%d introspections, want 3", n)
	}
}

func TestRevocation_ConcurrentRequestsShareOneIntrospection(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	c := f.client()
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok := f.issue()
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			if res := serve(t, c.Authenticate, tok); res.status != http.StatusOK {
				t.Errorf("status %d %s", res.status, res.message)
			}
		})
	}
	wg.Wait()
	// Requests that arrive after the answer is cached, or while it is in flight, do not ask.
	if n := f.introspectCalls.Load(); n != 1 {
		t.Fatalf("%d introspections for 30 concurrent requests, want 1", n)
	}
}

func TestRevocation_SkippedWithoutClientID(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	c := f.client(func(cfg *Config) { cfg.ClientID, cfg.ClientSecret = "", tutela.Secret{} })
	tok := f.issue()
	f.revoke(jtiOf(t, tok))
	// The documented trade-off: a revoked token is accepted until it expires.
	if res := serve(t, c.Authenticate, tok); res.status != http.StatusOK {
		t.Fatalf("status %d", res.status)
	}
	if n := f.introspectCalls.Load(); n != 0 {
		t.Fatalf("%d introspections without a service account", n)
	}
}

func TestRevocation_FailsClosed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		setup  func(f *fakeTutela, cfg *Config)
		status int
		code   string
	}{
		{"introspection down", func(f *fakeTutela, _ *Config) { f.introspectStatus.Store(http.StatusBadGateway) },
			http.StatusServiceUnavailable, tutela.EUNAVAILABLE},
		{"introspection rate limited", func(f *fakeTutela, _ *Config) { f.introspectStatus.Store(http.StatusTooManyRequests) },
			http.StatusServiceUnavailable, tutela.EUNAVAILABLE},
		{"wrong service-account secret", func(_ *fakeTutela, cfg *Config) { cfg.ClientSecret = tutela.NewSecret("wrong") },
			http.StatusInternalServerError, tutela.EINTERNAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeTutela(t)
			cfg := f.config()
			tt.setup(f, &cfg)
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			tok := f.issue()
			res := serve(t, c.Authenticate, tok)
			if res.status != tt.status || res.code != tt.code {
				t.Fatalf("got %d %q (%s), want %d %q", res.status, res.code, res.message, tt.status, tt.code)
			}
			// Failures are not cached: once Tutela answers, the token passes.
			f.introspectStatus.Store(0)
			c2, _ := New(f.config())
			if res := serve(t, c2.Authenticate, tok); res.status != http.StatusOK {
				t.Fatalf("after recovery: %+v", res)
			}
			if tt.code == tutela.EUNAVAILABLE {
				if res := serve(t, c.Authenticate, tok); res.status != http.StatusOK {
					t.Fatalf("same client after recovery: %+v", res)
				}
			}
		})
	}
}

// TestRevocation_AnswerAboutAnotherPrincipalIsInactive: an endpoint that answers active for a
// different subject (confused or hostile) does not make the token acceptable.
func TestRevocation_AnswerAboutAnotherPrincipalIsInactive(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", f.jwks)
	mux.HandleFunc("POST /v1/auth/introspect", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"sub":"someone-else","tenant":"tenant-1"}`))
	})
	srv := httptestServer(t, mux)
	c := f.client(func(cfg *Config) { cfg.BaseURL = srv })
	_, err := c.Verify(context.Background(), f.issue())
	wantErr(t, err, ErrRevoked)
}

func TestCache_BoundedAndExpiring(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	c := newCache[int](3)
	load := func(v int, ttl time.Duration) func() (int, time.Time, error) {
		return func() (int, time.Time, error) { return v, clock.Now().Add(ttl), nil }
	}
	for i := range 10 {
		if _, err := c.do(context.Background(), string(rune('a'+i)), clock.Now, load(i, time.Minute)); err != nil {
			t.Fatal(err)
		}
		if n := c.len(); n > 3 {
			t.Fatalf("%d entries, limit 3", n)
		}
	}
	if v, ok := c.get("j", clock.Now()); !ok || v != 9 {
		t.Fatalf("latest entry: %d %v", v, ok)
	}
	clock.Add(time.Minute)
	if _, ok := c.get("j", clock.Now()); ok {
		t.Fatal("expired entry returned")
	}
	clock.Add(sweepInterval)
	if _, err := c.do(context.Background(), "k", clock.Now, load(1, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := c.len(); n != 1 {
		t.Fatalf("%d entries after the sweep, want 1", n)
	}
}
