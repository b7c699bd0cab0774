package sqlstore

import (
	"context"
	"fmt"
	"time"

	"tutela/audit"
)

// The retention schedule's erasure: why and on what basis a subject whose retention ended is
// erased without anyone asking.
const (
	RetentionReason     = "retention period ended"
	RetentionLegalBasis = "storage limitation (GDPR Art. 5(1)(e))"
)

// RetentionBatch is how many subjects one transaction of the schedule erases.
const RetentionBatch = 500

// maxReportedFailures caps the subject IDs a run's audit event names.
const maxReportedFailures = 20

// RetentionRun reports one run of the retention schedule.
type RetentionRun struct {
	Erased int `json:"erased"`
	// Held counts expired subjects skipped because a legal hold is active on them.
	Held int `json:"held"`
	// Repaired counts expired subjects the erasure ledger already held (a restore by an older
	// release re-applied the shredding but left the row live): marked erased, not erased twice.
	Repaired int `json:"repaired"`
	// Failed counts subjects whose erasure failed. Each is rolled back alone (the others of its
	// batch are erased), skipped for the rest of the run, and tried again by the next run.
	Failed int  `json:"failed"`
	DryRun bool `json:"dry_run"`
}

type expiredSubject struct {
	tenantID, id string
	retainUntil  time.Time
	// inLedger: the ledger already records the subject's erasure (an older restore left the
	// row live); it is repaired, not erased twice.
	inLedger bool
}

// expiredSubjects lists up to limit live subjects of every tenant whose retain_until has
// passed and that no active hold protects, in (retain_until, id) order after the given one
// (nil: from the start). PostgreSQL locks them and skips rows another node's run holds, so two
// nodes never erase the same subject.
func (tx *Tx) expiredSubjects(ctx context.Context, after *expiredSubject, limit int) ([]expiredSubject, error) {
	args := []any{tx.now, limit}
	next := ""
	if after != nil {
		// Past the previous batch: its subjects are erased or failed, and a failed one must
		// not be selected again in this run (it would fill every batch and starve the rest).
		next = ` AND (s.retain_until > $3 OR (s.retain_until = $3 AND s.id > $4))`
		args = append(args, after.retainUntil, after.id)
	}
	scope, args := tx.regionScope("s.tenant_id", false, args...)
	rows, err := tx.query(ctx, `SELECT s.tenant_id, s.id, s.retain_until,
		EXISTS (SELECT 1 FROM erasures e WHERE e.tenant_id = s.tenant_id AND e.person_id = s.id) FROM subjects s
		WHERE s.erased_at IS NULL AND s.retain_until <= $1`+next+scope+`
		AND NOT EXISTS (SELECT 1 FROM subject_holds h WHERE h.tenant_id = s.tenant_id AND h.subject_id = s.id AND h.released_at IS NULL)
		ORDER BY s.retain_until, s.id LIMIT $2`+tx.lockClause("FOR UPDATE OF s SKIP LOCKED"), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []expiredSubject
	for rows.Next() {
		var s expiredSubject
		if err := rows.Scan(&s.tenantID, &s.id, &s.retainUntil, &s.inLedger); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// heldExpiredSubjects counts expired subjects kept by an active legal hold.
func (tx *Tx) heldExpiredSubjects(ctx context.Context) (int, error) {
	var n int
	scope, args := tx.regionScope("s.tenant_id", false, tx.now)
	err := tx.queryRow(ctx, `SELECT count(*) FROM subjects s WHERE s.erased_at IS NULL AND s.retain_until <= $1
		AND EXISTS (SELECT 1 FROM subject_holds h WHERE h.tenant_id = s.tenant_id AND h.subject_id = s.id AND h.released_at IS NULL)`+scope,
		args...).Scan(&n)
	return n, err
}

// retentionBatch is what one batch transaction did.
type retentionBatch struct {
	listed, erased, repaired int
	failed                   []string // subject IDs
	firstErr                 error
	last                     *expiredSubject
}

// eraseBatch erases the next batch of expired subjects after `after`. With isolate, each
// subject is erased inside a savepoint, so that its failure rolls back its own changes only and
// the batch goes on (PostgreSQL refuses every statement of a transaction after an error until
// it rolls back to a savepoint); without, the first failure fails the batch. Savepoints are the
// fallback, not the rule: hundreds of subtransactions in one PostgreSQL transaction overflow
// its subtransaction cache and made the schedule almost three times slower.
func (tx *Tx) eraseBatch(ctx context.Context, after *expiredSubject, limit int, isolate bool, b *retentionBatch) error {
	*b = retentionBatch{} // Update may run the function again
	list, err := tx.expiredSubjects(ctx, after, limit)
	if err != nil {
		return err
	}
	b.listed = len(list)
	for i := range list {
		if err := tx.eraseExpired(ctx, list[i], isolate, b); err != nil {
			return fmt.Errorf("retention: subject %s: %w", list[i].id, err)
		}
		b.last = &list[i]
	}
	return nil
}

// eraseExpired erases one expired subject, or repairs it when the ledger already holds its
// erasure (erasing it again would fail on the ledger on every run). With isolate (eraseBatch)
// the subject's own failure is recorded in b and the returned error is one the transaction
// cannot go on after; without, any failure is returned.
func (tx *Tx) eraseExpired(ctx context.Context, s expiredSubject, isolate bool, b *retentionBatch) error {
	erase := func() (repaired bool, err error) {
		if s.inLedger {
			_, repaired, err = tx.repairErasure(ctx, s.tenantID, s.id)
			return repaired, err
		}
		_, err = tx.Subjects(s.tenantID).Erase(ctx, s.id, RetentionReason, RetentionLegalBasis, ErasureRetention)
		return false, err
	}
	if !isolate {
		repaired, err := erase()
		if err != nil {
			return err
		}
		b.count(s, repaired)
		return nil
	}
	if _, err := tx.exec(ctx, `SAVEPOINT retention_subject`); err != nil {
		return err
	}
	repaired, err := erase()
	if err != nil {
		if _, rerr := tx.exec(ctx, `ROLLBACK TO SAVEPOINT retention_subject`); rerr != nil {
			return rerr
		}
		b.failed = append(b.failed, s.id)
		if b.firstErr == nil {
			b.firstErr = fmt.Errorf("subject %s: %w", s.id, err)
		}
	}
	if _, err := tx.exec(ctx, `RELEASE SAVEPOINT retention_subject`); err != nil {
		return err
	}
	if err == nil {
		b.count(s, repaired)
	}
	return nil
}

func (b *retentionBatch) count(s expiredSubject, repaired bool) {
	switch {
	case !s.inLedger:
		b.erased++
	case repaired:
		b.repaired++
	}
}

// RunRetentionSchedule erases every subject whose retention ended and that no legal hold
// protects, in batch transactions of RetentionBatch (each erasure through Subjects.Erase, so the
// ledger, the audit event and the shredding are those of an erasure by request, with trigger
// retention). One subject's failure does not stop the others: its batch is run again with each
// subject under a savepoint, so the failing one rolls back alone. It is counted in Failed,
// skipped for the rest of the run (batches go on in (retain_until, id) order past it) and tried
// again next run. It is idempotent: an erased subject is never selected again. A final
// transaction records privacy.retention_run with the counts and the first failed subject IDs.
// The error, when subjects failed, names the first one. dryRun only counts.
func (db *DB) RunRetentionSchedule(ctx context.Context, batch int, dryRun bool) (RetentionRun, error) {
	if batch <= 0 {
		batch = RetentionBatch
	}
	run := RetentionRun{DryRun: dryRun}
	if dryRun {
		err := db.View(ctx, func(tx *Tx) error {
			var n int
			scope, args := tx.regionScope("s.tenant_id", false, tx.now)
			if err := tx.queryRow(ctx, `SELECT count(*) FROM subjects s WHERE s.erased_at IS NULL AND s.retain_until <= $1
				AND NOT EXISTS (SELECT 1 FROM subject_holds h WHERE h.tenant_id = s.tenant_id AND h.subject_id = s.id AND h.released_at IS NULL)`+scope,
				args...).Scan(&n); err != nil {
				return err
			}
			run.Erased = n
			h, err := tx.heldExpiredSubjects(ctx)
			run.Held = h
			return err
		})
		return run, err
	}
	var after *expiredSubject
	var failedIDs []string
	var firstErr error
	for {
		var b retentionBatch
		err := db.Update(ctx, func(tx *Tx) error { return tx.eraseBatch(ctx, after, batch, false, &b) })
		if err != nil {
			// A subject failed and the batch rolled back: erase the same batch again one
			// subject at a time, so that only the failing ones stay.
			err = db.Update(ctx, func(tx *Tx) error { return tx.eraseBatch(ctx, after, batch, true, &b) })
		}
		if err != nil {
			// The batch transaction itself failed (not one subject): all it listed rolled
			// back. Stop rather than retry the same subjects in a loop.
			run.Failed += b.listed
			firstErr = err
			break
		}
		run.Erased += b.erased
		run.Repaired += b.repaired
		run.Failed += len(b.failed)
		failedIDs = append(failedIDs, b.failed...)
		if firstErr == nil && b.firstErr != nil {
			firstErr = fmt.Errorf("retention: %w", b.firstErr)
		}
		if b.listed < batch {
			break
		}
		after = b.last
	}
	err := db.Update(ctx, func(tx *Tx) error {
		h, err := tx.heldExpiredSubjects(ctx)
		if err != nil {
			return err
		}
		run.Held = h
		outcome := audit.OutcomeSuccess
		if run.Failed > 0 {
			outcome = audit.OutcomeFailure
		}
		details := map[string]any{"erased": run.Erased, "held": run.Held, "repaired": run.Repaired, "failed": run.Failed}
		if len(failedIDs) > 0 {
			details["failed_subjects"] = failedIDs[:min(len(failedIDs), maxReportedFailures)]
		}
		return tx.Audit(ctx, audit.Event{ActorType: audit.ActorSystem, Action: "privacy.retention_run", Outcome: outcome,
			Details: details})
	})
	if firstErr != nil {
		if run.Failed > 1 {
			return run, fmt.Errorf("%d subjects could not be erased; first: %w", run.Failed, firstErr)
		}
		return run, firstErr
	}
	return run, err
}
