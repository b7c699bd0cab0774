package storetest

import (
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/sqlstore"
)

// AuthEpochTests check that every change to authentication state bumps its tenant's epoch in
// the database (migration 00038's triggers), which is what lets every node's caches see it;
// that activity which is not authentication state bumps nothing; and that nothing else's epoch
// moves.
var AuthEpochTests = []Test{
	{"AuthEpochs_EachAuthChangeBumpsItsTenantOnly", testAuthEpochBumps},
	{"AuthEpochs_ActivityBumpsNothing", testAuthEpochActivity},
}

type epochFixture struct {
	db         *sqlstore.DB
	clock      *fakeClock
	a, b       *tutela.Tenant
	u, other   *tutela.User
	sess       *sqlstore.Session
	sa         *sqlstore.ServiceAccount
	role       *sqlstore.Role
	factor     *sqlstore.MFAFactor
	permission string
}

func newEpochFixture(t *testing.T, open Opener) *epochFixture {
	f := &epochFixture{clock: newClock()}
	f.db = open(t, sqlstore.Options{Clock: f.clock.Now})
	f.a, f.b = createTenant(t, f.db, "epoch-a"), createTenant(t, f.db, "epoch-b")
	f.u = createUser(t, f.db, f.a.ID, "u@example.org")
	f.other = createUser(t, f.db, f.b.ID, "o@example.org")
	f.sess = newLimitSession(f.a.ID, f.u.ID, f.clock.Now())
	f.sa = &sqlstore.ServiceAccount{TenantID: f.a.ID, Name: "etl"}
	f.role = &sqlstore.Role{Key: "caseworker", Name: "Caseworker", Clearance: authz.Green,
		Permissions: []authz.Permission{{Resource: "records", Action: authz.Read}}}
	update(t, f.db, func(tx *sqlstore.Tx) error {
		if err := tx.CreateSession(ctx, f.sess, sqlstore.HashToken(tutela.NewID())); err != nil {
			return err
		}
		if err := tx.CreateServiceAccount(ctx, f.sa, sqlstore.HashToken("s1")); err != nil {
			return err
		}
		return tx.CreateRole(ctx, f.a.ID, f.role)
	})
	f.factor = newTOTP(t, f.db, f.a.ID, f.u.ID)
	return f
}

func (f *epochFixture) epoch(t *testing.T, tenantID string) int64 {
	t.Helper()
	var e int64
	if err := f.db.View(ctx, func(tx *sqlstore.Tx) (err error) { e, err = tx.AuthEpoch(ctx, tenantID); return err }); err != nil {
		t.Fatal(err)
	}
	return e
}

func testAuthEpochBumps(t *testing.T, open Opener) {
	f := newEpochFixture(t, open)
	users := func(tx *sqlstore.Tx) sqlstore.Users { return tx.Users(f.a.ID) }
	// Each mutation below is one the cached reads depend on (identity.principal, the session
	// checks, service-account authentication, the policy): in order, since some need the last.
	changes := []struct {
		name string
		fn   func(tx *sqlstore.Tx) error
	}{
		{"role grant", func(tx *sqlstore.Tx) error { return users(tx).Grant(ctx, f.u.ID, "operator", "", nil) }},
		{"role revoke", func(tx *sqlstore.Tx) error { return users(tx).RevokeRole(ctx, f.u.ID, "operator") }},
		{"custom role edit", func(tx *sqlstore.Tx) error {
			f.role.Permissions = append(f.role.Permissions, authz.Permission{Resource: "records", Action: authz.Update})
			return tx.UpdateRole(ctx, f.a.ID, f.role)
		}},
		{"permission grant", func(tx *sqlstore.Tx) error {
			up := &sqlstore.UserPermission{Permission: authz.Permission{Resource: "records", Action: authz.Delete}, Effect: authz.Deny}
			err := users(tx).GrantPermission(ctx, f.u.ID, up)
			f.permission = up.ID
			return err
		}},
		{"permission revoke", func(tx *sqlstore.Tx) error { return users(tx).RevokePermission(ctx, f.u.ID, f.permission) }},
		{"must change password", func(tx *sqlstore.Tx) error { return users(tx).SetMustChangePassword(ctx, f.u.ID, true) }},
		{"step-up", func(tx *sqlstore.Tx) error { return tx.StepUp(ctx, f.sess.ID, "otp") }},
		{"re-authentication", func(tx *sqlstore.Tx) error { return tx.Reauthenticated(ctx, f.sess.ID) }},
		{"MFA factor activated", func(tx *sqlstore.Tx) error {
			_, err := tx.MFA(f.a.ID).UseTOTPStep(ctx, f.u.ID, f.factor.ID, 7, true)
			return err
		}},
		{"MFA factor removed", func(tx *sqlstore.Tx) error { return tx.MFA(f.a.ID).RemoveFactor(ctx, f.u.ID, f.factor.ID) }},
		{"tenant requires MFA", func(tx *sqlstore.Tx) error { return tx.SetTenantRequiresMFA(ctx, f.a.ID, true) }},
		{"tenant requires private_key_jwt", func(tx *sqlstore.Tx) error { return tx.SetTenantRequiresPrivateKeyJWT(ctx, f.a.ID, true) }},
		{"service account secret added", func(tx *sqlstore.Tx) error {
			_, err := tx.AddServiceAccountSecret(ctx, f.a.ID, f.sa.ID, sqlstore.HashToken("s2"))
			return err
		}},
		{"service account disabled", func(tx *sqlstore.Tx) error {
			return tx.SetServiceAccountStatus(ctx, f.a.ID, f.sa.ID, tutela.StatusDisabled)
		}},
		{"session revoked", func(tx *sqlstore.Tx) error { return tx.RevokeSessionByID(ctx, f.sess.ID, "logout") }},
		{"token version bump", func(tx *sqlstore.Tx) error { _, err := users(tx).BumpTokenVersion(ctx, f.u.ID); return err }},
		{"user disabled", func(tx *sqlstore.Tx) error {
			u := *f.u
			u.Status = tutela.StatusDisabled
			return users(tx).Update(ctx, &u)
		}},
		{"tenant disabled", func(tx *sqlstore.Tx) error {
			tn := *f.a
			tn.Status = tutela.StatusDisabled
			return tx.UpdateTenant(ctx, &tn)
		}},
	}
	otherBefore, platformBefore := f.epoch(t, f.b.ID), f.epoch(t, "*")
	for _, c := range changes {
		before := f.epoch(t, f.a.ID)
		update(t, f.db, c.fn)
		if after := f.epoch(t, f.a.ID); after <= before {
			t.Errorf("%s: tenant epoch %d → %d, want it bumped", c.name, before, after)
		}
	}
	if got := f.epoch(t, f.b.ID); got != otherBefore {
		t.Errorf("another tenant's epoch moved %d → %d", otherBefore, got)
	}
	if got := f.epoch(t, "*"); got != platformBefore {
		t.Errorf("platform epoch moved %d → %d on tenant changes", platformBefore, got)
	}
}

func testAuthEpochActivity(t *testing.T, open Opener) {
	f := newEpochFixture(t, open)
	before := f.epoch(t, f.a.ID)
	f.clock.Add(2 * time.Minute)
	update(t, f.db, func(tx *sqlstore.Tx) error { return tx.TouchSession(ctx, f.sess.ID) })
	update(t, f.db, func(tx *sqlstore.Tx) error { return tx.Users(f.a.ID).RecordLoginSuccess(ctx, f.u.ID) })
	if after := f.epoch(t, f.a.ID); after != before {
		t.Fatalf("last-seen touch and sign-in time bumped the epoch %d → %d: every active user would empty the tenant's caches", before, after)
	}
	// A fresh session is nothing any node has cached yet.
	update(t, f.db, func(tx *sqlstore.Tx) error {
		return tx.CreateSession(ctx, newLimitSession(f.a.ID, f.u.ID, tx.Now()), sqlstore.HashToken(tutela.NewID()))
	})
	if after := f.epoch(t, f.a.ID); after != before {
		t.Fatalf("a new session bumped the epoch %d → %d", before, after)
	}
}
