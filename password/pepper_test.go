package password

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"

	"tutela"
)

// testPepper is an in-memory Pepper (HMAC-SHA256 from the standard library; Tutela's real one
// is a vault PRF keyset, tested in vault and cmd/tutela). Keys are added by rotate.
type testPepper struct {
	mu      sync.Mutex
	keys    map[uint32][]byte
	primary uint32
	calls   int
	down    bool // simulates an outage of the key service
}

func newTestPepper(ids ...uint32) *testPepper {
	p := &testPepper{keys: map[uint32][]byte{}}
	for _, id := range ids {
		p.rotate(id)
	}
	return p
}

func (p *testPepper) rotate(id uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[id] = []byte(fmt.Sprintf("test pepper key %d, not secret", id))
	p.primary = id
}

func (p *testPepper) PrimaryKeyID(context.Context) (uint32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.primary, nil
}

func (p *testPepper) Pepper(_ context.Context, id uint32, pw []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.down {
		return nil, errors.New("pepper backend unreachable")
	}
	k, ok := p.keys[id]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownPepperKey, id)
	}
	m := hmac.New(sha256.New, k)
	m.Write(pw)
	return m.Sum(nil), nil
}

func newPepperedTestHasher(t testing.TB, pp Pepper) *Hasher {
	t.Helper()
	h, err := NewPepperedHasher(testParams, pp, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

const pepperedPW = "violet otter mapleknot"

func TestPepper_HashNamesItsKeyAndVerifies(t *testing.T) {
	t.Parallel()
	h := newPepperedTestHasher(t, newTestPepper(7))
	enc := mustHash(t, h, pepperedPW)
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1,pepper=7$") {
		t.Fatalf("peppered hash %q does not record the pepper key", enc)
	}
	if id, ok := PepperKeyID(enc); !ok || id != 7 {
		t.Errorf("PepperKeyID = %d, %v", id, ok)
	}
	ok, rehash, err := h.Verify(context.Background(), pepperedPW, enc)
	if !ok || rehash || err != nil {
		t.Fatalf("Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	if ok, _, err := h.Verify(context.Background(), pepperedPW+"!", enc); ok || err != nil {
		t.Errorf("wrong password: %v, %v", ok, err)
	}
}

// The attack the pepper stops: with a copy of the database and no vault key, an offline guess
// of the right password does not match the stored hash.
func TestPepper_StolenHashCannotBeVerifiedWithoutTheKey(t *testing.T) {
	t.Parallel()
	h := newPepperedTestHasher(t, newTestPepper(7))
	enc := mustHash(t, h, pepperedPW)
	ph, err := parseHash(enc)
	if err != nil {
		t.Fatal(err)
	}
	// Argon2id over the password alone, with the stored salt and parameters (what a cracking
	// tool would do), does not give the stored hash.
	guess := argon2.IDKey([]byte(pepperedPW), ph.salt, ph.time, ph.memory, ph.threads, uint32(len(ph.key)))
	if constantTimeEqual(guess, ph.key) {
		t.Fatal("argon2id over the bare password matches a peppered hash")
	}
	// Nor does a Hasher without the pepper, or with another pepper holding a key of that ID.
	if ok, _, err := newTestHasher(t, testParams).Verify(context.Background(), pepperedPW, enc); ok || !errors.Is(err, ErrPepperUnavailable) {
		t.Errorf("no pepper: %v, %v; want ErrPepperUnavailable", ok, err)
	}
	other := &testPepper{keys: map[uint32][]byte{7: []byte("another deployment's key")}, primary: 7}
	if ok, _, err := newPepperedTestHasher(t, other).Verify(context.Background(), pepperedPW, enc); ok || err != nil {
		t.Errorf("other key with the same ID: %v, %v; want false", ok, err)
	}
}

func TestPepper_TamperedKeyIDFailsClosed(t *testing.T) {
	t.Parallel()
	pp := newTestPepper(7, 8) // 8 is the primary; 7 still verifies
	h := newPepperedTestHasher(t, pp)
	enc := mustHash(t, h, pepperedPW)
	cases := map[string]struct {
		encoded string
		wantErr error
	}{
		"other existing key": {strings.Replace(enc, ",pepper=8$", ",pepper=7$", 1), nil},
		"unknown key":        {strings.Replace(enc, ",pepper=8$", ",pepper=9$", 1), ErrPepperUnavailable},
		"pepper removed":     {strings.Replace(enc, ",pepper=8$", "$", 1), nil},
		"leading zero":       {strings.Replace(enc, ",pepper=8$", ",pepper=08$", 1), ErrMalformedHash},
		"overflow":           {strings.Replace(enc, ",pepper=8$", ",pepper=4294967304$", 1), ErrMalformedHash},
		"empty":              {strings.Replace(enc, ",pepper=8$", ",pepper=$", 1), ErrMalformedHash},
		"other name":         {strings.Replace(enc, ",pepper=8$", ",keyid=8$", 1), ErrMalformedHash},
		"twice":              {strings.Replace(enc, ",pepper=8$", ",pepper=8,pepper=8$", 1), ErrMalformedHash},
		"on argon2i":         {strings.Replace(enc, "$argon2id$", "$argon2i$", 1), ErrMalformedHash},
		"in Django's form":   {"argon2" + enc, ErrMalformedHash},
	}
	for name, c := range cases {
		ok, rehash, err := h.Verify(context.Background(), pepperedPW, c.encoded)
		if ok || rehash {
			t.Errorf("%s: verified (%q)", name, c.encoded)
		}
		if c.wantErr == nil && err != nil || c.wantErr != nil && !errors.Is(err, c.wantErr) {
			t.Errorf("%s: err = %v, want %v", name, err, c.wantErr)
		}
	}
}

// Hashes made before the pepper (and imported ones) still verify, and report that they need a
// rehash, which puts them under the pepper.
func TestPepper_LegacyHashesVerifyAndMoveToThePepper(t *testing.T) {
	t.Parallel()
	h := newPepperedTestHasher(t, newTestPepper(7))
	legacy := map[string]string{
		"argon2id without pepper": mustHash(t, newTestHasher(t, testParams), pepperedPW),
		"bcrypt":                  bcryptHash(t, pepperedPW),
		"django pbkdf2":           djangoHash(t, pepperedPW, "salt", 10),
	}
	for name, enc := range legacy {
		ok, rehash, err := h.Verify(context.Background(), pepperedPW, enc)
		if !ok || !rehash || err != nil {
			t.Errorf("%s: Verify = %v, %v, %v; want true, true, nil", name, ok, rehash, err)
		}
		if ok, _, _ := h.Verify(context.Background(), "wrong", enc); ok {
			t.Errorf("%s: wrong password verified", name)
		}
	}
	// Without a pepper configured, unpeppered hashes are not stale on that account.
	plain := newTestHasher(t, testParams)
	if _, rehash, _ := plain.Verify(context.Background(), pepperedPW, legacy["argon2id without pepper"]); rehash {
		t.Error("unpeppered Hasher wants to rehash an unpeppered current hash")
	}
}

// Pepper rotation: hashes under the old key verify and ask for a rehash under the new primary;
// new hashes name the new key.
func TestPepper_RotationRehashesToTheNewPrimary(t *testing.T) {
	t.Parallel()
	pp := newTestPepper(7)
	h := newPepperedTestHasher(t, pp)
	old := mustHash(t, h, pepperedPW)
	pp.rotate(8)
	ok, rehash, err := h.Verify(context.Background(), pepperedPW, old)
	if !ok || !rehash || err != nil {
		t.Fatalf("old key after rotation: %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	if id, _ := PepperKeyID(mustHash(t, h, pepperedPW)); id != 8 {
		t.Errorf("new hash under key %d, want 8", id)
	}
}

// DummyVerify does the pepper's work too, so an unknown account costs what a known one does.
func TestPepper_DummyVerifyUsesThePepper(t *testing.T) {
	t.Parallel()
	pp := newTestPepper(7)
	h := newPepperedTestHasher(t, pp)
	pp.calls = 0
	if err := h.DummyVerify(context.Background(), pepperedPW); err != nil {
		t.Fatal(err)
	}
	if pp.calls != 1 {
		t.Errorf("DummyVerify called the pepper %d times, want 1 (as Verify does)", pp.calls)
	}
}

func TestPepper_ErrorsNeverContainThePassword(t *testing.T) {
	t.Parallel()
	h := newPepperedTestHasher(t, newTestPepper(7))
	enc := strings.Replace(mustHash(t, h, pepperedPW), ",pepper=7$", ",pepper=9$", 1)
	_, _, err := h.Verify(context.Background(), pepperedPW, enc)
	if err == nil || strings.Contains(err.Error(), pepperedPW) {
		t.Fatalf("err = %v", err)
	}
}

func TestHasher_Outdated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pp := newTestPepper(7)
	h := newPepperedTestHasher(t, pp)
	current := mustHash(t, h, pepperedPW)
	if h.Outdated(ctx, current) {
		t.Error("a fresh hash is outdated")
	}
	for name, enc := range map[string]string{
		"no pepper": mustHash(t, newTestHasher(t, testParams), pepperedPW),
		"bcrypt":    bcryptHash(t, pepperedPW),
		"garbage":   "garbage",
	} {
		if !h.Outdated(ctx, enc) {
			t.Errorf("%s: not outdated", name)
		}
	}
	pp.rotate(8)
	if !h.Outdated(ctx, current) {
		t.Error("hash under the old pepper key not outdated after rotation")
	}
}

// A pepper that cannot answer (the KMS is down) is an outage, EUNAVAILABLE, so sign-in answers
// 503 without counting a failure; an unknown key is not an outage but a hash that cannot verify.
func TestPepper_OutageIsUnavailableNotAWrongPassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pp := newTestPepper(7)
	h := newPepperedTestHasher(t, pp)
	enc := mustHash(t, h, pepperedPW)
	pp.mu.Lock()
	pp.down = true
	pp.mu.Unlock()
	ok, _, err := h.Verify(ctx, pepperedPW, enc)
	if ok || tutela.ErrorCode(err) != tutela.EUNAVAILABLE || !errors.Is(err, ErrPepperUnavailable) {
		t.Errorf("Verify during an outage: %v, %v; want EUNAVAILABLE", ok, err)
	}
	if _, err := h.Hash(ctx, pepperedPW); tutela.ErrorCode(err) != tutela.EUNAVAILABLE {
		t.Errorf("Hash during an outage: %v", err)
	}
	if err := h.DummyVerify(ctx, pepperedPW); tutela.ErrorCode(err) != tutela.EUNAVAILABLE {
		t.Errorf("DummyVerify during an outage: %v", err)
	}
	pp.mu.Lock()
	pp.down = false
	pp.mu.Unlock()
	unknown := strings.Replace(enc, ",pepper=7$", ",pepper=9$", 1)
	if _, _, err := h.Verify(ctx, pepperedPW, unknown); tutela.ErrorCode(err) == tutela.EUNAVAILABLE || !errors.Is(err, ErrUnknownPepperKey) {
		t.Errorf("unknown key: %v; want a failed hash, not an outage", err)
	}
}

func TestNewPepperedHasher_NeedsAPepper(t *testing.T) {
	t.Parallel()
	if _, err := NewPepperedHasher(testParams, nil, 1, 0); err == nil {
		t.Fatal("NewPepperedHasher(nil) succeeded")
	}
}

// The login path's cost with and without the pepper: one HMAC next to argon2id, so the two
// should be within noise of each other (compare with BenchmarkVerifyArgon2id).
func BenchmarkVerifyArgon2idPeppered(b *testing.B) {
	h, err := NewPepperedHasher(DefaultParams(), newTestPepper(7), 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	enc := mustHash(b, h, "correct horse battery staple")
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify(ctx, "correct horse battery staple", enc); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
