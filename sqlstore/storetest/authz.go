package storetest

import (
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/sqlstore"
)

// AuthzTests cover roles, grants, denies and policy loading.
var AuthzTests = []Test{
	{"AuthzCustomRoles", testCustomRoles},
	{"AuthzPolicyGrantsDeniesExpiry", testPolicy},
	{"AuthzLastProgramAdminSurvivesConcurrentRemovals", testLastAdminConcurrent},
	{"AuthzRoleForUpdateSerialisesUpdates", testRoleForUpdate},
}

// Two administrators removed at once by two transactions (two admins revoking each other, an
// access review closing while a role is revoked): IsLastProgramAdmin serializes them per
// tenant, so exactly one removal succeeds and the tenant keeps an administrator.
func testLastAdminConcurrent(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	for round := range 5 {
		tn := createTenant(t, db, "tenant-"+string(rune('a'+round)))
		a := createUser(t, db, tn.ID, "a@example.org")
		b := createUser(t, db, tn.ID, "b@example.org")
		for _, u := range []*tutela.User{a, b} {
			update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Grant(ctx, u.ID, authz.RoleProgramAdmin, "", nil) })
		}
		start := make(chan struct{})
		results := make(chan error, 2)
		for _, u := range []*tutela.User{a, b} {
			go func() {
				<-start
				results <- db.Update(ctx, func(tx *sqlstore.Tx) error {
					last, err := tx.IsLastProgramAdmin(ctx, tn.ID, u.ID)
					if err != nil {
						return err
					}
					if last {
						return tutela.Errorf(tutela.ECONFLICT, "last programme administrator")
					}
					time.Sleep(20 * time.Millisecond) // widen the window between the check and the change
					return tx.Users(tn.ID).RevokeRole(ctx, u.ID, authz.RoleProgramAdmin)
				})
			}()
		}
		close(start)
		ok, refused := 0, 0
		for range 2 {
			switch err := <-results; tutela.ErrorCode(err) {
			case "":
				ok++
			case tutela.ECONFLICT:
				refused++
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		var n int
		_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) {
			n, err = tx.CountRoleHoldersInTenant(ctx, tn.ID, authz.RoleProgramAdmin)
			return
		})
		if ok != 1 || refused != 1 || n != 1 {
			t.Fatalf("round %d: %d removals succeeded, %d refused, %d administrators left; want 1, 1, 1", round, ok, refused, n)
		}
	}
}

func testCustomRoles(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b := createTenant(t, db, "tenant-a"), createTenant(t, db, "tenant-b")
	r := &sqlstore.Role{Key: "caseworker", Name: "Caseworker", Clearance: authz.Yellow,
		Permissions: []authz.Permission{{Resource: "records", Action: authz.Read, MaxClass: authz.Yellow}, {Resource: "records", Action: authz.Update}},
		FieldMasks:  map[string]authz.Mask{"users.email": authz.MaskHidden}}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateRole(ctx, a.ID, r) })
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.CreateRole(ctx, a.ID, &sqlstore.Role{Key: "caseworker", Name: "dup", Clearance: authz.Green})
	}), tutela.ECONFLICT)
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.CreateRole(ctx, a.ID, &sqlstore.Role{Key: "operator", Name: "shadow", Clearance: authz.Green})
	}), tutela.EINVALID)
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.CreateRole(ctx, a.ID, &sqlstore.Role{Key: "bad", Name: "x", Clearance: authz.Green,
			Permissions: []authz.Permission{{Resource: "records", Action: "READ_ALL"}}})
	}), tutela.EINVALID)
	var got *sqlstore.Role
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.Role(ctx, a.ID, "caseworker"); return })
	if got == nil || len(got.Permissions) != 2 || got.FieldMasks["users.email"] != authz.MaskHidden || got.Builtin {
		t.Fatalf("role read back: %+v", got)
	}
	// Tenant B does not see tenant A's custom role, and cannot grant it.
	mustCode(t, db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Role(ctx, b.ID, "caseworker"); return err }), tutela.ENOTFOUND)
	ub := createUser(t, db, b.ID, "b@example.org")
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(b.ID).Grant(ctx, ub.ID, "caseworker", "", nil) }), tutela.ENOTFOUND)
	// Built-in roles are visible to every tenant and cannot be changed or deleted.
	var op *sqlstore.Role
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { op, err = tx.Role(ctx, b.ID, "operator"); return })
	if op == nil || !op.Builtin || len(op.Permissions) == 0 {
		t.Fatalf("built-in operator: %+v", op)
	}
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.DeleteRole(ctx, b.ID, op) }), tutela.EFORBIDDEN)
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.UpdateRole(ctx, b.ID, op) }), tutela.EFORBIDDEN)
	// A granted custom role cannot be deleted until revoked.
	ua := createUser(t, db, a.ID, "a@example.org")
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(a.ID).Grant(ctx, ua.ID, "caseworker", "", nil) })
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.DeleteRole(ctx, a.ID, got) }), tutela.ECONFLICT)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(a.ID).RevokeRole(ctx, ua.ID, "caseworker") })
	update(t, db, func(tx *sqlstore.Tx) error { return tx.DeleteRole(ctx, a.ID, got) })
}

func testPolicy(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "u@example.org")
	exp := clock.Now().Add(time.Hour)
	update(t, db, func(tx *sqlstore.Tx) error {
		users := tx.Users(tn.ID)
		if err := users.Grant(ctx, u.ID, "operator", "", nil); err != nil {
			return err
		}
		if err := users.Grant(ctx, u.ID, "auditor", "", &exp); err != nil {
			return err
		}
		if err := users.GrantPermission(ctx, u.ID, &sqlstore.UserPermission{Permission: authz.Permission{Resource: "records", Action: authz.Update},
			Effect: authz.Deny}); err != nil {
			return err
		}
		return users.GrantPermission(ctx, u.ID, &sqlstore.UserPermission{Permission: authz.Permission{Resource: "records", Action: authz.Export},
			Effect: authz.Allow, ExpiresAt: &exp})
	})
	load := func() *authz.Policy {
		var p *authz.Policy
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { p, err = tx.Policy(ctx, tn.ID, u.ID); return }); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := load()
	now := clock.Now()
	check := func(a authz.Action, res string, want bool) {
		t.Helper()
		if d := authz.Decide(p, authz.Request{Action: a, Resource: res}, now); d.Allow != want {
			t.Errorf("%s %s = %v (%s), want %v", a, res, d.Allow, d.Reason, want)
		}
	}
	check(authz.Read, "records", true)    // operator
	check(authz.Update, "records", false) // explicit deny beats the operator grant
	check(authz.Export, "records", true)  // per-user grant, not yet expired
	check(authz.Read, "audit", true)      // auditor, not yet expired
	check(authz.Manage, "roles", false)   // nobody granted it
	if p.Clearance != authz.Yellow || p.Masks["users.email"] != "" {
		t.Fatalf("clearance %s masks %v", p.Clearance, p.Masks)
	}
	clock.Add(2 * time.Hour)
	p, now = load(), clock.Now()
	check(authz.Read, "audit", false)     // auditor grant expired
	check(authz.Export, "records", false) // per-user grant expired
	check(authz.Read, "records", true)
}

// Two updates of one role cannot both start from the same permissions: the second waits until
// the first commits (RoleForUpdate), so it judges and changes what the role really holds. Without
// the lock a stale read could put back a takeover permission another update had just removed,
// unseen by the widening check.
func testRoleForUpdate(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.CreateRole(ctx, tn.ID, &sqlstore.Role{Key: "helpdesk", Name: "Helpdesk", Clearance: authz.Green,
			Permissions: []authz.Permission{{Resource: "users", Action: authz.Read}}})
	})
	locked, commit, first := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		first <- db.Update(ctx, func(tx *sqlstore.Tx) error {
			r, err := tx.RoleForUpdate(ctx, tn.ID, "helpdesk")
			if err != nil {
				return err
			}
			close(locked)
			<-commit
			r.Permissions = append(r.Permissions, authz.Permission{Resource: "sessions", Action: authz.Read})
			return tx.UpdateRole(ctx, tn.ID, r)
		})
	}()
	<-locked
	second := make(chan []authz.Permission, 1)
	go func() {
		var perms []authz.Permission
		err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			r, err := tx.RoleForUpdate(ctx, tn.ID, "helpdesk")
			if err == nil {
				perms = r.Permissions
			}
			return err
		})
		if err != nil {
			t.Error(err)
		}
		second <- perms
	}()
	waitForLockWaiter(t, db)
	close(commit)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if perms := <-second; len(perms) != 2 {
		t.Fatalf("the second update read %v, not the first update's result", perms)
	}
}

// waitForLockWaiter returns once a transaction of this PostgreSQL database waits for a row lock,
// or after ten seconds (the caller's assertions then say what went wrong). SQLite runs one write
// transaction at a time, so there the second simply begins after the first.
func waitForLockWaiter(t *testing.T, db *sqlstore.DB) {
	t.Helper()
	if db.Dialect() != sqlstore.Postgres {
		return
	}
	for range 1000 {
		var n int
		if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
