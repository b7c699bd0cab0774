package token

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela/vault"
)

func jwksKids(t *testing.T, r *Ring) []string {
	t.Helper()
	b, err := r.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatalf("JWKS %s: %v", b, err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k["kid"].(string))
	}
	return kids
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	_, kid, err := parseHeader(tok[:strings.IndexByte(tok, '.')])
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

// TestRotate_PrePublishesAndRetires walks one key's life with the clock: the successor is in
// the JWKS an hour before it signs, the old key's tokens verify until they expire, and the old
// key leaves the JWKS, and stops verifying anything, TTL+Leeway after it stopped signing.
func TestRotate_PrePublishesAndRetires(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	ctx := context.Background()
	r := f.ring
	k1 := f.signingKey(t)
	if got := jwksKids(t, r); !slices.Equal(got, []string{k1.id}) {
		t.Fatalf("initial JWKS = %v", got)
	}

	// Not due yet: Rotate is a no-op.
	f.clock.Add(22 * time.Hour)
	if err := r.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(r.snap.Load().keys); n != 1 {
		t.Fatalf("%d keys before rotation is due", n)
	}

	// Due (RotateEvery − PrePublish after activation): the successor is published, not used.
	f.clock.Add(time.Hour)
	for range 3 { // idempotent
		if err := r.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	keys := r.snap.Load().keys
	if len(keys) != 2 {
		t.Fatalf("%d keys after rotation, want 2", len(keys))
	}
	k2 := keys[1]
	if got := jwksKids(t, r); !slices.Equal(got, []string{k2.id, k1.id}) {
		t.Fatalf("JWKS during pre-publication = %v, want [k2 k1]", got)
	}
	f.clock.Add(time.Hour - time.Minute)
	old := f.issue(t)
	if kidOf(t, old) != k1.id {
		t.Fatal("the pre-published key signed before its activation")
	}

	// Activation: k2 signs; k1's token still verifies until it expires.
	f.clock.Add(time.Minute)
	if kid := kidOf(t, f.issue(t)); kid != k2.id {
		t.Fatalf("after activation signed by %s, want k2", kid)
	}
	if _, err := r.Verify(ctx, old, testAudience); err != nil {
		t.Fatalf("old key's token after rotation: %v", err)
	}
	if got := jwksKids(t, r); !slices.Equal(got, []string{k2.id, k1.id}) {
		t.Fatalf("JWKS after activation = %v, want both", got)
	}

	// k1 retired at k2's activation; it stays published for TTL + Leeway.
	f.clock.Add(5*time.Minute + 30*time.Second - time.Second)
	if got := jwksKids(t, r); !slices.Equal(got, []string{k2.id, k1.id}) {
		t.Fatalf("JWKS just before k1's publication ends = %v", got)
	}
	f.clock.Add(time.Second)
	if got := jwksKids(t, r); !slices.Equal(got, []string{k2.id}) {
		t.Fatalf("JWKS after k1's publication ended = %v, want [k2]", got)
	}
	// Now even a fresh token made with k1's (stolen) private key is refused.
	fresh := craft(t, map[string]any{"alg": "EdDSA", "kid": k1.id, "typ": "at+jwt"}, f.validClaims(), signAs(t, k1))
	if _, err := r.Verify(ctx, fresh, testAudience); !errors.Is(err, ErrKeyNotActive) {
		t.Fatalf("token signed by the retired key: err = %v, want ErrKeyNotActive", err)
	}
	if _, err := r.Verify(ctx, old, testAudience); err == nil {
		t.Fatal("old token still accepted")
	}
}

func TestVerify_RefusesTokenFromPrePublishedKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	f.clock.Add(23 * time.Hour)
	if err := f.ring.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	next := f.ring.snap.Load().keys[1]
	tok := craft(t, map[string]any{"alg": "EdDSA", "kid": next.id, "typ": "at+jwt"}, f.validClaims(), signAs(t, next))
	if _, err := f.ring.Verify(context.Background(), tok, testAudience); !errors.Is(err, ErrKeyNotActive) {
		t.Fatalf("err = %v, want ErrKeyNotActive", err)
	}
}

func TestRotate_StalledRotationCreatesAnActiveKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ES256)
	f.clock.Add(49 * time.Hour) // past RetireAt = activation + 2×RotateEvery: nothing may sign
	if _, _, err := f.ring.Issue(context.Background(), Claims{Subject: "u", Audience: []string{testAudience}}); err == nil {
		t.Fatal("issued with a key past its RetireAt")
	}
	if err := f.ring.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ring.Verify(context.Background(), f.issue(t), testAudience); err != nil {
		t.Fatal(err)
	}
}

func TestJWKS_HasNoPrivateMembers(t *testing.T) {
	t.Parallel()
	for _, alg := range []Alg{EdDSA, ES256} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, alg)
			f.clock.Add(23 * time.Hour)
			if err := f.ring.Rotate(context.Background()); err != nil {
				t.Fatal(err)
			}
			b, _ := f.ring.JWKS()
			var set struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(b, &set); err != nil {
				t.Fatal(err)
			}
			if len(set.Keys) != 2 {
				t.Fatalf("%d keys", len(set.Keys))
			}
			for _, k := range set.Keys {
				for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
					if _, ok := k[private]; ok {
						t.Errorf("JWKS key has private member %q: %s", private, b)
					}
				}
				if k["alg"] != string(alg) || k["use"] != "sig" || k["kid"] == "" {
					t.Errorf("JWKS key %v lacks alg/use/kid", k)
				}
			}
		})
	}
}

// TestNewRing_RefusesStoredPrivateJWK: a public-key column holding a private JWK (a bug or a
// tampered row) must not load, so it can never be served.
func TestNewRing_RefusesStoredPrivateJWK(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	stored, _ := f.store.ListSigningKeys(context.Background())
	var m map[string]any
	json.Unmarshal(stored[0].Public, &m)
	m["d"] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	stored[0].Public, _ = json.Marshal(m)
	stored[0].ID = "other"
	m["kid"] = "other"
	stored[0].Public, _ = json.Marshal(m)
	bad := &MemKeyStore{}
	bad.AddSigningKey(context.Background(), stored[0])
	if _, err := NewRing(context.Background(), testConfig(EdDSA, f.clock), bad, f.sealer); err == nil {
		t.Fatal("loaded a key whose public JWK holds private material")
	}
}

func TestNewRing_WrongMasterKeyFailsWithoutWriting(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	ctx := context.Background()
	before, _ := f.store.ListSigningKeys(ctx)
	_, err := NewRing(ctx, testConfig(EdDSA, f.clock), f.store, newSealer(t))
	if err == nil {
		t.Fatal("NewRing with another master key succeeded")
	}
	if !errors.Is(err, vault.ErrUnseal) || !strings.Contains(err.Error(), "wrong master key") {
		t.Errorf("error does not say why: %v", err)
	}
	after, _ := f.store.ListSigningKeys(ctx)
	if len(after) != len(before) {
		t.Fatalf("store went from %d to %d keys", len(before), len(after))
	}
}

func TestNewRing_SealedKeyBoundToItsRow(t *testing.T) {
	t.Parallel()
	// Two keys sealed under one master key: swapping their sealed halves must not load.
	f := newFixture(t, EdDSA)
	ctx := context.Background()
	f.clock.Add(23 * time.Hour)
	if err := f.ring.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	stored, _ := f.store.ListSigningKeys(ctx)
	stored[0].SealedPrivate, stored[1].SealedPrivate = stored[1].SealedPrivate, stored[0].SealedPrivate
	swapped := &MemKeyStore{}
	for _, k := range stored {
		swapped.AddSigningKey(ctx, k)
	}
	if _, err := NewRing(ctx, testConfig(EdDSA, f.clock), swapped, f.sealer); !errors.Is(err, vault.ErrUnseal) {
		t.Fatalf("err = %v, want ErrUnseal", err)
	}
}

func TestRing_TwoNodesConverge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	store := &MemKeyStore{}
	sealer := newSealer(t)
	cfg := testConfig(EdDSA, clock)

	// Both start at once against an empty store.
	var a, b *Ring
	var wg sync.WaitGroup
	var errA, errB error
	wg.Go(func() { a, errA = NewRing(ctx, cfg, store, sealer) })
	wg.Go(func() { b, errB = NewRing(ctx, cfg, store, sealer) })
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}

	check := func(when string) {
		t.Helper()
		for _, r := range []*Ring{a, b} {
			if err := r.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
		}
		now := clock.Now()
		ka, kb := a.snap.Load().signingKey(EdDSA, now), b.snap.Load().signingKey(EdDSA, now)
		if ka == nil || kb == nil || ka.id != kb.id {
			t.Fatalf("%s: nodes sign with different keys", when)
		}
		for _, pair := range [][2]*Ring{{a, b}, {b, a}} {
			tok, _, err := pair[0].Issue(ctx, Claims{Subject: "u", Audience: []string{testAudience}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pair[1].Verify(ctx, tok, testAudience); err != nil {
				t.Fatalf("%s: cross-node verify: %v", when, err)
			}
		}
		ja, _ := a.JWKS()
		jb, _ := b.JWKS()
		if string(ja) != string(jb) {
			t.Fatalf("%s: JWKS differ", when)
		}
	}
	check("after start")

	// Both rotate at once, repeatedly; racing adds are tolerated.
	clock.Add(23 * time.Hour)
	for range 5 {
		wg.Go(func() { _ = a.Rotate(ctx) })
		wg.Go(func() { _ = b.Rotate(ctx) })
	}
	wg.Wait()
	check("after racing rotation")
	clock.Add(time.Hour)
	check("after activation")
	keys, _ := store.ListSigningKeys(ctx)
	if len(keys) < 2 || len(keys) > 4 {
		t.Fatalf("%d keys in store", len(keys))
	}
}

// TestRing_SimultaneousSuccessorsPickOneDeterministically forces the race the mutex-free store
// allows: two successors with the same activation time.
func TestRing_SimultaneousSuccessorsPickOneDeterministically(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	ctx := context.Background()
	b, err := NewRing(ctx, testConfig(EdDSA, f.clock), f.store, f.sealer)
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	for range 2 {
		k, err := newStoredKey(EdDSA, f.sealer, now, now.Add(time.Hour), 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		f.store.AddSigningKey(ctx, k)
	}
	f.clock.Add(time.Hour)
	f.ring.Refresh(ctx)
	b.Refresh(ctx)
	now = f.clock.Now()
	ka, kb := f.ring.snap.Load().signingKey(EdDSA, now), b.snap.Load().signingKey(EdDSA, now)
	keys := f.ring.snap.Load().keys
	if ka.id != kb.id || ka.id != keys[len(keys)-1].id {
		t.Fatalf("signing keys %s and %s, want the last in succession order", ka.id, kb.id)
	}
}

func TestVerify_LearnsKeyFromOtherNode(t *testing.T) {
	t.Parallel()
	f := newFixture(t, EdDSA)
	ctx := context.Background()
	b, err := NewRing(ctx, testConfig(EdDSA, f.clock), f.store, f.sealer)
	if err != nil {
		t.Fatal(err)
	}
	// Node A finds no usable key (say it was restored from an old backup) and makes one that
	// activates at once; node B has not refreshed.
	f.clock.Add(time.Minute)
	k, err := newStoredKey(EdDSA, f.sealer, f.clock.Now(), f.clock.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.store.AddSigningKey(ctx, k)
	f.ring.Refresh(ctx)
	tok := f.issue(t)
	if kidOf(t, tok) != k.ID {
		t.Fatal("A does not sign with the newest key")
	}
	if _, err := b.Verify(ctx, tok, testAudience); err != nil {
		t.Fatalf("B did not load the unknown kid: %v", err)
	}
}

func TestNewRing_ValidatesConfig(t *testing.T) {
	t.Parallel()
	_, err := NewRing(context.Background(), Config{TTL: 2 * time.Hour, Alg: "HS256", RotateEvery: time.Hour, Leeway: time.Hour},
		&MemKeyStore{}, newSealer(t))
	if err == nil {
		t.Fatal("accepted an invalid config")
	}
	for _, want := range []string{"issuer", "audience", "ttl", "alg", "rotation", "leeway"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	if _, err := NewRing(context.Background(), Config{Issuer: "i", Audience: []string{"a"}}, nil, nil); err == nil {
		t.Fatal("accepted nil store and sealer")
	}
}
