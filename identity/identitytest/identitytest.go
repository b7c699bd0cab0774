// Package identitytest builds an identity.Service for tests of the packages above it (the
// hosted pages, the account page): the real service on a real store, with second factors, a
// token ring and an e-mail recorder, and a cheap password hasher so suites stay quick.
package identitytest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"tutela"
	"tutela/identity"
	"tutela/identity/token"
	"tutela/jobs"
	"tutela/mail"
	"tutela/mfa"
	"tutela/password"
	"tutela/sqlstore"
	"tutela/vault"
)

// Env is a service and what the test looks at.
type Env struct {
	Identity *identity.Service
	Mail     *mail.Recorder
	Hasher   *password.Hasher
}

// WebAuthn relying party of the test service.
const (
	RPID     = "tutela.test"
	RPOrigin = "https://tutela.test"
)

// FastHasher keeps argon2id but with test-sized memory.
func FastHasher(t testing.TB) *password.Hasher {
	t.Helper()
	p := password.DefaultParams()
	p.Memory, p.Time = 64, 1
	h, err := password.NewHasher(p, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// New returns the identity service over db, reading the clock now, with second factors on.
func New(t testing.TB, db *sqlstore.DB, now tutela.Clock, cfg identity.Config) *Env {
	t.Helper()
	sealer := func(b byte) vault.Sealer {
		s, err := vault.NewLocalSealer(tutela.NewSecretBytes(bytes.Repeat([]byte{b}, 32)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ring, err := token.NewRing(context.Background(), token.Config{Issuer: RPOrigin, Audience: []string{"tutela"}, Clock: now},
		identity.KeyStore{DB: db}, sealer(7))
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, err := mfa.New(db, sealer(9), now, mfa.WebAuthnConfig{RPID: RPID, RPDisplayName: "Tutela", RPOrigins: []string{RPOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	rec, h := &mail.Recorder{}, FastHasher(t)
	ids := identity.New(identity.Deps{DB: db, Hasher: h, Policy: password.DefaultPolicy(), Tokens: ring, MFA: m,
		Mailer: rec, Jobs: jobs.New(db, sealer(8), jobs.Options{}), PublicURL: RPOrigin, Clock: now}, cfg)
	return &Env{Identity: ids, Mail: rec, Hasher: h}
}

// SeedUser creates an active user of tenantID with password pw and returns it.
func (e *Env) SeedUser(t testing.TB, db *sqlstore.DB, tenantID, email, pw string) *tutela.User {
	t.Helper()
	ctx := context.Background()
	hash, err := e.Hasher.Hash(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	u := &tutela.User{Email: email, DisplayName: "User " + email}
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.Users(tenantID).Create(ctx, u); err != nil {
			return err
		}
		return tx.Users(tenantID).SetPasswordHash(ctx, u.ID, hash)
	}); err != nil {
		t.Fatal(err)
	}
	return u
}
