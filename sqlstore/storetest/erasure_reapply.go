package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/authz"
	"tutela/privacy"
	"tutela/sqlstore"
)

// ErasureReapplyTests assert that an erasure put back by a restore (the published ledger
// re-applied) leaves the database as the original erasure did, and that one subject the
// retention schedule cannot erase does not keep it from erasing the others (security review
// R4/R5 of issue 13).
var ErasureReapplyTests = []Test{
	{"ReappliedSubjectErasureMarksSubjectErased", testReappliedSubjectErased},
	{"ReappliedUserErasureDeletesUserRowSessionsGrants", testReappliedUserDeleted},
	{"ReapplyingLedgerRepairsErasureLeftUnfinished", testReapplyRepairs},
	{"UserListingShowsKeylessRowAsErased", testUserListingKeyless},
	{"RetentionRepairsSubjectAlreadyInLedger", testRetentionRepairs},
	{"RetentionGoesOnPastFailingSubject", testRetentionFailingSubject},
}

// ledgerEntry is the published form of an erasure made now (kind, tenant, person).
func ledgerEntry(db *sqlstore.DB, tenantID, personID, kind string) sqlstore.LedgerEntry {
	return sqlstore.LedgerEntry{ID: tutela.NewID(), TenantID: tenantID, PersonID: personID, Kind: kind,
		Trigger: sqlstore.ErasureRequest, ErasedAt: db.Now().Add(-time.Hour).Truncate(time.Microsecond)}
}

func applyLedger(t *testing.T, db *sqlstore.DB, entries ...sqlstore.LedgerEntry) int {
	t.Helper()
	var n int
	update(t, db, func(tx *sqlstore.Tx) (err error) { n, err = tx.ApplyErasureLedger(ctx, entries); return err })
	return n
}

// ledgerOf is the database's own ledger of a tenant in its published form.
func ledgerOf(t *testing.T, db *sqlstore.DB, tenantID string) []sqlstore.LedgerEntry {
	t.Helper()
	var es []*sqlstore.Erasure
	update(t, db, func(tx *sqlstore.Tx) (err error) { es, err = tx.Erasures(ctx, tenantID, "", 100); return err })
	out := make([]sqlstore.LedgerEntry, len(es))
	for i, e := range es {
		out[i] = sqlstore.LedgerEntry{ID: e.ID, TenantID: e.TenantID, PersonID: e.PersonID, Kind: e.Kind,
			Trigger: e.Trigger, ErasedAt: e.ErasedAt}
	}
	return out
}

func listedSubject(t *testing.T, db *sqlstore.DB, tenantID, id string) bool {
	t.Helper()
	var list []*sqlstore.Subject
	update(t, db, func(tx *sqlstore.Tx) (err error) { list, err = tx.Subjects(tenantID).List(ctx, "", 100); return err })
	return slices.ContainsFunc(list, func(s *sqlstore.Subject) bool { return s.ID == id })
}

func testReappliedSubjectErased(t *testing.T, open Opener) {
	k := newSubjectKit(t, open, "reapply-subject")
	erased, other := k.create(t, k.tenant.ID, ada), k.create(t, k.tenant.ID, map[string]string{"phone": "+44 20 7946 0100"})
	e := ledgerEntry(k.db, k.tenant.ID, erased, sqlstore.PersonSubject)
	if n := applyLedger(t, k.db, e); n != 1 {
		t.Fatalf("re-applied %d erasures, want 1", n)
	}
	if _, err := k.get(k.tenant.ID, erased); !errors.Is(err, sqlstore.ErrSubjectErased) {
		t.Fatalf("Get after the re-applied erasure: %v, want ErrSubjectErased", err)
	}
	if listedSubject(t, k.db, k.tenant.ID, erased) {
		t.Fatal("the re-applied erased subject is listed as live")
	}
	if !listedSubject(t, k.db, k.tenant.ID, other) {
		t.Fatal("the other subject is no longer listed")
	}
	err := k.db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(k.tenant.ID).PlaceHold(ctx, erased, "litigation 2026-9")
		return err
	})
	if !errors.Is(err, sqlstore.ErrSubjectErased) {
		t.Fatalf("hold on the re-applied erased subject: %v, want ErrSubjectErased", err)
	}
	// The tombstone carries the original erasure's time, as the ledger row does.
	var at time.Time
	if err := k.db.SQL().QueryRowContext(ctx, `SELECT erased_at FROM subjects WHERE id = $1`, erased).Scan(&at); err != nil {
		t.Fatal(err)
	}
	if !at.Equal(e.ErasedAt) {
		t.Fatalf("erased_at = %v, want the ledger's %v", at, e.ErasedAt)
	}
	if n := count(t, k.db, `SELECT count(*) FROM subject_values WHERE subject_id = $1`, erased); n != 0 {
		t.Fatalf("%d values survived", n)
	}
	// Applying the same ledger again changes nothing.
	if n := applyLedger(t, k.db, e); n != 0 {
		t.Fatalf("second application re-applied %d", n)
	}
}

func testReappliedUserDeleted(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "reapply-user")
	const email = "erased.person@example.org"
	u, kept := createUser(t, db, tn.ID, email), createUser(t, db, tn.ID, "kept@example.org")
	update(t, db, func(tx *sqlstore.Tx) error {
		if err := tx.Users(tn.ID).Grant(ctx, u.ID, authz.RoleProgramAdmin, "", nil); err != nil {
			return err
		}
		return tx.CreateSession(ctx, newLimitSession(tn.ID, u.ID, tx.Now()), sqlstore.HashToken(tutela.NewID()))
	})
	if n := applyLedger(t, db, ledgerEntry(db, tn.ID, u.ID, sqlstore.PersonUser)); n != 1 {
		t.Fatalf("re-applied %d erasures, want 1", n)
	}
	for table, q := range map[string]string{
		"users":      `SELECT count(*) FROM users WHERE id = $1`,
		"sessions":   `SELECT count(*) FROM sessions WHERE user_id = $1`,
		"user_roles": `SELECT count(*) FROM user_roles WHERE user_id = $1`,
	} {
		if n := count(t, db, q, u.ID); n != 0 {
			t.Errorf("%d %s rows of the erased user survive the re-applied erasure", n, table)
		}
	}
	var list []*tutela.User
	update(t, db, func(tx *sqlstore.Tx) (err error) { list, err = tx.Users(tn.ID).List(ctx, "", 50); return err })
	if len(list) != 1 || list[0].ID != kept.ID {
		t.Fatalf("listing after the re-applied erasure = %+v", list)
	}
	err := db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Users(tn.ID).CredentialsByEmail(ctx, email); return err })
	mustCode(t, err, tutela.ENOTFOUND)
	// The address is no longer confirmed by a blind index: it can be used again.
	createUser(t, db, tn.ID, email)
}

func testReapplyRepairs(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "reapply-repair")
	u := createUser(t, db, tn.ID, "left.over@example.org")
	// What a restore by a release that re-applied only the shredding left: the ledger row
	// and no key, but the users row.
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.ErasePerson(ctx, &sqlstore.Erasure{TenantID: tn.ID, PersonID: u.ID, Kind: sqlstore.PersonUser,
			Trigger: sqlstore.ErasureRequest, Reason: "the data subject asked", LegalBasis: "GDPR Art. 17(1)(a)"})
	})
	if n := count(t, db, `SELECT count(*) FROM users WHERE id = $1`, u.ID); n != 1 {
		t.Fatalf("setup: %d users rows", n)
	}
	// Applying the ledger again finishes the erasure and says so.
	if n := applyLedger(t, db, ledgerOf(t, db, tn.ID)...); n != 1 {
		t.Fatalf("repaired %d, want 1", n)
	}
	if n := count(t, db, `SELECT count(*) FROM users WHERE id = $1`, u.ID); n != 0 {
		t.Fatal("the users row survived the repair")
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Action: "privacy.erasure_reapplied"})
	if err != nil || len(recs) != 1 || recs[0].Event.TargetID != u.ID || recs[0].Event.Details["repaired"] != true {
		t.Fatalf("repair events = %+v, %v", recs, err)
	}
	if n := applyLedger(t, db, ledgerOf(t, db, tn.ID)...); n != 0 {
		t.Fatalf("a finished erasure was repaired again: %d", n)
	}
}

func testUserListingKeyless(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "keyless")
	const email = "no.key@example.org"
	a, gone, c := createUser(t, db, tn.ID, "a@example.org"), createUser(t, db, tn.ID, email), createUser(t, db, tn.ID, "c@example.org")
	// A users row whose key is gone (shredded, row left behind).
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.ErasePerson(ctx, &sqlstore.Erasure{TenantID: tn.ID, PersonID: gone.ID, Kind: sqlstore.PersonUser,
			Trigger: sqlstore.ErasureRequest, Reason: "the data subject asked", LegalBasis: "GDPR Art. 17(1)(a)"})
	})
	// The listing does not fail for the whole tenant: the row reads as erased and the page stays full.
	var list []*tutela.User
	update(t, db, func(tx *sqlstore.Tx) (err error) { list, err = tx.Users(tn.ID).List(ctx, "", 50); return err })
	if len(list) != 3 || list[0].ID != a.ID || list[2].ID != c.ID || list[0].Email != "a@example.org" {
		t.Fatalf("listing = %+v", list)
	}
	if list[1].ID != gone.ID || list[1].Email != sqlstore.ErasedPlaceholder || list[1].DisplayName != sqlstore.ErasedPlaceholder {
		t.Fatalf("keyless row listed as %+v, want %q", list[1], sqlstore.ErasedPlaceholder)
	}
	// Nobody reads it, signs in as it or finds it by address: not found, not an internal error.
	err := db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Users(tn.ID).Get(ctx, gone.ID); return err })
	mustCode(t, err, tutela.ENOTFOUND)
	err = db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Users(tn.ID).CredentialsByEmail(ctx, email); return err })
	mustCode(t, err, tutela.ENOTFOUND)
	err = db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Users(tn.ID).ByEmail(ctx, email); return err })
	mustCode(t, err, tutela.ENOTFOUND)
	// Authenticating a request (AuthState, which decrypts nothing) refuses it too; a user with
	// a key passes.
	err = db.View(ctx, func(tx *sqlstore.Tx) error { _, err := tx.Users(tn.ID).AuthState(ctx, gone.ID); return err })
	mustCode(t, err, tutela.ENOTFOUND)
	err = db.View(ctx, func(tx *sqlstore.Tx) error {
		st, err := tx.Users(tn.ID).AuthState(ctx, a.ID)
		if err == nil && st.Status != tutela.StatusActive {
			t.Errorf("AuthState of an active user = %+v", st)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Users("01a24c99-0000-7000-8000-000000000000").AuthState(ctx, a.ID)
		return err
	})
	mustCode(t, err, tutela.ENOTFOUND)
}

// expireSubjects makes subjects (phone only: 30 days' retention), one clock hour apart, so
// they expire in creation order.
func expireSubjects(t *testing.T, k *subjectKit, clock *fakeClock, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = k.create(t, k.tenant.ID, map[string]string{"phone": fmt.Sprintf("+44 20 7946 %04d", i)})
		clock.Add(time.Hour)
	}
	clock.Add(31 * 24 * time.Hour)
	return ids
}

func retentionKit(t *testing.T, open Opener, slug string) (*subjectKit, *fakeClock) {
	t.Helper()
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	v := newVault(t, db, newKEK(t))
	k := &subjectKit{db: db, vault: v, schema: testSchema()}
	k.seal = privacy.NewSubjects(v)
	k.tenant = k.addTenant(t, slug)
	return k, clock
}

func testRetentionRepairs(t *testing.T, open Opener) {
	k, clock := retentionKit(t, open, "retention-repair")
	ids := expireSubjects(t, k, clock, 3)
	// The first to expire is in the ledger but live: what a restore by an older release left.
	// Erasing it again fails on the ledger; before, that rolled back every batch of every run.
	update(t, k.db, func(tx *sqlstore.Tx) error {
		return tx.ErasePerson(ctx, &sqlstore.Erasure{TenantID: k.tenant.ID, PersonID: ids[0], Kind: sqlstore.PersonSubject,
			Trigger: sqlstore.ErasureRequest, Reason: "the data subject asked", LegalBasis: "GDPR Art. 17(1)(a)"})
	})
	run, err := k.db.RunRetentionSchedule(ctx, 0, false)
	if err != nil || run.Erased != 2 || run.Repaired != 1 || run.Failed != 0 {
		t.Fatalf("run: %+v, %v", run, err)
	}
	for _, id := range ids {
		if _, err := k.get(k.tenant.ID, id); !errors.Is(err, sqlstore.ErrSubjectErased) {
			t.Errorf("subject %s after the run: %v", id, err)
		}
	}
	if n := len(ledgerOf(t, k.db, k.tenant.ID)); n != 3 {
		t.Fatalf("ledger holds %d erasures, want 3 (none twice)", n)
	}
	if run, err = k.db.RunRetentionSchedule(ctx, 0, false); err != nil || run != (sqlstore.RetentionRun{}) {
		t.Fatalf("second run: %+v, %v", run, err)
	}
}

// failErasureOf makes every erasure of one subject fail in the database (a trigger refusing
// the deletion of its values), as a corrupt row or a constraint would.
func failErasureOf(t *testing.T, db *sqlstore.DB, subjectID string) {
	t.Helper()
	stmts := []string{`CREATE TRIGGER fail_erasure BEFORE DELETE ON subject_values
		WHEN OLD.subject_id = '` + subjectID + `' BEGIN SELECT RAISE(ABORT, 'erasure refused by test'); END`}
	if db.Dialect() == sqlstore.Postgres {
		stmts = []string{`CREATE FUNCTION fail_erasure() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'erasure refused by test'; END $$`,
			`CREATE TRIGGER fail_erasure BEFORE DELETE ON subject_values FOR EACH ROW
			WHEN (OLD.subject_id = '` + subjectID + `') EXECUTE FUNCTION fail_erasure()`}
	}
	for _, q := range stmts {
		if _, err := db.SQL().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
}

func testRetentionFailingSubject(t *testing.T, open Opener) {
	k, clock := retentionKit(t, open, "retention-failing")
	ids := expireSubjects(t, k, clock, 4)
	bad := ids[0] // first in (retain_until, id) order: it leads every batch
	failErasureOf(t, k.db, bad)
	// Batches of one: a failed subject must not be selected again in the run, or it would
	// fill every batch and no other subject would ever be erased.
	run, err := k.db.RunRetentionSchedule(ctx, 1, false)
	if run.Erased != 3 || run.Failed != 1 || err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("run: %+v, %v; want 3 erased, 1 failed naming %s", run, err, bad)
	}
	for _, id := range ids[1:] {
		if _, err := k.get(k.tenant.ID, id); !errors.Is(err, sqlstore.ErrSubjectErased) {
			t.Errorf("subject %s after the run: %v", id, err)
		}
	}
	// The failed subject's erasure rolled back whole: no ledger row, its data intact and readable.
	if k.read(t, k.tenant.ID, bad)["phone"] != "+44 20 7946 0000" {
		t.Fatal("the failed subject lost data")
	}
	if n := len(ledgerOf(t, k.db, k.tenant.ID)); n != 3 {
		t.Fatalf("ledger holds %d erasures, want 3", n)
	}
	recs, _, err := k.db.AuditEvents(ctx, sqlstore.AuditFilter{Action: "privacy.retention_run"})
	if err != nil || len(recs) != 1 || recs[0].Event.Outcome != audit.OutcomeFailure {
		t.Fatalf("retention_run events = %+v, %v", recs, err)
	}
	if d := recs[0].Event.Details; fmt.Sprintf("%v %v %v", d["erased"], d["failed"], d["failed_subjects"]) != "3 1 ["+bad+"]" {
		t.Fatalf("run event details = %+v", d)
	}
	// The next run tries it again (and only it).
	run, err = k.db.RunRetentionSchedule(ctx, 0, false)
	if run.Erased != 0 || run.Failed != 1 || err == nil {
		t.Fatalf("second run: %+v, %v", run, err)
	}
}
