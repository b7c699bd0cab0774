package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/identity/token"
)

func TestAuthenticate_ValidTokenReachesHandlerWithClaims(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	c := f.client()
	auth := f.clock.Now().Add(-time.Minute).Truncate(time.Second)
	tok := f.issue(func(cl *token.Claims) { cl.AuthTime = auth; cl.AMR = []string{"pwd", "otp"} })

	res := serve(t, c.Authenticate, tok)
	if res.status != http.StatusOK {
		t.Fatalf("status %d %s: %s", res.status, res.code, res.message)
	}
	cl := res.claims
	if cl == nil {
		t.Fatal("handler saw no claims")
	}
	if cl.Subject != testSubject || cl.Tenant != testTenant || cl.SessionID != "sess-1" || cl.TokenVersion != 1 ||
		cl.Issuer != testIssuer || cl.ID == "" || !cl.AuthTime.Equal(auth) || strings.Join(cl.AMR, " ") != "pwd otp" {
		t.Fatalf("claims %+v", cl)
	}
	if res.decision != nil {
		t.Fatalf("Authenticate made a decision: %+v", res.decision)
	}
}

// TestVerify_RefusesAttacks checks each refusal for its specific reason, and that the
// middleware turns every one into the same 401 invalid_token.
func TestVerify_RefusesAttacks(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	// A key Tutela publishes but under another issuer; a key Tutela never published.
	foreign := newRing(t, f.clock, "https://evil.example.org")
	f.serve(foreign)
	unpublished := newRing(t, f.clock, testIssuer)

	valid := f.issue()
	hdr, claims, sig := parts(t, valid)
	kid := hdr["kid"].(string)
	payload := strings.Split(valid, ".")[1]
	other := f.issue(func(c *token.Claims) { c.Subject = "user-2" })

	tests := []struct {
		name    string
		tok     func() string
		advance time.Duration
		want    error
	}{
		{"wrong audience", func() string { return f.issue(func(c *token.Claims) { c.Audience = []string{otherAud} }) }, 0, ErrAudience},
		{"wrong issuer", func() string { return f.issueWith(foreign) }, 0, ErrIssuer},
		{"expired", func() string { return valid }, 5*time.Minute + leeway, ErrExpired},
		{"not yet valid", func() string { return valid }, -leeway - time.Second, ErrNotYetValid},
		{"forged signature", func() string {
			b, err := base64.RawURLEncoding.DecodeString(sig)
			if err != nil {
				t.Fatal(err)
			}
			b[3] ^= 0x01
			return strings.Join([]string{strings.Split(valid, ".")[0], payload, base64.RawURLEncoding.EncodeToString(b)}, ".")
		}, 0, ErrBadSignature},
		{"payload swapped under a valid signature", func() string {
			s := strings.Split(valid, ".")
			return s[0] + "." + strings.Split(other, ".")[1] + "." + s[2]
		}, 0, ErrBadSignature},
		{"claims edited (sub)", func() string {
			claims["sub"] = "admin"
			defer func() { claims["sub"] = testSubject }()
			return strings.Split(valid, ".")[0] + "." + b64json(t, claims) + "." + sig
		}, 0, ErrBadSignature},
		{"alg none", func() string {
			return b64json(t, map[string]string{"alg": "none", "kid": kid, "typ": "at+jwt"}) + "." + payload + "."
		}, 0, ErrAlgorithm},
		{"alg HS256 with the public key", func() string {
			return b64json(t, map[string]string{"alg": "HS256", "kid": kid, "typ": "at+jwt"}) + "." + payload + "." + sig
		}, 0, ErrAlgorithm},
		{"alg of another key type", func() string {
			return b64json(t, map[string]string{"alg": "ES256", "kid": kid, "typ": "at+jwt"}) + "." + payload + "." + sig
		}, 0, ErrAlgorithm},
		{"unknown kid", func() string {
			return b64json(t, map[string]string{"alg": "EdDSA", "kid": randomKid(), "typ": "at+jwt"}) + "." + payload + "." + sig
		}, 0, ErrUnknownKey},
		{"no kid", func() string {
			return b64json(t, map[string]string{"alg": "EdDSA", "typ": "at+jwt"}) + "." + payload + "." + sig
		}, 0, ErrUnknownKey},
		{"signed by an unpublished key", func() string { return f.issueWith(unpublished) }, 0, ErrUnknownKey},
		{"embedded jwk", func() string {
			return b64json(t, map[string]any{"alg": "EdDSA", "kid": kid, "typ": "at+jwt", "jwk": map[string]string{"kty": "OKP"}}) +
				"." + payload + "." + sig
		}, 0, ErrMalformed},
		{"crit header", func() string {
			return b64json(t, map[string]any{"alg": "EdDSA", "kid": kid, "typ": "at+jwt", "crit": []string{"exp"}}) +
				"." + payload + "." + sig
		}, 0, ErrMalformed},
		{"typ JWT (an ID token)", func() string {
			return b64json(t, map[string]string{"alg": "EdDSA", "kid": kid, "typ": "JWT"}) + "." + payload + "." + sig
		}, 0, ErrMalformed},
		{"JSON serialization", func() string { return `{"payload":"` + payload + `"}` }, 0, ErrMalformed},
		{"too long", func() string { return valid + strings.Repeat("A", maxTokenLen) }, 0, ErrMalformed},
		{"not a JWS", func() string { return "opaque-token" }, 0, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Subtests share the fake clock, so they run one at a time.
			f.clock.Add(tt.advance)
			defer f.clock.Add(-tt.advance)
			c := f.client()
			tok := tt.tok()
			_, err := c.VerifySignature(context.Background(), tok)
			wantErr(t, err, tt.want)
			if code := tutela.ErrorCode(err); code != tutela.EUNAUTHENTICATED {
				t.Fatalf("code %q, want %q", code, tutela.EUNAUTHENTICATED)
			}
			res := serve(t, c.Authenticate, tok)
			if res.status != http.StatusUnauthorized || res.code != tutela.EUNAUTHENTICATED ||
				res.message != "invalid access token" || !strings.Contains(res.challenge, `error="invalid_token"`) {
				t.Fatalf("middleware: %+v", res)
			}
		})
	}
	// And the valid token itself passes, so the refusals above are for the reason tested.
	if _, err := f.client().Verify(context.Background(), valid); err != nil {
		t.Fatal(err)
	}
}

func TestVerify_LeewayAroundExpiry(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	c := f.client(func(cfg *Config) { cfg.ClientID, cfg.ClientSecret = "", tutela.Secret{} })
	tok := f.issue()
	f.clock.Add(5*time.Minute + leeway - time.Second)
	if _, err := c.Verify(context.Background(), tok); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	f.clock.Add(time.Second)
	_, err := c.Verify(context.Background(), tok)
	wantErr(t, err, ErrExpired)
}

func TestVerify_ES256(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	ring := newRingAlg(t, f.clock, testIssuer, token.ES256)
	f.serve(ring)
	tok := f.issueWith(ring)
	if hdr, _, _ := parts(t, tok); hdr["alg"] != "ES256" {
		t.Fatalf("header %v", hdr)
	}
	if _, err := f.client().Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	// An ES256 key named in an EdDSA header is refused before any signature check.
	hdr, _, sig := parts(t, tok)
	forged := b64json(t, map[string]string{"alg": "EdDSA", "kid": hdr["kid"].(string), "typ": "at+jwt"}) + "." +
		strings.Split(tok, ".")[1] + "." + sig
	_, err := f.client().VerifySignature(context.Background(), forged)
	wantErr(t, err, ErrAlgorithm)
}

func TestAuthenticate_MissingOrOtherCredentials(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	c := f.client()
	// RFC 6750 §3.1: no credentials → a bare challenge, without an error code.
	res := serve(t, c.Authenticate, "")
	if res.status != http.StatusUnauthorized || res.challenge != "Bearer" || res.code != tutela.EUNAUTHENTICATED {
		t.Fatalf("no token: %+v", res)
	}
	for _, h := range []string{"Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Token abc"} {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", h)
		if _, err := bearer(req); err == nil {
			t.Errorf("Authorization %q accepted", h)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.Header.Add("Authorization", "Bearer a")
	req.Header.Add("Authorization", "Bearer b")
	if _, err := bearer(req); err == nil {
		t.Error("two Authorization headers accepted")
	}
	req.Header.Set("Authorization", "bearer abc")
	if tok, err := bearer(req); err != nil || tok != "abc" {
		t.Errorf("lower-case scheme: %q %v", tok, err)
	}
}

func TestJWKS_FetchedOnceForManyRequests(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	c := f.client()
	tok := f.issue()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if res := serve(t, c.Authenticate, tok); res.status != http.StatusOK {
				t.Errorf("status %d %s", res.status, res.message)
			}
		})
	}
	wg.Wait()
	for range 50 {
		serve(t, c.Authenticate, f.issue())
	}
	if n := f.jwksFetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times for 100 requests, want 1", n)
	}
	// After JWKSRefresh the set is refetched once.
	f.clock.Add(DefaultJWKSRefresh)
	for range 10 {
		serve(t, c.Authenticate, f.issue())
	}
	if n := f.jwksFetches.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times after the refresh period, want 2", n)
	}
}

// TestJWKS_RefetchedOnKeyRotation: a token signed by a key published after the last fetch is
// accepted at once (one early refetch), without waiting for JWKSRefresh.
func TestJWKS_RefetchedOnKeyRotation(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	c := f.client()
	if res := serve(t, c.Authenticate, f.issue()); res.status != http.StatusOK {
		t.Fatal(res)
	}
	f.clock.Add(JWKSMinInterval)
	next := newRing(t, f.clock, testIssuer)
	f.serve(next)
	if res := serve(t, c.Authenticate, f.issueWith(next)); res.status != http.StatusOK {
		t.Fatalf("token of the new key: %+v", res)
	}
	if n := f.jwksFetches.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
	// Both keys now verify with no further fetch.
	for _, tok := range []string{f.issue(), f.issueWith(next)} {
		if res := serve(t, c.Authenticate, tok); res.status != http.StatusOK {
			t.Fatal(res)
		}
	}
	if n := f.jwksFetches.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
}

// TestJWKS_UnknownKidsRateLimited: a flood of tokens naming random kids costs Tutela at most
// one JWKS fetch per JWKSMinInterval.
func TestJWKS_UnknownKidsRateLimited(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	c := f.client()
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	payload := strings.Split(f.issue(), ".")[1]
	flood := func() {
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				tok := b64json(t, map[string]string{"alg": "EdDSA", "kid": randomKid(), "typ": "at+jwt"}) + "." + payload + ".AAAA"
				_, err := c.VerifySignature(context.Background(), tok)
				wantErr(t, err, ErrUnknownKey)
			})
		}
		wg.Wait()
	}
	steps := []struct {
		advance time.Duration
		want    int64
	}{
		{0, 1},                             // fetched just now: no refetch
		{JWKSMinInterval - time.Second, 1}, // still within the interval
		{time.Second, 2},                   // interval over: one refetch for the whole flood
		{JWKSMinInterval / 2, 2},           //
		{JWKSMinInterval / 2, 3},           //
		{JWKSMinInterval - time.Second, 3}, //
	}
	for i, s := range steps {
		f.clock.Add(s.advance)
		flood()
		if n := f.jwksFetches.Load(); n != s.want {
			t.Fatalf("step %d: %d fetches, want %d", i, n, s.want)
		}
	}
}

func TestJWKS_UnreachableFailsClosedThenKeepsLastSet(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	down := f.client(func(cfg *Config) { cfg.BaseURL = "http://127.0.0.1:1" })
	res := serve(t, down.Authenticate, f.issue())
	if res.status != http.StatusServiceUnavailable || res.code != tutela.EUNAVAILABLE {
		t.Fatalf("no JWKS: %+v", res)
	}

	// Once fetched, the set outlives a Tutela outage (its keys' tokens still expire).
	c := f.client(func(cfg *Config) { cfg.ClientID, cfg.ClientSecret = "", tutela.Secret{} })
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.srv.Close()
	f.clock.Add(DefaultJWKSRefresh + time.Second)
	if _, err := c.Verify(context.Background(), f.issue()); err != nil {
		t.Fatalf("stale set: %v", err)
	}
}

func TestParseJWKS_KeepsOnlyUsableKeys(t *testing.T) {
	t.Parallel()
	f := newFakeTutela(t)
	good, err := f.ring.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(good, &set); err != nil {
		t.Fatal(err)
	}
	// The ring publishes a key per algorithm; this test tampers with the Ed25519 one.
	var k map[string]any
	for _, c := range set.Keys {
		if c["alg"] == "EdDSA" {
			k = c
		}
	}
	if k == nil {
		t.Fatalf("no EdDSA key in %s", good)
	}
	with := func(field string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range k {
			m[kk] = vv
		}
		m["kid"] = field
		if v == nil {
			delete(m, field)
		} else {
			m[field] = v
		}
		return m
	}
	body := map[string]any{"keys": []any{
		k,
		with("alg", "ES256"), // alg does not match the key type
		with("alg", "HS256"), //
		with("use", "enc"),   //
		with("alg", nil),     // no alg: the token would choose
		map[string]any{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"},
		map[string]any{"kty": "RSA", "kid": "junk", "n": "!!", "e": "AQAB"},
	}}
	ks, err := parseJWKS(mustJSON(t, body), f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.byID) != 1 || ks.byID[k["kid"].(string)].alg != "EdDSA" {
		t.Fatalf("kept %v", ks.byID)
	}
	// Two keys under one kid: neither is trusted.
	if _, err := parseJWKS(mustJSON(t, map[string]any{"keys": []any{k, k}}), f.clock.Now()); err == nil {
		t.Fatal("duplicate kid accepted")
	}
	if _, err := parseJWKS([]byte(`{"keys":[]}`), f.clock.Now()); err == nil {
		t.Fatal("empty set accepted")
	}
}
