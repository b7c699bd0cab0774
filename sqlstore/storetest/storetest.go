// Package storetest is the conformance suite every sqlstore dialect must pass. Any store
// behaviour a feature depends on (uniqueness, tenant scoping, rollback, concurrency) is asserted
// here, so SQLite and PostgreSQL cannot drift apart.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/sqlstore"
)

// Test is one conformance test; feature files export slices of them (AuditTests, …).
type Test struct {
	Name string
	Fn   func(*testing.T, Opener)
}

// Opener returns a fresh, migrated, empty store using opt; it must close it when t ends.
type Opener func(t *testing.T, opt sqlstore.Options) *sqlstore.DB

// Run runs the whole suite against the store open makes.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"MigrationsCurrentAndIdempotent", testMigrations},
		{"TenantCRUD", testTenantCRUD},
		{"TenantValidation", testTenantValidation},
		{"UserCRUD", testUserCRUD},
		{"UserValidation", testUserValidation},
		{"EmailIsPlainASCIIAddress", testEmailRule},
		{"NamesRefuseControlAndFormatCharacters", testNameText},
		{"TenantRegionIsRegionCode", testTenantRegion},
		{"EmailUniquePerTenantCaseInsensitive", testEmailUnique},
		{"TenantScoping", testTenantScoping},
		{"Pagination", testPagination},
		{"RollbackOnError", testRollbackOnError},
		{"RollbackOnPanic", testRollbackOnPanic},
		{"ConcurrentWritersLoseNothing", testConcurrentWriters},
		{"OneTimeTokens", testOneTimeTokens},
		{"OneTimeTokenConcurrentRedemption", testTokenRace},
		{"OneTimeTokensEndWithPasswordChangeOrDisable", testTokensRevoked},
		{"RoleGrants", testRoleGrants},
		{"PasswordHashBumpsTokenVersion", testPasswordHash},
		{"TimesAreUTCMicroseconds", testTimes},
	}
	for _, tc := range slices.Concat(AuditTests, AuthzTests, MFATests, KeyTests, AccessReviewTests, ThrottleTests, RetentionTests, LimitsTests, TakeoverTests, JobTests, TokenTests, SubjectTests, ErasureTests, SubjectRetentionTests, SubjectExportTests, PrivacyRewrapTests, ErasureReapplyTests, AnonymizeTests, ProcessingTests, ResidencyTests, ConsentTests, DSRTests, OIDCClientTests, OIDCDPoPTests, OIDCPARTests, OIDCLogoutTests, OIDCConsentTests, PasskeyTests, AITests, FilesTests, ApprovalsTests, TenantModeTests, WebhookTests, ReferralTests, MergeTests, PartnerTests, MonitorTests, ComplianceTests, IncidentTests, AuditShipTests, RateLimitTests, RefreshTests, AuditQueueTests, AuthEpochTests) {
		tests = append(tests, struct {
			name string
			fn   func(*testing.T, Opener)
		}{tc.Name, tc.Fn})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

type fakeClock = clocktest.Clock

func newClock() *fakeClock {
	return clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC))
}

var ctx = context.Background()

func mustCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := tutela.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func update(t *testing.T, db *sqlstore.DB, fn func(*sqlstore.Tx) error) {
	t.Helper()
	if err := db.Update(ctx, fn); err != nil {
		t.Fatal(err)
	}
}

func createTenant(t *testing.T, db *sqlstore.DB, slug string) *tutela.Tenant {
	t.Helper()
	tn := &tutela.Tenant{Slug: slug, Name: "Tenant " + slug, Region: "eu-west"}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, tn) })
	return tn
}

func createUser(t *testing.T, db *sqlstore.DB, tenantID, email string) *tutela.User {
	t.Helper()
	u := &tutela.User{Email: email, DisplayName: "User " + email}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(tenantID).Create(ctx, u) })
	return u
}

func testMigrations(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	ok, err := db.MigrationsCurrent(ctx)
	if err != nil || !ok {
		t.Fatalf("MigrationsCurrent = %v, %v; want true", ok, err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	st, err := db.MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) == 0 {
		t.Fatal("no migrations reported")
	}
	for _, m := range st {
		if m.AppliedAt.IsZero() {
			t.Errorf("migration %d %s not applied", m.Version, m.Name)
		}
	}
}

func testTenantCRUD(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "unhcr-jordan")
	if !tutela.ValidID(tn.ID) || tn.Status != tutela.StatusActive || tn.CreatedAt.IsZero() {
		t.Fatalf("created tenant = %+v", tn)
	}
	var got, bySlug *tutela.Tenant
	err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if got, err = tx.Tenant(ctx, tn.ID); err != nil {
			return err
		}
		bySlug, err = tx.TenantBySlug(ctx, "unhcr-jordan")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if *got != *tn || *bySlug != *tn {
		t.Fatalf("read back %+v / %+v, want %+v", got, bySlug, tn)
	}
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.CreateTenant(ctx, &tutela.Tenant{Slug: "unhcr-jordan", Name: "Dup", Region: "eu"})
	})
	mustCode(t, err, tutela.ECONFLICT)

	tn.Name, tn.Status = "Renamed", tutela.StatusDisabled
	update(t, db, func(tx *sqlstore.Tx) error { return tx.UpdateTenant(ctx, tn) })
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.Tenant(ctx, tn.ID); return })
	if got.Name != "Renamed" || got.Status != tutela.StatusDisabled {
		t.Fatalf("after update: %+v", got)
	}
	missing := &tutela.Tenant{ID: tutela.NewID(), Slug: "x", Name: "x", Region: "eu", Status: tutela.StatusActive}
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.UpdateTenant(ctx, missing) }), tutela.ENOTFOUND)
	mustCode(t, db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Tenant(ctx, tutela.NewID()); return err }), tutela.ENOTFOUND)
	mustCode(t, db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Tenant(ctx, "1 OR 1=1"); return err }), tutela.ENOTFOUND)
}

func testTenantValidation(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	cases := []struct {
		tn    tutela.Tenant
		field string
	}{
		{tutela.Tenant{Slug: "Upper", Name: "n", Region: "eu"}, "slug"},
		{tutela.Tenant{Slug: "-lead", Name: "n", Region: "eu"}, "slug"},
		{tutela.Tenant{Slug: "", Name: "n", Region: "eu"}, "slug"},
		{tutela.Tenant{Slug: "ok", Name: " ", Region: "eu"}, "name"},
		{tutela.Tenant{Slug: "ok", Name: "n", Region: ""}, "data_region"},
		{tutela.Tenant{Slug: "ok", Name: "n", Region: "eu", Status: "weird"}, "status"},
	}
	for _, c := range cases {
		err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CreateTenant(ctx, &c.tn) })
		var e *tutela.Error
		if !errors.As(err, &e) || e.Code != tutela.EINVALID || e.Field != c.field {
			t.Errorf("CreateTenant(%+v) = %v, want invalid on %s", c.tn, err, c.field)
		}
	}
	var n int
	_ = db.View(ctx, func(tx *sqlstore.Tx) error {
		ts, err := tx.ListTenants(ctx, "", 10)
		n = len(ts)
		return err
	})
	if n != 0 {
		t.Fatalf("invalid tenants were stored: %d", n)
	}
}

func testUserCRUD(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "Ana.Lopez@Example.org")
	if !tutela.ValidID(u.ID) || u.TenantID != tn.ID || u.Status != tutela.StatusActive {
		t.Fatalf("created user = %+v", u)
	}
	users := func(tx *sqlstore.Tx) sqlstore.Users { return tx.Users(tn.ID) }
	var got, byEmail *tutela.User
	err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if got, err = users(tx).Get(ctx, u.ID); err != nil {
			return err
		}
		byEmail, err = users(tx).ByEmail(ctx, "  ana.lopez@EXAMPLE.ORG ")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if *got != *u || *byEmail != *u {
		t.Fatalf("read back %+v / %+v, want %+v", got, byEmail, u)
	}
	if got.Email != "Ana.Lopez@Example.org" {
		t.Errorf("email as given not kept: %q", got.Email)
	}
	u.DisplayName, u.Status = "Ana L.", tutela.StatusDisabled
	update(t, db, func(tx *sqlstore.Tx) error { return users(tx).Update(ctx, u) })
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = users(tx).Get(ctx, u.ID); return })
	if got.DisplayName != "Ana L." || got.Status != tutela.StatusDisabled {
		t.Fatalf("after update: %+v", got)
	}
	update(t, db, func(tx *sqlstore.Tx) error { return users(tx).Delete(ctx, u.ID) })
	mustCode(t, db.View(ctx, func(tx *sqlstore.Tx) error { _, err := users(tx).Get(ctx, u.ID); return err }), tutela.ENOTFOUND)
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return users(tx).Delete(ctx, u.ID) }), tutela.ENOTFOUND)
	// A user cannot be created in a tenant that does not exist.
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.Users(tutela.NewID()).Create(ctx, &tutela.User{Email: "x@example.org"})
	}), tutela.ENOTFOUND)
}

func testUserValidation(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	for _, email := range []string{"", "not-an-email", "Ana <ana@example.org>", "a@b@c", string(make([]byte, 300))} {
		err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.Users(tn.ID).Create(ctx, &tutela.User{Email: email})
		})
		var e *tutela.Error
		if !errors.As(err, &e) || e.Code != tutela.EINVALID || e.Field != "email" {
			t.Errorf("Create(email=%q) = %v, want invalid email", email, err)
		}
	}
}

func testEmailUnique(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b := createTenant(t, db, "tenant-a"), createTenant(t, db, "tenant-b")
	createUser(t, db, a.ID, "sam@example.org")
	for _, dup := range []string{"sam@example.org", "SAM@Example.ORG", " Sam@example.org"} {
		err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.Users(a.ID).Create(ctx, &tutela.User{Email: dup})
		})
		mustCode(t, err, tutela.ECONFLICT)
	}
	// The same address may exist in another tenant.
	createUser(t, db, b.ID, "SAM@example.org")
	// Renaming into a taken address is a conflict too.
	other := createUser(t, db, a.ID, "kim@example.org")
	other.Email = "Sam@Example.org"
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(a.ID).Update(ctx, other) }), tutela.ECONFLICT)
}

func testTenantScoping(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b := createTenant(t, db, "tenant-a"), createTenant(t, db, "tenant-b")
	ua := createUser(t, db, a.ID, "a@example.org")
	ub := createUser(t, db, b.ID, "b@example.org")

	// Every read and write through tenant A's repository must miss tenant B's user, by ID and
	// by e-mail, exactly like an ID that does not exist.
	checks := map[string]func(tx *sqlstore.Tx) error{
		"Get":     func(tx *sqlstore.Tx) error { _, err := tx.Users(a.ID).Get(ctx, ub.ID); return err },
		"ByEmail": func(tx *sqlstore.Tx) error { _, err := tx.Users(a.ID).ByEmail(ctx, ub.Email); return err },
		"Update": func(tx *sqlstore.Tx) error {
			c := *ub
			c.DisplayName = "hijacked"
			return tx.Users(a.ID).Update(ctx, &c)
		},
		"Delete":          func(tx *sqlstore.Tx) error { return tx.Users(a.ID).Delete(ctx, ub.ID) },
		"PasswordHash":    func(tx *sqlstore.Tx) error { _, _, err := tx.Users(a.ID).PasswordHash(ctx, ub.ID); return err },
		"SetPasswordHash": func(tx *sqlstore.Tx) error { return tx.Users(a.ID).SetPasswordHash(ctx, ub.ID, "x") },
		"Grant":           func(tx *sqlstore.Tx) error { return tx.Users(a.ID).Grant(ctx, ub.ID, "operator", "", nil) },
		"CreateToken": func(tx *sqlstore.Tx) error {
			_, _, err := tx.Users(a.ID).CreateToken(ctx, ub.ID, sqlstore.TokenReset, time.Hour)
			return err
		},
	}
	for name, fn := range checks {
		err := db.Update(ctx, fn)
		if tutela.ErrorCode(err) != tutela.ENOTFOUND {
			t.Errorf("%s across tenants = %v, want not_found", name, err)
		}
	}
	var list []*tutela.User
	var roles []string
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if list, err = tx.Users(a.ID).List(ctx, "", 100); err != nil {
			return err
		}
		roles, err = tx.Users(a.ID).Roles(ctx, ub.ID)
		return err
	})
	if len(list) != 1 || list[0].ID != ua.ID {
		t.Fatalf("tenant A list = %v, want only its own user", list)
	}
	if len(roles) != 0 {
		t.Fatalf("roles visible across tenants: %v", roles)
	}
	// B's user is untouched.
	var got *tutela.User
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.Users(b.ID).Get(ctx, ub.ID); return })
	if got == nil || got.DisplayName != ub.DisplayName {
		t.Fatalf("tenant B user changed: %+v", got)
	}
}

func testPagination(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	want := map[string]bool{}
	for i := range 7 {
		want[createUser(t, db, tn.ID, fmt.Sprintf("u%d@example.org", i)).ID] = true
	}
	seen, cursor := map[string]bool{}, ""
	for pages := 0; ; pages++ {
		if pages > 4 {
			t.Fatal("pagination does not terminate")
		}
		var page []*tutela.User
		_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { page, err = tx.Users(tn.ID).List(ctx, cursor, 3); return })
		if len(page) > 3 {
			t.Fatalf("page of %d, limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, u := range page {
			if seen[u.ID] {
				t.Fatalf("user %s on two pages", u.ID)
			}
			seen[u.ID] = true
		}
		cursor = page[len(page)-1].ID
	}
	if len(seen) != len(want) {
		t.Fatalf("paged through %d users, want %d", len(seen), len(want))
	}
}

var errBoom = errors.New("boom")

func testRollbackOnError(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		tn := &tutela.Tenant{Slug: "ghost", Name: "Ghost", Region: "eu"}
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		if err := tx.Users(tn.ID).Create(ctx, &tutela.User{Email: "g@example.org"}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want errBoom", err)
	}
	assertNoTenant(t, db, "ghost")
	// A failing statement inside the transaction rolls back the earlier successful ones too.
	createTenant(t, db, "taken")
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.CreateTenant(ctx, &tutela.Tenant{Slug: "ghost2", Name: "G", Region: "eu"}); err != nil {
			return err
		}
		return tx.CreateTenant(ctx, &tutela.Tenant{Slug: "taken", Name: "T", Region: "eu"})
	})
	mustCode(t, err, tutela.ECONFLICT)
	assertNoTenant(t, db, "ghost2")
}

func testRollbackOnPanic(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic was swallowed")
			}
		}()
		_ = db.Update(ctx, func(tx *sqlstore.Tx) error {
			if err := tx.CreateTenant(ctx, &tutela.Tenant{Slug: "panicky", Name: "P", Region: "eu"}); err != nil {
				return err
			}
			panic("mid-transaction")
		})
	}()
	assertNoTenant(t, db, "panicky")
	createTenant(t, db, "after-panic") // the store is still usable
}

func assertNoTenant(t *testing.T, db *sqlstore.DB, slug string) {
	t.Helper()
	err := db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.TenantBySlug(ctx, slug); return err })
	mustCode(t, err, tutela.ENOTFOUND)
}

func testConcurrentWriters(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "busy")
	counter := createUser(t, db, tn.ID, "counter@example.org")
	const writers = 50
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range writers {
		wg.Go(func() {
			err := db.Update(ctx, func(tx *sqlstore.Tx) error {
				if err := tx.Users(tn.ID).Create(ctx, &tutela.User{Email: fmt.Sprintf("w%d@example.org", i)}); err != nil {
					return err
				}
				// An atomic read-modify-write on one row: every increment must survive.
				return tx.Users(tn.ID).SetPasswordHash(ctx, counter.ID, "h")
			})
			if err != nil {
				failed.Add(1)
				t.Errorf("writer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.FailNow()
	}
	var n int
	var version int64
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		if n, err = tx.Users(tn.ID).Count(ctx); err != nil {
			return err
		}
		_, version, err = tx.Users(tn.ID).PasswordHash(ctx, counter.ID)
		return err
	})
	if n != writers+1 {
		t.Fatalf("users = %d, want %d", n, writers+1)
	}
	if version != 1+writers {
		t.Fatalf("token_version = %d, want %d: concurrent increments were lost", version, 1+writers)
	}
}

func testOneTimeTokens(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	issue := func(purpose string) string {
		var tok string
		update(t, db, func(tx *sqlstore.Tx) (err error) {
			tok, _, err = tx.Users(tn.ID).CreateToken(ctx, u.ID, purpose, time.Hour)
			return
		})
		return tok
	}
	consume := func(tok, purpose string) (*sqlstore.OneTimeToken, error) {
		var got *sqlstore.OneTimeToken
		err := db.Update(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.ConsumeToken(ctx, tok, purpose); return })
		return got, err
	}
	tok := issue(sqlstore.TokenSetup)
	if len(tok) != 64 {
		t.Fatalf("token length %d", len(tok))
	}
	_, err := consume(tok, sqlstore.TokenReset)
	mustCode(t, err, tutela.EUNAUTHENTICATED) // wrong purpose
	got, err := consume(tok, sqlstore.TokenSetup)
	if err != nil || got.UserID != u.ID || got.TenantID != tn.ID {
		t.Fatalf("consume = %+v, %v", got, err)
	}
	_, err = consume(tok, sqlstore.TokenSetup)
	mustCode(t, err, tutela.EUNAUTHENTICATED) // replay

	expiring := issue(sqlstore.TokenSetup)
	clock.Add(time.Hour + time.Microsecond)
	_, err = consume(expiring, sqlstore.TokenSetup)
	mustCode(t, err, tutela.EUNAUTHENTICATED) // expired

	fresh := issue(sqlstore.TokenSetup)
	flipped := []byte(fresh)
	flipped[10] ^= 1
	for _, bad := range []string{"", "short", string(flipped), fresh + "0"} {
		_, err = consume(bad, sqlstore.TokenSetup)
		mustCode(t, err, tutela.EUNAUTHENTICATED)
	}
	if _, err := consume(fresh, sqlstore.TokenSetup); err != nil {
		t.Fatalf("untampered token refused after attacks: %v", err)
	}
}

func testTokenRace(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	var tok string
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		tok, _, err = tx.Users(tn.ID).CreateToken(ctx, u.ID, sqlstore.TokenSetup, time.Hour)
		return
	})
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			err := db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := tx.ConsumeToken(ctx, tok, sqlstore.TokenSetup); return err })
			if err == nil {
				wins.Add(1)
			} else if tutela.ErrorCode(err) != tutela.EUNAUTHENTICATED {
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("token redeemed %d times, want exactly once", wins.Load())
	}
}

// testTokensRevoked: a new password or a disabled account deletes every outstanding one-time
// token of the user (reset codes, setup tokens, MFA challenges) and nobody else's.
func testTokensRevoked(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	other := createUser(t, db, tn.ID, "b@example.org")
	issue := func(userID, purpose string) string {
		var tok string
		update(t, db, func(tx *sqlstore.Tx) (err error) {
			tok, _, err = tx.Users(tn.ID).CreateToken(ctx, userID, purpose, time.Hour)
			return
		})
		return tok
	}
	peek := func(tok, purpose string) error {
		return db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.PeekToken(ctx, tok, purpose); return err })
	}
	reset, challenge, setup := issue(u.ID, sqlstore.TokenReset), issue(u.ID, sqlstore.TokenMFA), issue(u.ID, sqlstore.TokenSetup)
	othersReset := issue(other.ID, sqlstore.TokenReset)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).SetPasswordHash(ctx, u.ID, "$argon2id$new") })
	for purpose, tok := range map[string]string{sqlstore.TokenReset: reset, sqlstore.TokenMFA: challenge, sqlstore.TokenSetup: setup} {
		mustCode(t, peek(tok, purpose), tutela.EUNAUTHENTICATED)
	}
	if err := peek(othersReset, sqlstore.TokenReset); err != nil {
		t.Fatalf("another user's token revoked: %v", err)
	}

	reset = issue(u.ID, sqlstore.TokenReset)
	update(t, db, func(tx *sqlstore.Tx) error {
		got, err := tx.Users(tn.ID).Get(ctx, u.ID)
		if err != nil {
			return err
		}
		got.DisplayName = "renamed" // an update that keeps the user active keeps the token
		return tx.Users(tn.ID).Update(ctx, got)
	})
	if err := peek(reset, sqlstore.TokenReset); err != nil {
		t.Fatalf("token revoked by a plain update: %v", err)
	}
	update(t, db, func(tx *sqlstore.Tx) error {
		got, err := tx.Users(tn.ID).Get(ctx, u.ID)
		if err != nil {
			return err
		}
		got.Status = tutela.StatusDisabled
		return tx.Users(tn.ID).Update(ctx, got)
	})
	mustCode(t, peek(reset, sqlstore.TokenReset), tutela.EUNAUTHENTICATED)
	if err := peek(othersReset, sqlstore.TokenReset); err != nil {
		t.Fatalf("another user's token revoked: %v", err)
	}
}

func testRoleGrants(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "root@example.org")
	v := createUser(t, db, tn.ID, "temp@example.org")
	count := func() int {
		var n int
		_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { n, err = tx.CountRoleHolders(ctx, "super_admin"); return })
		return n
	}
	if count() != 0 {
		t.Fatal("fresh store has a super_admin: no default accounts allowed")
	}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Grant(ctx, u.ID, "super_admin", "", nil) })
	exp := clock.Now().Add(time.Hour)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Grant(ctx, v.ID, "super_admin", u.ID, &exp) })
	if count() != 2 {
		t.Fatalf("holders = %d, want 2", count())
	}
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Grant(ctx, u.ID, "super_admin", "", nil) }), tutela.ECONFLICT)
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Grant(ctx, u.ID, "no_such_role", "", nil) }), tutela.ENOTFOUND)
	clock.Add(2 * time.Hour)
	if count() != 1 {
		t.Fatalf("expired grant still counted: holders = %d", count())
	}
	var roles []string
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { roles, err = tx.Users(tn.ID).Roles(ctx, v.ID); return })
	if len(roles) != 0 {
		t.Fatalf("expired grant still listed: %v", roles)
	}
}

func testPasswordHash(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "acme")
	u := createUser(t, db, tn.ID, "a@example.org")
	get := func() (string, int64) {
		var h string
		var v int64
		_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { h, v, err = tx.Users(tn.ID).PasswordHash(ctx, u.ID); return })
		return h, v
	}
	h, v := get()
	if h != "" || v != 1 {
		t.Fatalf("new user hash=%q version=%d", h, v)
	}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).SetPasswordHash(ctx, u.ID, "$argon2id$x") })
	h, v = get()
	if h != "$argon2id$x" || v != 2 {
		t.Fatalf("after set hash=%q version=%d", h, v)
	}
}

func testTimes(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	want := clock.Now().Truncate(time.Microsecond)
	if !tn.CreatedAt.Equal(want) {
		t.Fatalf("CreatedAt = %v, want %v", tn.CreatedAt, want)
	}
	var got *tutela.Tenant
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.Tenant(ctx, tn.ID); return })
	if !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("read back %v (%v), want %v UTC", got.CreatedAt, got.CreatedAt.Location(), want)
	}
}
