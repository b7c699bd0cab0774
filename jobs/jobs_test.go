package jobs_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tutela"
	"tutela/clocktest"
	"tutela/jobs"
	"tutela/mail"
	"tutela/mail/mailtest"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
	"tutela/vault"
)

var ctx = context.Background()

type env struct {
	db    *sqlstore.DB
	clock *clocktest.Clock
	q     *jobs.Queue
	logs  *syncBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	db := sqltest.Open(t, sqlstore.SQLite, sqlstore.Options{Clock: clock.Now})
	sealer, err := vault.NewLocalSealer(tutela.NewSecretBytes(bytes.Repeat([]byte{3}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	q := jobs.New(db, sealer, jobs.Options{Log: slog.New(slog.NewTextHandler(logs, nil))})
	return &env{db: db, clock: clock, q: q, logs: logs}
}

func (e *env) enqueue(t *testing.T, kind string, payload []byte) {
	t.Helper()
	j, err := e.q.Prepare(kind, "", payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.EnqueueJob(ctx, j) }); err != nil {
		t.Fatal(err)
	}
}

func (e *env) runDue(t *testing.T) int {
	t.Helper()
	n, err := e.q.RunDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) rawPayloads(t *testing.T) [][]byte {
	t.Helper()
	rows, err := e.db.SQL().QueryContext(ctx, `SELECT payload FROM jobs ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var p []byte
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// A secret in a Sealed kind's payload is never in the database in clear, reaches the handler
// intact, and is deleted with the job once it ran.
func TestQueue_SealedPayloadEncryptedAtRestAndDroppedOnceRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var got []byte
	e.q.Register(jobs.Kind{Name: "reset-mail", Sealed: true, Handle: func(_ context.Context, _ string, p []byte) error {
		got = bytes.Clone(p)
		return nil
	}})
	secret := []byte("code 4f1c9e2a-the-reset-code")
	e.enqueue(t, "reset-mail", secret)
	stored := e.rawPayloads(t)
	if len(stored) != 1 || bytes.Contains(stored[0], []byte("the-reset-code")) {
		t.Fatalf("payload stored in clear: %q", stored)
	}
	if n := e.runDue(t); n != 1 || !bytes.Equal(got, secret) {
		t.Fatalf("ran %d, handler got %q", n, got)
	}
	if left := e.rawPayloads(t); len(left) != 0 {
		t.Fatalf("payload kept after the job ran: %q", left)
	}
}

// A sealed payload copied into another job's row (same kind) does not open there: the handler
// never sees it and the job fails instead.
func TestQueue_SealedPayloadMovedToAnotherJobDoesNotOpen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var got [][]byte
	var mu sync.Mutex
	e.q.Register(jobs.Kind{Name: "reset-mail", Sealed: true, Handle: func(_ context.Context, _ string, p []byte) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, bytes.Clone(p))
		return nil
	}})
	e.enqueue(t, "reset-mail", []byte("for ana"))
	e.enqueue(t, "reset-mail", []byte("for mallory"))
	// The attacker with write access to the table points mallory's job at ana's ciphertext.
	if _, err := e.db.SQL().ExecContext(ctx, `UPDATE jobs SET payload = (SELECT payload FROM jobs ORDER BY id LIMIT 1)
		WHERE id = (SELECT id FROM jobs ORDER BY id DESC LIMIT 1)`); err != nil {
		t.Fatal(err)
	}
	e.runDue(t)
	if len(got) != 1 || string(got[0]) != "for ana" {
		t.Fatalf("handler got %q, want only ana's own job", got)
	}
	if !strings.Contains(e.logs.String(), "payload does not open") {
		t.Fatalf("tampered job not logged as failed:\n%s", e.logs)
	}
}

// A failing job comes back after its backoff (not before), and after its last attempt it is
// dead, logged as an error, and no longer runs.
func TestQueue_FailureRetriedWithBackoffThenDead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var calls int
	e.q.Register(jobs.Kind{Name: "flaky", MaxAttempts: 3, Handle: func(context.Context, string, []byte) error {
		calls++
		return errors.New("relay refused")
	}})
	e.enqueue(t, "flaky", nil)
	if n := e.runDue(t); n != 1 || calls != 1 {
		t.Fatalf("first pass ran %d (calls %d)", n, calls)
	}
	for attempt := 1; attempt < 3; attempt++ {
		e.clock.Add(jobs.Backoff(attempt) - time.Microsecond)
		if n := e.runDue(t); n != 0 {
			t.Fatalf("attempt %d retried before its backoff", attempt)
		}
		e.clock.Add(time.Microsecond)
		if n := e.runDue(t); n != 1 || calls != attempt+1 {
			t.Fatalf("attempt %d not retried after its backoff: ran %d, calls %d", attempt, n, calls)
		}
	}
	e.clock.Add(24 * time.Hour)
	if n := e.runDue(t); n != 0 || calls != 3 {
		t.Fatalf("dead job ran again: %d, calls %d", n, calls)
	}
	if !strings.Contains(e.logs.String(), "job dead after its last attempt") || !strings.Contains(e.logs.String(), "handler failed (internal)") {
		t.Fatalf("dead job not logged:\n%s", e.logs)
	}
	var c sqlstore.JobCounts
	_ = e.db.View(ctx, func(tx *sqlstore.Tx) (err error) { c, err = tx.CountJobs(ctx); return err })
	if c.Dead != 1 || c.Pending != 0 {
		t.Fatalf("counts = %+v", c)
	}
}

// Enqueuing a kind nobody registered, or a Sealed kind without a sealer, fails at once rather
// than storing a job that cannot run or a secret in clear.
func TestQueue_EnqueueRefusesUnknownKindAndUnsealedSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.q.Enqueue(ctx, "nope", "", nil); err == nil {
		t.Fatal("unknown kind enqueued")
	}
	q := jobs.New(e.db, nil, jobs.Options{})
	q.Register(jobs.Kind{Name: "secret", Sealed: true, Handle: func(context.Context, string, []byte) error { return nil }})
	if err := q.Enqueue(ctx, "secret", "", []byte("x")); err == nil {
		t.Fatal("sealed kind enqueued without a sealer")
	}
	if p := e.rawPayloads(t); len(p) != 0 {
		t.Fatalf("jobs stored: %q", p)
	}
}

func TestBackoff_DoublesFromThirtySecondsToAnHour(t *testing.T) {
	t.Parallel()
	for attempt, want := range map[int]time.Duration{1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute,
		7: 32 * time.Minute, 8: time.Hour, 50: time.Hour} {
		if got := jobs.Backoff(attempt); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", attempt, got, want)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// A failure is stored and logged as its class only: an SMTP relay's refusal repeats the
// recipient's address, and a handler's error may carry anything; neither may reach
// jobs.last_error or the log, which outlive the sealed payload.
func TestQueue_FailureRecordsOnlyTheErrorClass(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const to = "grace.hopper@example.com"
	relay := mailtest.NewServer(t, mailtest.WithRejectedRecipient(to))
	sender, err := mail.NewSMTPSender(mail.SMTPConfig{Addr: relay.Addr(), TLS: mail.TLSNone, From: "noreply@tutela.test", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.q.Register(jobs.Kind{Name: "mail", MaxAttempts: 1, Sealed: true, Handle: func(ctx context.Context, _ string, p []byte) error {
		return sender.Send(ctx, mail.Message{To: string(p), Subject: "Hi", Text: "x"})
	}})
	e.q.Register(jobs.Kind{Name: "other", MaxAttempts: 1, Sealed: true, Handle: func(_ context.Context, _ string, p []byte) error {
		return fmt.Errorf("lookup of %s failed", p)
	}})
	e.enqueue(t, "mail", []byte(to))
	e.enqueue(t, "other", []byte(to))
	if n := e.runDue(t); n != 2 {
		t.Fatalf("ran %d, want 2", n)
	}
	var dead []*sqlstore.Job
	if err := e.db.View(ctx, func(tx *sqlstore.Tx) (err error) { dead, err = tx.DeadJobs(ctx, 10); return err }); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, j := range dead {
		got[j.Kind] = j.LastError
	}
	want := map[string]string{"mail": "mail: RCPT TO rejected by server (code 550)", "other": "handler failed (internal)"}
	if !maps.Equal(got, want) {
		t.Fatalf("last errors = %q, want %q", got, want)
	}
	if logs := e.logs.String(); strings.Contains(logs, "grace.hopper") || strings.Contains(logs, "User unknown") ||
		!strings.Contains(logs, "code 550") {
		t.Fatalf("logs carry the server's reply or the address, or lack the code:\n%s", logs)
	}
}

// runWorker starts q's worker loop and returns a function that stops it and waits for it.
func runWorker(t *testing.T, q *jobs.Queue) (stop func()) {
	t.Helper()
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); q.Run(wctx) }()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute): // only stops a broken test from hanging
			t.Fatal("worker did not stop")
		}
	}
}

// A job still running when the worker stops may finish within the grace, and is then done, not
// failed.
func TestQueue_StopLetsRunningJobFinishWithinGrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := jobs.New(e.db, nil, jobs.Options{})
	graceStarted := make(chan struct{})
	jobs.SetAfterGrace(q, func(func()) { close(graceStarted) }) // the grace never runs out here
	started, release := make(chan struct{}), make(chan struct{})
	q.Register(jobs.Kind{Name: "slow", MaxAttempts: 1, Handle: func(ctx context.Context, _ string, _ []byte) error {
		close(started)
		<-release
		return ctx.Err() // the job's context must still be live: the grace has not run out
	}})
	if err := q.Enqueue(ctx, "slow", "", nil); err != nil {
		t.Fatal(err)
	}
	stop := runWorker(t, q)
	<-started
	stopped := make(chan struct{})
	go func() { defer close(stopped); stop() }()
	<-graceStarted // the worker is stopping and the job is within its grace
	close(release)
	<-stopped
	if c := counts(t, e.db); c.Pending != 0 || c.Dead != 0 {
		t.Fatalf("counts = %+v, want the job done", c)
	}
}

// A job cancelled because the worker stopped (its grace ran out) is released, not counted as a
// failed attempt: its only attempt is still there for the next worker, with no error recorded.
func TestQueue_StopReleasesJobCancelledAfterGrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := jobs.New(e.db, nil, jobs.Options{Log: slog.New(slog.NewTextHandler(e.logs, nil))})
	jobs.SetAfterGrace(q, func(endGrace func()) { endGrace() }) // the grace runs out at once
	started := make(chan struct{}, 1)
	var runs int
	handler := func(ctx context.Context, _ string, _ []byte) error {
		runs++
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	q.Register(jobs.Kind{Name: "slow", MaxAttempts: 1, Handle: handler})
	if err := q.Enqueue(ctx, "slow", "", nil); err != nil {
		t.Fatal(err)
	}
	stop := runWorker(t, q)
	<-started
	stop()
	if c := counts(t, e.db); c.Pending != 1 || c.Dead != 0 {
		t.Fatalf("counts = %+v, want the job pending", c)
	}
	var attempts int
	var lastErr sql.NullString
	if err := e.db.SQL().QueryRowContext(ctx, `SELECT attempts, last_error FROM jobs`).Scan(&attempts, &lastErr); err != nil {
		t.Fatal(err)
	}
	if attempts != 0 || lastErr.Valid {
		t.Fatalf("attempts = %d, last_error = %v: the shutdown counted as a failure", attempts, lastErr)
	}
	if !strings.Contains(e.logs.String(), "released") {
		t.Fatalf("release not logged:\n%s", e.logs)
	}
	// The next worker runs it at once.
	done := jobs.New(e.db, nil, jobs.Options{})
	done.Register(jobs.Kind{Name: "slow", MaxAttempts: 1, Handle: func(context.Context, string, []byte) error { return nil }})
	if n, err := done.RunDue(ctx); err != nil || n != 1 {
		t.Fatalf("next worker ran %d, %v", n, err)
	}
	if runs != 1 {
		t.Fatalf("runs = %d", runs)
	}
}

func counts(t *testing.T, db *sqlstore.DB) sqlstore.JobCounts {
	t.Helper()
	var c sqlstore.JobCounts
	if err := db.View(ctx, func(tx *sqlstore.Tx) (err error) { c, err = tx.CountJobs(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	return c
}

// A kind with MaxPending refuses jobs beyond it as unavailable, adding nothing; urgent kinds are
// run ahead of an older backlog.
func TestQueue_MaxPendingAndUrgentKinds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var order []string
	rec := func(name string) jobs.Handler {
		return func(context.Context, string, []byte) error { order = append(order, name); return nil }
	}
	e.q.Register(jobs.Kind{Name: "request", MaxPending: 2, Handle: rec("request")})
	e.q.Register(jobs.Kind{Name: "mail", Urgent: true, Handle: rec("mail")})
	for range 2 {
		if err := e.q.Enqueue(ctx, "request", "", nil); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Second)
	}
	if err := e.q.Enqueue(ctx, "request", "", nil); tutela.ErrorCode(err) != tutela.EUNAVAILABLE {
		t.Fatalf("enqueue past the cap = %v, want unavailable", err)
	}
	if err := e.q.Enqueue(ctx, "mail", "", nil); err != nil {
		t.Fatal(err)
	}
	q := jobs.New(e.db, nil, jobs.Options{Batch: 1})
	q.Register(jobs.Kind{Name: "request", MaxPending: 2, Handle: rec("request")})
	q.Register(jobs.Kind{Name: "mail", Urgent: true, Handle: rec("mail")})
	if n, err := q.RunDue(ctx); err != nil || n != 3 {
		t.Fatalf("ran %d, %v", n, err)
	}
	if !slices.Equal(order, []string{"mail", "request", "request"}) {
		t.Fatalf("order = %q, want the mail first", order)
	}
}
