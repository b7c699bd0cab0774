package mfa_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/clocktest"
	"tutela/mfa"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

var ctx = context.Background()

type fakeClock = clocktest.Clock

// start is 15 s into a 30-second TOTP step, so ±15 s stays within the step.
var start = time.Unix(1_772_366_400+15, 0).UTC() // 2026-03-01T12:00:15Z

type kit struct {
	db     *sqlstore.DB
	svc    *mfa.Service
	clock  *fakeClock
	sealer vault.Sealer
	tenant *tutela.Tenant
	user   *tutela.User
}

var rp = struct{ ID, Name, Origin string }{"tutela.test", "Tutela", "https://tutela.test"}

// each runs fn on a fresh kit of every dialect.
func each(t *testing.T, fn func(t *testing.T, k *kit)) {
	t.Helper()
	for _, d := range sqltest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, newKit(t, d))
		})
	}
}

func newKit(t *testing.T, d sqlstore.Dialect) *kit {
	t.Helper()
	clock := clocktest.New(start)
	db := sqltest.Open(t, d, sqlstore.Options{Clock: clock.Now})
	mk := make([]byte, vault.MasterKeySize)
	_, _ = rand.Read(mk)
	sealer, err := vault.NewLocalSealer(tutela.NewSecretBytes(mk))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := mfa.New(db, sealer, clock.Now, mfa.WebAuthnConfig{RPID: rp.ID, RPDisplayName: rp.Name, RPOrigins: []string{rp.Origin}})
	if err != nil {
		t.Fatal(err)
	}
	k := &kit{db: db, svc: svc, clock: clock, sealer: sealer}
	k.tenant = k.newTenant(t, "acme")
	k.user = k.newUser(t, k.tenant.ID, "ana@example.org")
	return k
}

func (k *kit) newTenant(t *testing.T, slug string) *tutela.Tenant {
	t.Helper()
	tn := &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
	if err := k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) }); err != nil {
		t.Fatal(err)
	}
	return tn
}

func (k *kit) newUser(t *testing.T, tenantID, email string) *tutela.User {
	t.Helper()
	u := &tutela.User{Email: email}
	if err := k.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(tenantID).Create(ctx, u) }); err != nil {
		t.Fatal(err)
	}
	return u
}

// auditActions returns how many events of each action the tenant's log holds.
func (k *kit) auditActions(t *testing.T) map[string]int {
	t.Helper()
	recs, _, err := k.db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: k.tenant.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range recs {
		out[r.Event.Action]++
	}
	return out
}

func (k *kit) auditEvents(t *testing.T, action string) []audit.Event {
	t.Helper()
	recs, _, err := k.db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: k.tenant.ID, Action: action, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for _, r := range recs {
		out = append(out, r.Event)
	}
	return out
}

func mustIs(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func mustCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := tutela.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
