package identity

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"tutela"
	"tutela/identity/token"
	"tutela/password"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// pepperedService is a Service over SQLite whose hasher uses a vault pepper (keyset created as
// at first start), with tenant "acme" and a user whose stored hash is hash(h), h the hasher.
func pepperedService(t *testing.T, hash func(h *password.Hasher) string) (*Service, *sqlstore.DB, *vault.Vault, *tutela.Tenant, *tutela.User) {
	t.Helper()
	ctx := context.Background()
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{})
	kek, err := vault.NewLocalKEK(tutela.NewSecretBytes(bytes.Repeat([]byte{9}, vault.MasterKeySize)))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(ctx, kek, sqlstore.KeysetStore{DB: db}, vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.SetVault(v)
	if _, err := (vault.PasswordPepper{Vault: v}).Create(ctx); err != nil {
		t.Fatal(err)
	}
	p := password.DefaultParams()
	p.Memory, p.Time = 64, 1
	h, err := password.NewPepperedHasher(p, vault.PasswordPepper{Vault: v}, 2, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := vault.NewLocalSealer(tutela.NewSecretBytes(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := token.NewRing(ctx, token.Config{Issuer: "https://tutela.test", Audience: []string{"tutela"}},
		&token.MemKeyStore{}, sealer)
	if err != nil {
		t.Fatal(err)
	}
	policy := password.DefaultPolicy()
	policy.History = 5
	s := New(Deps{DB: db, Hasher: h, Policy: policy, Tokens: ring}, Config{})

	tn := &tutela.Tenant{Slug: "acme", Name: "acme", Region: "eu"}
	u := &tutela.User{Email: "ana@example.org"}
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
			return err
		}
		return tx.Users(tn.ID).SetPasswordHash(ctx, u.ID, hash(h))
	}); err != nil {
		t.Fatal(err)
	}
	return s, db, v, tn, u
}

// With the pepper on and the history rule on, a user whose stored hash predates the pepper
// (here an imported bcrypt hash) signs in and has it replaced by a peppered one; changing the
// password then stores the old one in the history peppered too, not as the legacy hash, and the
// peppered history entry still bars reusing it.
func TestPepper_LoginUpgradesAndHistoryEntryIsPeppered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	legacy, _ := bcrypt.GenerateFromPassword([]byte(rightPassword), bcrypt.MinCost)
	s, db, _, tn, u := pepperedService(t, func(*password.Hasher) string { return string(legacy) })
	stored := func() (current string, history []string) {
		t.Helper()
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
			if current, _, err = tx.Users(tn.ID).PasswordHash(ctx, u.ID); err != nil {
				return err
			}
			history, err = tx.Users(tn.ID).PasswordHistory(ctx, u.ID, 5)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return current, history
	}

	if err := signInAs(s, u.Email, "192.0.2.1", rightPassword); err != nil {
		t.Fatalf("legacy hash sign-in: %v", err)
	}
	if current, _ := stored(); !isPeppered(current) {
		t.Fatalf("legacy hash not upgraded at sign-in: %q", current)
	}

	// Back to a legacy current hash, then a password change: the history entry is peppered.
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.Users(tn.ID).SetPasswordHash(ctx, u.ID, string(legacy))
	}); err != nil {
		t.Fatal(err)
	}
	const next = "quartz heron lantern 58 driftwood"
	pr := &tutela.Principal{TenantID: tn.ID, UserID: u.ID}
	if _, err := s.ChangePassword(ctx, pr, tutela.NewSecret(rightPassword), tutela.NewSecret(next), "192.0.2.1", "test"); err != nil {
		t.Fatalf("ChangePassword: %v", err)
	}
	current, history := stored()
	if !isPeppered(current) || len(history) != 1 || !isPeppered(history[0]) {
		t.Fatalf("after change: current %q, history %q; want both peppered", current, history)
	}
	_, err := s.ChangePassword(ctx, pr, tutela.NewSecret(next), tutela.NewSecret(rightPassword), "192.0.2.1", "test")
	if !errors.Is(err, password.ErrReused) {
		t.Fatalf("reusing the previous password: %v, want ErrReused", err)
	}
}

// A password whose hash names a pepper key the vault no longer holds (the keyset lost) cannot be
// checked: sign-in and the current-password check fail with an internal error, and none of the
// attempts counts as a wrong password. With the keyset restored the user signs in at once,
// not locked out, however many attempts were made meanwhile.
func TestPepper_MissingPepperKeyIsNotAWrongPassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db, v, tn, u := pepperedService(t, func(h *password.Hasher) string {
		enc, err := h.Hash(context.Background(), rightPassword)
		if err != nil {
			t.Fatal(err)
		}
		return enc
	})
	store := sqlstore.KeysetStore{DB: db}
	saved, err := store.GetKeyset(ctx, "", vault.PurposePasswordPepper)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Destroy(ctx, "", vault.PurposePasswordPepper); err != nil {
		t.Fatal(err)
	}
	pr := &tutela.Principal{TenantID: tn.ID, UserID: u.ID}
	for i := range 3 * passwordLimit.MaxFailures {
		err := signInAs(s, u.Email, "192.0.2.1", rightPassword)
		if tutela.ErrorCode(err) != tutela.EINTERNAL || !errors.Is(err, password.ErrPepperUnavailable) {
			t.Fatalf("sign-in %d without the pepper key: %v, want internal ErrPepperUnavailable", i, err)
		}
		_, err = s.ChangePassword(ctx, pr, tutela.NewSecret(rightPassword), tutela.NewSecret("quartz heron lantern 58 driftwood"), "192.0.2.1", "test")
		if tutela.ErrorCode(err) != tutela.EINTERNAL || !errors.Is(err, password.ErrPepperUnavailable) {
			t.Fatalf("current-password check %d without the pepper key: %v, want internal ErrPepperUnavailable", i, err)
		}
	}
	if _, err := store.GetKeyset(ctx, "", vault.PurposePasswordPepper); tutela.ErrorCode(err) != tutela.ENOTFOUND {
		t.Fatalf("signing in re-created the pepper keyset: %v", err)
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Event.Details["reason"] == "wrong_password" {
			t.Fatalf("an unchecked password was audited as a wrong one: %+v", r.Event)
		}
	}

	// The keyset restored (as from a backup): no lockout stands in the way.
	if err := store.CreateKeyset(ctx, saved, vault.Event{Action: "key.keyset_create"}); err != nil {
		t.Fatal(err)
	}
	v.Invalidate()
	if err := signInAs(s, u.Email, "192.0.2.1", rightPassword); err != nil {
		t.Fatalf("sign-in after restoring the pepper keyset: %v", err)
	}
	if _, err := s.ChangePassword(ctx, pr, tutela.NewSecret(rightPassword), tutela.NewSecret("quartz heron lantern 58 driftwood"), "192.0.2.1", "test"); err != nil {
		t.Fatalf("password change after restoring the pepper keyset: %v", err)
	}
}

func isPeppered(h string) bool { _, ok := password.PepperKeyID(h); return ok }
