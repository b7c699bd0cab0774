package storetest

import (
	"slices"
	"testing"
	"time"

	"tutela/audit"
	"tutela/sqlstore"
)

// MonitorTests are the monitoring cursor's and windows' part of the suite (issue 19): the rules
// engine reads the sequenced log from a durable cursor and keeps per-rule, per-tenant windows.
var MonitorTests = []Test{
	{"MonitorCursorStartsAtEndAndNeverMovesBack", testMonitorCursor},
	{"MonitorEventsInLogOrderWithDetails", testMonitorEvents},
	{"MonitorWindowsPerRuleAndTenant", testMonitorWindows},
	{"MonitorLockOneNodeAtATime", testMonitorLock},
}

func sequence(t *testing.T, db *sqlstore.DB) {
	t.Helper()
	skey, _, err := audit.GenerateKey("tutela.test/audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlstore.NewSequencer(db, signer, "tutela.test/audit", sqlstore.SequencerOptions{}).Step(ctx); err != nil {
		t.Fatal(err)
	}
}

func testMonitorCursor(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	tn := createTenant(t, db, "mon-cursor")
	sequence(t, db)
	var size int64
	if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM audit_log`).Scan(&size); err != nil || size == 0 {
		t.Fatalf("log size %d, %v", size, err)
	}
	// First use: the cursor is created at the end of the log, so history raises no alerts.
	update(t, db, func(tx *sqlstore.Tx) error {
		next, existed, err := tx.MonitorCursor(ctx)
		if err != nil || existed || next != size {
			t.Fatalf("first cursor %d existed=%v (%v), want %d, false", next, existed, err, size)
		}
		return nil
	})
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.Record(ctx, "security.account_locked", tn.ID, "user", "", "", nil)
	})
	update(t, db, func(tx *sqlstore.Tx) error {
		next, existed, err := tx.MonitorCursor(ctx)
		if err != nil || !existed || next != size {
			t.Fatalf("cursor %d existed=%v (%v), want %d, true", next, existed, err, size)
		}
		if err := tx.SetMonitorCursor(ctx, size+5); err != nil {
			return err
		}
		if err := tx.SetMonitorCursor(ctx, size+2); err != nil { // never back
			return err
		}
		if err := tx.SetMonitorCursor(ctx, -1); err == nil {
			t.Fatal("negative cursor accepted")
		}
		return nil
	})
	update(t, db, func(tx *sqlstore.Tx) error {
		if next, _, err := tx.MonitorCursor(ctx); err != nil || next != size+5 {
			t.Fatalf("cursor %d (%v), want %d", next, err, size+5)
		}
		return nil
	})
	// A rolled-back round leaves the cursor where it was.
	_ = db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.SetMonitorCursor(ctx, size+9); err != nil {
			return err
		}
		return errRollback
	})
	update(t, db, func(tx *sqlstore.Tx) error {
		if next, _, err := tx.MonitorCursor(ctx); err != nil || next != size+5 {
			t.Fatalf("cursor after rollback %d (%v), want %d", next, err, size+5)
		}
		return nil
	})
}

type rollbackErr struct{}

func (rollbackErr) Error() string { return "roll back" }

var errRollback = rollbackErr{}

func testMonitorEvents(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	tn := createTenant(t, db, "mon-events")
	u := createUser(t, db, tn.ID, "mon@example.org")
	sequence(t, db)
	var start int64
	update(t, db, func(tx *sqlstore.Tx) (err error) { start, _, err = tx.MonitorCursor(ctx); return err })
	update(t, db, func(tx *sqlstore.Tx) error {
		return tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: tn.ID, UserID: u.ID, Kind: "account_locked", IP: "192.0.2.9"})
	})
	clock.Add(time.Second)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.Users(tn.ID).Grant(ctx, u.ID, "operator", "", nil) })
	// Not sequenced yet: invisible to the monitor, which only reads the log.
	update(t, db, func(tx *sqlstore.Tx) error {
		if evs, err := tx.MonitorEvents(ctx, start, 10); err != nil || len(evs) != 0 {
			t.Fatalf("unsequenced events visible: %+v, %v", evs, err)
		}
		return nil
	})
	sequence(t, db)
	var evs []sqlstore.MonitorEvent
	update(t, db, func(tx *sqlstore.Tx) (err error) { evs, err = tx.MonitorEvents(ctx, start, 10); return err })
	var actions []string
	for _, e := range evs {
		actions = append(actions, e.Action)
	}
	if !slices.Equal(actions, []string{"security.account_locked", "user.role_grant"}) {
		t.Fatalf("actions %v", actions)
	}
	locked, grant := evs[0], evs[1]
	if locked.Index != start || grant.Index != start+1 || locked.TenantID != tn.ID || locked.TargetID != u.ID ||
		!locked.Time.Equal(clock.Now().Add(-time.Second).Truncate(time.Microsecond)) || locked.Outcome != "success" {
		t.Fatalf("event %+v", locked)
	}
	if grant.Details["role"] != "operator" {
		t.Fatalf("details %v", grant.Details)
	}
	update(t, db, func(tx *sqlstore.Tx) error {
		if evs, err := tx.MonitorEvents(ctx, start+1, 1); err != nil || len(evs) != 1 || evs[0].Action != "user.role_grant" {
			t.Fatalf("from start+1, limit 1: %+v, %v", evs, err)
		}
		return nil
	})
}

func testMonitorWindows(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	a, b := createTenant(t, db, "mon-win-a"), createTenant(t, db, "mon-win-b")
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	update(t, db, func(tx *sqlstore.Tx) error {
		if w, err := tx.MonitorWindow(ctx, "lockout_burst", a.ID); err != nil || len(w.Events) != 0 || !w.QuietUntil.IsZero() {
			t.Fatalf("empty window %+v, %v", w, err)
		}
		if err := tx.SaveMonitorWindow(ctx, &sqlstore.MonitorWindow{Rule: "lockout_burst", TenantID: a.ID,
			Events: []sqlstore.WindowEvent{{ID: "e1", Time: t0}, {ID: "e2", Time: t0.Add(time.Minute)}}}); err != nil {
			return err
		}
		return tx.SaveMonitorWindow(ctx, &sqlstore.MonitorWindow{Rule: "lockout_burst", TenantID: b.ID, QuietUntil: t0.Add(5 * time.Minute)})
	})
	update(t, db, func(tx *sqlstore.Tx) error {
		wa, err := tx.MonitorWindow(ctx, "lockout_burst", a.ID)
		if err != nil || len(wa.Events) != 2 || wa.Events[1].ID != "e2" || !wa.Events[1].Time.Equal(t0.Add(time.Minute)) || !wa.QuietUntil.IsZero() {
			t.Fatalf("window a %+v, %v", wa, err)
		}
		wb, err := tx.MonitorWindow(ctx, "lockout_burst", b.ID)
		if err != nil || len(wb.Events) != 0 || !wb.QuietUntil.Equal(t0.Add(5*time.Minute)) {
			t.Fatalf("window b %+v, %v", wb, err)
		}
		if other, err := tx.MonitorWindow(ctx, "other_rule", a.ID); err != nil || len(other.Events) != 0 {
			t.Fatalf("another rule's window %+v, %v", other, err)
		}
		wa.Events, wa.QuietUntil = nil, t0
		return tx.SaveMonitorWindow(ctx, wa)
	})
	update(t, db, func(tx *sqlstore.Tx) error {
		if wa, err := tx.MonitorWindow(ctx, "lockout_burst", a.ID); err != nil || len(wa.Events) != 0 || !wa.QuietUntil.Equal(t0) {
			t.Fatalf("replaced window %+v, %v", wa, err)
		}
		return nil
	})
}

// testMonitorLock: while one transaction holds the monitoring lock, another cannot take it
// (PostgreSQL; SQLite's single writer serialises rounds by itself).
func testMonitorLock(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	if db.Dialect() != sqlstore.Postgres {
		update(t, db, func(tx *sqlstore.Tx) error {
			if ok, err := tx.TryMonitorLock(ctx); err != nil || !ok {
				t.Fatalf("SQLite lock %v, %v", ok, err)
			}
			return nil
		})
		return
	}
	update(t, db, func(tx *sqlstore.Tx) error {
		if ok, err := tx.TryMonitorLock(ctx); err != nil || !ok {
			t.Fatalf("first lock %v, %v", ok, err)
		}
		update(t, db, func(tx2 *sqlstore.Tx) error {
			if ok, err := tx2.TryMonitorLock(ctx); err != nil || ok {
				t.Fatalf("second lock while held: %v, %v", ok, err)
			}
			return nil
		})
		return nil
	})
	update(t, db, func(tx *sqlstore.Tx) error {
		if ok, err := tx.TryMonitorLock(ctx); err != nil || !ok {
			t.Fatalf("lock after release %v, %v", ok, err)
		}
		return nil
	})
}
