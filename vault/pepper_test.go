package vault

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/password"
)

var _ password.Pepper = PasswordPepper{}

func newPepperVault(t testing.TB) (*Vault, *memStore) {
	return newPepperVaultAt(t, nil)
}

// newPepperVaultAt is newPepperVault reading clock (nil: the system clock).
func newPepperVaultAt(t testing.TB, clock tutela.Clock) (*Vault, *memStore) {
	t.Helper()
	kek, err := NewLocalKEK(randomMaster(t))
	if err != nil {
		t.Fatal(err)
	}
	st := newMemStore()
	v, err := New(context.Background(), kek, st, Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return v, st
}

func TestPasswordPepper_KeyedStableAndRotates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	v, st := newPepperVaultAt(t, clock.Now)
	pp := PasswordPepper{Vault: v}
	id, err := pp.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := st.GetKeyset(ctx, "", PurposePasswordPepper)
	if err != nil || ks.Kind != KindPRF {
		t.Fatalf("pepper keyset: %+v, %v; want kind prf", ks, err)
	}
	a, err := pp.Pepper(ctx, id, []byte("pw"))
	if err != nil || len(a) != 32 {
		t.Fatalf("Pepper = %x, %v", a, err)
	}
	if b, _ := pp.Pepper(ctx, id, []byte("pw")); !bytes.Equal(a, b) {
		t.Fatal("pepper not deterministic")
	}
	if b, _ := pp.Pepper(ctx, id, []byte("pw2")); bytes.Equal(a, b) {
		t.Fatal("different passwords, same pepper")
	}
	// The key material is only in the wrapped keyset: nothing stored holds the output.
	if bytes.Contains(ks.Wrapped, a) {
		t.Fatal("pepper output found in the stored keyset")
	}
	// Another deployment (another keyset) gives unrelated output.
	other, _ := newPepperVault(t)
	oid, _ := PasswordPepper{Vault: other}.Create(ctx)
	if b, _ := (PasswordPepper{Vault: other}).Pepper(ctx, oid, []byte("pw")); bytes.Equal(a, b) {
		t.Fatal("two keysets give the same pepper")
	}

	if _, err := v.Rotate(ctx, "", PurposePasswordPepper); err != nil {
		t.Fatal(err)
	}
	id2, _ := pp.PrimaryKeyID(ctx)
	if id2 == id {
		t.Fatal("rotation kept the primary")
	}
	if b, err := pp.Pepper(ctx, id, []byte("pw")); err != nil || !bytes.Equal(a, b) {
		t.Fatalf("old key after rotation: %v", err)
	}
	clock.Add(v.ttl + RotationSettleMargin) // every node has reloaded the keyset
	if _, err := v.Retire(ctx, "", PurposePasswordPepper); err != nil {
		t.Fatal(err)
	}
	if _, err := pp.Pepper(ctx, id, []byte("pw")); !errors.Is(err, ErrUnknownKey) || !errors.Is(err, password.ErrUnknownPepperKey) {
		t.Fatalf("retired key: err = %v, want ErrUnknownKey as password.ErrUnknownPepperKey", err)
	}
	if _, err := pp.Pepper(ctx, ^id2, []byte("pw")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: err = %v, want ErrUnknownKey", err)
	}
}

// A key rotated in by another node (another Vault over the same store) is found without waiting
// for the cache to expire.
func TestPasswordPepper_PicksUpKeyRotatedElsewhere(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kek, _ := NewLocalKEK(randomMaster(t))
	st := newMemStore()
	v1, _ := New(ctx, kek, st, Options{})
	v2, _ := New(ctx, kek, st, Options{})
	if _, err := (PasswordPepper{Vault: v1}).Create(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := (PasswordPepper{Vault: v2}).PrimaryKeyID(ctx); err != nil { // v2 caches the keyset
		t.Fatal(err)
	}
	ks, err := v1.Rotate(ctx, "", PurposePasswordPepper)
	if err != nil {
		t.Fatal(err)
	}
	var newID uint32
	for _, k := range ks.Keys {
		if k.Primary {
			newID = k.ID
		}
	}
	want, _ := PasswordPepper{Vault: v1}.Pepper(ctx, newID, []byte("pw"))
	if got, err := (PasswordPepper{Vault: v2}).Pepper(ctx, newID, []byte("pw")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("other node: %v", err)
	}
}

// The pepper keyset is created only on purpose (Create, at first start): the hasher's calls never
// create it, so a lost keyset cannot be silently replaced by a new one at sign-in, under which
// every stored hash would fail. Hash and Verify fail with an internal error instead.
func TestPasswordPepper_MissingKeysetNeverCreatedByHasher(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	v, st := newPepperVault(t)
	pp := PasswordPepper{Vault: v}
	if _, err := pp.PrimaryKeyID(ctx); !errors.Is(err, ErrNoKeyset) || !errors.Is(err, password.ErrUnknownPepperKey) {
		t.Fatalf("PrimaryKeyID without a keyset: %v, want ErrNoKeyset as password.ErrUnknownPepperKey", err)
	}
	h, err := password.NewPepperedHasher(password.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, pp, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	const stored = "$argon2id$v=19$m=64,t=1,p=1,pepper=12345$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if _, err := h.Hash(ctx, "violet otter mapleknot"); tutela.ErrorCode(err) != tutela.EINTERNAL ||
		!errors.Is(err, password.ErrPepperUnavailable) {
		t.Errorf("Hash without a keyset: %v, want internal ErrPepperUnavailable", err)
	}
	if ok, _, err := h.Verify(ctx, "violet otter mapleknot", stored); ok || tutela.ErrorCode(err) != tutela.EINTERNAL ||
		!errors.Is(err, password.ErrPepperUnavailable) {
		t.Errorf("Verify without a keyset: %v %v, want internal ErrPepperUnavailable", ok, err)
	}
	if err := h.DummyVerify(ctx, "violet otter mapleknot"); !errors.Is(err, password.ErrPepperUnavailable) {
		t.Errorf("DummyVerify without a keyset: %v", err)
	}
	if _, err := st.GetKeyset(ctx, "", PurposePasswordPepper); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Fatalf("the hasher created the pepper keyset: %v", err)
	}
	id, err := pp.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := pp.PrimaryKeyID(ctx); err != nil || got != id {
		t.Fatalf("after Create: %d %v, want %d", got, err, id)
	}
}

// PRF keysets never encrypt, and encryption keysets never act as a PRF.
func TestVault_KindsDoNotMix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	v, _ := newPepperVault(t)
	if _, err := v.PRFPrimaryKey(ctx, "", PurposePasswordPepper); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Encrypt(ctx, "", PurposePasswordPepper, []byte("x"), nil); !errors.Is(err, ErrWrongKind) {
		t.Errorf("Encrypt under the pepper: %v, want ErrWrongKind", err)
	}
	if _, err := v.Decrypt(ctx, "", PurposePasswordPepper, []byte("\x01\x00\x00\x00\x01xxxxxxxx"), nil); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Decrypt under the pepper: %v, want ErrDecrypt", err)
	}
	ct, err := v.Encrypt(ctx, "", PurposeTOTP, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.PRF(ctx, "", PurposeTOTP, KeyID(ct), []byte("x"), 32); !errors.Is(err, ErrWrongKind) {
		t.Errorf("PRF under an AEAD keyset: %v, want ErrWrongKind", err)
	}
	if _, err := v.PRFPrimaryKey(ctx, "", PurposeTOTP); !errors.Is(err, ErrWrongKind) {
		t.Errorf("PRFPrimaryKey of an AEAD keyset: %v, want ErrWrongKind", err)
	}
	if kv := ViewOf(&Keyset{Kind: KindPRF}); kv.Algorithm != "HMAC-SHA256 (PRF)" {
		t.Errorf("view algorithm %q", kv.Algorithm)
	}
}

// With a vault pepper, the password hasher's whole cycle works: hash, verify, rotate, rehash.
func TestPasswordPepper_WithHasher(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	v, _ := newPepperVault(t)
	if _, err := (PasswordPepper{Vault: v}).Create(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := password.NewPepperedHasher(password.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16},
		PasswordPepper{Vault: v}, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := h.Hash(ctx, "violet otter mapleknot")
	if err != nil {
		t.Fatal(err)
	}
	if ok, rehash, err := h.Verify(ctx, "violet otter mapleknot", enc); !ok || rehash || err != nil {
		t.Fatalf("Verify = %v %v %v", ok, rehash, err)
	}
	if _, err := v.Rotate(ctx, "", PurposePasswordPepper); err != nil {
		t.Fatal(err)
	}
	if ok, rehash, err := h.Verify(ctx, "violet otter mapleknot", enc); !ok || !rehash || err != nil {
		t.Fatalf("after rotation: Verify = %v %v %v; want a rehash", ok, rehash, err)
	}
}

func BenchmarkPasswordPepper(b *testing.B) {
	ctx := context.Background()
	v, _ := newPepperVault(b)
	pp := PasswordPepper{Vault: v}
	id, err := pp.Create(ctx)
	if err != nil {
		b.Fatal(err)
	}
	pw := []byte("correct horse battery staple")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pp.Pepper(ctx, id, pw); err != nil {
			b.Fatal(err)
		}
	}
}
