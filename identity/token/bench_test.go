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
