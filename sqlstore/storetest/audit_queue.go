package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/sqlstore"
)

// AuditQueueTests cover the sequencer's queue (audit_pending, migration 00039): every recorded
// event is queued with it and leaves the queue exactly when it enters the log; nodes sequencing
// at once neither skip nor repeat; a queue entry deleted by hand is reported and can be queued
// again; stray entries never stop the sequencer.
var AuditQueueTests = []Test{
	{"AuditQueueFollowsEvents", testAuditQueueFollows},
	{"AuditQueueTwoSequencersNoGapNoDuplicate", testAuditQueueTwoSequencers},
	{"AuditQueueDeletedEntryReportedAndRequeued", testAuditQueueDeletedEntry},
	{"AuditQueueStrayEntriesDropped", testAuditQueueStray},
	{"AuditCheckpointDirThinnedStillVerifies", testAuditCheckpointThinning},
	{"AuditCheckpointOfALaggingClockStaysInOrder", testAuditCheckpointLaggingClock},
}

func queueLen(t *testing.T, db *sqlstore.DB) int64 {
	t.Helper()
	p, err := db.AuditPending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := int64(countRows(t, db, "audit_pending")); n != p.Count {
		t.Fatalf("AuditPending.Count = %d, the queue holds %d", p.Count, n)
	}
	return p.Count
}

func testAuditQueueFollows(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	evs := make([]audit.Event, 5)
	for i := range evs {
		evs[i] = auditEvent(i)
	}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.AuditMany(ctx, evs...) })
	k.record(t, 2)
	// A rolled-back event leaves no queue entry either.
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.Audit(ctx, auditEvent(99)); err != nil {
			return err
		}
		return errBoom
	}); !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	// An event with an ID already recorded is a conflict on both dialects (the PostgreSQL
	// statement also queues, the SQLite one reads positions back): nothing is recorded or queued.
	dup := auditEvent(100)
	dup.ID = evs[0].ID
	if dup.ID == "" {
		recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Limit: 1})
		if err != nil || len(recs) != 1 {
			t.Fatalf("AuditEvents: %v", err)
		}
		dup.ID = recs[0].Event.ID
	}
	err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AuditMany(ctx, auditEvent(101), dup) })
	mustCode(t, err, tutela.ECONFLICT)
	if n := queueLen(t, db); n != 7 {
		t.Fatalf("queue holds %d, want the 7 committed events", n)
	}
	small := sqlstore.NewSequencer(db, k.signer, auditOrigin, sqlstore.SequencerOptions{CheckpointDir: k.dir, BatchSize: 3})
	if n, err := small.Step(ctx); err != nil || n != 3 {
		t.Fatalf("round of 3: %d, %v", n, err)
	}
	if n := queueLen(t, db); n != 4 {
		t.Fatalf("after a round of 3 the queue holds %d, want 4", n)
	}
	// The oldest went first: the log's entries are the events in insertion order.
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{})
	if err != nil || len(recs) != 7 {
		t.Fatalf("AuditEvents: %d, %v", len(recs), err)
	}
	for i, r := range recs { // newest first
		want := int64(-1)
		if i >= 4 {
			want = int64(6 - i)
		}
		if r.Index != want {
			t.Fatalf("event %d (newest first) has index %d, want %d", i, r.Index, want)
		}
	}
	if n := k.step(t); n != 4 {
		t.Fatalf("second round appended %d, want 4", n)
	}
	if n := queueLen(t, db); n != 0 {
		t.Fatalf("drained log leaves %d queued", n)
	}
	if n := k.step(t); n != 0 {
		t.Fatalf("an idle round appended %d", n)
	}
	mustVerifyOK(t, k.verify(t, true), 7)
}

// testAuditQueueTwoSequencers runs writers and two sequencers (two nodes) at once: every event
// enters the log exactly once, no round fails, and the queue ends empty.
func testAuditQueueTwoSequencers(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	other := sqlstore.NewSequencer(db, k.signer, auditOrigin, sqlstore.SequencerOptions{BatchSize: 7})
	const writers, each = 8, 15
	stop := make(chan struct{})
	var (
		seqWG sync.WaitGroup
		mu    sync.Mutex
		errs  []error
	)
	for _, s := range []*sqlstore.Sequencer{k.seq, other} {
		seqWG.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Step(ctx); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				evs := []audit.Event{auditEvent(w*each + i)}
				if i%3 == 0 {
					evs = append(evs, auditEvent(1000+w*each+i))
				}
				if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AuditMany(ctx, evs...) }); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	seqWG.Wait()
	if len(errs) > 0 {
		t.Fatalf("a sequencer round failed: %v", errs)
	}
	for k.step(t) > 0 {
	}
	total := countRows(t, db, "audit_events")
	entries, err := db.AuditEntries(ctx, 0, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != total {
		t.Fatalf("log has %d entries, %d events recorded", len(entries), total)
	}
	ids := map[string]bool{}
	for i, e := range entries {
		if e.Index != int64(i) || ids[e.EventID] {
			t.Fatalf("entry %d has index %d (repeated: %v)", i, e.Index, ids[e.EventID])
		}
		ids[e.EventID] = true
	}
	if n := queueLen(t, db); n != 0 {
		t.Fatalf("%d left in the queue", n)
	}
	mustVerifyOK(t, k.verify(t, true), int64(total))
}

// testAuditQueueDeletedEntry deletes an event's queue entry, as the runtime role could: the event
// stays in audit_events, no round appends it, AuditUnqueued names it, and AuditRequeue puts it
// back (recording that it did) so the next round appends it.
func testAuditQueueDeletedEntry(t *testing.T, open Opener) {
	clk := newClock()
	db := open(t, sqlstore.Options{Clock: clk.Now})
	k := newAuditKit(t, db)
	hidden := db.Now()
	k.record(t, 1)
	clk.Add(1e9)
	k.record(t, 2)
	if _, err := db.SQL().ExecContext(ctx, `DELETE FROM audit_pending WHERE pos = (SELECT MIN(pos) FROM audit_pending)`); err != nil {
		t.Fatal(err)
	}
	if n := k.step(t); n != 2 {
		t.Fatalf("round appended %d, want the 2 still queued", n)
	}
	n, oldest, err := db.AuditUnqueued(ctx)
	if err != nil || n != 1 || !oldest.Equal(hidden) {
		t.Fatalf("AuditUnqueued = %d, %v, %v; want 1 from %v", n, oldest, err, hidden)
	}
	if p, _ := db.AuditPending(ctx); p.Count != 0 {
		t.Fatalf("the queue is empty, AuditPending says %d", p.Count)
	}
	if n, err := db.AuditRequeue(ctx, audit.Event{}); err != nil || n != 1 {
		t.Fatalf("AuditRequeue = %d, %v", n, err)
	}
	if n := k.step(t); n != 2 { // the event and the audit.requeue record
		t.Fatalf("round after requeue appended %d, want 2", n)
	}
	recs, _, err := db.AuditEvents(ctx, sqlstore.AuditFilter{Action: sqlstore.ActionAuditRequeue})
	if err != nil || len(recs) != 1 || recs[0].Index < 0 || fmt.Sprint(recs[0].Event.Details["count"]) != "1" {
		t.Fatalf("requeue not recorded and sequenced: %+v, %v", recs, err)
	}
	if n, _, err := db.AuditUnqueued(ctx); err != nil || n != 0 {
		t.Fatalf("after requeue: %d unqueued, %v", n, err)
	}
	if n, err := db.AuditRequeue(ctx, audit.Event{}); err != nil || n != 0 {
		t.Fatalf("a second requeue: %d, %v", n, err)
	}
	mustVerifyOK(t, k.verify(t, true), 4)
}

// testAuditQueueStray puts entries in the queue that Tutela never writes (a position with no
// event, and one whose event is already in the log): the round drops them, appends the real
// pending event once, and the log stays valid.
func testAuditQueueStray(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	k.record(t, 2)
	k.step(t)
	k.record(t, 1)
	stray := []string{
		`INSERT INTO audit_pending (pos) VALUES (999999)`,
		`INSERT INTO audit_pending (pos) SELECT MIN(pos) FROM audit_events`,
	}
	if db.Dialect() == sqlstore.Postgres { // the queue carries the event's time (migration 00041)
		stray = []string{
			`INSERT INTO audit_pending (pos, time) VALUES (999999, now())`,
			`INSERT INTO audit_pending (pos, time) SELECT pos, time FROM audit_events ORDER BY pos LIMIT 1`,
		}
	}
	for _, q := range stray {
		if _, err := db.SQL().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if n := k.step(t); n != 1 {
		t.Fatalf("round appended %d, want only the 1 pending event", n)
	}
	if n := queueLen(t, db); n != 0 {
		t.Fatalf("stray entries left in the queue: %d", n)
	}
	mustVerifyOK(t, k.verify(t, true), 3)
}

// testAuditCheckpointThinning runs a sequencer that publishes a checkpoint every ten minutes for
// five hours with a thinned directory (hourly for two hours, daily before): the directory keeps
// the first, the latest and one per hour or day, and audit.Verify checks the log against every
// kept file, so a rewrite of the log is still caught by them.
func testAuditCheckpointThinning(t *testing.T, open Opener) {
	clk := newClock()
	db := open(t, sqlstore.Options{Clock: clk.Now})
	k := newAuditKit(t, db)
	k.seq = sqlstore.NewSequencer(db, k.signer, auditOrigin, sqlstore.SequencerOptions{CheckpointDir: k.dir,
		CheckpointKeepHourly: 2 * time.Hour})
	rounds := 0
	for range 30 {
		k.record(t, 1)
		if k.step(t) != 1 {
			t.Fatal("round appended nothing")
		}
		rounds++
		clk.Add(10 * time.Minute)
	}
	pub, err := audit.ReadCheckpointDir(k.dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 30 checkpoints over 5 hours: thinned at each hour's first round, so at most the first,
	// one per earlier day or hour, and the current hour's few.
	if len(pub) >= rounds || len(pub) > 10 || len(pub) < 3 {
		t.Fatalf("%d checkpoint files kept of %d", len(pub), rounds)
	}
	rep := k.verify(t, true)
	mustVerifyOK(t, rep, int64(rounds))
	if rep.Published != len(pub) {
		t.Fatalf("verify checked %d published checkpoints, the directory holds %d", rep.Published, len(pub))
	}
	// The latest is always kept.
	if c, err := audit.OpenCheckpoint(pub[len(pub)-1], k.vkey, auditOrigin); err != nil || c.Size != int64(rounds) {
		t.Fatalf("latest kept checkpoint: %+v, %v", c, err)
	}
	// The log rewritten and re-signed with the real key: the database alone verifies, and the
	// kept checkpoints still catch it.
	k.rewriteResigned(t, 3, int64(rounds))
	mustVerifyOK(t, k.verify(t, false), int64(rounds))
	rep = k.verify(t, true)
	caught := false
	for _, f := range rep.Failures {
		caught = caught || f.Kind == audit.KindCheckpointMismatch
	}
	if rep.OK || !caught {
		t.Fatalf("a re-signed rewrite verified against the thinned checkpoints: %+v", rep.Failures)
	}
}

// testAuditCheckpointLaggingClock runs a round whose clock is behind the latest checkpoint's
// (another node's clock, or a transaction that began before the previous round committed): its
// checkpoint is still stored after that one, so audit verify — which reads stored checkpoints in
// created_at order — does not report the log going backwards. Two sequencers on PostgreSQL
// failed so in CI before (AuditQueueTwoSequencersNoGapNoDuplicate, once).
func testAuditCheckpointLaggingClock(t *testing.T, open Opener) {
	clk := newClock()
	db := open(t, sqlstore.Options{Clock: clk.Now})
	k := newAuditKit(t, db)
	k.record(t, 3)
	if n := k.step(t); n != 3 {
		t.Fatalf("first round appended %d, want 3", n)
	}
	clk.Add(-time.Minute) // the next round's node is a minute behind
	k.record(t, 2)
	if n := k.step(t); n != 2 {
		t.Fatalf("second round appended %d, want 2", n)
	}
	mustVerifyOK(t, k.verify(t, true), 5)
}
