package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/authz"
	"tutela/sqlstore"
)

// AccessReviewTests cover access reviews: the snapshot of grants, decisions that revoke at
// once, closing with auto-revocation, dormant accounts and tenant scoping.
var AccessReviewTests = []Test{
	{"AccessReviewSnapshotsUnexpiredAllowsOnly", testReviewSnapshot},
	{"AccessReviewOpenValidation", testReviewValidation},
	{"AccessReviewDecisionsRevokeAtOnce", testReviewDecide},
	{"AccessReviewCloseAutoRevokesButKeepsLastAdmin", testReviewCloseAutoRevoke},
	{"AccessReviewCloseReportsUnreviewed", testReviewCloseReport},
	{"AccessReviewDormantFromLastLogin", testReviewDormant},
	{"AccessReviewTenantScoping", testReviewScoping},
	{"AccessReviewClosesAtDeadline", testReviewClosesAtDeadline},
	{"AccessReviewConcurrentSweepersCloseOnce", testReviewSweepersRace},
}

func arGrantRole(t *testing.T, db *sqlstore.DB, tenantID, userID, role string, exp *time.Time) {
	t.Helper()
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(tenantID).Grant(ctx, userID, role, "", exp) })
}

func arGrantPerm(t *testing.T, db *sqlstore.DB, tenantID, userID string, p authz.Permission, eff authz.Effect, exp *time.Time) *sqlstore.UserPermission {
	t.Helper()
	up := &sqlstore.UserPermission{Permission: p, Effect: eff, ExpiresAt: exp}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(tenantID).GrantPermission(ctx, userID, up) })
	return up
}

func arOpen(t *testing.T, db *sqlstore.DB, tenantID string, r *sqlstore.AccessReview) *sqlstore.AccessReview {
	t.Helper()
	update(t, db, func(tx *sqlstore.Tx) error { return tx.AccessReviews(tenantID).Open(ctx, r) })
	return r
}

func arItems(t *testing.T, db *sqlstore.DB, tenantID, reviewID string, pending bool) []*sqlstore.AccessReviewItem {
	t.Helper()
	var items []*sqlstore.AccessReviewItem
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		items, err = tx.AccessReviews(tenantID).Items(ctx, reviewID, pending)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return items
}

// itemFor finds the item describing grant for user.
func arItem(t *testing.T, items []*sqlstore.AccessReviewItem, userID, grant string) *sqlstore.AccessReviewItem {
	t.Helper()
	for _, it := range items {
		if it.UserID == userID && it.Description == grant {
			return it
		}
	}
	t.Fatalf("no item %q for user %s", grant, userID)
	return nil
}

func arDecide(db *sqlstore.DB, tenantID, reviewID, itemID string, d sqlstore.ItemDecision) error {
	return db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.AccessReviews(tenantID).Decide(ctx, reviewID, itemID, d)
		return err
	})
}

func arAllowed(t *testing.T, db *sqlstore.DB, now time.Time, tenantID, userID string, a authz.Action, res string) bool {
	t.Helper()
	var p *authz.Policy
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { p, err = tx.Policy(ctx, tenantID, userID); return }); err != nil {
		t.Fatal(err)
	}
	return authz.Decide(p, authz.Request{Action: a, Resource: res}, now).Allow
}

func arAuditCount(t *testing.T, db *sqlstore.DB, tenantID, action string) int {
	t.Helper()
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tenantID, Action: action, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

func testReviewSnapshot(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	a, b := createTenant(t, db, "tenant-a"), createTenant(t, db, "tenant-b")
	admin := createUser(t, db, a.ID, "admin@example.org")
	op := createUser(t, db, a.ID, "op@example.org")
	idle := createUser(t, db, a.ID, "idle@example.org") // no grants: no items
	other := createUser(t, db, b.ID, "other@example.org")
	soon := clock.Now().Add(time.Hour)
	later := clock.Now().Add(48 * time.Hour)
	arGrantRole(t, db, a.ID, admin.ID, authz.RoleProgramAdmin, nil)
	arGrantRole(t, db, a.ID, op.ID, authz.RoleOperator, &later)
	arGrantRole(t, db, a.ID, op.ID, authz.RoleAuditor, &soon) // expires before the review opens
	export := arGrantPerm(t, db, a.ID, op.ID, authz.Permission{Resource: "records", Action: authz.Export, MaxClass: authz.Green}, authz.Allow, nil)
	arGrantPerm(t, db, a.ID, op.ID, authz.Permission{Resource: "records", Action: authz.Update}, authz.Deny, nil)
	arGrantPerm(t, db, a.ID, op.ID, authz.Permission{Resource: "audit", Action: authz.Read}, authz.Allow, &soon)
	arGrantRole(t, db, b.ID, other.ID, authz.RoleProgramAdmin, nil)
	clock.Add(2 * time.Hour)

	r := arOpen(t, db, a.ID, &sqlstore.AccessReview{Deadline: clock.Now().Add(14 * 24 * time.Hour), CreatedBy: admin.ID})
	if r.Status != sqlstore.ReviewOpen || r.DormantDays != sqlstore.DefaultDormantDays || r.Counts.Items != 3 || r.Counts.Pending != 3 {
		t.Fatalf("opened review %+v", r)
	}
	items := arItems(t, db, a.ID, r.ID, false)
	var got []string
	for _, it := range items {
		got = append(got, it.UserID+" "+it.Description)
		if it.Decision != "" || it.Outcome != "" || !it.Pending() || it.ReviewID != r.ID {
			t.Errorf("new item not pending: %+v", it)
		}
	}
	want := []string{
		admin.ID + " role program_admin",
		op.ID + " allow records:EXPORT≤GREEN",
		op.ID + " role operator",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("snapshot = %q\nwant     %q (no denies, nothing expired, nothing from tenant B, nobody without grants)", got, want)
	}
	_ = idle
	perm := arItem(t, items, op.ID, "allow records:EXPORT≤GREEN")
	if perm.Kind != sqlstore.ReviewKindPermission || perm.UserPermissionID != export.ID || perm.UserEmail != "op@example.org" {
		t.Fatalf("permission item %+v", perm)
	}
	role := arItem(t, items, op.ID, "role operator")
	if role.Kind != sqlstore.ReviewKindRole || role.RoleKey != authz.RoleOperator || role.GrantExpiresAt == nil ||
		!role.GrantExpiresAt.Truncate(time.Microsecond).Equal(later.Truncate(time.Microsecond)) {
		t.Fatalf("role item %+v", role)
	}
	// Only pending items with ?pending; all are pending now.
	if n := len(arItems(t, db, a.ID, r.ID, true)); n != 3 {
		t.Fatalf("pending = %d", n)
	}
	if n := arAuditCount(t, db, a.ID, "access_review.open"); n != 1 {
		t.Fatalf("access_review.open events = %d", n)
	}
	// Tenant B's review sees only tenant B.
	rb := arOpen(t, db, b.ID, &sqlstore.AccessReview{Deadline: clock.Now().Add(24 * time.Hour)})
	if ib := arItems(t, db, b.ID, rb.ID, false); len(ib) != 1 || ib[0].UserID != other.ID {
		t.Fatalf("tenant B items %+v", ib)
	}
}

func testReviewValidation(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	now := clock.Now()
	for _, c := range []struct {
		r     sqlstore.AccessReview
		field string
	}{
		{sqlstore.AccessReview{}, "deadline"},
		{sqlstore.AccessReview{Deadline: now.Add(-time.Minute)}, "deadline"},
		{sqlstore.AccessReview{Deadline: now}, "deadline"},
		{sqlstore.AccessReview{Deadline: now.AddDate(1, 0, 2)}, "deadline"},
		{sqlstore.AccessReview{Deadline: now.Add(time.Hour), DormantDays: -1}, "dormant_days"},
		{sqlstore.AccessReview{Deadline: now.Add(time.Hour), DormantDays: 3651}, "dormant_days"},
	} {
		err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AccessReviews(tn.ID).Open(ctx, &c.r) })
		var te *tutela.Error
		if tutela.ErrorCode(err) != tutela.EINVALID || !errors.As(err, &te) || te.Field != c.field {
			t.Errorf("Open(%+v) = %v, want invalid %s", c.r, err, c.field)
		}
	}
	r := arOpen(t, db, tn.ID, &sqlstore.AccessReview{Deadline: now.AddDate(1, 0, 0), DormantDays: 3650, AutoRevoke: true})
	var got *sqlstore.AccessReview
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { got, err = tx.AccessReviews(tn.ID).Get(ctx, r.ID); return }); err != nil {
		t.Fatal(err)
	}
	if !got.AutoRevoke || got.DormantDays != 3650 || !got.Deadline.Equal(r.Deadline) || got.Counts.Items != 0 || got.ClosedAt != nil {
		t.Fatalf("read back %+v, want %+v", got, r)
	}
	if n := arAuditCount(t, db, tn.ID, "access_review.open"); n != 1 {
		t.Fatalf("rejected opens left events: %d", n)
	}
}

func testReviewDecide(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	admin := createUser(t, db, tn.ID, "admin@example.org")
	auditor := createUser(t, db, tn.ID, "auditor@example.org")
	op := createUser(t, db, tn.ID, "op@example.org")
	root := createUser(t, db, tn.ID, "root@example.org")
	arGrantRole(t, db, tn.ID, admin.ID, authz.RoleProgramAdmin, nil)
	arGrantRole(t, db, tn.ID, auditor.ID, authz.RoleAuditor, nil)
	arGrantRole(t, db, tn.ID, op.ID, authz.RoleOperator, nil)
	arGrantRole(t, db, tn.ID, root.ID, authz.RoleSuperAdmin, nil)
	arGrantPerm(t, db, tn.ID, op.ID, authz.Permission{Resource: "records", Action: authz.Export}, authz.Allow, nil)
	r := arOpen(t, db, tn.ID, &sqlstore.AccessReview{Deadline: clock.Now().Add(7 * 24 * time.Hour), CreatedBy: admin.ID})
	items := arItems(t, db, tn.ID, r.ID, false)
	opRole := arItem(t, items, op.ID, "role operator")
	opPerm := arItem(t, items, op.ID, "allow records:EXPORT")
	audRole := arItem(t, items, auditor.ID, "role auditor")
	adminRole := arItem(t, items, admin.ID, "role program_admin")
	rootRole := arItem(t, items, root.ID, "role super_admin")
	now := clock.Now()
	if !arAllowed(t, db, now, tn.ID, op.ID, authz.Read, "records") || !arAllowed(t, db, now, tn.ID, op.ID, authz.Export, "records") {
		t.Fatal("operator lacks access before the review")
	}
	by := func(reviewer, decision string) sqlstore.ItemDecision {
		return sqlstore.ItemDecision{Decision: decision, ReviewerID: reviewer, Comment: "checked with the team lead"}
	}

	// Nobody decides on their own grants, not even to keep them.
	mustCode(t, arDecide(db, tn.ID, r.ID, audRole.ID, by(auditor.ID, sqlstore.DecisionKeep)), tutela.EFORBIDDEN)
	mustCode(t, arDecide(db, tn.ID, r.ID, adminRole.ID, by(admin.ID, sqlstore.DecisionRevoke)), tutela.EFORBIDDEN)
	// Bad input.
	mustCode(t, arDecide(db, tn.ID, r.ID, opRole.ID, by(auditor.ID, "maybe")), tutela.EINVALID)
	mustCode(t, arDecide(db, tn.ID, r.ID, opRole.ID, sqlstore.ItemDecision{Decision: "keep", ReviewerID: auditor.ID,
		Comment: string(make([]byte, 1001))}), tutela.EINVALID)
	mustCode(t, arDecide(db, tn.ID, r.ID, tutela.NewID(), by(auditor.ID, sqlstore.DecisionKeep)), tutela.ENOTFOUND)
	mustCode(t, arDecide(db, tn.ID, r.ID, "not-an-id", by(auditor.ID, sqlstore.DecisionKeep)), tutela.ENOTFOUND)
	// The last programme administrator cannot be revoked; super_admin only by the platform.
	mustCode(t, arDecide(db, tn.ID, r.ID, adminRole.ID, by(auditor.ID, sqlstore.DecisionRevoke)), tutela.ECONFLICT)
	mustCode(t, arDecide(db, tn.ID, r.ID, rootRole.ID, by(admin.ID, sqlstore.DecisionRevoke)), tutela.EFORBIDDEN)
	if !arAllowed(t, db, now, tn.ID, admin.ID, authz.Manage, "users") {
		t.Fatal("refused revocation still removed the last programme administrator")
	}

	// Revoke applies at once: the next decision for the operator denies.
	arOK(t, arDecide(db, tn.ID, r.ID, opRole.ID, by(admin.ID, sqlstore.DecisionRevoke)))
	if arAllowed(t, db, now, tn.ID, op.ID, authz.Read, "records") {
		t.Fatal("revoked role still allows")
	}
	arOK(t, arDecide(db, tn.ID, r.ID, opPerm.ID, by(auditor.ID, sqlstore.DecisionRevoke)))
	if arAllowed(t, db, now, tn.ID, op.ID, authz.Export, "records") {
		t.Fatal("revoked permission still allows")
	}
	// Keep changes nothing.
	arOK(t, arDecide(db, tn.ID, r.ID, audRole.ID, by(admin.ID, sqlstore.DecisionKeep)))
	if !arAllowed(t, db, now, tn.ID, auditor.ID, authz.Read, "audit") {
		t.Fatal("kept role lost")
	}
	arOK(t, arDecide(db, tn.ID, r.ID, rootRole.ID, sqlstore.ItemDecision{Decision: sqlstore.DecisionKeep, ReviewerID: admin.ID}))
	// A decision is final.
	mustCode(t, arDecide(db, tn.ID, r.ID, opRole.ID, by(auditor.ID, sqlstore.DecisionKeep)), tutela.ECONFLICT)

	items = arItems(t, db, tn.ID, r.ID, false)
	got := arItem(t, items, op.ID, "role operator")
	if got.Decision != sqlstore.DecisionRevoke || got.DecidedBy != admin.ID || got.DecidedAt == nil || !got.DecidedAt.Equal(clock.Now().Truncate(time.Microsecond)) ||
		got.Comment != "checked with the team lead" {
		t.Fatalf("decided item %+v", got)
	}
	if pending := arItems(t, db, tn.ID, r.ID, true); len(pending) != 1 || pending[0].ID != adminRole.ID {
		t.Fatalf("pending after decisions = %+v", pending)
	}
	var rev *sqlstore.AccessReview
	_ = db.View(ctx, func(tx *sqlstore.Tx) (err error) { rev, err = tx.AccessReviews(tn.ID).Get(ctx, r.ID); return })
	if c := rev.Counts; c.Items != 5 || c.Pending != 1 || c.Kept != 2 || c.Revoked != 2 {
		t.Fatalf("counts %+v", c)
	}
	// Every decision is audited, and each revocation also as the grant change it is.
	if n := arAuditCount(t, db, tn.ID, "access_review.decide"); n != 4 {
		t.Fatalf("access_review.decide events = %d, want 4", n)
	}
	if arAuditCount(t, db, tn.ID, "user.role_revoke") != 1 || arAuditCount(t, db, tn.ID, "user.permission_revoke") != 1 {
		t.Fatal("revocations not audited as grant changes")
	}
	// After the deadline no more decisions: the review must be closed.
	clock.Add(8 * 24 * time.Hour)
	mustCode(t, arDecide(db, tn.ID, r.ID, adminRole.ID, by(auditor.ID, sqlstore.DecisionKeep)), tutela.ECONFLICT)
}

func testReviewCloseAutoRevoke(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	admin1 := createUser(t, db, tn.ID, "admin1@example.org")
	admin2 := createUser(t, db, tn.ID, "admin2@example.org")
	op := createUser(t, db, tn.ID, "op@example.org")
	kept := createUser(t, db, tn.ID, "kept@example.org")
	root := createUser(t, db, tn.ID, "root@example.org")
	for _, g := range []struct{ u, role string }{
		{admin1.ID, authz.RoleProgramAdmin}, {admin2.ID, authz.RoleProgramAdmin}, {op.ID, authz.RoleOperator},
		{kept.ID, authz.RoleOperator}, {root.ID, authz.RoleSuperAdmin},
	} {
		arGrantRole(t, db, tn.ID, g.u, g.role, nil)
	}
	arGrantPerm(t, db, tn.ID, op.ID, authz.Permission{Resource: "records", Action: authz.Export}, authz.Allow, nil)
	r := arOpen(t, db, tn.ID, &sqlstore.AccessReview{Deadline: clock.Now().Add(24 * time.Hour), AutoRevoke: true})
	items := arItems(t, db, tn.ID, r.ID, false)
	arOK(t, arDecide(db, tn.ID, r.ID, arItem(t, items, kept.ID, "role operator").ID,
		sqlstore.ItemDecision{Decision: sqlstore.DecisionKeep, ReviewerID: admin1.ID}))

	clock.Add(25 * time.Hour)
	var closed *sqlstore.AccessReview
	var undecided []*sqlstore.AccessReviewItem
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		closed, undecided, err = tx.AccessReviews(tn.ID).Close(ctx, r.ID, admin1.ID)
		return err
	})
	if closed.Status != sqlstore.ReviewClosed || closed.ClosedAt == nil || closed.ClosedBy != admin1.ID {
		t.Fatalf("closed review %+v", closed)
	}
	outcome := map[string]string{}
	for _, it := range undecided {
		outcome[it.UserID+" "+it.Description] = it.Outcome
	}
	// Items are ordered by e-mail, so admin1's grant is settled first: with admin2 still there
	// it goes, and admin2, then the last programme administrator, stays.
	want := map[string]string{
		admin1.ID + " role program_admin": sqlstore.OutcomeAutoRevoked,
		admin2.ID + " role program_admin": sqlstore.OutcomeLastAdminKept,
		op.ID + " role operator":          sqlstore.OutcomeAutoRevoked,
		op.ID + " allow records:EXPORT":   sqlstore.OutcomeAutoRevoked,
		root.ID + " role super_admin":     sqlstore.OutcomePlatformRoleKept,
	}
	if len(outcome) != len(want) {
		t.Fatalf("undecided = %v, want %v", outcome, want)
	}
	for k, v := range want {
		if outcome[k] != v {
			t.Errorf("%s: outcome %q, want %q", k, outcome[k], v)
		}
	}
	now := clock.Now()
	if arAllowed(t, db, now, tn.ID, op.ID, authz.Read, "records") || arAllowed(t, db, now, tn.ID, op.ID, authz.Export, "records") {
		t.Fatal("auto-revoked grants still allow")
	}
	if arAllowed(t, db, now, tn.ID, admin1.ID, authz.Manage, "users") {
		t.Fatal("admin1 kept program_admin")
	}
	if !arAllowed(t, db, now, tn.ID, admin2.ID, authz.Manage, "users") {
		t.Fatal("the last programme administrator was auto-revoked")
	}
	if !arAllowed(t, db, now, tn.ID, kept.ID, authz.Read, "records") || !arAllowed(t, db, now, tn.ID, root.ID, authz.Manage, "keys") {
		t.Fatal("a kept grant or the platform role was revoked")
	}
	// Stored outcomes match, counts add up.
	stored := arItems(t, db, tn.ID, r.ID, false)
	if arItem(t, stored, admin2.ID, "role program_admin").Outcome != sqlstore.OutcomeLastAdminKept {
		t.Fatal("outcome not stored")
	}
	if c := closed.Counts; c.Items != 6 || c.Pending != 0 || c.Kept != 1 || c.AutoRevoked != 3 || c.Unreviewed != 2 {
		t.Fatalf("counts %+v", c)
	}
	for action, n := range map[string]int{
		"access_review.close": 1, "access_review.auto_revoked": 3, "access_review.last_admin_kept": 1,
		"access_review.platform_role_kept": 1, "user.role_revoke": 2, "user.permission_revoke": 1,
	} {
		if got := arAuditCount(t, db, tn.ID, action); got != n {
			t.Errorf("%s events = %d, want %d", action, got, n)
		}
	}
	// Closed is final.
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, _, err := tx.AccessReviews(tn.ID).Close(ctx, r.ID, admin1.ID)
		return err
	}), tutela.ECONFLICT)
}

func testReviewCloseReport(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	admin := createUser(t, db, tn.ID, "admin@example.org")
	op := createUser(t, db, tn.ID, "op@example.org")
	arGrantRole(t, db, tn.ID, admin.ID, authz.RoleProgramAdmin, nil)
	arGrantRole(t, db, tn.ID, op.ID, authz.RoleOperator, nil)
	r := arOpen(t, db, tn.ID, &sqlstore.AccessReview{Deadline: clock.Now().Add(24 * time.Hour)})
	items := arItems(t, db, tn.ID, r.ID, false)
	// Closed explicitly before the deadline, without auto_revoke: unreviewed grants are reported
	// and stay.
	var undecided []*sqlstore.AccessReviewItem
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		_, undecided, err = tx.AccessReviews(tn.ID).Close(ctx, r.ID, admin.ID)
		return err
	})
	if len(undecided) != 2 || undecided[0].Outcome != sqlstore.OutcomeUnreviewed || undecided[1].Outcome != sqlstore.OutcomeUnreviewed {
		t.Fatalf("undecided %+v", undecided)
	}
	if !arAllowed(t, db, clock.Now(), tn.ID, op.ID, authz.Read, "records") {
		t.Fatal("unreviewed grant revoked without auto_revoke")
	}
	mustCode(t, arDecide(db, tn.ID, r.ID, arItem(t, items, op.ID, "role operator").ID,
		sqlstore.ItemDecision{Decision: sqlstore.DecisionRevoke, ReviewerID: admin.ID}), tutela.ECONFLICT)
	if arAuditCount(t, db, tn.ID, "user.role_revoke") != 0 || arAuditCount(t, db, tn.ID, "access_review.close") != 1 {
		t.Fatal("unexpected events")
	}
}

func testReviewDormant(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "acme")
	stale := createUser(t, db, tn.ID, "stale@example.org")        // signs in now, then not for 100 days
	neverOld := createUser(t, db, tn.ID, "never-old@example.org") // created 100 days ago, never signed in
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).RecordLoginSuccess(ctx, stale.ID) })
	lastSeen := clock.Now().Truncate(time.Microsecond)
	clock.Add(100 * 24 * time.Hour)
	recent := createUser(t, db, tn.ID, "recent@example.org")
	neverNew := createUser(t, db, tn.ID, "never-new@example.org") // created today
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).RecordLoginSuccess(ctx, recent.ID) })
	for _, u := range []*tutela.User{stale, neverOld, recent, neverNew} {
		arGrantRole(t, db, tn.ID, u.ID, authz.RoleOperator, nil)
	}
	dormant := func(days int) map[string]bool {
		r := arOpen(t, db, tn.ID, &sqlstore.AccessReview{Deadline: clock.Now().Add(time.Hour), DormantDays: days})
		out := map[string]bool{}
		for _, it := range arItems(t, db, tn.ID, r.ID, false) {
			out[it.UserID] = it.Dormant
			if it.UserID == stale.ID && (it.UserLastLoginAt == nil || !it.UserLastLoginAt.Equal(lastSeen)) {
				t.Errorf("stale last login %v, want %v", it.UserLastLoginAt, lastSeen)
			}
			if it.UserID == neverOld.ID && it.UserLastLoginAt != nil {
				t.Errorf("never signed in but last login %v", it.UserLastLoginAt)
			}
		}
		return out
	}
	d := dormant(0) // default 90 days
	if !d[stale.ID] || !d[neverOld.ID] || d[recent.ID] || d[neverNew.ID] {
		t.Fatalf("dormant (90 days) = %v; stale %s never-old %s recent %s never-new %s", d, stale.ID, neverOld.ID, recent.ID, neverNew.ID)
	}
	if d := dormant(101); d[stale.ID] || d[neverOld.ID] {
		t.Fatalf("dormant (101 days) = %v", d)
	}
	if d := dormant(100); !d[stale.ID] {
		t.Fatalf("exactly 100 days without sign-in is dormant at 100: %v", d)
	}
}

func testReviewScoping(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	a, b := createTenant(t, db, "tenant-a"), createTenant(t, db, "tenant-b")
	ua := createUser(t, db, a.ID, "a@example.org")
	ub := createUser(t, db, b.ID, "b@example.org")
	arGrantRole(t, db, a.ID, ua.ID, authz.RoleOperator, nil)
	r := arOpen(t, db, a.ID, &sqlstore.AccessReview{Deadline: clock.Now().Add(time.Hour)})
	it := arItems(t, db, a.ID, r.ID, false)[0]
	rb := db.View
	mustCode(t, rb(ctx, func(tx *sqlstore.Tx) error { _, err := tx.AccessReviews(b.ID).Get(ctx, r.ID); return err }), tutela.ENOTFOUND)
	mustCode(t, rb(ctx, func(tx *sqlstore.Tx) error { _, err := tx.AccessReviews(b.ID).Item(ctx, r.ID, it.ID); return err }), tutela.ENOTFOUND)
	if items := arItems(t, db, b.ID, r.ID, false); len(items) != 0 {
		t.Fatalf("tenant B reads tenant A's items: %+v", items)
	}
	var list []*sqlstore.AccessReview
	_ = rb(ctx, func(tx *sqlstore.Tx) (err error) { list, err = tx.AccessReviews(b.ID).List(ctx, "", 50); return })
	if len(list) != 0 {
		t.Fatalf("tenant B lists %d reviews", len(list))
	}
	mustCode(t, arDecide(db, b.ID, r.ID, it.ID, sqlstore.ItemDecision{Decision: sqlstore.DecisionRevoke, ReviewerID: ub.ID}), tutela.ENOTFOUND)
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { _, _, err := tx.AccessReviews(b.ID).Close(ctx, r.ID, ub.ID); return err }), tutela.ENOTFOUND)
	// An item of another review of the same tenant is not found under this one.
	r2 := arOpen(t, db, a.ID, &sqlstore.AccessReview{Deadline: clock.Now().Add(time.Hour)})
	mustCode(t, arDecide(db, a.ID, r2.ID, it.ID, sqlstore.ItemDecision{Decision: sqlstore.DecisionKeep, ReviewerID: ub.ID}), tutela.ENOTFOUND)
	_ = rb(ctx, func(tx *sqlstore.Tx) (err error) { list, err = tx.AccessReviews(a.ID).List(ctx, "", 50); return })
	if len(list) != 2 || list[0].ID != r.ID || list[1].ID != r2.ID || list[0].Counts.Items != 1 {
		t.Fatalf("tenant A list %+v", list)
	}
	if !arAllowed(t, db, clock.Now(), a.ID, ua.ID, authz.Read, "records") {
		t.Fatal("a refused cross-tenant decision changed access")
	}
}

func arGet(t *testing.T, db *sqlstore.DB, tenantID, reviewID string) *sqlstore.AccessReview {
	t.Helper()
	var r *sqlstore.AccessReview
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { r, err = tx.AccessReviews(tenantID).Get(ctx, reviewID); return }); err != nil {
		t.Fatal(err)
	}
	return r
}

func arDue(t *testing.T, db *sqlstore.DB, now time.Time, limit int) []sqlstore.DueReview {
	t.Helper()
	var due []sqlstore.DueReview
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { due, err = tx.DueAccessReviews(ctx, now, limit); return }); err != nil {
		t.Fatal(err)
	}
	return due
}

func arSweep(t *testing.T, db *sqlstore.DB, c context.Context, want int) {
	t.Helper()
	n, err := db.CloseDueAccessReviews(c)
	if err != nil || n != want {
		t.Fatalf("CloseDueAccessReviews = %d, %v; want %d, nil", n, err, want)
	}
}

func arCloseEvents(t *testing.T, db *sqlstore.DB, tenantID, reviewID string) []sqlstore.AuditRecord {
	t.Helper()
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: tenantID, Action: "access_review.close",
		TargetID: reviewID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// testReviewClosesAtDeadline: the deadline settles a review without an administrator, with the
// outcomes of a manual close, attributed to the system, and a second node sweeping after the
// first finds nothing to do.
func testReviewClosesAtDeadline(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	a, b := createTenant(t, db, "tenant-a"), createTenant(t, db, "tenant-b")
	admin := createUser(t, db, a.ID, "admin@example.org")
	op := createUser(t, db, a.ID, "op@example.org")
	kept := createUser(t, db, a.ID, "kept@example.org")
	adminB := createUser(t, db, b.ID, "admin@example.org")
	opB := createUser(t, db, b.ID, "op@example.org")
	arGrantRole(t, db, a.ID, admin.ID, authz.RoleProgramAdmin, nil)
	arGrantRole(t, db, a.ID, op.ID, authz.RoleOperator, nil)
	arGrantPerm(t, db, a.ID, op.ID, authz.Permission{Resource: "records", Action: authz.Export}, authz.Allow, nil)
	arGrantRole(t, db, a.ID, kept.ID, authz.RoleOperator, nil)
	arGrantRole(t, db, b.ID, adminB.ID, authz.RoleProgramAdmin, nil)
	arGrantRole(t, db, b.ID, opB.ID, authz.RoleOperator, nil)
	start := clock.Now()
	ra := arOpen(t, db, a.ID, &sqlstore.AccessReview{Deadline: start.Add(24 * time.Hour), AutoRevoke: true, CreatedBy: admin.ID})
	rb := arOpen(t, db, b.ID, &sqlstore.AccessReview{Deadline: start.Add(36 * time.Hour), CreatedBy: adminB.ID})
	later := arOpen(t, db, a.ID, &sqlstore.AccessReview{Deadline: start.Add(30 * 24 * time.Hour)})
	early := arOpen(t, db, b.ID, &sqlstore.AccessReview{Deadline: start.Add(time.Hour)})
	update(t, db, func(tx *sqlstore.Tx) error {
		_, _, err := tx.AccessReviews(b.ID).Close(ctx, early.ID, adminB.ID)
		return err
	})
	arOK(t, arDecide(db, a.ID, ra.ID, arItem(t, arItems(t, db, a.ID, ra.ID, false), kept.ID, "role operator").ID,
		sqlstore.ItemDecision{Decision: sqlstore.DecisionKeep, ReviewerID: admin.ID}))

	// Before the deadline nothing is due; a review is due from the instant of its deadline, when
	// decisions stop being accepted.
	arSweep(t, db, ctx, 0)
	clock.Add(24*time.Hour - time.Microsecond)
	arSweep(t, db, ctx, 0)
	if due := arDue(t, db, ra.Deadline, 10); len(due) != 1 || due[0] != (sqlstore.DueReview{TenantID: a.ID, ReviewID: ra.ID}) {
		t.Fatalf("due at the deadline = %+v, want review A", due)
	}
	clock.Add(48 * time.Hour)
	// Across tenants, oldest deadline first, bounded; neither the closed nor the later review.
	want := []sqlstore.DueReview{{TenantID: a.ID, ReviewID: ra.ID}, {TenantID: b.ID, ReviewID: rb.ID}}
	if due := arDue(t, db, clock.Now(), 10); !slices.Equal(due, want) {
		t.Fatalf("due = %+v, want %+v", due, want)
	}
	if due := arDue(t, db, clock.Now(), 1); !slices.Equal(due, want[:1]) {
		t.Fatalf("due (limit 1) = %+v, want %+v", due, want[:1])
	}

	// The sweep is the system even when the caller's context carries a tenant-scoped request:
	// it must neither be attributed to that user nor be limited to their tenant.
	reqCtx := tutela.WithRequestMeta(ctx, &tutela.RequestMeta{RequestID: "req-1", Principal: &tutela.Principal{
		Kind: tutela.PrincipalUser, TenantID: b.ID, UserID: adminB.ID, Roles: []string{authz.RoleProgramAdmin}}})
	arSweep(t, db, reqCtx, 2)
	now := clock.Now().Truncate(time.Microsecond)
	for _, r := range []struct{ tenant, id string }{{a.ID, ra.ID}, {b.ID, rb.ID}} {
		got := arGet(t, db, r.tenant, r.id)
		if got.Status != sqlstore.ReviewClosed || got.ClosedBy != "" || got.ClosedAt == nil || !got.ClosedAt.Equal(now) || got.Counts.Pending != 0 {
			t.Errorf("review %s after the sweep: %+v", r.id, got)
		}
	}
	if got := arGet(t, db, a.ID, later.ID); got.Status != sqlstore.ReviewOpen {
		t.Fatalf("review before its deadline closed: %+v", got)
	}

	// Tenant A (auto_revoke): undecided grants go, except the last programme administrator.
	outcomes := map[string]string{}
	for _, it := range arItems(t, db, a.ID, ra.ID, false) {
		outcomes[it.UserID+" "+it.Description] = it.Decision + it.Outcome
	}
	for k, v := range map[string]string{
		admin.ID + " role program_admin": sqlstore.OutcomeLastAdminKept,
		op.ID + " role operator":         sqlstore.OutcomeAutoRevoked,
		op.ID + " allow records:EXPORT":  sqlstore.OutcomeAutoRevoked,
		kept.ID + " role operator":       sqlstore.DecisionKeep,
	} {
		if outcomes[k] != v {
			t.Errorf("review A %s: %q, want %q", k, outcomes[k], v)
		}
	}
	if arAllowed(t, db, now, a.ID, op.ID, authz.Read, "records") || arAllowed(t, db, now, a.ID, op.ID, authz.Export, "records") {
		t.Fatal("auto-revoked grants still allow")
	}
	if !arAllowed(t, db, now, a.ID, admin.ID, authz.Manage, "users") || !arAllowed(t, db, now, a.ID, kept.ID, authz.Read, "records") {
		t.Fatal("the last programme administrator or a kept grant was revoked")
	}
	// Tenant B (no auto_revoke): reported, kept.
	for _, it := range arItems(t, db, b.ID, rb.ID, false) {
		if it.Outcome != sqlstore.OutcomeUnreviewed {
			t.Errorf("review B item %s: outcome %q, want unreviewed", it.Description, it.Outcome)
		}
	}
	if !arAllowed(t, db, now, b.ID, opB.ID, authz.Read, "records") {
		t.Fatal("unreviewed grant revoked without auto_revoke")
	}

	// Another node sweeping after the first finds nothing and reports no error.
	arSweep(t, db, ctx, 0)
	if due := arDue(t, db, clock.Now(), 10); len(due) != 0 {
		t.Fatalf("still due after the sweep: %+v", due)
	}

	// The audit log says the system closed them at the deadline.
	for _, r := range []struct{ tenant, id string }{{a.ID, ra.ID}, {b.ID, rb.ID}} {
		recs := arCloseEvents(t, db, r.tenant, r.id)
		if len(recs) != 1 {
			t.Fatalf("access_review.close events for %s = %d, want 1", r.id, len(recs))
		}
		e := recs[0].Event
		if e.ActorType != audit.ActorSystem || e.ActorID != "" || e.RequestID != "" ||
			e.Details["automatic"] != true || e.Details["before_deadline"] != false {
			t.Errorf("close event %+v, want the system after the deadline", e)
		}
	}
	if e := arCloseEvents(t, db, b.ID, early.ID); len(e) != 1 || e[0].Event.Details["automatic"] != false {
		t.Fatalf("manual close event %+v, want automatic false", e)
	}
	revokes, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{TenantID: a.ID, Action: "user.role_revoke", Limit: 1000})
	if err != nil || len(revokes) != 1 || revokes[0].Event.ActorType != audit.ActorSystem {
		t.Fatalf("auto-revocation events %+v, %v; want one by the system", revokes, err)
	}
}

// testReviewSweepersRace: every node runs the sweeper each minute; nodes sweeping at once must
// close each review once, not settle it twice.
func testReviewSweepersRace(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	type review struct{ tenant, id string }
	var reviews []review
	var ops [][2]string // tenant, operator
	for i := range 4 {
		tn := createTenant(t, db, fmt.Sprintf("tenant-%d", i))
		admin := createUser(t, db, tn.ID, "admin@example.org")
		arGrantRole(t, db, tn.ID, admin.ID, authz.RoleProgramAdmin, nil)
		for j := range 2 {
			u := createUser(t, db, tn.ID, fmt.Sprintf("op%d@example.org", j))
			arGrantRole(t, db, tn.ID, u.ID, authz.RoleOperator, nil)
			ops = append(ops, [2]string{tn.ID, u.ID})
		}
		// Two reviews per tenant over the same grants: the second finds them already gone.
		for j := range 2 {
			r := arOpen(t, db, tn.ID, &sqlstore.AccessReview{Deadline: clock.Now().Add(time.Duration(2*i+j+1) * time.Hour), AutoRevoke: true})
			reviews = append(reviews, review{tn.ID, r.ID})
		}
	}
	clock.Add(24 * time.Hour)

	const nodes = 4
	var wg sync.WaitGroup
	startc := make(chan struct{})
	counts := make([]int, nodes)
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Go(func() {
			<-startc
			counts[i], errs[i] = db.CloseDueAccessReviews(ctx)
		})
	}
	close(startc)
	wg.Wait()
	total := 0
	for i := range nodes {
		if errs[i] != nil {
			t.Errorf("sweeper %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	if total != len(reviews) {
		t.Errorf("sweepers closed %d reviews in all (%v), want %d", total, counts, len(reviews))
	}
	for _, r := range reviews {
		if n := len(arCloseEvents(t, db, r.tenant, r.id)); n != 1 {
			t.Errorf("review %s: %d access_review.close events, want 1", r.id, n)
		}
		if got := arGet(t, db, r.tenant, r.id); got.Status != sqlstore.ReviewClosed || got.Counts.AutoRevoked+got.Counts.Unreviewed != 3 {
			t.Errorf("review %s: %+v", r.id, got.Counts)
		}
	}
	now := clock.Now()
	for _, o := range ops {
		if arAllowed(t, db, now, o[0], o[1], authz.Read, "records") {
			t.Errorf("operator %s kept access", o[1])
		}
	}
	for i := range 4 {
		tenantID := reviews[2*i].tenant
		if n := arAuditCount(t, db, tenantID, "user.role_revoke"); n != 2 {
			t.Errorf("tenant %s: %d role revocations, want 2 (each grant once)", tenantID, n)
		}
		if n := arAuditCount(t, db, tenantID, "access_review.last_admin_kept"); n != 2 {
			t.Errorf("tenant %s: %d last_admin_kept, want 2 (one per review)", tenantID, n)
		}
	}
	arSweep(t, db, ctx, 0)
}

func arOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
