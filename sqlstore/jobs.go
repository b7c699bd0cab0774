package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"

	"tutela"
)

// Job is one row of the durable job queue (migration 00012). Package jobs runs them; the store
// only keeps the rules every node must agree on: who holds a job, when it may run again, and
// when it is dead.
type Job struct {
	ID          string
	Kind        string
	TenantID    string // "" for platform work
	Payload     []byte // as enqueued (sealed when the kind says so)
	RunAt       time.Time
	Attempts    int // claims so far, this one included once claimed
	MaxAttempts int
	LastError   string
	CreatedAt   time.Time
	DeadAt      time.Time // zero unless dead
	// Lease is the claim's token, set by ClaimJobs: only its holder may complete or fail the job.
	Lease string
	// MaxPending, when positive, bounds the pending jobs of this kind per tenant (TenantID, or
	// the jobs with none), and PendingCeiling times as many across all tenants: EnqueueJob refuses
	// a job beyond either with EUNAVAILABLE. Not stored; for kinds anonymous clients can enqueue
	// (ASVS 5.0 2.4.1), so a flood cannot grow the table without limit, and a flood aimed at one
	// tenant does not refuse the others.
	MaxPending int
}

// Job states.
const (
	JobPending = "pending"
	JobDead    = "dead"
)

// maxJobError bounds the stored error text; errors are for operators, not a log archive.
const maxJobError = 500

// EnqueueJob adds j to the queue in this transaction: if the transaction rolls back, the job was
// never there, and once it commits the job will run even if this node dies the next instant.
// j.ID may be set by the caller (so a sealed payload can be bound to it); j.RunAt defaults to
// now.
func (tx *Tx) EnqueueJob(ctx context.Context, j *Job) error {
	if j.ID == "" {
		j.ID = tutela.NewID()
	}
	if j.Kind == "" || len(j.Kind) > 64 || j.MaxAttempts <= 0 {
		return tutela.Errorf(tutela.EINVALID, "job kind and max attempts are required")
	}
	if j.RunAt.IsZero() {
		j.RunAt = tx.now
	}
	j.RunAt = j.RunAt.UTC().Truncate(time.Microsecond)
	j.CreatedAt, j.Attempts, j.LastError, j.DeadAt, j.Lease = tx.now, 0, "", time.Time{}, ""
	if j.MaxPending > 0 {
		// Serialised per store, so concurrent enqueues cannot pass the cap together (SQLite
		// already runs one writer at a time).
		if err := tx.Lock(ctx, LockJobCap); err != nil {
			return err
		}
		scope, args := ` AND tenant_id IS NULL`, []any{j.Kind}
		if j.TenantID != "" {
			scope, args = ` AND tenant_id = $2`, append(args, j.TenantID)
		}
		n, err := tx.count(ctx, `SELECT COUNT(*) FROM jobs WHERE state = 'pending' AND kind = $1`+scope, args...)
		if err != nil {
			return err
		}
		all := n
		if n < j.MaxPending {
			if all, err = tx.count(ctx, `SELECT COUNT(*) FROM jobs WHERE state = 'pending' AND kind = $1`, j.Kind); err != nil {
				return err
			}
		}
		if n >= j.MaxPending || all >= PendingCeiling*j.MaxPending {
			return tutela.Errorf(tutela.EUNAVAILABLE, "too many requests are waiting; try again later")
		}
	}
	_, err := tx.exec(ctx, `INSERT INTO jobs (id, kind, tenant_id, payload, state, run_at, attempts, max_attempts, created_at)
		VALUES ($1, $2, $3, $4, 'pending', $5, 0, $6, $7)`,
		j.ID, j.Kind, nullID(j.TenantID), j.Payload, j.RunAt, j.MaxAttempts, tx.now)
	return err
}

// ClaimJobs takes up to limit due jobs for this caller, for lease: each gets a fresh lease token,
// one more attempt, and is hidden from other claims until the lease lapses. A job whose worker
// died mid-run therefore runs again once its lease is over (at-least-once delivery). On
// PostgreSQL concurrent claims skip each other's rows (FOR UPDATE SKIP LOCKED), so two nodes
// never take the same job; SQLite runs write transactions one at a time.
//
// Jobs of the urgent kinds are claimed before any other due job, whatever their run_at, so a
// backlog of other work (a flood of forgot-password requests) does not hold up, say, a security
// notice.
//
// A job whose lease lapsed after its last allowed attempt is not claimed again: it is marked
// dead here ("lease expired"), and reported in dead.
//
// A store bound to a data region claims (and marks dead) only the jobs of its region's tenants
// and those of no tenant.
func (tx *Tx) ClaimJobs(ctx context.Context, limit int, lease time.Duration, urgent ...string) (claimed []*Job, dead int64, err error) {
	if limit <= 0 || lease <= 0 {
		return nil, 0, tutela.Errorf(tutela.EINVALID, "claim limit and lease must be positive")
	}
	// A node bound to a data region touches only its region's tenants' jobs (and the jobs of
	// no tenant): another region's payloads are its own nodes' to open.
	scope, deadArgs := tx.regionScopeText("tenant_id", true, tx.now)
	res, err := tx.exec(ctx, `UPDATE jobs SET state = 'dead', dead_at = $1, payload = NULL, lease_token = NULL,
			last_error = COALESCE(last_error, 'lease expired')
		WHERE state = 'pending' AND locked_until <= $1 AND attempts >= max_attempts`+scope, deadArgs...)
	if err != nil {
		return nil, 0, err
	}
	if dead, err = res.RowsAffected(); err != nil {
		return nil, 0, err
	}
	lock := ""
	if tx.db.dialect == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	token := tutela.RandomToken(16)
	args := []any{token, tx.now.Add(lease), tx.now, limit}
	order := "run_at, id"
	if len(urgent) > 0 {
		in := make([]string, len(urgent))
		for i, k := range urgent {
			args = append(args, k)
			in[i] = "$" + strconv.Itoa(len(args))
		}
		order = "CASE WHEN kind IN (" + strings.Join(in, ", ") + ") THEN 0 ELSE 1 END, " + order
	}
	scope, args = tx.regionScopeText("tenant_id", true, args...)
	rows, err := tx.query(ctx, `UPDATE jobs SET attempts = attempts + 1, lease_token = $1, locked_until = $2
		WHERE id IN (SELECT id FROM jobs WHERE state = 'pending' AND run_at <= $3
			AND (locked_until IS NULL OR locked_until <= $3) AND attempts < max_attempts`+scope+`
			ORDER BY `+order+` LIMIT $4`+lock+`)
		RETURNING id, kind, tenant_id, payload, run_at, attempts, max_attempts, last_error, created_at`,
		args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var j Job
		var tenant, lastErr sql.NullString
		if err := rows.Scan(&j.ID, &j.Kind, &tenant, &j.Payload, &j.RunAt, &j.Attempts, &j.MaxAttempts, &lastErr, &j.CreatedAt); err != nil {
			return nil, 0, err
		}
		j.TenantID, j.LastError, j.Lease = tenant.String, lastErr.String, token
		j.RunAt, j.CreatedAt = j.RunAt.UTC(), j.CreatedAt.UTC()
		claimed = append(claimed, &j)
	}
	return claimed, dead, mapErr(rows.Err())
}

// errLeaseLost: the job is no longer this caller's (its lease lapsed and another worker took it,
// or it is gone). The caller must drop its result; the current holder decides.
func errLeaseLost() error {
	return tutela.Errorf(tutela.ECONFLICT, "job lease lost")
}

// CompleteJob deletes a job its caller ran successfully, payload and all. It fails with conflict
// if the caller's lease is no longer current.
func (tx *Tx) CompleteJob(ctx context.Context, j *Job) error {
	res, err := tx.exec(ctx, `DELETE FROM jobs WHERE id = $1 AND lease_token = $2 AND state = 'pending'`, j.ID, j.Lease)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return errors.Join(err, errLeaseLost())
	}
	return nil
}

// FailJob records a failed attempt. With attempts left the job runs again at retryAt (the
// caller's backoff); after its last attempt it is dead: kept with its error for operators, its
// payload dropped. It reports whether the job is now dead, and fails with conflict if the
// caller's lease is no longer current.
func (tx *Tx) FailJob(ctx context.Context, j *Job, cause string, retryAt time.Time) (dead bool, err error) {
	if len(cause) > maxJobError {
		cause = cause[:maxJobError]
	}
	// Two statements, not one with CASE: a bare parameter inside CASE has no type PostgreSQL can
	// infer.
	res, err := tx.exec(ctx, `UPDATE jobs SET last_error = $3, lease_token = NULL, locked_until = NULL, run_at = $4
		WHERE id = $1 AND lease_token = $2 AND state = 'pending' AND attempts < max_attempts`,
		j.ID, j.Lease, cause, retryAt.UTC().Truncate(time.Microsecond))
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return false, err
	}
	res, err = tx.exec(ctx, `UPDATE jobs SET last_error = $3, lease_token = NULL, locked_until = NULL, state = 'dead',
			dead_at = $4, payload = NULL
		WHERE id = $1 AND lease_token = $2 AND state = 'pending'`, j.ID, j.Lease, cause, tx.now)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, errors.Join(err, errLeaseLost())
	}
	return true, nil
}

// ReleaseJob gives back a claimed job that did not run to an end through no fault of its own
// (its worker is shutting down): the attempt is not counted, no error is recorded, and the job
// is due again at once for any worker. It fails with conflict if the caller's lease is no
// longer current.
func (tx *Tx) ReleaseJob(ctx context.Context, j *Job) error {
	res, err := tx.exec(ctx, `UPDATE jobs SET attempts = attempts - 1, lease_token = NULL, locked_until = NULL
		WHERE id = $1 AND lease_token = $2 AND state = 'pending' AND attempts > 0`, j.ID, j.Lease)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return errors.Join(err, errLeaseLost())
	}
	return nil
}

// JobCounts is the queue's size by state, for metrics and operators.
type JobCounts struct {
	Pending int64 // waiting, running or retrying
	Dead    int64 // gave up; see DeadJobs
}

// CountJobs counts the queue's jobs by state.
func (tx *Tx) CountJobs(ctx context.Context) (JobCounts, error) {
	var c JobCounts
	err := tx.queryRow(ctx, `SELECT COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0) FROM jobs`).Scan(&c.Pending, &c.Dead)
	return c, mapErr(err)
}

// DeadJobs lists up to limit dead jobs, most recent first (without payloads, which dead jobs no
// longer have).
func (tx *Tx) DeadJobs(ctx context.Context, limit int) ([]*Job, error) {
	rows, err := tx.query(ctx, `SELECT id, kind, tenant_id, run_at, attempts, max_attempts, last_error, created_at, dead_at
		FROM jobs WHERE state = 'dead' ORDER BY dead_at DESC, id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Job
	for rows.Next() {
		var j Job
		var tenant, lastErr sql.NullString
		if err := rows.Scan(&j.ID, &j.Kind, &tenant, &j.RunAt, &j.Attempts, &j.MaxAttempts, &lastErr, &j.CreatedAt, &j.DeadAt); err != nil {
			return nil, err
		}
		j.TenantID, j.LastError = tenant.String, lastErr.String
		j.RunAt, j.CreatedAt, j.DeadAt = j.RunAt.UTC(), j.CreatedAt.UTC(), j.DeadAt.UTC()
		out = append(out, &j)
	}
	return out, mapErr(rows.Err())
}
