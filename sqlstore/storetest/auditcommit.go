package storetest

import (
	"sync"
	"testing"

	"tutela"
	"tutela/sqlstore"
)

// testAuditGroupCommitSequenced: records handed to the group commit (sqlstore.AuditCommit) by
// many concurrent callers, while the sequencer runs, all reach the log once each, without gaps,
// and the log verifies; a duplicate event fails its own caller only.
func testAuditGroupCommitSequenced(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	k := newAuditKit(t, db)
	const writers, each = 20, 10
	stop := make(chan struct{})
	var seqErr error
	var seqWG sync.WaitGroup
	seqWG.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := k.seq.Step(ctx); err != nil {
				seqErr = err
				return
			}
		}
	})
	dup := auditEvent(9999)
	dup.ID = tutela.NewID()
	if err := db.AuditCommit(ctx, dup); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := db.AuditCommit(ctx, auditEvent(w*each+i)); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				if w == 0 && i == each/2 {
					if err := db.AuditCommit(ctx, dup); tutela.ErrorCode(err) != tutela.ECONFLICT {
						t.Errorf("a duplicate event: %v, want a conflict", err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	seqWG.Wait()
	if seqErr != nil {
		t.Fatal(seqErr)
	}
	k.step(t)
	entries, err := db.AuditEntries(ctx, 0, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if want := writers*each + 1; len(entries) != want {
		t.Fatalf("log has %d entries, want %d", len(entries), want)
	}
	ids := map[string]bool{}
	for i, e := range entries {
		if e.Index != int64(i) || ids[e.EventID] {
			t.Fatalf("entry %d has index %d (dup id %v): gap or duplicate", i, e.Index, ids[e.EventID])
		}
		ids[e.EventID] = true
	}
	mustVerifyOK(t, k.verify(t, true), writers*each+1)
}
