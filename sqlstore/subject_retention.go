package sqlstore

import (
	"context"
	"fmt"

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

// RetentionRun reports one run of the retention schedule.
type RetentionRun struct {
	Erased int `json:"erased"`
	// Held counts expired subjects skipped because a legal hold is active on them.
	Held int `json:"held"`
	// Failed counts batches that rolled back (their subjects are tried again next run).
	Failed int  `json:"failed"`
	DryRun bool `json:"dry_run"`
}

type expiredSubject struct{ tenantID, id string }

// expiredSubjects lists up to limit live subjects of every tenant whose retain_until has
// passed and that no active hold protects. PostgreSQL locks them and skips rows another node's
// run holds, so two nodes never erase the same subject.
func (tx *Tx) expiredSubjects(ctx context.Context, limit int) ([]expiredSubject, error) {
	rows, err := tx.query(ctx, `SELECT s.tenant_id, s.id FROM subjects s
		WHERE s.erased_at IS NULL AND s.retain_until <= $1
		AND NOT EXISTS (SELECT 1 FROM subject_holds h WHERE h.tenant_id = s.tenant_id AND h.subject_id = s.id AND h.released_at IS NULL)
		ORDER BY s.retain_until, s.id LIMIT $2`+tx.lockClause("FOR UPDATE OF s SKIP LOCKED"), tx.now, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []expiredSubject
	for rows.Next() {
		var s expiredSubject
		if err := rows.Scan(&s.tenantID, &s.id); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// heldExpiredSubjects counts expired subjects kept by an active legal hold.
func (tx *Tx) heldExpiredSubjects(ctx context.Context) (int, error) {
	var n int
	err := tx.queryRow(ctx, `SELECT count(*) FROM subjects s WHERE s.erased_at IS NULL AND s.retain_until <= $1
		AND EXISTS (SELECT 1 FROM subject_holds h WHERE h.tenant_id = s.tenant_id AND h.subject_id = s.id AND h.released_at IS NULL)`,
		tx.now).Scan(&n)
	return n, err
}

// RunRetentionSchedule erases every subject whose retention ended and that no legal hold
// protects, batch transactions of RetentionBatch (each erasure through Subjects.Erase, so the
// ledger, the audit event and the shredding are those of an erasure by request, with trigger
// retention). It is idempotent: an erased subject is never selected again. A final
// transaction records privacy.retention_run with the counts. dryRun only counts.
func (db *DB) RunRetentionSchedule(ctx context.Context, batch int, dryRun bool) (RetentionRun, error) {
	if batch <= 0 {
		batch = RetentionBatch
	}
	run := RetentionRun{DryRun: dryRun}
	if dryRun {
		err := db.View(ctx, func(tx *Tx) error {
			var n int
			if err := tx.queryRow(ctx, `SELECT count(*) FROM subjects s WHERE s.erased_at IS NULL AND s.retain_until <= $1
				AND NOT EXISTS (SELECT 1 FROM subject_holds h WHERE h.tenant_id = s.tenant_id AND h.subject_id = s.id AND h.released_at IS NULL)`,
				tx.now).Scan(&n); err != nil {
				return err
			}
			run.Erased = n
			h, err := tx.heldExpiredSubjects(ctx)
			run.Held = h
			return err
		})
		return run, err
	}
	var lastErr error
	for {
		n := 0
		err := db.Update(ctx, func(tx *Tx) error {
			list, err := tx.expiredSubjects(ctx, batch)
			if err != nil {
				return err
			}
			for _, s := range list {
				if _, err := tx.Subjects(s.tenantID).Erase(ctx, s.id, RetentionReason, RetentionLegalBasis, ErasureRetention); err != nil {
					return fmt.Errorf("retention: subject %s: %w", s.id, err)
				}
			}
			n = len(list)
			return nil
		})
		if err != nil {
			// The batch rolled back; stop rather than retry the same subjects in a loop.
			run.Failed++
			lastErr = err
			break
		}
		run.Erased += n
		if n < batch {
			break
		}
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
		return tx.Audit(ctx, audit.Event{ActorType: audit.ActorSystem, Action: "privacy.retention_run", Outcome: outcome,
			Details: map[string]any{"erased": run.Erased, "held": run.Held, "failed": run.Failed}})
	})
	if lastErr != nil {
		return run, lastErr
	}
	return run, err
}
