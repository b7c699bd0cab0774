package storetest

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/authz"
	"tutela/privacy"
	"tutela/sqlstore"
)

// ResidencyTests assert data residency (issue 14, docs/residency.md): a store bound to a data
// region refuses every other region's tenant with wrong_region, writes nothing for it, and its
// background work (job claims, retention sweeps) leaves other regions' rows alone.
var ResidencyTests = []Test{
	{"ResidencyOtherRegionsTenantRefused", testResidencyTenantRefused},
	{"ResidencyTenantCannotBePlacedInAnotherRegion", testResidencyPlacement},
	{"ResidencyJobsClaimedForOwnRegionOnly", testResidencyJobs},
	{"ResidencyRetentionSweepsOwnRegionOnly", testResidencyRetention},
	{"ResidencyAccessReviewsClosedForOwnRegionOnly", testResidencyAccessReviews},
	{"ResidencyAnonymizedCopyHoldsOwnRegionOnly", testResidencyAnonymizedCopy},
}

// nodeRegion is the region of the bound stores; createTenant creates tenants there.
const nodeRegion, otherRegion = "eu-west", "us-east"

// moveRegion sets a tenant's region behind the store's back, as a node of that region would
// have created it.
func moveRegion(t *testing.T, db *sqlstore.DB, tenantID, region string) {
	t.Helper()
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if db.Dialect() == sqlstore.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT set_config('tutela.tenant', '*', true)`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE tenants SET data_region = $1 WHERE id = $2`, region, tenantID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func mustWrongRegion(t *testing.T, err error, says ...string) {
	t.Helper()
	mustCode(t, err, tutela.EWRONGREGION)
	for _, s := range says {
		if !strings.Contains(tutela.ErrorMessage(err), s) {
			t.Fatalf("message %q does not say %s", tutela.ErrorMessage(err), s)
		}
	}
}

func testResidencyTenantRefused(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{Region: nodeRegion})
	if db.Region() != nodeRegion {
		t.Fatalf("Region() = %q", db.Region())
	}
	own, other := createTenant(t, db, "own"), createTenant(t, db, "other")
	moveRegion(t, db, other.ID, otherRegion)

	meta := &tutela.RequestMeta{RequestID: "req-1"}
	rctx := tutela.WithRequestMeta(ctx, meta)
	err := db.View(rctx, func(tx *sqlstore.Tx) error { _, err := tx.Tenant(rctx, other.ID); return err })
	mustWrongRegion(t, err, `"`+other.ID+`"`, `"`+otherRegion+`"`, `"`+nodeRegion+`"`)
	if strings.Contains(tutela.ErrorMessage(err), other.Name) {
		t.Fatalf("the refusal shows the tenant's name: %q", tutela.ErrorMessage(err))
	}
	want := tutela.ResidencyRefusal{TenantID: other.ID, TenantRegion: otherRegion, NodeRegion: nodeRegion}
	if meta.Residency == nil || *meta.Residency != want {
		t.Fatalf("noted refusal = %+v, want %+v", meta.Residency, want)
	}
	err = db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.TenantBySlug(ctx, "other"); return err })
	mustWrongRegion(t, err, `"other"`, `"`+otherRegion+`"`)
	// Its own region's tenants are served as before; a missing one is still not found.
	if err := db.View(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Tenant(ctx, own.ID); err != nil {
			return err
		}
		_, err := tx.TenantBySlug(ctx, "own")
		return err
	}); err != nil {
		t.Fatalf("own region's tenant: %v", err)
	}
	err = db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.TenantBySlug(ctx, "absent"); return err })
	mustCode(t, err, tutela.ENOTFOUND)

	// The platform's list shows this region's tenants only.
	var list []*tutela.Tenant
	update(t, db, func(tx *sqlstore.Tx) (err error) { list, err = tx.ListTenants(ctx, "", 0); return err })
	if len(list) != 1 || list[0].ID != own.ID {
		t.Fatalf("ListTenants = %d tenants, want only %s", len(list), own.Slug)
	}
}

func testResidencyPlacement(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{Region: nodeRegion})
	own, other := createTenant(t, db, "own"), createTenant(t, db, "other")
	moveRegion(t, db, other.ID, otherRegion)
	tenants := func() int { return count(t, db, `SELECT COUNT(*) FROM tenants`) }
	before := tenants()

	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		return tx.CreateTenant(ctx, &tutela.Tenant{Slug: "elsewhere", Name: "Elsewhere", Region: otherRegion})
	})
	mustWrongRegion(t, err, `"`+nodeRegion+`"`, `"`+otherRegion+`"`)
	if te := (*tutela.Error)(nil); !errors.As(err, &te) || te.Field != "data_region" {
		t.Fatalf("refusal does not name data_region: %v", err)
	}
	if tenants() != before {
		t.Fatal("a refused tenant was created")
	}
	// Moving its own tenant out, or another region's tenant in, is refused alike.
	out := *own
	out.Region = otherRegion
	mustWrongRegion(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.UpdateTenant(ctx, &out) }))
	in := *other
	in.Region, in.Name = nodeRegion, "Taken over"
	mustWrongRegion(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.UpdateTenant(ctx, &in) }), `"`+otherRegion+`"`)
	if n := count(t, db, `SELECT COUNT(*) FROM tenants WHERE id = $1 AND data_region = $2 AND name = $3`,
		other.ID, otherRegion, other.Name); n != 1 {
		t.Fatal("another region's tenant was changed")
	}
	if n := count(t, db, `SELECT COUNT(*) FROM tenants WHERE id = $1 AND data_region = $2`, own.ID, nodeRegion); n != 1 {
		t.Fatal("the region's own tenant was moved out")
	}
	// Within the region a change still works.
	own.Name = "Own, renamed"
	update(t, db, func(tx *sqlstore.Tx) error { return tx.UpdateTenant(ctx, own) })
}

func testResidencyJobs(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Region: nodeRegion, Clock: clock.Now})
	own, other := createTenant(t, db, "own"), createTenant(t, db, "other")
	mine := enqueue(t, db, &sqlstore.Job{Kind: "mail", TenantID: own.ID, MaxAttempts: 3})
	shared := enqueue(t, db, &sqlstore.Job{Kind: "mail", MaxAttempts: 3})
	theirs := enqueue(t, db, &sqlstore.Job{Kind: "mail", TenantID: other.ID, MaxAttempts: 3})
	spent := enqueue(t, db, &sqlstore.Job{Kind: "mail", TenantID: other.ID, MaxAttempts: 1})
	moveRegion(t, db, other.ID, otherRegion)
	// Their last attempt's lease lapsed on their region's node: that node marks it dead, not this one.
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if db.Dialect() == sqlstore.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT set_config('tutela.tenant', '*', true)`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE jobs SET attempts = 1, locked_until = $1 WHERE id = $2`,
		clock.Now().Add(-time.Minute), spent.ID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	var got []*sqlstore.Job
	var dead int64
	update(t, db, func(tx *sqlstore.Tx) (err error) { got, dead, err = tx.ClaimJobs(ctx, 10, jobLease); return err })
	ids := make([]string, len(got))
	for i, j := range got {
		ids[i] = j.ID
	}
	slices.Sort(ids)
	want := []string{mine.ID, shared.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) || dead != 0 {
		t.Fatalf("claimed %v (dead %d), want this region's and the tenant-less job %v", ids, dead, want)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM jobs WHERE id IN ($1, $2) AND state = 'pending' AND lease_token IS NULL`,
		theirs.ID, spent.ID); n != 2 {
		t.Fatalf("%d of another region's jobs left untouched, want 2", n)
	}
}

func testResidencyRetention(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Region: nodeRegion, Clock: clock.Now})
	v := newVault(t, db, newKEK(t))
	k := &subjectKit{db: db, vault: v, seal: privacy.NewSubjects(v), schema: testSchema()}
	own, other := k.addTenant(t, "own"), k.addTenant(t, "other")
	start := clock.Now()
	clock.Set(start.Add(-400 * day))
	var logins []string
	for _, tenantID := range []string{own.ID, other.ID, ""} {
		r := &sqlstore.LoginRecord{TenantID: tenantID, IP: retentionIP, UserAgent: retentionUserAgent, Result: "failure",
			Reason: retentionReason}
		update(t, db, func(tx *sqlstore.Tx) error { return tx.RecordLogin(ctx, r) })
		logins = append(logins, r.ID)
	}
	clock.Set(start)
	ownSubject := k.create(t, own.ID, map[string]string{"phone": "+44 20 7946 0001"})
	otherSubject := k.create(t, other.ID, map[string]string{"phone": "+44 20 7946 0002"})
	moveRegion(t, db, other.ID, otherRegion)
	clock.Add(31 * day)

	r := sqlstore.Retention{LoginHistory: 90 * day, SecurityEvents: 365 * day, EndedSessions: 30 * day,
		UsedTokens: day, DeadJobs: 30 * day}
	c, err := db.PurgeExpired(ctx, clock.Now(), r)
	if err != nil || c.LoginHistory != 2 {
		t.Fatalf("PurgeExpired = %+v, %v; want this region's and the tenant-less row", c, err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM login_history WHERE id = $1`, logins[1]); n != 1 {
		t.Fatal("the sweep deleted another region's sign-in history")
	}
	dry, err := db.RunRetentionSchedule(ctx, 0, true)
	if err != nil || dry.Erased != 1 {
		t.Fatalf("dry run = %+v, %v; want this region's subject only", dry, err)
	}
	run, err := db.RunRetentionSchedule(ctx, 0, false)
	if err != nil || run.Erased != 1 {
		t.Fatalf("run = %+v, %v; want this region's subject only", run, err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM subjects WHERE id = $1 AND erased_at IS NOT NULL`, ownSubject); n != 1 {
		t.Fatal("this region's expired subject was not erased")
	}
	if n := count(t, db, `SELECT COUNT(*) FROM subjects WHERE id = $1 AND erased_at IS NULL`, otherSubject); n != 1 {
		t.Fatal("another region's subject was erased")
	}
}

func testResidencyAccessReviews(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Region: nodeRegion, Clock: clock.Now})
	own, other := createTenant(t, db, "own"), createTenant(t, db, "other")
	mine := arOpen(t, db, own.ID, &sqlstore.AccessReview{Deadline: clock.Now().Add(time.Hour)})
	theirs := arOpen(t, db, other.ID, &sqlstore.AccessReview{Deadline: clock.Now().Add(time.Hour)})
	moveRegion(t, db, other.ID, otherRegion)
	clock.Add(2 * time.Hour)
	due := arDue(t, db, clock.Now(), 10)
	if len(due) != 1 || due[0].ReviewID != mine.ID {
		t.Fatalf("due = %+v, want this region's review only", due)
	}
	arSweep(t, db, ctx, 1)
	if n := count(t, db, `SELECT COUNT(*) FROM access_reviews WHERE id = $1 AND status = 'open'`, theirs.ID); n != 1 {
		t.Fatal("another region's review was closed")
	}
}

// testResidencyAnonymizedCopy: `tutela export --anonymize` on a region-bound node copies its
// region's tenants and nothing of another region's: not the tenant, its custom roles and masks,
// its minimization profiles, its users and their grants, nor its subjects.
func testResidencyAnonymizedCopy(t *testing.T, open Opener) {
	src := open(t, sqlstore.Options{Region: nodeRegion})
	sv := newVault(t, src, newKEK(t))
	src.SetVault(sv)
	seal := privacy.NewSubjects(sv)
	schema := testSchema()
	own, other := createTenant(t, src, "anon-own"), createTenant(t, src, "anon-other")
	var originals []string
	for i, tn := range []*tutela.Tenant{own, other} {
		update(t, src, func(tx *sqlstore.Tx) error { return tx.SubjectSchema(tn.ID).Put(ctx, schema) })
		u := &tutela.User{Email: []string{"olga.ownregion@example.org", "theo.elsewhere@example.org"}[i],
			DisplayName: []string{"Olga Ownregion", "Theo Elsewhere"}[i]}
		vals := map[string]string{"full_name": []string{"Ottilie Heimat", "Xaver Fremdland"}[i]}
		originals = append(originals, u.Email, u.DisplayName, vals["full_name"])
		update(t, src, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Create(ctx, u) })
		sealed, err := seal.SealNew(ctx, tn.ID, schema, vals)
		if err != nil {
			t.Fatal(err)
		}
		update(t, src, func(tx *sqlstore.Tx) error { _, err := tx.Subjects(tn.ID).Create(ctx, sealed); return err })
		if tn != other {
			continue
		}
		role := &sqlstore.Role{Key: "caseworker", Name: "Caseworker", Clearance: authz.Yellow,
			Permissions: []authz.Permission{{Resource: authz.ResSubjects, Action: authz.Read, MaxClass: authz.Yellow}},
			FieldMasks:  map[string]authz.Mask{"subjects.phone": authz.MaskPartial}}
		update(t, src, func(tx *sqlstore.Tx) error {
			if err := tx.CreateRole(ctx, tn.ID, role); err != nil {
				return err
			}
			if err := tx.Users(tn.ID).Grant(ctx, u.ID, "caseworker", "", nil); err != nil {
				return err
			}
			if err := tx.Users(tn.ID).Grant(ctx, u.ID, authz.RoleProgramAdmin, "", nil); err != nil {
				return err
			}
			return tx.MinimizationProfiles(tn.ID).Put(ctx, &privacy.Profile{Purpose: "aid",
				Fields: map[string]privacy.Rule{"full_name": {Action: privacy.Pass}}})
		})
	}
	moveRegion(t, src, other.ID, otherRegion)

	path := filepath.Join(t.TempDir(), "staging.db")
	dst, dv := NewAnonymizeTarget(t, path)
	syn, err := privacy.NewSynthesizer()
	if err != nil {
		t.Fatal(err)
	}
	counts, err := src.AnonymizeInto(ctx, dst, syn, tutela.NewID())
	if err != nil {
		t.Fatal(err)
	}
	if want := (sqlstore.AnonymizeCounts{Tenants: 1, Users: 1, Subjects: 1, Values: 1}); counts != want {
		t.Fatalf("counts = %+v, want this region's tenant only: %+v", counts, want)
	}
	c := ReadCopy(t, dst, dv)
	AssertNoOriginal(t, dst, path, originals, c)
	if _, ok := c.Subjects[other.ID]; ok || len(c.Subjects[own.ID]) != 1 {
		t.Fatalf("subjects in the copy by tenant: %v", c.Subjects)
	}
	for table, q := range map[string]string{
		"tenants":               `SELECT COUNT(*) FROM tenants WHERE id = $1 OR slug = 'anon-other'`,
		"roles":                 `SELECT COUNT(*) FROM roles WHERE tenant_id = $1`,
		"user_roles":            `SELECT COUNT(*) FROM user_roles WHERE tenant_id = $1`,
		"minimization_profiles": `SELECT COUNT(*) FROM minimization_profiles WHERE tenant_id = $1`,
	} {
		if n := count(t, dst, q, other.ID); n != 0 {
			t.Errorf("the copy holds %d %s rows of another region's tenant", n, table)
		}
	}
}
