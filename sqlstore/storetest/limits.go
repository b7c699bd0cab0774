package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/sqlstore"
)

// LimitsTests cover the business limits (ASVS 5.0 2.1.2, 2.1.3, 2.4.1): each cap holds when
// filled one by one and when several transactions race for its last slots, and a create past it
// is a conflict that writes nothing.
var LimitsTests = []Test{
	{"LimitCustomRolesPerTenant", testLimitRoles},
	{"LimitPermissionsPerRole", testLimitRolePermissions},
	{"LimitPermissionGrantsPerUser", testLimitUserPermissions},
	{"LimitServiceAccountsPerTenant", testLimitServiceAccounts},
	{"LimitOpenAccessReviewsPerTenant", testLimitOpenReviews},
	{"LimitPasskeysPerUser", testLimitPasskeys},
	{"LimitTOTPFactorsPerUser", testLimitTOTP},
	{"LimitUsersPerTenant", testLimitUsers},
	{"LimitSessionsPerUserRevokesOldest", testLimitSessions},
	{"LimitSessionsPerUserUnderConcurrency", testLimitSessionsConcurrent},
	{"LimitClientSessionsPerSignInEvictOnlyTheirOwn", testLimitClientSessions},
}

// limit is one business limit as checkLimit exercises it.
type limit struct {
	max   int
	add   func(tx *sqlstore.Tx, i int) error // creates the i-th object; distinct i, distinct object
	count func(tx *sqlstore.Tx) (int, error) // the objects the cap counts
}

// checkLimit fills a cap to two below it, lets six transactions race for the last two slots and
// then tries one more. Exactly two racers win; every other racer, and the one after them, gets a
// conflict naming the cap that writes nothing: neither the object nor an audit event.
func checkLimit(t *testing.T, db *sqlstore.DB, tenantID string, l limit) {
	t.Helper()
	update(t, db, func(tx *sqlstore.Tx) error {
		for i := range l.max - 2 {
			if err := l.add(tx, i); err != nil {
				return fmt.Errorf("filling object %d: %w", i, err)
			}
		}
		return nil
	})
	atLimit := func(err error) bool {
		return tutela.ErrorCode(err) == tutela.ECONFLICT && strings.Contains(tutela.ErrorMessage(err), fmt.Sprintf("at most %d ", l.max))
	}
	const racers = 6
	start := make(chan struct{})
	errs := make(chan error, racers)
	for i := range racers {
		go func() {
			<-start
			errs <- db.Update(ctx, func(tx *sqlstore.Tx) error { return l.add(tx, l.max-2+i) })
		}()
	}
	close(start)
	won := 0
	for range racers {
		switch err := <-errs; {
		case err == nil:
			won++
		case !atLimit(err):
			t.Fatalf("racer: %v, want success or a conflict naming the limit %d", err, l.max)
		}
	}
	count := func() int {
		t.Helper()
		var n int
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { n, err = l.count(tx); return err }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); won != 2 || n != l.max {
		t.Fatalf("%d of %d racers for the last 2 slots won and %d objects exist; want 2 and %d", won, racers, n, l.max)
	}
	events := auditCount(t, db, tenantID)
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return l.add(tx, l.max+racers) }); !atLimit(err) {
		t.Fatalf("one past the limit: %v, want a conflict naming the limit %d", err, l.max)
	}
	if n, e := count(), auditCount(t, db, tenantID); n != l.max || e != events {
		t.Fatalf("refused create wrote: %d objects (want %d), %d audit events (want %d)", n, l.max, e, events)
	}
}

// auditCount counts the tenant's audit events.
func auditCount(t *testing.T, db *sqlstore.DB, tenantID string) int {
	t.Helper()
	n, cursor := 0, ""
	for {
		recs, next, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tenantID, Cursor: cursor, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		n += len(recs)
		if next == "" {
			return n
		}
		cursor = next
	}
}

// limitPermission returns the i-th of many distinct permissions.
func limitPermission(i int) authz.Permission {
	actions := []authz.Action{authz.Create, authz.Read, authz.Update, authz.Delete, authz.Publish, authz.Approve,
		authz.Review, authz.Export, authz.Import, authz.Manage}
	return authz.Permission{Resource: fmt.Sprintf("res%d", i/len(actions)), Action: actions[i%len(actions)]}
}

func testLimitRoles(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	checkLimit(t, db, tn.ID, limit{
		max: sqlstore.MaxRolesPerTenant,
		add: func(tx *sqlstore.Tx, i int) error {
			return tx.CreateRole(ctx, tn.ID, &sqlstore.Role{Key: fmt.Sprintf("role_%d", i), Name: "Role", Clearance: authz.Green,
				Permissions: []authz.Permission{{Resource: "records", Action: authz.Read}}})
		},
		count: func(tx *sqlstore.Tx) (int, error) {
			roles, err := tx.Roles(ctx, tn.ID)
			return len(slices.DeleteFunc(roles, func(r *sqlstore.Role) bool { return r.Builtin })), err
		},
	})
}

// A role's permissions are replaced as a whole, so the request alone decides: there is no race,
// but create and replace must both refuse one permission too many and leave the role as it was.
func testLimitRolePermissions(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	perms := func(n int) []authz.Permission {
		var ps []authz.Permission
		for i := range n {
			ps = append(ps, limitPermission(i))
		}
		return ps
	}
	full := perms(sqlstore.MaxPermissionsPerRole)
	// Duplicates are stored once and do not count.
	role := &sqlstore.Role{Key: "full", Name: "Full", Clearance: authz.Green, Permissions: append(full, full[:10]...)}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateRole(ctx, tn.ID, role) })
	stored := func(key string) *sqlstore.Role {
		var r *sqlstore.Role
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { r, err = tx.Role(ctx, tn.ID, key); return err }); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if n := len(stored("full").Permissions); n != sqlstore.MaxPermissionsPerRole {
		t.Fatalf("role at the limit stored %d permissions, want %d", n, sqlstore.MaxPermissionsPerRole)
	}
	over := perms(sqlstore.MaxPermissionsPerRole + 1)
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.CreateRole(ctx, tn.ID, &sqlstore.Role{Key: "over", Name: "Over", Clearance: authz.Green, Permissions: over})
	})
	mustCode(t, err, tutela.ECONFLICT)
	mustCode(t, db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Role(ctx, tn.ID, "over"); return err }), tutela.ENOTFOUND)

	small := &sqlstore.Role{Key: "small", Name: "Small", Clearance: authz.Green, Permissions: perms(1)}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateRole(ctx, tn.ID, small) })
	grown := *small
	grown.Name, grown.Permissions = "Grown", over
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.UpdateRole(ctx, tn.ID, &grown) }), tutela.ECONFLICT)
	if got := stored("small"); got.Name != "Small" || len(got.Permissions) != 1 {
		t.Fatalf("refused replace changed the role: %q with %d permissions", got.Name, len(got.Permissions))
	}
	grown.Permissions = full
	update(t, db, func(tx *sqlstore.Tx) error { return tx.UpdateRole(ctx, tn.ID, &grown) })
	if n := len(stored("small").Permissions); n != sqlstore.MaxPermissionsPerRole {
		t.Fatalf("replaced role has %d permissions, want %d", n, sqlstore.MaxPermissionsPerRole)
	}
}

func testLimitUserPermissions(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	checkLimit(t, db, tn.ID, limit{
		max: sqlstore.MaxPermissionGrantsPerUser,
		add: func(tx *sqlstore.Tx, i int) error {
			eff := authz.Allow
			if i%2 == 1 {
				eff = authz.Deny // grants and denies count together
			}
			return tx.Users(tn.ID).GrantPermission(ctx, u.ID, &sqlstore.UserPermission{Permission: limitPermission(i), Effect: eff})
		},
		count: func(tx *sqlstore.Tx) (int, error) {
			ups, err := tx.Users(tn.ID).Permissions(ctx, u.ID)
			return len(ups), err
		},
	})
	// The cap is per user.
	v := createUser(t, db, tn.ID, "b@example.org")
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.Users(tn.ID).GrantPermission(ctx, v.ID, &sqlstore.UserPermission{Permission: limitPermission(0), Effect: authz.Allow})
	})
}

func testLimitServiceAccounts(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	checkLimit(t, db, tn.ID, limit{
		max: sqlstore.MaxServiceAccountsPerTenant,
		add: func(tx *sqlstore.Tx, i int) error {
			return tx.CreateServiceAccount(ctx, &sqlstore.ServiceAccount{TenantID: tn.ID, Name: fmt.Sprintf("etl-%d", i)}, []byte("h"))
		},
		count: func(tx *sqlstore.Tx) (int, error) {
			sas, err := tx.ServiceAccounts(ctx, tn.ID)
			return len(sas), err
		},
	})
}

func testLimitOpenReviews(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	openReviews := func(tx *sqlstore.Tx) (int, error) {
		revs, err := tx.AccessReviews(tn.ID).List(ctx, "", 100)
		return len(slices.DeleteFunc(revs, func(r *sqlstore.AccessReview) bool { return r.Status != sqlstore.ReviewOpen })), err
	}
	var ids []string
	var mu sync.Mutex
	checkLimit(t, db, tn.ID, limit{
		max: sqlstore.MaxOpenReviewsPerTenant,
		add: func(tx *sqlstore.Tx, _ int) error {
			r := &sqlstore.AccessReview{Deadline: clock.Now().Add(24 * time.Hour)}
			if err := tx.AccessReviews(tn.ID).Open(ctx, r); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			ids = append(ids, r.ID) // a racer that later fails adds none: Open refuses before
			return nil
		},
		count: openReviews,
	})
	// Closing one makes room again.
	update(t, db, func(tx *sqlstore.Tx) error { _, _, err := tx.AccessReviews(tn.ID).Close(ctx, ids[0], ""); return err })
	arOpen(t, db, tn.ID, &sqlstore.AccessReview{Deadline: clock.Now().Add(24 * time.Hour)})
}

func testLimitPasskeys(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	checkLimit(t, db, tn.ID, limit{
		max: sqlstore.MaxPasskeysPerUser,
		add: func(tx *sqlstore.Tx, i int) error {
			return tx.MFA(tn.ID).CreateWebAuthnCredential(ctx, &sqlstore.WebAuthnCredential{MFAFactor: sqlstore.MFAFactor{UserID: u.ID, Name: "key"},
				CredentialID: fmt.Appendf(nil, "cred-%d", i), Credential: []byte(`{}`)})
		},
		count: func(tx *sqlstore.Tx) (int, error) {
			cs, err := tx.MFA(tn.ID).WebAuthnCredentials(ctx, u.ID)
			return len(cs), err
		},
	})
}

// Active and pending TOTP factors count together; a new enrolment replaces an abandoned pending
// one, so it fits whenever an active factor is missing.
func testLimitTOTP(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	totps := func(tx *sqlstore.Tx) ([]*sqlstore.MFAFactor, error) {
		fs, err := tx.MFA(tn.ID).Factors(ctx, u.ID)
		return slices.DeleteFunc(fs, func(f *sqlstore.MFAFactor) bool { return f.Type != sqlstore.FactorTOTP }), err
	}
	checkLimit(t, db, tn.ID, limit{
		max: sqlstore.MaxTOTPFactorsPerUser,
		add: func(tx *sqlstore.Tx, _ int) error {
			m := tx.MFA(tn.ID)
			f := &sqlstore.MFAFactor{ID: tutela.NewID(), UserID: u.ID, Name: "app"}
			if err := m.CreateTOTP(ctx, f, []byte("sealed")); err != nil {
				return err
			}
			if ok, err := m.UseTOTPStep(ctx, u.ID, f.ID, 1, true); err != nil || !ok {
				return fmt.Errorf("activate: %v, %v", ok, err)
			}
			return nil
		},
		count: func(tx *sqlstore.Tx) (int, error) {
			fs, err := totps(tx)
			return len(fs), err
		},
	})
	var fs []*sqlstore.MFAFactor
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { fs, err = totps(tx); return err })
	update(t, db, func(tx *sqlstore.Tx) error { return tx.MFA(tn.ID).RemoveFactor(ctx, u.ID, fs[0].ID) })
	newTOTP(t, db, tn.ID, u.ID)
	newTOTP(t, db, tn.ID, u.ID) // replaces the first pending one
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { fs, err = totps(tx); return err })
	if len(fs) != sqlstore.MaxTOTPFactorsPerUser {
		t.Fatalf("%d TOTP factors after re-enrolling twice, want %d", len(fs), sqlstore.MaxTOTPFactorsPerUser)
	}
}

// MaxUsersPerTenant is too many users to create in a test; Options.UsersPerTenant lowers it
// for this store only.
func testLimitUsers(t *testing.T, open Opener) {
	const usersCap = 7
	db := open(t, sqlstore.Options{UsersPerTenant: usersCap})
	tn, other := createTenant(t, db, "acme"), createTenant(t, db, "other")
	checkLimit(t, db, tn.ID, limit{
		max: usersCap,
		add: func(tx *sqlstore.Tx, i int) error {
			return tx.Users(tn.ID).Create(ctx, &tutela.User{Email: fmt.Sprintf("u%d@example.org", i)})
		},
		count: func(tx *sqlstore.Tx) (int, error) { return tx.Users(tn.ID).Count(ctx) },
	})
	createUser(t, db, other.ID, "u0@example.org") // the cap is per tenant
}

func newLimitSession(tenantID, userID string, now time.Time) *sqlstore.Session {
	return &sqlstore.Session{TenantID: tenantID, UserID: userID, TokenVersion: 1, AMR: []string{"pwd"}, IP: "192.0.2.7",
		IdleTimeout: time.Hour, AbsoluteExpiry: now.Add(24 * time.Hour)}
}

func activeSessions(t *testing.T, db *sqlstore.DB, tenantID, userID string) []*sqlstore.Session {
	t.Helper()
	var ss []*sqlstore.Session
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { ss, err = tx.Users(tenantID).Sessions(ctx, userID); return err }); err != nil {
		t.Fatal(err)
	}
	return ss
}

// Session MaxSessionsPerUser+1 does not fail the sign-in: it revokes the user's oldest active
// session (and its refresh tokens) and says so in a security event; the newest stay usable.
func testLimitSessions(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	other := createUser(t, db, tn.ID, "b@example.org")
	create := func(userID string) *sqlstore.Session {
		t.Helper()
		s := newLimitSession(tn.ID, userID, clock.Now())
		update(t, db, func(tx *sqlstore.Tx) error {
			if err := tx.CreateSession(ctx, s, sqlstore.HashToken(tutela.NewID())); err != nil {
				return err
			}
			return tx.CreateRefreshToken(ctx, s.ID, sqlstore.HashToken("rt-"+s.ID), s.AbsoluteExpiry)
		})
		clock.Add(time.Second)
		return s
	}
	otherSession := create(other.ID)
	// An idle-expired session is not active: it neither counts nor is chosen for revocation.
	idle := newLimitSession(tn.ID, u.ID, clock.Now())
	idle.IdleTimeout = time.Second
	update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateSession(ctx, idle, sqlstore.HashToken("idle")) })
	clock.Add(2 * time.Second)
	var made []*sqlstore.Session
	for range sqlstore.MaxSessionsPerUser {
		made = append(made, create(u.ID))
	}
	if n := len(activeSessions(t, db, tn.ID, u.ID)); n != sqlstore.MaxSessionsPerUser+1 { // Sessions lists the idle one too
		t.Fatalf("%d sessions before the limit, want %d", n, sqlstore.MaxSessionsPerUser+1)
	}
	newest := create(u.ID)
	oldest := made[0]
	var got, gotIdle *sqlstore.Session
	var used *sqlstore.RefreshToken
	var events []*sqlstore.SecurityEvent
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		if got, err = tx.SessionByID(ctx, oldest.ID); err != nil {
			return err
		}
		if gotIdle, err = tx.SessionByID(ctx, idle.ID); err != nil {
			return err
		}
		if used, err = tx.UseRefreshToken(ctx, sqlstore.HashToken("rt-"+oldest.ID)); err != nil {
			return err
		}
		events, err = tx.SecurityEvents(ctx, tn.ID, 10)
		return err
	})
	if got.RevokedAt == nil || used.UsedAt == nil {
		t.Fatalf("oldest session revoked=%v, its refresh token used=%v; want both", got.RevokedAt, used.UsedAt)
	}
	if gotIdle.RevokedAt != nil {
		t.Fatal("an idle-expired session was revoked to make room: it should not count")
	}
	session := func(id string) *sqlstore.Session {
		t.Helper()
		var s *sqlstore.Session
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { s, err = tx.SessionByID(ctx, id); return err }); err != nil {
			t.Fatal(err)
		}
		return s
	}
	usable := 0
	for _, s := range append(made[1:], newest) {
		if session(s.ID).Active(clock.Now()) {
			usable++
		}
	}
	if usable != sqlstore.MaxSessionsPerUser {
		t.Fatalf("%d of the newest %d sessions usable, want all", usable, sqlstore.MaxSessionsPerUser)
	}
	if session(otherSession.ID).RevokedAt != nil {
		t.Fatal("another user's session was revoked")
	}
	i := slices.IndexFunc(events, func(e *sqlstore.SecurityEvent) bool { return e.Kind == "session_limit" })
	if i < 0 || events[i].UserID != u.ID || !strings.Contains(events[i].Details, oldest.ID) || !strings.Contains(events[i].Details, newest.ID) {
		t.Fatalf("no session_limit security event naming the revoked and the new session: %+v", events)
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tn.ID, Action: "session.revoke", TargetID: oldest.ID})
	if err != nil || len(recs) != 1 || recs[0].Event.Details["reason"] != "session_limit" {
		t.Fatalf("audit of the revocation = %+v, %v; want one session.revoke with reason session_limit", recs, err)
	}
}

// Sign-ins racing at the limit all succeed, and the user ends with exactly MaxSessionsPerUser
// active sessions: the count and the revocation do not interleave.
func testLimitSessionsConcurrent(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	update(t, db, func(tx *sqlstore.Tx) error {
		for range sqlstore.MaxSessionsPerUser - 2 {
			if err := tx.CreateSession(ctx, newLimitSession(tn.ID, u.ID, clock.Now()), sqlstore.HashToken(tutela.NewID())); err != nil {
				return err
			}
		}
		return nil
	})
	clock.Add(time.Second)
	const racers = 6
	var wg sync.WaitGroup
	for range racers {
		wg.Go(func() {
			err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				return tx.CreateSession(ctx, newLimitSession(tn.ID, u.ID, clock.Now()), sqlstore.HashToken(tutela.NewID()))
			})
			if err != nil {
				t.Errorf("sign-in at the session limit: %v", err)
			}
		})
	}
	wg.Wait()
	if n := len(activeSessions(t, db, tn.ID, u.ID)); n != sqlstore.MaxSessionsPerUser {
		t.Fatalf("%d active sessions after %d concurrent sign-ins at the limit, want %d", n, racers, sqlstore.MaxSessionsPerUser)
	}
}

// A relying party's sessions count apart: one application signing the user in again and again
// from one sign-in evicts only its own oldest session, never the sign-in itself, another
// application's session or the user's other sign-ins.
func testLimitClientSessions(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	create := func(parent *sqlstore.Session, clientID string) *sqlstore.Session {
		t.Helper()
		s := newLimitSession(tn.ID, u.ID, clock.Now())
		if parent != nil {
			s.ClientID, s.ParentID, s.AbsoluteExpiry = clientID, parent.ID, parent.AbsoluteExpiry
		}
		update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateSession(ctx, s, sqlstore.HashToken(tutela.NewID())) })
		clock.Add(time.Second)
		return s
	}
	signIn := create(nil, "")
	otherApp := create(signIn, "other-app")
	var app []*sqlstore.Session
	for range sqlstore.MaxClientSessionsPerSignIn + 5 {
		app = append(app, create(signIn, "app"))
	}
	revoked := func(s *sqlstore.Session) bool {
		t.Helper()
		var got *sqlstore.Session
		if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.SessionByID(ctx, s.ID); return err }); err != nil {
			t.Fatal(err)
		}
		return got.RevokedAt != nil
	}
	if revoked(signIn) || revoked(otherApp) {
		t.Fatal("an application's sessions evicted the sign-in or another application's session")
	}
	for i, s := range app {
		if want := i < 5; revoked(s) != want {
			t.Fatalf("application session %d revoked=%v, want %v (the oldest beyond %d go)", i, revoked(s), want, sqlstore.MaxClientSessionsPerSignIn)
		}
	}
}
