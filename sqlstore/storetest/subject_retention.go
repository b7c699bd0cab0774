package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"tutela/privacy"
	"tutela/sqlstore"
)

// SubjectRetentionTests assert the retention schedule (issue 13): expired subjects erased with
// trigger retention, held ones skipped and counted, unexpired ones kept, each run audited.
var SubjectRetentionTests = []Test{
	{"RetentionScheduleErasesExpiredSkipsHeldKeepsUnexpired", testRetentionSchedule},
}

func testRetentionSchedule(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	v := newVault(t, db, newKEK(t))
	k := &subjectKit{db: db, vault: v, seal: privacy.NewSubjects(v), schema: testSchema()}
	k.tenant = k.addTenant(t, "retention")
	// phone is kept 30 days, full_name 365: the subject's retention is its longest field's.
	short1 := k.create(t, k.tenant.ID, map[string]string{"phone": "+44 20 7946 0001"})
	short2 := k.create(t, k.tenant.ID, map[string]string{"phone": "+44 20 7946 0002"})
	held := k.create(t, k.tenant.ID, map[string]string{"phone": "+44 20 7946 0003"})
	long := k.create(t, k.tenant.ID, map[string]string{"full_name": "Ada Long"})
	update(t, db, func(tx *sqlstore.Tx) error {
		_, err := tx.Subjects(k.tenant.ID).PlaceHold(ctx, held, "litigation 2026-7")
		return err
	})

	// Nothing has expired yet.
	run, err := db.RunRetentionSchedule(ctx, 0, false)
	if err != nil || run.Erased != 0 || run.Held != 0 {
		t.Fatalf("before expiry: %+v, %v", run, err)
	}
	clock.Add(31 * 24 * time.Hour)
	dry, err := db.RunRetentionSchedule(ctx, 0, true)
	if err != nil || dry.Erased != 2 || dry.Held != 1 || !dry.DryRun {
		t.Fatalf("dry run: %+v, %v", dry, err)
	}
	if _, err := k.get(k.tenant.ID, short1); err != nil {
		t.Fatalf("a dry run erased: %v", err)
	}
	// Batches of one: the loop must go on past the first batch.
	run, err = db.RunRetentionSchedule(ctx, 1, false)
	if err != nil || run.Erased != 2 || run.Held != 1 || run.Failed != 0 {
		t.Fatalf("run: %+v, %v", run, err)
	}
	for _, id := range []string{short1, short2} {
		if _, err := k.get(k.tenant.ID, id); !errors.Is(err, sqlstore.ErrSubjectErased) {
			t.Errorf("expired subject %s: %v", id, err)
		}
	}
	if k.read(t, k.tenant.ID, held)["phone"] == "" || k.read(t, k.tenant.ID, long)["full_name"] != "Ada Long" {
		t.Fatal("a held or unexpired subject lost data")
	}
	var ledger []*sqlstore.Erasure
	update(t, db, func(tx *sqlstore.Tx) (err error) { ledger, err = tx.Erasures(ctx, k.tenant.ID, "", 10); return err })
	if len(ledger) != 2 || ledger[0].Trigger != sqlstore.ErasureRetention || ledger[0].Reason != sqlstore.RetentionReason {
		t.Fatalf("ledger = %+v", ledger)
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Action: "privacy.retention_run"})
	if err != nil || len(recs) != 2 {
		t.Fatalf("retention_run events = %d, %v", len(recs), err)
	}
	if d := recs[0].Event.Details; fmt.Sprintf("%v %v %v", d["erased"], d["held"], d["failed"]) != "2 1 0" {
		t.Fatalf("latest run event = %+v", d)
	}
	// Idempotent: a second run finds nothing new; releasing the hold lets the next run erase it.
	if run, err = db.RunRetentionSchedule(ctx, 0, false); err != nil || run.Erased != 0 || run.Held != 1 {
		t.Fatalf("second run: %+v, %v", run, err)
	}
	update(t, db, func(tx *sqlstore.Tx) error {
		hs, err := tx.Subjects(k.tenant.ID).ActiveHolds(ctx, held)
		if err != nil {
			return err
		}
		_, err = tx.Subjects(k.tenant.ID).ReleaseHold(ctx, held, hs[0].ID)
		return err
	})
	if run, err = db.RunRetentionSchedule(ctx, 0, false); err != nil || run.Erased != 1 || run.Held != 0 {
		t.Fatalf("after release: %+v, %v", run, err)
	}
	if k.read(t, k.tenant.ID, long)["full_name"] != "Ada Long" {
		t.Fatal("the unexpired subject was erased")
	}
}
