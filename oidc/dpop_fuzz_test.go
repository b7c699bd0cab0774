package oidc_test

import (
	"crypto/ed25519"
	"errors"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"tutela/oidc"
)

// FuzzVerifyDPoP: a DPoP proof is a header anyone can send. Verify never panics, refuses with an
// error wrapping ErrInvalidDPoPProof, and accepts only a proof signed by the seed's key (nothing
// the fuzzer makes can be signed by another key that the proof then names), so an accepted
// input has the seed's thumbprint and jti. The key comes from a fixed seed: the fuzzing workers
// are other processes, and each must expect the key the seed proof names.
func FuzzVerifyDPoP(f *testing.F) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	proof := signProof(f, jose.EdDSA, key, "dpop+jwt", goodClaims())
	wantJKT, wantJTI, err := oidc.VerifyDPoP(proof, "GET", dpopURL, dpopToken, dpopNow)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(proof)
	f.Add(proof[:len(proof)/2])
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiZHBvcCtqd3QifQ.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, in string) {
		jkt, jti, err := oidc.VerifyDPoP(in, "GET", dpopURL, dpopToken, dpopNow)
		if err != nil {
			if !errors.Is(err, oidc.ErrInvalidDPoPProof) {
				t.Fatalf("refused without ErrInvalidDPoPProof: %v", err)
			}
			return
		}
		if jkt != wantJKT || jti != wantJTI {
			t.Fatalf("accepted %q as key %s, jti %q", in, jkt, jti)
		}
	})
}
