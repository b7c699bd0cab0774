package token

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"tutela"
)

func TestRing_IssueVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	for _, alg := range []Alg{EdDSA, ES256} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, alg)
			ctx := context.Background()
			authTime := f.clock.Now().Add(-2 * time.Minute)
			in := Claims{
				Subject: "0190f0f0-0000-7000-8000-000000000000", Audience: []string{testAudience},
				SessionID: "sess-1", Tenant: "tenant-1", TokenVersion: 7,
				AMR: []string{"pwd", "otp"}, AuthTime: authTime, Scope: "read write",
			}
			tok, exp, err := f.ring.Issue(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			now := f.clock.Now()
			if want := now.Add(5 * time.Minute); !exp.Equal(want) {
				t.Errorf("exp = %v, want %v", exp, want)
			}
			got, err := f.ring.Verify(ctx, tok, testAudience)
			if err != nil {
				t.Fatal(err)
			}
			if got.Issuer != testIssuer || got.Subject != in.Subject || !slices.Equal(got.Audience, in.Audience) ||
				!got.Expiry.Equal(exp) || !got.IssuedAt.Equal(now) || !got.NotBefore.Equal(now) ||
				got.SessionID != "sess-1" || got.Tenant != "tenant-1" || got.TokenVersion != 7 ||
				!slices.Equal(got.AMR, []string{"pwd", "otp"}) || !got.AuthTime.Equal(authTime) || got.Scope != "read write" {
				t.Errorf("claims round trip:\n got %+v\nwant %+v", got, in)
			}
			if len(got.ID) != 32 {
				t.Errorf("jti %q is not 128 bits of hex", got.ID)
			}
			tok2, _, _ := f.ring.Issue(ctx, in)
			if got2, _ := f.ring.Verify(ctx, tok2, testAudience); got2 == nil || got2.ID == got.ID {
				t.Error("two tokens share a jti")
			}
		})
	}
}

func TestIssue_ExpiryCappedBySession(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	sessionEnd := f.clock.Now().Add(90 * time.Second)
	_, exp, err := f.ring.Issue(context.Background(), Claims{Subject: "u", Audience: []string{testAudience}, Expiry: sessionEnd})
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(sessionEnd) {
		t.Errorf("exp = %v, want the session end %v", exp, sessionEnd)
	}
}

func TestIssue_RejectsMisuse(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	now := f.clock.Now()
	for name, c := range map[string]Claims{
		"no subject":         {Audience: []string{testAudience}},
		"no audience":        {Subject: "u"},
		"unknown audience":   {Subject: "u", Audience: []string{"https://evil.example"}},
		"issuer preset":      {Subject: "u", Audience: []string{testAudience}, Issuer: "https://evil.example"},
		"jti preset":         {Subject: "u", Audience: []string{testAudience}, ID: "chosen"},
		"iat preset":         {Subject: "u", Audience: []string{testAudience}, IssuedAt: now.Add(time.Hour)},
		"nbf preset":         {Subject: "u", Audience: []string{testAudience}, NotBefore: now},
		"expiry in the past": {Subject: "u", Audience: []string{testAudience}, Expiry: now.Add(-time.Second)},
	} {
		if tok, _, err := f.ring.Issue(context.Background(), c); err == nil {
			t.Errorf("%s: Issue succeeded: %s", name, tok)
		}
	}
}

// TestVerify_RejectsAttacks attacks every check of Verify and expects the specific reason.
func TestVerify_RejectsAttacks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	ctx := context.Background()
	k := f.signingKey(t)
	kid := k.id
	goodHdr := map[string]any{"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}
	own := signAs(t, k)
	good := f.issue(t)

	attackerPub, attackerPriv, _ := ed25519.GenerateKey(rand.Reader)
	_ = attackerPub
	attacker := func(in []byte) []byte { return ed25519.Sign(attackerPriv, in) }

	// The classic confusion attack: HS256 keyed with the verifier's public key, as raw bytes
	// and as the published JWK JSON.
	hs256 := func(secret []byte) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret},
			(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(s).Claims(f.validClaims()).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs256Signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: rsaKey, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	rs256, err := jwt.Signed(rs256Signer).Claims(f.validClaims()).Serialize()
	if err != nil {
		t.Fatal(err)
	}

	with := func(mod func(map[string]any)) map[string]any {
		c := f.validClaims()
		mod(c)
		return c
	}
	hdr := func(mod func(map[string]any)) map[string]any {
		h := map[string]any{"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}
		mod(h)
		return h
	}
	flip := func(tok string, pos int) string {
		b := []byte(tok)
		b[pos] ^= 0x01
		return string(b)
	}
	lastSigChar := len(good) - 2 // not the final char, whose low bits may be padding

	cases := []struct {
		name     string
		token    string
		audience string
		want     error
	}{
		{"alg none, empty signature", craft(t, map[string]any{"alg": "none", "kid": kid, "typ": "at+jwt"}, f.validClaims(), nil), "", ErrAlgorithm},
		{"alg none, no kid", craft(t, map[string]any{"alg": "none"}, f.validClaims(), nil), "", ErrAlgorithm},
		{"alg None", craft(t, map[string]any{"alg": "None", "kid": kid, "typ": "at+jwt"}, f.validClaims(), nil), "", ErrAlgorithm},
		{"HS256 keyed with public key bytes", hs256(k.edPub), "", ErrAlgorithm},
		{"HS256 keyed with JWK JSON", hs256(k.jwk), "", ErrAlgorithm},
		{"RS256", rs256, "", ErrAlgorithm},
		{"ES256 header on an EdDSA key", craft(t, hdr(func(h map[string]any) { h["alg"] = "ES256" }), f.validClaims(), own), "", ErrAlgorithm},
		{"unknown kid", craft(t, hdr(func(h map[string]any) { h["kid"] = "deadbeef" }), f.validClaims(), attacker), "", ErrUnknownKey},
		{"missing kid", craft(t, hdr(func(h map[string]any) { delete(h, "kid") }), f.validClaims(), attacker), "", ErrUnknownKey},
		{"attacker key with known kid", craft(t, goodHdr, f.validClaims(), attacker), "", ErrBadSignature},
		{"embedded jwk header", craft(t, hdr(func(h map[string]any) {
			h["jwk"] = map[string]any{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(attackerPub)}
		}), f.validClaims(), attacker), "", ErrMalformed},
		{"jku header", craft(t, hdr(func(h map[string]any) { h["jku"] = "https://evil.example/jwks" }), f.validClaims(), own), "", ErrMalformed},
		{"crit header", craft(t, hdr(func(h map[string]any) { h["crit"] = []string{"b64"}; h["b64"] = false }), f.validClaims(), own), "", ErrMalformed},
		{"typ missing, valid signature", craft(t, hdr(func(h map[string]any) { delete(h, "typ") }), f.validClaims(), own), "", ErrMalformed},
		{"typ JWT (an ID token), valid signature", craft(t, hdr(func(h map[string]any) { h["typ"] = "JWT" }), f.validClaims(), own), "", ErrMalformed},
		{"flipped signature byte", flip(good, lastSigChar), "", ErrBadSignature},
		{"flipped payload byte", flip(good, strings.IndexByte(good, '.')+5), "", ErrBadSignature},
		{"signature removed", good[:strings.LastIndexByte(good, '.')+1], "", ErrBadSignature},
		{"signature truncated", good[:len(good)-4], "", ErrBadSignature},
		{"wrong audience", good, "https://admin.example.org", ErrAudience},
		{"empty audience", good, "", ErrAudience},
		{"wrong issuer", craft(t, goodHdr, with(func(c map[string]any) { c["iss"] = "https://evil.example" }), own), "", ErrIssuer},
		{"nbf in the future", craft(t, goodHdr, with(func(c map[string]any) { c["nbf"] = c["nbf"].(int64) + 120 }), own), "", ErrNotYetValid},
		{"iat in the future", craft(t, goodHdr, with(func(c map[string]any) {
			c["iat"] = c["iat"].(int64) + 120
			c["exp"] = c["exp"].(int64) + 120
		}), own), "", ErrNotYetValid},
		{"expired", craft(t, goodHdr, with(func(c map[string]any) {
			c["iat"] = c["iat"].(int64) - 400
			c["nbf"] = c["iat"]
			c["exp"] = c["exp"].(int64) - 400
		}), own), "", ErrExpired},
		{"lifetime over TTL", craft(t, goodHdr, with(func(c map[string]any) { c["exp"] = c["iat"].(int64) + 3600 }), own), "", ErrMalformed},
		{"no exp", craft(t, goodHdr, with(func(c map[string]any) { delete(c, "exp") }), own), "", ErrMalformed},
		{"no sub", craft(t, goodHdr, with(func(c map[string]any) { delete(c, "sub") }), own), "", ErrMalformed},
		{"aud as a string", craft(t, goodHdr, with(func(c map[string]any) { c["aud"] = testAudience }), own), "", ErrMalformed},
		{"claims not JSON", craft(t, goodHdr, []byte("not json"), own), "", ErrMalformed},
		{"empty", "", "", ErrMalformed},
		{"one segment", "abc", "", ErrMalformed},
		{"two segments", "abc.def", "", ErrMalformed},
		{"garbage header", "!!!.abc.def", "", ErrMalformed},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".e30.", "", ErrMalformed},
		{"JSON serialization", `{"payload":"e30","signatures":[]}`, "", ErrMalformed},
		{"oversized", strings.Repeat("a", 9000) + ".b.c", "", ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			aud := tc.audience
			if aud == "" && tc.want != ErrAudience {
				aud = testAudience
			}
			c, err := f.ring.Verify(ctx, tc.token, aud)
			if c != nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var te *tutela.Error
			if !errors.As(err, &te) || te.Code != tutela.EUNAUTHENTICATED || te.Message != "invalid access token" {
				t.Fatalf("err = %#v, want EUNAUTHENTICATED with the generic message", err)
			}
		})
	}

	// The untouched token still verifies: the cases above failed for their own reason.
	if _, err := f.ring.Verify(ctx, good, testAudience); err != nil {
		t.Fatal(err)
	}
	// The sanity token made by signAs verifies too, so "own" really is the ring's key.
	if _, err := f.ring.Verify(ctx, craft(t, goodHdr, f.validClaims(), own), testAudience); err != nil {
		t.Fatalf("hand-made token with the ring's key: %v", err)
	}
}

func TestVerify_ExpiresWithClock(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	ctx := context.Background()
	tok := f.issue(t)
	f.clock.Add(5*time.Minute + 29*time.Second) // within leeway
	if _, err := f.ring.Verify(ctx, tok, testAudience); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	f.clock.Add(time.Second)
	if _, err := f.ring.Verify(ctx, tok, testAudience); !errors.Is(err, ErrExpired) {
		t.Fatalf("after exp+leeway: err = %v, want ErrExpired", err)
	}
}

func TestVerify_AcceptsRFC9068MediaType(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	k := f.signingKey(t)
	tok := craft(t, map[string]any{"typ": "application/AT+JWT", "kid": k.id, "alg": "EdDSA"}, f.validClaims(), signAs(t, k))
	if _, err := f.ring.Verify(context.Background(), tok, testAudience); err != nil {
		t.Fatal(err)
	}
}

func TestVerify_NoStoreCallPerRequest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	tok := f.issue(t)
	before := f.store.lists.Load()
	for range 100 {
		if _, err := f.ring.Verify(context.Background(), tok, testAudience); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.store.lists.Load() - before; n != 0 {
		t.Fatalf("Verify queried the store %d times", n)
	}
}

func TestVerify_UnknownKidReloadIsRateLimited(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	_, attackerPriv, _ := ed25519.GenerateKey(rand.Reader)
	before := f.store.lists.Load()
	for i := range 1000 {
		tok := craft(t, map[string]any{"alg": "EdDSA", "kid": tutela.RandomToken(8), "typ": "at+jwt"}, f.validClaims(),
			func(in []byte) []byte { return ed25519.Sign(attackerPriv, in) })
		if _, err := f.ring.Verify(context.Background(), tok, testAudience); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("token %d: err = %v", i, err)
		}
	}
	if n := f.store.lists.Load() - before; n != 1 {
		t.Fatalf("1000 unknown kids caused %d store reads, want 1", n)
	}
	f.clock.Add(RefreshInterval)
	craftTok := craft(t, map[string]any{"alg": "EdDSA", "kid": "nope", "typ": "at+jwt"}, f.validClaims(), nil)
	f.ring.Verify(context.Background(), craftTok, testAudience)
	if n := f.store.lists.Load() - before; n != 2 {
		t.Fatalf("after RefreshInterval: %d store reads, want 2", n)
	}
}

// TestIssue_InteroperatesWithGoJOSE checks our compact JWS against an independent
// implementation, using only what a relying party has: the token and the JWKS.
func TestIssue_InteroperatesWithGoJOSE(t *testing.T) {
	t.Parallel()
	for _, alg := range []Alg{EdDSA, ES256} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, alg)
			tok := f.issue(t)
			jwks, err := f.ring.JWKS()
			if err != nil {
				t.Fatal(err)
			}
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(jwks, &set); err != nil {
				t.Fatal(err)
			}
			parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatal(err)
			}
			if typ := parsed.Headers[0].ExtraHeaders["typ"]; typ != "at+jwt" {
				t.Errorf("typ = %v", typ)
			}
			keys := set.Key(parsed.Headers[0].KeyID)
			if len(keys) != 1 {
				t.Fatalf("kid %q: %d keys in JWKS", parsed.Headers[0].KeyID, len(keys))
			}
			var std jwt.Claims
			if err := parsed.Claims(keys[0], &std); err != nil {
				t.Fatal(err)
			}
			if err := std.Validate(jwt.Expected{Issuer: testIssuer, AnyAudience: jwt.Audience{testAudience},
				Time: f.clock.Now()}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// VerifyAny accepts a token for any listed audience and nothing else: a resource server's token
// is not a token for Tutela's own API.
func TestVerifyAny_AudienceList(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	ctx := context.Background()
	tok, _, err := f.ring.Issue(ctx, Claims{Subject: "user-1", Audience: []string{"https://admin.example.org"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ring.Verify(ctx, tok, testAudience); !errors.Is(err, ErrAudience) {
		t.Fatalf("Verify for another audience: %v", err)
	}
	if c, err := f.ring.VerifyAny(ctx, tok, []string{testAudience, "https://admin.example.org"}); err != nil || c.Subject != "user-1" {
		t.Fatalf("VerifyAny: %v", err)
	}
	for _, auds := range [][]string{nil, {}, {""}, {testAudience}, {"https://admin.example.org/"}} {
		if _, err := f.ring.VerifyAny(ctx, tok, auds); !errors.Is(err, ErrAudience) {
			t.Errorf("VerifyAny(%q): err = %v, want ErrAudience", auds, err)
		}
	}
	if got := f.ring.Audiences(); len(got) != 2 || got[0] != testAudience {
		t.Fatalf("Audiences() = %v", got)
	}
}
