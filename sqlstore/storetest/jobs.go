package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/sqlstore"
)

// JobTests is the durable job queue's part of the suite (package jobs, migration 00012): work
// enqueued with a change exists exactly when the change does, one worker at a time holds a job,
// failures come back after their backoff, and nothing is lost when a worker dies.
var JobTests = []Test{
	{"JobEnqueuedWithTransactionOnly", testJobEnqueueTx},
	{"JobClaimedByOneWorkerAtATime", testJobConcurrentClaim},
	{"JobFailureRetriedAfterBackoff", testJobRetry},
	{"JobDeadAfterMaxAttempts", testJobDead},
	{"JobLeaseExpiryHandsJobToAnotherWorker", testJobLeaseExpiry},
	{"JobPendingCapRefusesBeyondIt", testJobPendingCap},
	{"JobPendingCapPerTenantWithACeiling", testJobPendingCapPerTenant},
	{"JobUrgentKindsClaimedFirst", testJobUrgentFirst},
	{"JobReleasedWithoutCountingTheAttempt", testJobRelease},
}

// A kind anonymous clients can enqueue has a cap on its pending jobs (ASVS 5.0 2.4.1): past it
// the enqueue is refused as unavailable and adds nothing; other kinds, and dead jobs, do not
// count, and a finished job frees its place.
func testJobPendingCap(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	const capped = "password_reset_request"
	add := func(kind string) error {
		return db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.EnqueueJob(ctx, &sqlstore.Job{Kind: kind, MaxAttempts: 1, MaxPending: 3})
		})
	}
	// A dead job of the kind first: it must not count.
	enqueue(t, db, &sqlstore.Job{Kind: capped, MaxAttempts: 1})
	first := claim(t, db, 1)
	update(t, db, func(tx *sqlstore.Tx) error { _, err := tx.FailJob(ctx, first[0], "x", db.Now()); return err })
	enqueue(t, db, &sqlstore.Job{Kind: "mail", MaxAttempts: 8})
	for i := range 3 {
		if err := add(capped); err != nil {
			t.Fatalf("enqueue %d under the cap: %v", i+1, err)
		}
	}
	mustCode(t, add(capped), tutela.EUNAVAILABLE)
	if c := jobCounts(t, db); c.Pending != 4 || c.Dead != 1 {
		t.Fatalf("counts after a refused enqueue = %+v, want 3 capped + 1 mail pending", c)
	}
	var done bool
	for _, j := range claim(t, db, 10) {
		if j.Kind == capped && !done {
			update(t, db, func(tx *sqlstore.Tx) error { return tx.CompleteJob(ctx, j) })
			done = true
		}
	}
	if !done {
		t.Fatal("no capped job claimed")
	}
	if err := add(capped); err != nil {
		t.Fatalf("enqueue after one finished: %v", err)
	}
	mustCode(t, add(capped), tutela.EUNAVAILABLE)
}

// Urgent kinds are claimed ahead of older due jobs of other kinds: a backlog of requests does not
// hold up the e-mails already owed.
func testJobUrgentFirst(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	for range 3 {
		enqueue(t, db, &sqlstore.Job{Kind: "password_reset_request", MaxAttempts: 3})
		clock.Add(time.Second)
	}
	mail := enqueue(t, db, &sqlstore.Job{Kind: "mail", MaxAttempts: 8})
	var got []*sqlstore.Job
	update(t, db, func(tx *sqlstore.Tx) (err error) { got, _, err = tx.ClaimJobs(ctx, 2, jobLease, "mail"); return err })
	if len(got) != 2 || got[0].ID != mail.ID && got[1].ID != mail.ID {
		t.Fatalf("claimed %+v, want the mail job among the first 2", got)
	}
	// Without urgent kinds, the oldest due job comes first.
	clock.Add(time.Second)
	enqueue(t, db, &sqlstore.Job{Kind: "mail", MaxAttempts: 8})
	rest := claim(t, db, 1)
	if len(rest) != 1 || rest[0].Kind != "password_reset_request" {
		t.Fatalf("claimed %+v, want the oldest request", rest)
	}
}

// A job its worker gives back (shutting down) is due again at once, with the attempt not counted
// and no error recorded; a lapsed lease cannot release it.
func testJobRelease(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	j := enqueue(t, db, &sqlstore.Job{Kind: "password_reset_request", MaxAttempts: 1})
	got := claim(t, db, 1)
	if len(got) != 1 {
		t.Fatal("nothing claimed")
	}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.ReleaseJob(ctx, got[0]) })
	again := claim(t, db, 1)
	if len(again) != 1 || again[0].ID != j.ID || again[0].Attempts != 1 || again[0].LastError != "" {
		t.Fatalf("after release: %+v, want the job on attempt 1 of 1, no error", again)
	}
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.ReleaseJob(ctx, got[0]) }), tutela.ECONFLICT)
	// The second worker dies on the job's only attempt: once the lease lapses the job is dead,
	// not lost.
	clock.Add(jobLease)
	if got := claim(t, db, 1); len(got) != 0 {
		t.Fatalf("claimed %+v beyond its attempts", got)
	}
	if c := jobCounts(t, db); c.Dead != 1 {
		t.Fatalf("counts = %+v, want the job dead", c)
	}
}

const jobLease = time.Minute

func enqueue(t *testing.T, db *sqlstore.DB, j *sqlstore.Job) *sqlstore.Job {
	t.Helper()
	update(t, db, func(tx *sqlstore.Tx) error { return tx.EnqueueJob(ctx, j) })
	return j
}

func claim(t *testing.T, db *sqlstore.DB, limit int) []*sqlstore.Job {
	t.Helper()
	var got []*sqlstore.Job
	update(t, db, func(tx *sqlstore.Tx) (err error) { got, _, err = tx.ClaimJobs(ctx, limit, jobLease); return err })
	return got
}

func jobCounts(t *testing.T, db *sqlstore.DB) sqlstore.JobCounts {
	t.Helper()
	var c sqlstore.JobCounts
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { c, err = tx.CountJobs(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	return c
}

// A job enqueued in a transaction that rolls back never existed; one that commits is claimable
// with its kind, tenant and payload as given, and completing it deletes it.
func testJobEnqueueTx(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.EnqueueJob(ctx, &sqlstore.Job{Kind: "mail", Payload: []byte("ghost"), MaxAttempts: 3}); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom {
		t.Fatalf("Update = %v, want errBoom", err)
	}
	if c := jobCounts(t, db); c.Pending != 0 || c.Dead != 0 {
		t.Fatalf("rolled-back job is queued: %+v", c)
	}
	if got := claim(t, db, 10); len(got) != 0 {
		t.Fatalf("claimed %d jobs from a rolled-back transaction", len(got))
	}
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.EnqueueJob(ctx, &sqlstore.Job{Kind: "mail"}) }), tutela.EINVALID)

	tenant := tutela.NewID()
	j := enqueue(t, db, &sqlstore.Job{Kind: "mail", TenantID: tenant, Payload: []byte{0, 1, 2, 0xff}, MaxAttempts: 3})
	if c := jobCounts(t, db); c.Pending != 1 {
		t.Fatalf("counts = %+v, want one pending", c)
	}
	got := claim(t, db, 10)
	if len(got) != 1 || got[0].ID != j.ID || got[0].Kind != "mail" || got[0].TenantID != tenant ||
		!bytes.Equal(got[0].Payload, j.Payload) || got[0].Attempts != 1 || got[0].Lease == "" {
		t.Fatalf("claimed %+v, want %+v on its first attempt", got, j)
	}
	update(t, db, func(tx *sqlstore.Tx) error { return tx.CompleteJob(ctx, got[0]) })
	if c := jobCounts(t, db); c.Pending != 0 || c.Dead != 0 {
		t.Fatalf("completed job still stored: %+v", c)
	}
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CompleteJob(ctx, got[0]) }), tutela.ECONFLICT)
}

// Many workers claiming at once share the jobs out: every job is claimed exactly once.
func testJobConcurrentClaim(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	const jobs, workers = 30, 8
	for range jobs {
		enqueue(t, db, &sqlstore.Job{Kind: "mail", MaxAttempts: 3})
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range jobs {
				var got []*sqlstore.Job
				err := db.Update(ctx, func(tx *sqlstore.Tx) (err error) { got, _, err = tx.ClaimJobs(ctx, 2, jobLease); return err })
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, j := range got {
					seen[j.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != jobs {
		t.Fatalf("%d distinct jobs claimed, want %d", len(seen), jobs)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job %s claimed %d times under one lease", id, n)
		}
	}
}

// A failed job is invisible until its retry time, then comes back with its error and one more
// attempt counted.
func testJobRetry(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	enqueue(t, db, &sqlstore.Job{Kind: "mail", MaxAttempts: 5})
	first := claim(t, db, 1)
	if len(first) != 1 {
		t.Fatalf("claimed %d, want 1", len(first))
	}
	retryAt := db.Now().Add(30 * time.Second)
	update(t, db, func(tx *sqlstore.Tx) error {
		dead, err := tx.FailJob(ctx, first[0], "smtp: connection refused", retryAt)
		if dead {
			t.Error("dead after one of five attempts")
		}
		return err
	})
	if got := claim(t, db, 1); len(got) != 0 {
		t.Fatal("failed job claimed again at once, before its backoff")
	}
	clock.Add(30*time.Second - time.Microsecond)
	if got := claim(t, db, 1); len(got) != 0 {
		t.Fatal("failed job claimed before its retry time")
	}
	clock.Add(time.Microsecond)
	again := claim(t, db, 1)
	if len(again) != 1 || again[0].ID != first[0].ID || again[0].Attempts != 2 || again[0].LastError != "smtp: connection refused" {
		t.Fatalf("retry = %+v, want the job on attempt 2 with its error", again)
	}
	// The first attempt's lease is over: it can neither fail nor complete the job now.
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { _, err := tx.FailJob(ctx, first[0], "late", retryAt); return err }), tutela.ECONFLICT)
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CompleteJob(ctx, first[0]) }), tutela.ECONFLICT)
	update(t, db, func(tx *sqlstore.Tx) error { return tx.CompleteJob(ctx, again[0]) })
}

// After its last attempt fails, a job is dead: never claimed again, counted, listed with its
// error, its payload gone.
func testJobDead(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	j := enqueue(t, db, &sqlstore.Job{Kind: "webhook", Payload: []byte("personal data"), MaxAttempts: 2})
	for attempt := 1; attempt <= 2; attempt++ {
		got := claim(t, db, 1)
		if len(got) != 1 || got[0].Attempts != attempt {
			t.Fatalf("attempt %d: claimed %+v", attempt, got)
		}
		update(t, db, func(tx *sqlstore.Tx) error {
			dead, err := tx.FailJob(ctx, got[0], "boom", db.Now())
			if dead != (attempt == 2) {
				t.Errorf("attempt %d: dead = %v", attempt, dead)
			}
			return err
		})
		clock.Add(time.Hour)
	}
	if got := claim(t, db, 1); len(got) != 0 {
		t.Fatalf("dead job claimed again: %+v", got)
	}
	if c := jobCounts(t, db); c.Pending != 0 || c.Dead != 1 {
		t.Fatalf("counts = %+v, want one dead", c)
	}
	var dead []*sqlstore.Job
	update(t, db, func(tx *sqlstore.Tx) (err error) { dead, err = tx.DeadJobs(ctx, 10); return err })
	if len(dead) != 1 || dead[0].ID != j.ID || dead[0].Kind != "webhook" || dead[0].Attempts != 2 ||
		dead[0].LastError != "boom" || dead[0].DeadAt.IsZero() || dead[0].Payload != nil {
		t.Fatalf("dead jobs = %+v", dead)
	}
	var payload []byte
	if err := db.SQL().QueryRowContext(ctx, `SELECT payload FROM jobs WHERE id = $1`, j.ID).Scan(&payload); err != nil || payload != nil {
		t.Fatalf("dead job's payload kept: %q, %v", payload, err)
	}
}

// Crash safety: a worker that claims a job and dies leaves it locked only until the lease runs
// out; then another worker gets it, and the dead worker's lease is worthless. A job whose lease
// lapses on its last attempt is dead, not lost and not retried for ever.
func testJobLeaseExpiry(t *testing.T, open Opener) {
	clock := newClock()
	db := open(t, sqlstore.Options{Clock: clock.Now})
	enqueue(t, db, &sqlstore.Job{Kind: "mail", MaxAttempts: 2})
	crashed := claim(t, db, 1)
	if len(crashed) != 1 {
		t.Fatal("nothing claimed")
	}
	clock.Add(jobLease - time.Microsecond)
	if got := claim(t, db, 1); len(got) != 0 {
		t.Fatal("job claimed by a second worker while the first one's lease holds")
	}
	clock.Add(time.Microsecond)
	second := claim(t, db, 1)
	if len(second) != 1 || second[0].ID != crashed[0].ID || second[0].Attempts != 2 || second[0].Lease == crashed[0].Lease {
		t.Fatalf("after the lease: %+v", second)
	}
	mustCode(t, db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.CompleteJob(ctx, crashed[0]) }), tutela.ECONFLICT)
	// The second worker dies too, on the last attempt.
	clock.Add(jobLease)
	var dead int64
	update(t, db, func(tx *sqlstore.Tx) (err error) {
		var got []*sqlstore.Job
		got, dead, err = tx.ClaimJobs(ctx, 1, jobLease)
		if len(got) != 0 {
			t.Errorf("job claimed beyond its max attempts: %+v", got)
		}
		return err
	})
	if c := jobCounts(t, db); dead != 1 || c.Dead != 1 || c.Pending != 0 {
		t.Fatalf("dead = %d, counts = %+v; want the job dead", dead, c)
	}
	var list []*sqlstore.Job
	update(t, db, func(tx *sqlstore.Tx) (err error) { list, err = tx.DeadJobs(ctx, 10); return err })
	if len(list) != 1 || list[0].LastError != "lease expired" {
		t.Fatalf("dead jobs = %+v", list)
	}
}

// The cap counts per tenant: a flood of anonymous requests aimed at one tenant (or at no real
// tenant) leaves the other tenants' requests working, up to a ceiling over all tenants.
func testJobPendingCapPerTenant(t *testing.T, open Opener) {
	db := open(t, sqlstore.Options{})
	const capped = "password_reset_request"
	add := func(tenantID string) error {
		return db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.EnqueueJob(ctx, &sqlstore.Job{Kind: capped, TenantID: tenantID, MaxAttempts: 1, MaxPending: 2})
		})
	}
	var tenants []string
	for i := range sqlstore.PendingCeiling + 1 {
		tenants = append(tenants, createTenant(t, db, fmt.Sprintf("t%d", i)).ID)
	}
	// Tenant 0 and the no-tenant bucket fill up; each refuses more, tenant 1 is unaffected.
	for _, id := range []string{tenants[0], tenants[0], "", ""} {
		if err := add(id); err != nil {
			t.Fatalf("under the cap (%q): %v", id, err)
		}
	}
	mustCode(t, add(tenants[0]), tutela.EUNAVAILABLE)
	mustCode(t, add(""), tutela.EUNAVAILABLE)
	if err := add(tenants[1]); err != nil {
		t.Fatalf("another tenant refused by tenant 0's flood: %v", err)
	}
	// The ceiling: PendingCeiling x the cap across all tenants, whoever asks.
	for i := 1; i < sqlstore.PendingCeiling-1; i++ {
		for len(pendingOf(t, db, tenants[i])) < 2 {
			if err := add(tenants[i]); err != nil {
				t.Fatalf("tenant %d under the cap: %v", i, err)
			}
		}
	}
	if c := jobCounts(t, db); c.Pending != 2*sqlstore.PendingCeiling {
		t.Fatalf("pending = %d, want the ceiling %d", c.Pending, 2*sqlstore.PendingCeiling)
	}
	mustCode(t, add(tenants[sqlstore.PendingCeiling]), tutela.EUNAVAILABLE)
}

// pendingOf lists the pending jobs of a tenant (claiming nothing).
func pendingOf(t *testing.T, db *sqlstore.DB, tenantID string) []string {
	t.Helper()
	var ids []string
	rows, err := db.SQL().QueryContext(ctx, `SELECT id FROM jobs WHERE state = 'pending' AND tenant_id = $1`, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}
