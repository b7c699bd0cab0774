// Package jobs runs background work that must not be lost (e-mail now; webhooks and deadlines
// later) through the durable queue in the database (sqlstore/jobs.go): a job is prepared before
// and added in the transaction of the change that causes it, so a committed change always has
// its job and a rolled-back one never has; every node runs a worker that claims due jobs under a lease, runs
// them, retries failures with exponential backoff and gives up after a kind's attempts, logging
// the dead job. Delivery is at least once: a handler must tolerate running twice (a worker can
// die after the work and before recording it).
//
// A kind that carries a secret or personal data (a password-reset code, an e-mail address) is
// registered Sealed: its payload is encrypted with the vault (keyset `jobs`), bound to the job's
// ID and kind, and deleted with the job once it ran.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"tutela"
	"tutela/sqlstore"
	"tutela/vault"
)

// Handler runs one job with its (opened) payload. An error means "try again later"; the job is
// dead after its kind's MaxAttempts.
type Handler func(ctx context.Context, tenantID string, payload []byte) error

// Kind is one type of job.
type Kind struct {
	Name string
	// MaxAttempts before the job is dead (default 8: with the default backoff, about four
	// hours of retries).
	MaxAttempts int
	// Sealed encrypts the payload at rest (secrets, personal data).
	Sealed bool
	// Timeout bounds one run (default one minute); the lease is Timeout plus a margin, so a
	// job is never run twice at once.
	Timeout time.Duration
	// MaxPending, when positive, caps the kind's pending jobs: past it, enqueuing fails with
	// EUNAVAILABLE (sqlstore.Job.MaxPending). For kinds anonymous clients can enqueue.
	MaxPending int
	// Urgent kinds are claimed before other due jobs, so a backlog of other work does not
	// delay them.
	Urgent bool
	Handle Handler
}

// Options tune a Queue. The zero value is usable.
type Options struct {
	Log *slog.Logger
	// Poll is how often an idle worker looks for due jobs (default 2 s).
	Poll time.Duration
	// Batch is how many jobs one worker claims and runs at once (default 8).
	Batch int
	// Grace is how long jobs still running when the worker is stopped may go on before they
	// are cancelled (default 10 s). A job cancelled so is released, not counted as a failed
	// attempt: the next worker runs it again.
	Grace time.Duration
}

// Queue enqueues and runs jobs. Kinds are registered before Run starts.
type Queue struct {
	db     *sqlstore.DB
	sealer vault.Sealer
	log    *slog.Logger
	poll   time.Duration
	batch  int
	grace  time.Duration
	// afterGrace calls f once the grace has passed after the worker began to stop (a timer;
	// tests replace it to decide when the grace runs out).
	afterGrace func(f func())

	mu    sync.RWMutex
	kinds map[string]Kind
}

// New returns a queue over db. sealer seals the payloads of Sealed kinds; without one, enqueuing
// a Sealed kind fails (it never stores them in clear).
func New(db *sqlstore.DB, sealer vault.Sealer, opt Options) *Queue {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Poll <= 0 {
		opt.Poll = 2 * time.Second
	}
	if opt.Batch <= 0 {
		opt.Batch = 8
	}
	if opt.Grace <= 0 {
		opt.Grace = 10 * time.Second
	}
	q := &Queue{db: db, sealer: sealer, log: opt.Log, poll: opt.Poll, batch: opt.Batch, grace: opt.Grace, kinds: map[string]Kind{}}
	q.afterGrace = func(f func()) { time.AfterFunc(q.grace, f) }
	return q
}

// Register adds a kind. Registering a name twice replaces the earlier handler.
func (q *Queue) Register(k Kind) {
	if k.MaxAttempts <= 0 {
		k.MaxAttempts = 8
	}
	if k.Timeout <= 0 {
		k.Timeout = time.Minute
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.kinds[k.Name] = k
}

func (q *Queue) kind(name string) (Kind, bool) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	k, ok := q.kinds[name]
	return k, ok
}

// Prepare builds a job of a registered kind, its payload sealed if the kind says so, for the
// caller to add with tx.EnqueueJob in the transaction of the change that causes it: the job
// then exists exactly when the change commits. Call it before that transaction begins: sealing
// may read or create the vault keyset and reach the KMS, which must not happen while a write
// transaction holds the store (on SQLite, the one writer). tenantID may be "" (platform work).
func (q *Queue) Prepare(kind, tenantID string, payload []byte) (*sqlstore.Job, error) {
	k, ok := q.kind(kind)
	if !ok {
		return nil, fmt.Errorf("jobs: kind %q is not registered", kind)
	}
	j := &sqlstore.Job{ID: tutela.NewID(), Kind: kind, TenantID: tenantID, Payload: payload, MaxAttempts: k.MaxAttempts,
		MaxPending: k.MaxPending}
	if k.Sealed {
		if q.sealer == nil {
			return nil, fmt.Errorf("jobs: kind %q needs a sealer", kind)
		}
		sealed, err := q.sealer.Seal(payload, aad(j.ID, kind))
		if err != nil {
			return nil, fmt.Errorf("jobs: seal %s payload: %w", kind, err)
		}
		j.Payload = sealed
	}
	return j, nil
}

// Enqueue prepares a job and adds it in a transaction of its own, for work that follows a
// change already committed (or causes none).
func (q *Queue) Enqueue(ctx context.Context, kind, tenantID string, payload []byte) error {
	j, err := q.Prepare(kind, tenantID, payload)
	if err != nil {
		return err
	}
	return q.db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.EnqueueJob(ctx, j) })
}

// aad binds a sealed payload to its job: copied into another row, it does not open.
func aad(id, kind string) []byte { return []byte("job:" + kind + ":" + id) }

// Backoff is the wait after a job's attempt-th failure: 30 s, doubling, at most an hour.
func Backoff(attempt int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < attempt && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// lease is how long a claim hides a job from other workers: longer than any run.
func (q *Queue) lease() time.Duration {
	q.mu.RLock()
	defer q.mu.RUnlock()
	longest := time.Minute
	for _, k := range q.kinds {
		longest = max(longest, k.Timeout)
	}
	return longest + time.Minute
}

// urgent lists the kinds claimed first.
func (q *Queue) urgent() []string {
	q.mu.RLock()
	defer q.mu.RUnlock()
	var names []string
	for _, k := range q.kinds {
		if k.Urgent {
			names = append(names, k.Name)
		}
	}
	return names
}

// RunDue claims and runs jobs that are due now until none is left, and reports how many ran
// (successfully or not). The worker loop calls it; tests call it to deliver what is queued.
func (q *Queue) RunDue(ctx context.Context) (int, error) {
	total := 0
	seen := map[string]bool{}
	for {
		var claimed []*sqlstore.Job
		var dead int64
		err := q.db.Update(ctx, func(tx *sqlstore.Tx) (err error) {
			claimed, dead, err = tx.ClaimJobs(ctx, q.batch, q.lease(), q.urgent()...)
			return err
		})
		if err != nil {
			return total, err
		}
		if dead > 0 {
			q.log.Error("jobs dead: their worker stopped during the last attempt", "count", dead)
		}
		fresh := claimed[:0]
		for _, j := range claimed {
			// A job failed in this pass whose backoff already passed (a clock moved by a
			// test, or no backoff) waits for the next pass, so one pass always ends.
			if !seen[j.ID] {
				fresh = append(fresh, j)
			}
			seen[j.ID] = true
		}
		if len(fresh) == 0 {
			return total, nil
		}
		var wg sync.WaitGroup
		for _, j := range fresh {
			wg.Go(func() { q.run(ctx, j) })
		}
		wg.Wait()
		total += len(fresh)
	}
}

// errShutdown is the cause of a job's cancellation when its worker stopped and the grace ran
// out.
var errShutdown = errors.New("jobs: worker stopped")

// run runs one claimed job and records the outcome. Errors recording it are logged: the lease
// then lapses and the job runs again. When ctx ends (the worker is stopping) the job has
// q.grace to finish; cancelled after that, it is released, not failed: a restart is no fault
// of the job and must not use up its attempts.
func (q *Queue) run(ctx context.Context, j *sqlstore.Job) {
	jctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() { q.afterGrace(func() { cancel(errShutdown) }) })
	defer stop()
	err := q.handle(jctx, j)
	rec := context.WithoutCancel(ctx) // record the outcome even if the worker is stopping
	if err == nil {
		if cerr := q.db.Update(rec, func(tx *sqlstore.Tx) error { return tx.CompleteJob(rec, j) }); cerr != nil {
			q.log.Error("job ran but could not be marked done; it may run again", "job", j.ID, "kind", j.Kind, "err", cerr)
		}
		return
	}
	if errors.Is(context.Cause(jctx), errShutdown) {
		if rerr := q.db.Update(rec, func(tx *sqlstore.Tx) error { return tx.ReleaseJob(rec, j) }); rerr != nil {
			q.log.Error("job cancelled by shutdown could not be released; it runs again once its lease lapses",
				"job", j.ID, "kind", j.Kind, "record_err", rerr)
			return
		}
		q.log.Info("job cancelled by shutdown; released for the next worker", "job", j.ID, "kind", j.Kind)
		return
	}
	// Only a fixed class is stored and logged, never the error's text: a relay's reply to RCPT
	// TO, say, repeats the recipient's address, which the sealed payload exists to protect.
	cause := Failure(err)
	var dead bool
	ferr := q.db.Update(rec, func(tx *sqlstore.Tx) (ferr error) {
		dead, ferr = tx.FailJob(rec, j, cause, tx.Now().Add(Backoff(j.Attempts)))
		return ferr
	})
	switch {
	case ferr != nil:
		q.log.Error("job failed and could not be rescheduled", "job", j.ID, "kind", j.Kind, "err", cause, "record_err", ferr)
	case dead:
		q.log.Error("job dead after its last attempt", "job", j.ID, "kind", j.Kind, "attempts", j.Attempts, "err", cause)
	default:
		q.log.Warn("job failed; will retry", "job", j.ID, "kind", j.Kind, "attempt", j.Attempts, "err", cause)
	}
}

// Classed is an error that can describe itself without personal data or secrets: a fixed class
// and codes (mail.DeliveryError: the SMTP step and status code).
type Classed interface {
	error
	Class() string
}

// Failure is what is recorded (jobs.last_error) and logged for a failed run: the error's class,
// never its text, which may carry what the payload was sealed to protect.
func Failure(err error) string {
	var c Classed
	switch {
	case errors.As(err, &c):
		return c.Class()
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, errUnknownKind), errors.Is(err, errNoSealer), errors.Is(err, errPayload):
		return err.Error()
	}
	return "handler failed (" + tutela.ErrorCode(err) + ")"
}

// errUnknownKind is a failure retrying will not cure on this node; it still retries, since
// another node (or a later release) may know the kind.
var errUnknownKind = errors.New("no handler for this job kind")

var (
	errNoSealer = errors.New("no sealer to open the payload")
	errPayload  = errors.New("payload does not open (wrong key or tampered)")
)

func (q *Queue) handle(ctx context.Context, j *sqlstore.Job) error {
	k, ok := q.kind(j.Kind)
	if !ok {
		return errUnknownKind
	}
	payload := j.Payload
	if k.Sealed {
		if q.sealer == nil {
			return errNoSealer
		}
		var err error
		if payload, err = q.sealer.Open(j.Payload, aad(j.ID, j.Kind)); err != nil {
			return errPayload
		}
		defer clear(payload)
	}
	rctx, cancel := context.WithTimeout(ctx, k.Timeout)
	defer cancel()
	return k.Handle(rctx, j.TenantID, payload)
}

// Run is the worker loop every node runs: it runs due jobs every Poll until ctx ends, then
// returns once the jobs it was running are recorded.
func (q *Queue) Run(ctx context.Context) {
	t := time.NewTicker(q.poll)
	defer t.Stop()
	for {
		if _, err := q.RunDue(ctx); err != nil && ctx.Err() == nil {
			q.log.Error("job queue", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
