package client

import (
	"bytes"
	"context"
	"testing"

	"tutela"
	"tutela/identity/token"
	"tutela/vault"
)

// TestParseJWKS_SkipsTheRingsRSAKeys: a Tutela JWKS holding RS256 keys (kept for relying parties'
// ID tokens) still loads; the SDK keeps the EdDSA and ES256 keys and never trusts the RSA one,
// since access tokens are never RSA-signed.
func TestParseJWKS_SkipsTheRingsRSAKeys(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	sealer, err := vault.NewLocalSealer(tutela.NewSecretBytes(bytes.Repeat([]byte{5}, vault.MasterKeySize)))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := token.NewRing(context.Background(), token.Config{Issuer: testIssuer, Audience: []string{testAudience},
		Algs: []token.Alg{token.EdDSA, token.ES256, token.RS256}, Clock: clock.Now}, &token.MemKeyStore{}, sealer)
	if err != nil {
		t.Fatal(err)
	}
	body, err := ring.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := parseJWKS(body, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	rsaKID, _, err := ring.SigningKey(token.RS256)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ks.byID[rsaKID]; ok || len(ks.byID) != 2 {
		t.Fatalf("SDK kept %d keys (RSA kept: %v), want the EdDSA and ES256 keys only", len(ks.byID), ok)
	}
	for _, alg := range []token.Alg{token.EdDSA, token.ES256} {
		kid, _, err := ring.SigningKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		if k, ok := ks.byID[kid]; !ok || string(k.alg) != string(alg) {
			t.Errorf("%s key %s not kept as %s", alg, kid, alg)
		}
	}
}
