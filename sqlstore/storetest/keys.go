package storetest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/sqlstore"
	"tutela/vault"
)

// KeyTests is the keys part of the conformance suite: wrapped keysets per (tenant, purpose),
// context binding, rotation, rewrap and retirement, crypto-shredding, KEK checks and auditing.
var KeyTests = []Test{
	{"KeysWrongKEKFailsBeforeWriting", testKeysWrongKEK},
	{"KeysCiphertextBoundToContext", testKeysContextBinding},
	{"KeysRotateRewrapRetire", testKeysRotateRewrapRetire},
	{"KeysTenantDestroyShredsOnlyThatTenant", testKeysDestroy},
	{"KeysKEKRotationRewrapsKeysetsOnly", testKeysKEKRotation},
	{"KeysConcurrentCreateOneKeyset", testKeysConcurrentCreate},
	{"KeysOperationsAudited", testKeysAudited},
	{"KeysViewHoldsNoMaterial", testKeysView},
	{"KeysPRFKeysetStoredAndRotated", testKeysPRF},
	{"KeysPepperedHashesListedAcrossTenants", testKeysPepperedHashes},
}

func newKEK(t *testing.T) *vault.LocalKEK {
	t.Helper()
	k := make([]byte, vault.MasterKeySize)
	rand.Read(k)
	kek, err := vault.NewLocalKEK(tutela.NewSecretBytes(k))
	if err != nil {
		t.Fatal(err)
	}
	return kek
}

func newVault(t *testing.T, db *sqlstore.DB, kek vault.KEK) *vault.Vault {
	return newVaultAt(t, db, kek, nil)
}

// newVaultAt is newVault reading clock (nil: the system clock), for tests that rewrap or retire
// after a rotation: they move the clock past the cache TTL with settle.
func newVaultAt(t *testing.T, db *sqlstore.DB, kek vault.KEK, clock tutela.Clock) *vault.Vault {
	t.Helper()
	v, err := vault.New(ctx, kek, sqlstore.KeysetStore{DB: db}, vault.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// settle moves clock past v's cache TTL plus the margin: every node has reloaded a rotation
// made before, so rewrap and retire are allowed.
func settle(clock *fakeClock, v *vault.Vault) { clock.Add(v.CacheTTL() + vault.RotationSettleMargin) }

func countRows(t *testing.T, db *sqlstore.DB, table string) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func testKeysWrongKEK(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	v := newVault(t, db, newKEK(t))
	if _, err := v.Encrypt(ctx, tn.ID, vault.PurposeTOTP, []byte("seed"), nil); err != nil {
		t.Fatal(err)
	}
	keysets, events := countRows(t, db, "keysets"), countRows(t, db, "audit_events")
	_, err := vault.New(ctx, newKEK(t), sqlstore.KeysetStore{DB: db}, vault.Options{})
	if !errors.Is(err, vault.ErrWrongKEK) {
		t.Fatalf("New with wrong KEK: err = %v, want ErrWrongKEK", err)
	}
	if !strings.Contains(err.Error(), vault.PurposeTOTP) || !strings.Contains(err.Error(), "local:") {
		t.Errorf("error does not say which keyset and KEK: %v", err)
	}
	if k, e := countRows(t, db, "keysets"), countRows(t, db, "audit_events"); k != keysets || e != events {
		t.Fatalf("wrong KEK wrote something: keysets %d→%d, events %d→%d", keysets, k, events, e)
	}
}

func testKeysContextBinding(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b := createTenant(t, db, "a"), createTenant(t, db, "b")
	v := newVault(t, db, newKEK(t))
	aad := vault.AAD("users", "phone", "row-1")
	ct, err := v.Encrypt(ctx, a.ID, vault.PurposePersonalData, []byte("+41 79 000 00 00"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.Decrypt(ctx, a.ID, vault.PurposePersonalData, ct, aad); err != nil || string(got) != "+41 79 000 00 00" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	if _, err := v.Encrypt(ctx, b.ID, vault.PurposePersonalData, []byte("x"), aad); err != nil {
		t.Fatal(err)
	}
	moved := []struct {
		name, tenant, purpose string
		aad                   []byte
	}{
		{"another row", a.ID, vault.PurposePersonalData, vault.AAD("users", "phone", "row-2")},
		{"another column", a.ID, vault.PurposePersonalData, vault.AAD("users", "email", "row-1")},
		{"another table", a.ID, vault.PurposePersonalData, vault.AAD("contacts", "phone", "row-1")},
		{"another tenant", b.ID, vault.PurposePersonalData, aad},
		{"another purpose", a.ID, vault.PurposeTOTP, aad},
		{"platform", "", vault.PurposePersonalData, aad},
	}
	for _, m := range moved {
		if got, err := v.Decrypt(ctx, m.tenant, m.purpose, ct, m.aad); !errors.Is(err, vault.ErrDecrypt) || got != nil {
			t.Errorf("%s: Decrypt = %q, %v; want ErrDecrypt", m.name, got, err)
		}
	}
	for i := range ct {
		c := bytes.Clone(ct)
		c[i] ^= 0x01
		if _, err := v.Decrypt(ctx, a.ID, vault.PurposePersonalData, c, aad); !errors.Is(err, vault.ErrDecrypt) {
			t.Fatalf("flipped byte %d accepted: %v", i, err)
		}
	}
	// A wrapped keyset copied to another tenant's row does not unwrap there.
	if _, err := db.SQL().ExecContext(ctx, `UPDATE keysets SET wrapped = (SELECT wrapped FROM keysets WHERE tenant_id = $1)
		WHERE tenant_id = $2`, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	v.Invalidate()
	if got, err := v.Decrypt(ctx, b.ID, vault.PurposePersonalData, ct, aad); !errors.Is(err, vault.ErrWrongKEK) || got != nil {
		t.Fatalf("decrypt with a copied keyset: %q, %v; want ErrWrongKEK", got, err)
	}
	if err := v.Check(ctx); !errors.Is(err, vault.ErrWrongKEK) {
		t.Fatalf("Check accepted a keyset copied to another tenant: %v", err)
	}
}

func addSigningKeys(t *testing.T, db *sqlstore.DB, s vault.Sealer, n int, prefix string) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	for i := range n {
		id := prefix + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		secret := make([]byte, 32)
		rand.Read(secret)
		ct, err := s.Seal(secret, []byte("signing_key:"+id+":EdDSA"))
		if err != nil {
			t.Fatal(err)
		}
		update(t, db, func(tx *sqlstore.Tx) error {
			return tx.AddSigningKey(ctx, sqlstore.SigningKeyRow{ID: id, Alg: "EdDSA", PublicJWK: []byte("{}"),
				SealedPrivate: ct, CreatedAt: tx.Now(), ActivateAt: tx.Now()})
		})
		want[id] = secret
	}
	return want
}

func checkSigningKeys(t *testing.T, db *sqlstore.DB, s vault.Sealer, want map[string][]byte) {
	t.Helper()
	var rows []sqlstore.SigningKeyRow
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { rows, err = tx.SigningKeys(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		got, err := s.Open(r.SealedPrivate, []byte("signing_key:"+r.ID+":"+r.Alg))
		if err != nil || !bytes.Equal(got, want[r.ID]) {
			t.Fatalf("signing key %s after rewrap: %v", r.ID, err)
		}
	}
}

func testKeysRotateRewrapRetire(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	master := make([]byte, vault.MasterKeySize)
	rand.Read(master)
	legacy, _ := vault.NewLocalSealer(tutela.NewSecretBytes(master))
	clock := clocktest.New(time.Now().UTC())
	v := newVaultAt(t, db, newKEK(t), clock.Now)
	s := &vault.VaultSealer{Vault: v, Purpose: vault.PurposeSigningKeys, Legacy: legacy}
	// Rows sealed before the vault (interim LocalSealer) and under the first vault key.
	want := addSigningKeys(t, db, legacy, 7, "l")
	for id, pt := range addSigningKeys(t, db, s, 30, "v") {
		want[id] = pt
	}
	var old [][]byte
	_ = db.View(ctx, func(tx *sqlstore.Tx) error {
		rows, _ := tx.SigningKeys(ctx)
		for _, r := range rows {
			old = append(old, r.SealedPrivate)
		}
		return nil
	})
	ks, err := v.Rotate(ctx, "", vault.PurposeSigningKeys)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.Keys) != 2 {
		t.Fatalf("after rotate: %d keys", len(ks.Keys))
	}
	src := sqlstore.SigningKeysSource(db)
	if _, err := v.Rewrap(ctx, src, vault.RewrapOptions{Legacy: legacy}); !errors.Is(err, vault.ErrRotationUnsettled) {
		t.Fatalf("rewrap right after the rotation: %v, want ErrRotationUnsettled", err)
	}
	settle(clock, v)
	if n, err := v.Outdated(ctx, src, "", vault.PurposeSigningKeys); err != nil || n != 37 {
		t.Fatalf("Outdated = %d, %v; want 37", n, err)
	}
	// Interrupted after the first batch, then resumed: nothing is done twice or missed.
	var batches []vault.RewrapProgress
	p, err := v.Rewrap(ctx, src, vault.RewrapOptions{BatchSize: 10, Legacy: legacy,
		Progress: func(p vault.RewrapProgress) { batches = append(batches, p) }})
	if err != nil || p.Rewrapped != 37 || p.Seen != 37 || len(batches) != 4 {
		t.Fatalf("rewrap: %+v, %v (%d batches)", p, err, len(batches))
	}
	p, err = v.Rewrap(ctx, src, vault.RewrapOptions{BatchSize: 10, Legacy: legacy})
	if err != nil || p.Rewrapped != 0 {
		t.Fatalf("second rewrap rewrote %d rows, %v; want 0", p.Rewrapped, err)
	}
	if n, _ := v.Outdated(ctx, src, "", vault.PurposeSigningKeys); n != 0 {
		t.Fatalf("Outdated after rewrap = %d", n)
	}
	if _, err := v.Retire(ctx, "", vault.PurposeSigningKeys); err != nil {
		t.Fatal(err)
	}
	noLegacy := &vault.VaultSealer{Vault: v, Purpose: vault.PurposeSigningKeys}
	checkSigningKeys(t, db, noLegacy, want)
	ks, _ = sqlstore.KeysetStore{DB: db}.GetKeyset(ctx, "", vault.PurposeSigningKeys)
	if len(ks.Keys) != 1 || !ks.Keys[0].Primary {
		t.Fatalf("after retire: keys %+v", ks.Keys)
	}
	// A ciphertext kept from before the rotation (say in a stale copy) no longer opens.
	for _, ct := range old {
		if vault.KeyID(ct) == 0 {
			continue
		}
		v.Invalidate()
		if _, err := v.Decrypt(ctx, "", vault.PurposeSigningKeys, ct, nil); !errors.Is(err, vault.ErrDecrypt) {
			t.Fatalf("old ciphertext still opens after retire: %v", err)
		}
		rows := 0
		_ = db.View(ctx, func(tx *sqlstore.Tx) error {
			rs, _ := tx.SigningKeys(ctx)
			for _, r := range rs {
				if bytes.Equal(r.SealedPrivate, ct) {
					rows++
				}
			}
			return nil
		})
		if rows != 0 {
			t.Fatal("an old ciphertext is still stored after rewrap")
		}
	}
}

func testKeysDestroy(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b := createTenant(t, db, "a"), createTenant(t, db, "b")
	v := newVault(t, db, newKEK(t))
	aad := vault.AAD("people", "name", "1")
	cta, _ := v.Encrypt(ctx, a.ID, vault.PurposePersonalData, []byte("Ada"), aad)
	ctb, _ := v.Encrypt(ctx, b.ID, vault.PurposePersonalData, []byte("Bo"), aad)
	if err := v.Destroy(ctx, a.ID, vault.PurposePersonalData); err != nil {
		t.Fatal(err)
	}
	v.Invalidate()
	if _, err := v.Decrypt(ctx, a.ID, vault.PurposePersonalData, cta, aad); !errors.Is(err, vault.ErrDecrypt) {
		t.Fatalf("destroyed tenant's data still decrypts: %v", err)
	}
	if got, err := v.Decrypt(ctx, b.ID, vault.PurposePersonalData, ctb, aad); err != nil || string(got) != "Bo" {
		t.Fatalf("other tenant's data: %q, %v", got, err)
	}
}

func testKeysKEKRotation(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "a")
	oldKEK, newK := newKEK(t), newKEK(t)
	v := newVault(t, db, oldKEK)
	aad := vault.AAD("t", "c", "1")
	ct, _ := v.Encrypt(ctx, tn.ID, vault.PurposeTOTP, []byte("seed"), aad)
	ct2, _ := v.Encrypt(ctx, "", vault.PurposeSigningKeys, []byte("sk"), aad)
	store := sqlstore.KeysetStore{DB: db}
	n, err := vault.RewrapKEK(ctx, store, oldKEK, newK)
	if err != nil || n != 2 {
		t.Fatalf("RewrapKEK = %d, %v", n, err)
	}
	if n, err := vault.RewrapKEK(ctx, store, oldKEK, newK); err != nil || n != 0 {
		t.Fatalf("second RewrapKEK = %d, %v; want 0 (resumable)", n, err)
	}
	if _, err := vault.New(ctx, oldKEK, sqlstore.KeysetStore{DB: db}, vault.Options{}); !errors.Is(err, vault.ErrWrongKEK) {
		t.Fatalf("old KEK still unwraps: %v", err)
	}
	v3 := newVault(t, db, newK)
	if got, err := v3.Decrypt(ctx, tn.ID, vault.PurposeTOTP, ct, aad); err != nil || string(got) != "seed" {
		t.Fatalf("data after KEK rotation: %q, %v", got, err)
	}
	if got, err := v3.Decrypt(ctx, "", vault.PurposeSigningKeys, ct2, aad); err != nil || string(got) != "sk" {
		t.Fatalf("platform data after KEK rotation: %q, %v", got, err)
	}
}

func testKeysConcurrentCreate(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "a")
	kek := newKEK(t)
	errs := make(chan error, 8)
	cts := make(chan []byte, 8)
	for range 8 {
		go func() {
			v, err := vault.New(ctx, kek, sqlstore.KeysetStore{DB: db}, vault.Options{})
			if err != nil {
				errs <- err
				return
			}
			ct, err := v.Encrypt(ctx, tn.ID, vault.PurposeTOTP, []byte("s"), nil)
			cts <- ct
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(cts)
	if n := countRows(t, db, "keysets"); n != 1 {
		t.Fatalf("%d keysets for one (tenant, purpose)", n)
	}
	v := newVault(t, db, kek)
	for ct := range cts {
		if _, err := v.Decrypt(ctx, tn.ID, vault.PurposeTOTP, ct, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func testKeysAudited(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "a")
	kek := newKEK(t)
	clock := clocktest.New(time.Now().UTC())
	v := newVaultAt(t, db, kek, clock.Now)
	steps := []struct {
		action string
		fn     func() error
	}{
		{"key.keyset_create", func() error { _, err := v.Encrypt(ctx, tn.ID, vault.PurposeTOTP, nil, nil); return err }},
		{"key.rotate", func() error { _, err := v.Rotate(ctx, tn.ID, vault.PurposeTOTP); return err }},
		{"key.retire", func() error { settle(clock, v); _, err := v.Retire(ctx, tn.ID, vault.PurposeTOTP); return err }},
		{"key.kek_rewrap", func() error {
			next := newKEK(t)
			if _, err := vault.RewrapKEK(ctx, sqlstore.KeysetStore{DB: db}, kek, next); err != nil {
				return err
			}
			v = newVault(t, db, next) // the keysets are now wrapped by the new KEK
			return nil
		}},
		{"key.destroy", func() error { return v.Destroy(ctx, tn.ID, vault.PurposeTOTP) }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			t.Fatalf("%s: %v", s.action, err)
		}
		recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Action: s.action, TenantID: tn.ID})
		if err != nil || len(recs) != 1 {
			t.Fatalf("%s: %d audit events, %v", s.action, len(recs), err)
		}
		if recs[0].Event.TargetType != "keyset" || recs[0].Event.Details["purpose"] != vault.PurposeTOTP {
			t.Errorf("%s: event %+v", s.action, recs[0].Event)
		}
	}
}

func testKeysView(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "a")
	v := newVault(t, db, newKEK(t))
	v.Encrypt(ctx, tn.ID, vault.PurposePersonalData, []byte("x"), nil)
	v.Encrypt(ctx, "", vault.PurposeLookup, []byte("x"), nil)
	v.Rotate(ctx, tn.ID, vault.PurposePersonalData)
	views, err := v.Keys(ctx)
	if err != nil || len(views) != 2 {
		t.Fatalf("Keys = %d, %v", len(views), err)
	}
	for _, kv := range views {
		if kv.KEKURI != "local:" || kv.KeysetID == "" || kv.CreatedAt.IsZero() || len(kv.Keys) == 0 {
			t.Errorf("view %+v", kv)
		}
		if kv.Purpose == vault.PurposePersonalData && (len(kv.Keys) != 2 || kv.RotatedAt.IsZero() ||
			time.Since(kv.RotatedAt) > time.Hour) {
			t.Errorf("rotated keyset view %+v", kv)
		}
	}
	if views[0].TenantID != "" || views[0].Kind != vault.KindDeterministic {
		t.Errorf("platform keyset first, deterministic: %+v", views[0])
	}
}

// A PRF keyset (the password pepper) is stored as kind "prf", survives a restart (a new Vault
// over the same store unwraps it and computes the same values) and rotates like the others.
func testKeysPRF(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	kek := newKEK(t)
	v := newVault(t, db, kek)
	pp := vault.PasswordPepper{Vault: v}
	id, err := pp.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pp.Pepper(ctx, id, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	var kind string
	if err := db.SQL().QueryRowContext(ctx, "SELECT kind FROM keysets WHERE purpose = $1", vault.PurposePasswordPepper).Scan(&kind); err != nil || kind != vault.KindPRF {
		t.Fatalf("stored kind %q, %v; want prf", kind, err)
	}
	if _, err := v.Rotate(ctx, "", vault.PurposePasswordPepper); err != nil {
		t.Fatal(err)
	}
	restarted := vault.PasswordPepper{Vault: newVault(t, db, kek)}
	if got, err := restarted.Pepper(ctx, id, []byte("pw")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after restart and rotation: %v", err)
	}
	if id2, _ := restarted.PrimaryKeyID(ctx); id2 == id {
		t.Fatal("rotation did not change the primary")
	}
}

// EachPepperedHash sees every tenant's current and previous hashes that name a pepper key, and
// only those.
func testKeysPepperedHashes(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b := createTenant(t, db, "a"), createTenant(t, db, "b")
	ua, ub := createUser(t, db, a.ID, "x@example.org"), createUser(t, db, b.ID, "y@example.org")
	const p1, p2, p3 = "$argon2id$v=19$m=64,t=1,p=1,pepper=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1,pepper=2$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1,pepper=3$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	const plain = "$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	update(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.Users(a.ID).SetPasswordHash(ctx, ua.ID, p1); err != nil {
			return err
		}
		if err := tx.Users(a.ID).AddPasswordHistory(ctx, ua.ID, plain, 5); err != nil {
			return err
		}
		if err := tx.Users(b.ID).SetPasswordHash(ctx, ub.ID, plain); err != nil {
			return err
		}
		if err := tx.Users(b.ID).AddPasswordHistory(ctx, ub.ID, p2, 5); err != nil {
			return err
		}
		return tx.Users(b.ID).AddPasswordHistory(ctx, ub.ID, p3, 5)
	})
	got := map[string]bool{}
	if err := db.EachPepperedHash(ctx, func(h string) error { got[h] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[p1] || !got[p2] || !got[p3] {
		t.Fatalf("EachPepperedHash saw %v; want the three peppered hashes of both tenants", got)
	}
}
