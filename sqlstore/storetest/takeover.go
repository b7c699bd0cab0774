package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
	"tutela/sqlstore"
)

// TakeoverTests cover the store side of issue 12: the tenant policy that lets service accounts
// take over accounts, and the one-time code that enrolment needs after an administrator's MFA
// reset.
var TakeoverTests = []Test{
	{"TenantServiceAccountTakeoverPolicy", testTakeoverPolicy},
	{"MFAEnrollmentCodeBoundSingleUseExpiring", testMFAEnrollmentCode},
	{"MFAEnrollmentCodeConcurrentRedemption", testMFAEnrollmentCodeRace},
}

// The policy is off unless set, per tenant, and every change is audited.
func testTakeoverPolicy(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b := createTenant(t, db, "acme"), createTenant(t, db, "globex")
	get := func(id string) bool {
		t.Helper()
		var v bool
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { v, err = tx.TenantAllowsServiceAccountTakeover(ctx, id); return }); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if get(a.ID) || get(b.ID) {
		t.Fatal("service-account takeover allowed by default")
	}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.SetTenantAllowsServiceAccountTakeover(ctx, a.ID, true) })
	if !get(a.ID) || get(b.ID) {
		t.Fatalf("after setting it on acme: acme %v, globex %v", get(a.ID), get(b.ID))
	}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.SetTenantAllowsServiceAccountTakeover(ctx, tutela.NewID(), true)
	})
	mustCode(t, err, tutela.ENOTFOUND)
	err = db.View(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.TenantAllowsServiceAccountTakeover(ctx, tutela.NewID())
		return err
	})
	mustCode(t, err, tutela.ENOTFOUND)
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Action: "tenant.service_account_takeover_policy", Limit: 10})
	if err != nil || len(recs) != 1 || recs[0].Event.TenantID != a.ID {
		t.Fatalf("policy change audit events: %+v, %v", recs, err)
	}
}

// The enrolment code is bound to its user and tenant, works once, expires, and a new one voids
// the old; spending it clears the enrolment mark.
func testMFAEnrollmentCode(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn, other := createTenant(t, db, "acme"), createTenant(t, db, "globex")
	u := createUser(t, db, tn.ID, "a@example.org")
	v := createUser(t, db, tn.ID, "v@example.org")
	w := createUser(t, db, other.ID, "a@example.org")
	required := func(tenantID, userID string) bool {
		t.Helper()
		var r bool
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
			r, err = tx.Users(tenantID).MFAEnrollmentCodeRequired(ctx, userID)
			return
		}); err != nil {
			t.Fatal(err)
		}
		return r
	}
	issue := func(userID string) string {
		t.Helper()
		var code string
		update(t, db, func(tx *sqlstore.Tx) (err error) {
			code = tutela.RandomToken(32)
			_, err = tx.Users(tn.ID).IssueMFAEnrollmentCode(ctx, userID, code, time.Hour)
			return
		})
		return code
	}
	peek := func(tenantID, userID, code string) error {
		return db.View(ctx, func(tx *sqlstore.Tx) error { return tx.Users(tenantID).PeekMFAEnrollmentCode(ctx, userID, code) })
	}
	redeem := func(tenantID, userID, code string) error {
		return db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(tenantID).RedeemMFAEnrollmentCode(ctx, userID, code) })
	}
	if required(tn.ID, u.ID) {
		t.Fatal("a new user needs an enrolment code")
	}
	code := issue(u.ID)
	if len(code) != 64 || !required(tn.ID, u.ID) || required(tn.ID, v.ID) {
		t.Fatalf("after issue: len %d, required %v / %v", len(code), required(tn.ID, u.ID), required(tn.ID, v.ID))
	}
	// Another user, another tenant (even a user with the same address), another purpose, a
	// tampered code: refused, and the code stays usable.
	flipped := []byte(code)
	flipped[7] ^= 1
	for _, c := range []struct{ tenantID, userID, code string }{
		{tn.ID, v.ID, code}, {other.ID, w.ID, code}, {other.ID, u.ID, code}, {tn.ID, u.ID, string(flipped)}, {tn.ID, u.ID, ""},
	} {
		mustCode(t, peek(c.tenantID, c.userID, c.code), tutela.EUNAUTHENTICATED)
		mustCode(t, redeem(c.tenantID, c.userID, c.code), tutela.EUNAUTHENTICATED)
	}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := tx.ConsumeToken(ctx, code, sqlstore.TokenReset); return err })
	mustCode(t, err, tutela.EUNAUTHENTICATED)
	if err := peek(tn.ID, u.ID, code); err != nil {
		t.Fatalf("peek: %v", err)
	}
	if err := redeem(tn.ID, u.ID, code); err != nil {
		t.Fatalf("redeem: %v", err)
	}
	if required(tn.ID, u.ID) {
		t.Fatal("mark not cleared by the redemption")
	}
	mustCode(t, redeem(tn.ID, u.ID, code), tutela.EUNAUTHENTICATED) // replay
	mustCode(t, peek(tn.ID, u.ID, code), tutela.EUNAUTHENTICATED)

	// A new code voids the previous one.
	first, second := issue(u.ID), issue(u.ID)
	mustCode(t, peek(tn.ID, u.ID, first), tutela.EUNAUTHENTICATED)
	if err := peek(tn.ID, u.ID, second); err != nil {
		t.Fatalf("second code: %v", err)
	}
	// Expired: refused, and the mark stays (fail closed: the password alone still cannot enrol).
	clock.Add(time.Hour + time.Microsecond)
	mustCode(t, peek(tn.ID, u.ID, second), tutela.EUNAUTHENTICATED)
	mustCode(t, redeem(tn.ID, u.ID, second), tutela.EUNAUTHENTICATED)
	if !required(tn.ID, u.ID) {
		t.Fatal("mark cleared without a redemption")
	}
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Users(tn.ID).IssueMFAEnrollmentCode(ctx, tutela.NewID(), tutela.RandomToken(32), time.Hour)
		return err
	})
	mustCode(t, err, tutela.ENOTFOUND)
}

// Of concurrent enrolments presenting one code, exactly one spends it.
func testMFAEnrollmentCodeRace(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	var code string
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		code = tutela.RandomToken(32)
		_, err = tx.Users(tn.ID).IssueMFAEnrollmentCode(ctx, u.ID, code, time.Hour)
		return
	})
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).RedeemMFAEnrollmentCode(ctx, u.ID, code) }) == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent redemptions succeeded", wins.Load())
	}
}
