package token

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/vault"
)

const (
	testIssuer   = "https://id.example.org"
	testAudience = "https://api.example.org"
)

type fakeClock = clocktest.Clock

func newFakeClock() *fakeClock { return clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) }

func newSealer(t testing.TB) *vault.LocalSealer {
	t.Helper()
	k := make([]byte, vault.MasterKeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	s, err := vault.NewLocalSealer(tutela.NewSecretBytes(k))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testConfig(alg Alg, clock *fakeClock) Config {
	return Config{
		Issuer:      testIssuer,
		Audience:    []string{testAudience, "https://admin.example.org"},
		Alg:         alg,
		Algs:        []Alg{alg}, // one schedule: these tests follow one key's life
		TTL:         5 * time.Minute,
		RotateEvery: 24 * time.Hour,
		PrePublish:  time.Hour,
		Leeway:      30 * time.Second,
		Clock:       clock.Now,
	}
}

// countingStore counts store reads, to prove verification does not query the store.
type countingStore struct {
	KeyStore
	lists atomic.Int64
}

func (s *countingStore) ListSigningKeys(ctx context.Context) ([]StoredKey, error) {
	s.lists.Add(1)
	return s.KeyStore.ListSigningKeys(ctx)
}

type fixture struct {
	clock  *fakeClock
	store  *countingStore
	sealer *vault.LocalSealer
	ring   *Ring
}

func newFixture(t testing.TB, alg Alg) *fixture {
	t.Helper()
	f := &fixture{clock: newFakeClock(), store: &countingStore{KeyStore: &MemKeyStore{}}, sealer: newSealer(t)}
	r, err := NewRing(context.Background(), testConfig(alg, f.clock), f.store, f.sealer)
	if err != nil {
		t.Fatal(err)
	}
	f.ring = r
	return f
}

func (f *fixture) issue(t testing.TB) string {
	t.Helper()
	tok, _, err := f.ring.Issue(context.Background(), Claims{Subject: "user-1", Audience: []string{testAudience}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signingKey returns the key the ring signs with now, private half included.
func (f *fixture) signingKey(t testing.TB) *key {
	t.Helper()
	k := f.ring.snap.Load().signingKey(f.ring.cfg.Alg, f.clock.Now())
	if k == nil {
		t.Fatal("no signing key")
	}
	return k
}

// validClaims are claims the ring would accept now.
func (f *fixture) validClaims() map[string]any {
	now := f.clock.Now().Unix()
	return map[string]any{
		"iss": testIssuer, "sub": "user-1", "aud": []string{testAudience},
		"iat": now, "nbf": now, "exp": now + 300, "jti": "j1", "tv": 1,
	}
}

func b64json(t testing.TB, v any) string {
	t.Helper()
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// craft builds a compact JWS with an arbitrary header and claims, signed by sign (nil: empty
// signature), for attacks the ring itself would never produce.
func craft(t testing.TB, hdr, claims any, sign func(input []byte) []byte) string {
	t.Helper()
	input := b64json(t, hdr) + "." + b64json(t, claims)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// signAs signs input with the ring's own private key k, bypassing the header the ring writes.
func signAs(t testing.TB, k *key) func([]byte) []byte {
	return func(input []byte) []byte {
		// Reuse the ring's signer on an arbitrary input by splitting our own output.
		kk := *k
		h, p, ok := bytes.Cut(input, []byte("."))
		if !ok {
			t.Fatal("bad input")
		}
		kk.header = string(h)
		payload, err := base64.RawURLEncoding.DecodeString(string(p))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := kk.sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := base64.RawURLEncoding.DecodeString(tok[bytes.LastIndexByte([]byte(tok), '.')+1:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
}
