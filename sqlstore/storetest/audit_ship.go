package storetest

import (
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/compliance"
	"tutela/sqlstore"
)

// AuditShipTests cover the shipping cursors (docs/audit.md, "Shipping the log"): one node ships
// to a destination at a time, a cursor moves only from where its owner left it, and a dead
// node's lease is taken over with the cursor where the last acknowledged batch ended.
var AuditShipTests = []Test{
	{"AuditShipCursorLeaseAndAdvance", testAuditShipLease},
	{"AuditShipCursorConcurrentClaimsOneWins", testAuditShipRace},
	{"AuditShipCursorFailureBackoff", testAuditShipFailure},
	{"AuditShipCursorsInComplianceState", testAuditShipCompliance},
}

// The compliance report cites each destination's progress and failures.
func testAuditShipCompliance(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	claimShip(t, db, "archive", "node-a")
	update(t, db, func(tx *sqlstore.Tx) error { return tx.AdvanceAuditShip(ctx, "archive", "node-a", 0, 12, 12) })
	claimShip(t, db, "siem", "node-a")
	update(t, db, func(tx *sqlstore.Tx) error {
		_, err := tx.FailAuditShip(ctx, "siem", "node-a", "unreachable: refused", clock.Now().Add(time.Minute))
		return err
	})
	var st compliance.State
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) {
		st, err = tx.ComplianceState(ctx, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(st.Shipping) != 2 {
		t.Fatalf("shipping = %+v, want two destinations", st.Shipping)
	}
	a, s := st.Shipping[0], st.Shipping[1]
	if a.Destination != "archive" || a.Shipped != 12 || a.Failures != 0 || !a.ShippedAt.Equal(db.Now()) {
		t.Fatalf("archive = %+v", a)
	}
	if s.Destination != "siem" || s.Shipped != 0 || s.Failures != 1 || s.LastError != "unreachable: refused" || !s.ShippedAt.IsZero() {
		t.Fatalf("siem = %+v", s)
	}
}

func claimShip(t *testing.T, db *sqlstore.DB, dest, owner string) (sqlstore.AuditShipCursor, bool) {
	t.Helper()
	var (
		cur sqlstore.AuditShipCursor
		ok  bool
	)
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		cur, ok, err = tx.ClaimAuditShip(ctx, dest, owner, time.Minute)
		return err
	})
	return cur, ok
}

func testAuditShipLease(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})

	cur, ok := claimShip(t, db, "archive", "node-a")
	if !ok || cur.Next != 0 || cur.CheckpointSize != 0 || !cur.Due || cur.LeaseOwner != "node-a" {
		t.Fatalf("first claim = %+v, %v; want a fresh cursor at 0 for node-a", cur, ok)
	}
	if _, ok := claimShip(t, db, "archive", "node-b"); ok {
		t.Fatal("node-b claimed a cursor node-a's lease holds")
	}
	if _, ok := claimShip(t, db, "siem", "node-b"); !ok {
		t.Fatal("node-b could not claim another destination")
	}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.AdvanceAuditShip(ctx, "archive", "node-a", 0, 100, 128) })

	// Only from where the cursor is, and only by the lease holder.
	err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AdvanceAuditShip(ctx, "archive", "node-a", 0, 200, 256) })
	mustCode(t, err, tutela.ECONFLICT)
	err = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AdvanceAuditShip(ctx, "archive", "node-b", 100, 200, 256) })
	mustCode(t, err, tutela.ECONFLICT)

	// node-a dies: once its lease lapses node-b takes over where the cursor stood.
	clock.Add(time.Minute + time.Second)
	cur, ok = claimShip(t, db, "archive", "node-b")
	if !ok || cur.Next != 100 || cur.CheckpointSize != 128 || cur.ShippedAt.IsZero() {
		t.Fatalf("takeover = %+v, %v; want node-b at 100 under checkpoint 128", cur, ok)
	}
	// The old owner, back, can no longer move it.
	err = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AdvanceAuditShip(ctx, "archive", "node-a", 100, 150, 256) })
	mustCode(t, err, tutela.ECONFLICT)

	// A released lease is free at once.
	update(t, db, func(tx *sqlstore.Tx) error { return tx.ReleaseAuditShip(ctx, "archive", "node-b") })
	if _, ok := claimShip(t, db, "archive", "node-a"); !ok {
		t.Fatal("node-a could not claim a released cursor")
	}
	all, err := db.AuditShipCursors(ctx)
	if err != nil || len(all) != 2 || all[0].Destination != "archive" || all[1].Destination != "siem" {
		t.Fatalf("cursors = %+v, %v", all, err)
	}
	err = db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AdvanceAuditShip(ctx, "archive", "node-a", 100, -1, 0) })
	mustCode(t, err, tutela.EINVALID)
}

func testAuditShipRace(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	claimShip(t, db, "archive", "setup")
	update(t, db, func(tx *sqlstore.Tx) error { return tx.ReleaseAuditShip(ctx, "archive", "setup") })
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins []string
	)
	for i := range n {
		owner := string(rune('a' + i))
		wg.Go(func() {
			var ok bool
			err := db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
				_, ok, err = tx.ClaimAuditShip(ctx, "archive", owner, time.Minute)
				return err
			})
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins = append(wins, owner)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("%d claims won (%v), want exactly one", len(wins), wins)
	}
}

func testAuditShipFailure(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	claimShip(t, db, "archive", "node-a")
	var prev string
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		prev, err = tx.FailAuditShip(ctx, "archive", "node-a", "unreachable", clock.Now().Add(30*time.Second))
		return err
	})
	if prev != "" {
		t.Fatalf("previous cause %q, want none", prev)
	}
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		prev, err = tx.FailAuditShip(ctx, "archive", "node-a", "refused: checkpoint_mismatch", clock.Now().Add(time.Minute))
		return err
	})
	if prev != "unreachable" {
		t.Fatalf("previous cause %q, want unreachable", prev)
	}
	cur, ok := claimShip(t, db, "archive", "node-a")
	if !ok || cur.Due || cur.Failures != 2 || cur.LastError != "refused: checkpoint_mismatch" {
		t.Fatalf("after two failures = %+v; want not due, 2 failures, the last cause", cur)
	}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.FailAuditShip(ctx, "archive", "node-b", "x", clock.Now())
		return err
	})
	mustCode(t, err, tutela.ECONFLICT)
	clock.Add(time.Minute)
	if cur, _ := claimShip(t, db, "archive", "node-a"); !cur.Due {
		t.Fatal("cursor not due after its retry time")
	}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.AdvanceAuditShip(ctx, "archive", "node-a", 0, 5, 5) })
	if cur, _ := claimShip(t, db, "archive", "node-a"); cur.Failures != 0 || cur.LastError != "" || !cur.RetryAt.IsZero() {
		t.Fatalf("success did not clear the failures: %+v", cur)
	}
}
