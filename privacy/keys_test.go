package privacy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/privacy"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

var ctx = context.Background()

// newVault is a real vault over a migrated SQLite store with a local KEK, and two tenants.
func newVault(t testing.TB) (*vault.Vault, *tutela.Tenant, *tutela.Tenant) {
	t.Helper()
	return newVaultAt(t, nil)
}

// newVaultAt is newVault with a vault reading clock (nil: the system clock).
func newVaultAt(t testing.TB, clock tutela.Clock) (*vault.Vault, *tutela.Tenant, *tutela.Tenant) {
	t.Helper()
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{})
	k := make([]byte, vault.MasterKeySize)
	rand.Read(k)
	kek, err := vault.NewLocalKEK(tutela.NewSecretBytes(k))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(ctx, kek, sqlstore.KeysetStore{DB: db}, vault.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	var tenants []*tutela.Tenant
	for _, slug := range []string{"acme", "other"} {
		tn := &tutela.Tenant{Slug: slug, Name: slug, Region: "eu-west"}
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) }); err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, tn)
	}
	return v, tenants[0], tenants[1]
}

func TestPersonKey_RoundTripAndBinding(t *testing.T) {
	v, a, b := newVault(t)
	keys := privacy.Keys{Vault: v}
	alice, bob := tutela.NewID(), tutela.NewID()
	pk, wrapped, err := keys.New(ctx, a.ID, alice)
	if err != nil {
		t.Fatal(err)
	}
	if pk.PersonID() != alice || bytes.Contains([]byte(pk.String()+pk.GoString()), wrapped) {
		t.Fatal("person key identity or redaction wrong")
	}
	ct, err := pk.Seal("phone", []byte("+41 79 123 45 67"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := keys.Open(ctx, a.ID, alice, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := again.Open("phone", ct); err != nil || string(pt) != "+41 79 123 45 67" {
		t.Fatalf("round trip = %q, %v", pt, err)
	}
	// Another field of the same person.
	if _, err := again.Open("full_name", ct); !errors.Is(err, privacy.ErrDecrypt) {
		t.Errorf("other field: %v, want ErrDecrypt", err)
	}
	// Tampered.
	bad := bytes.Clone(ct)
	bad[len(bad)-1] ^= 1
	if _, err := again.Open("phone", bad); !errors.Is(err, privacy.ErrDecrypt) {
		t.Errorf("tampered: %v, want ErrDecrypt", err)
	}
	// Another person: their own key does not open it, and alice's wrapped key does not unwrap
	// as bob's.
	bpk, _, err := keys.New(ctx, a.ID, bob)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bpk.Open("phone", ct); !errors.Is(err, privacy.ErrDecrypt) {
		t.Errorf("other person: %v, want ErrDecrypt", err)
	}
	if _, err := keys.Open(ctx, a.ID, bob, wrapped); err == nil {
		t.Error("alice's wrapped key opened as bob's")
	}
	// Another tenant: the wrapped key does not unwrap there.
	if _, err := keys.Open(ctx, b.ID, alice, wrapped); err == nil {
		t.Error("alice's wrapped key opened in another tenant")
	}
	// Erased: no wrapped key.
	if _, err := keys.Open(ctx, a.ID, alice, nil); !errors.Is(err, privacy.ErrErased) {
		t.Errorf("nil wrapped: %v, want ErrErased", err)
	}
}

func TestBlindIndex_DigestsPerFieldAndTenant(t *testing.T) {
	v, a, b := newVault(t)
	x := privacy.Index{Vault: v}
	// No keyset yet: a lookup finds nothing and creates nothing.
	if ds, err := x.Lookup(ctx, a.ID, "full_name", "ada"); err != nil || len(ds) != 0 {
		t.Fatalf("lookup before any write = %v, %v", ds, err)
	}
	d1, err := x.Digest(ctx, a.ID, "full_name", "ada")
	if err != nil {
		t.Fatal(err)
	}
	if len(d1.Sum) != 32 {
		t.Fatalf("digest length %d", len(d1.Sum))
	}
	same, _ := x.Digest(ctx, a.ID, "full_name", "ada")
	otherField, _ := x.Digest(ctx, a.ID, "alias", "ada")
	otherTenant, _ := x.Digest(ctx, b.ID, "full_name", "ada")
	otherValue, _ := x.Digest(ctx, a.ID, "full_name", "adb")
	// The length prefix keeps (field "ab", value "c") apart from (field "a", value "bc").
	split1, _ := x.Digest(ctx, a.ID, "ab", "c")
	split2, _ := x.Digest(ctx, a.ID, "a", "bc")
	if !bytes.Equal(d1.Sum, same.Sum) {
		t.Fatal("digest is not deterministic")
	}
	for name, d := range map[string]privacy.Digest{"field": otherField, "tenant": otherTenant, "value": otherValue} {
		if bytes.Equal(d1.Sum, d.Sum) {
			t.Errorf("another %s gives the same digest", name)
		}
	}
	if bytes.Equal(split1.Sum, split2.Sum) {
		t.Error("field/value boundary is ambiguous")
	}
}

func TestBlindIndex_LookupFindsAcrossRotation(t *testing.T) {
	clock := clocktest.New(time.Now().UTC())
	v, a, _ := newVaultAt(t, clock.Now)
	x := privacy.Index{Vault: v}
	old, err := x.Digest(ctx, a.ID, "phone", "+41791234567")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Rotate(ctx, a.ID, vault.PurposeBlindIndex); err != nil {
		t.Fatal(err)
	}
	cur, err := x.Digest(ctx, a.ID, "phone", "+41791234567")
	if err != nil {
		t.Fatal(err)
	}
	if cur.KeyID == old.KeyID || bytes.Equal(cur.Sum, old.Sum) {
		t.Fatal("rotation did not change the primary key")
	}
	ds, err := x.Lookup(ctx, a.ID, "phone", "+41791234567")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].KeyID != cur.KeyID || !bytes.Equal(ds[0].Sum, cur.Sum) {
		t.Fatalf("lookup = %+v, want the primary first", ds)
	}
	found := false
	for _, d := range ds {
		found = found || (d.KeyID == old.KeyID && bytes.Equal(d.Sum, old.Sum))
	}
	if !found {
		t.Fatal("lookup lost the digest written under the old key")
	}
	// Retired (once every node has reloaded the rotation): the old key's digests are no longer produced.
	clock.Add(v.CacheTTL() + vault.RotationSettleMargin)
	if _, err := v.Retire(ctx, a.ID, vault.PurposeBlindIndex); err != nil {
		t.Fatal(err)
	}
	ds, err = x.Lookup(ctx, a.ID, "phone", "+41791234567")
	if err != nil || len(ds) != 1 || ds[0].KeyID != cur.KeyID {
		t.Fatalf("after retire: %+v, %v", ds, err)
	}
}
