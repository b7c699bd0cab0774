package token

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
)

// Run both and compare: go test -run '^$' -bench 'VerifyAccessToken|Ed25519Verify' ./identity/token

func BenchmarkVerifyAccessToken(b *testing.B) {
	f := newFixture(b, EdDSA)
	tok, _, err := f.ring.Issue(context.Background(), Claims{
		Subject: "0190f0f0-0000-7000-8000-000000000000", Audience: []string{testAudience},
		SessionID: "0190f0f0-0000-7000-8000-000000000001", Tenant: "0190f0f0-0000-7000-8000-000000000002",
		TokenVersion: 3, AMR: []string{"pwd", "otp"}, AuthTime: f.clock.Now(),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.ring.Verify(ctx, tok, testAudience); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519Verify is the floor: the signature check alone over the same signing input.
func BenchmarkEd25519Verify(b *testing.B) {
	f := newFixture(b, EdDSA)
	tok := f.issue(b)
	dot := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		b.Fatal(err)
	}
	input := []byte(tok[:dot])
	pub := f.signingKey(b).edPub
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, input, sig) {
			b.Fatal("bad signature")
		}
	}
}

// Signing cost per algorithm:
// go test -run '^$' -bench 'IssueAccessToken|SignJWT' ./identity/token

// BenchmarkIssueAccessToken signs access tokens with the primary algorithm (hand-written
// compact JWS, see jws.go).
func BenchmarkIssueAccessToken(b *testing.B) {
	for _, alg := range []Alg{EdDSA, ES256} {
		b.Run(string(alg), func(b *testing.B) {
			f := newFixture(b, alg)
			ctx := context.Background()
			c := Claims{Subject: "0190f0f0-0000-7000-8000-000000000000", Audience: []string{testAudience},
				SessionID: "0190f0f0-0000-7000-8000-000000000001", TokenVersion: 3, AMR: []string{"pwd", "otp"}}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := f.ring.Issue(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignJWT signs an ID token (through go-jose) with each algorithm, RS256 over a
// 3072-bit key included: the OpenID Provider pays this once per ID token.
func BenchmarkSignJWT(b *testing.B) {
	f := newAlgsFixture(b, allAlgs...)
	now := f.clock.Now().Unix()
	claims := map[string]any{"iss": testIssuer, "sub": "0190f0f0-0000-7000-8000-000000000000", "aud": "client-1",
		"iat": now, "exp": now + 300, "auth_time": now, "nonce": "n-0S6_WzA2Mj", "amr": []string{"pwd", "otp"},
		"acr": "urn:tutela:acr:mfa", "sid": "0190f0f0-0000-7000-8000-000000000001"}
	for _, alg := range allAlgs {
		b.Run(string(alg), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.ring.SignJWT(alg, "JWT", claims); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
