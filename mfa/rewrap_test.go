package mfa_test

import (
	"testing"
	"time"

	"tutela/mfa"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

// TOTP seeds are sealed under the platform "totp" keyset. After a rotation, SeedSource must show
// every seed as outdated (so `keys retire` refuses), rewrap must move them all, seeds of another
// tenant included, and after retire every factor must still verify.
func TestSeedSource_RotateRewrapRetireKeepsFactors(t *testing.T) {
	each(t, func(t *testing.T, k *kit) {
		v := sqltest.AttachVaultAt(t, k.db, k.clock.Now) // the vault the store seals users' data with
		sealer := &vault.VaultSealer{Vault: v, Purpose: vault.PurposeTOTP}
		svc, err := mfa.New(k.db, sealer, k.clock.Now, mfa.WebAuthnConfig{RPID: rp.ID, RPDisplayName: rp.Name, RPOrigins: []string{rp.Origin}})
		if err != nil {
			t.Fatal(err)
		}
		k.svc = svc
		other := k.newTenant(t, "other")
		bo := k.newUser(t, other.ID, "bo@example.org")
		type enrolled struct{ tenant, user, secret string }
		var all []enrolled
		for range 3 {
			_, s := enrol(t, k, k.tenant.ID, k.user.ID)
			all = append(all, enrolled{k.tenant.ID, k.user.ID, s})
		}
		_, s := enrol(t, k, other.ID, bo.ID)
		all = append(all, enrolled{other.ID, bo.ID, s})

		src := mfa.SeedSource(k.db)
		if n, err := v.Outdated(ctx, src, "", vault.PurposeTOTP); err != nil || n != 0 {
			t.Fatalf("Outdated before rotation = %d, %v", n, err)
		}
		if _, err := v.Rotate(ctx, "", vault.PurposeTOTP); err != nil {
			t.Fatal(err)
		}
		if n, err := v.Outdated(ctx, src, "", vault.PurposeTOTP); err != nil || n != len(all) {
			t.Fatalf("Outdated after rotation = %d, %v; want %d", n, err, len(all))
		}
		k.clock.Add(v.CacheTTL() + vault.RotationSettleMargin) // every node has reloaded the rotation
		p, err := v.Rewrap(ctx, src, vault.RewrapOptions{BatchSize: 3})
		if err != nil || p.Rewrapped != len(all) {
			t.Fatalf("Rewrap = %+v, %v", p, err)
		}
		if n, _ := v.Outdated(ctx, src, "", vault.PurposeTOTP); n != 0 {
			t.Fatalf("Outdated after rewrap = %d", n)
		}
		if _, err := v.Retire(ctx, "", vault.PurposeTOTP); err != nil {
			t.Fatal(err)
		}
		v.Invalidate()
		for _, e := range all {
			k.clock.Add(30 * time.Second)
			if err := k.svc.VerifyTOTP(ctx, e.tenant, e.user, code(t, e.secret, k.clock.Now())); err != nil {
				t.Fatalf("factor of %s after rotate/rewrap/retire: %v", e.user, err)
			}
		}
		// One audit event per batch, naming the table and never a seed.
		recs, _, err := k.db.AuditEvents(ctx, sqlstore.AuditFilter{Action: "key.rewrap", Limit: 10})
		if err != nil || len(recs) != 2 || recs[0].Event.TargetID != "mfa_factors" {
			t.Fatalf("rewrap events: %d, %v", len(recs), err)
		}
	})
}
