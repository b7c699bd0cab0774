package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"tutela"
	"tutela/audit"
)

// Reason and legal basis recorded for an erasure put back by a restore: the published ledger
// carries no reason text, and the original event is in the audit log of the deployment that
// erased the person.
const (
	reappliedReason     = "re-applied from the published erasure ledger after a backup restore"
	reappliedLegalBasis = "as recorded at the original erasure"
)

// ReapplyErasure makes a restored database agree with one published erasure: when the
// ledger row is missing it shreds the person (the same tx.shred ErasePerson runs) and finishes
// the erasure (the same finishErasure Subjects.Erase and Users.Erase run: the subject marked
// erased, the user's row deleted), inserts the ledger row under the original ID and time, and
// records privacy.erasure_reapplied. When the ledger row is there it still finishes the
// erasure (repairErasure), which repairs a database restored by a release that re-applied the
// shredding only. It reports whether anything was done: an erasure the
// database already holds in full, or one of a tenant the database does not hold (created after
// the backup), needs nothing.
func (tx *Tx) ReapplyErasure(ctx context.Context, e LedgerEntry) (bool, error) {
	if !e.valid() {
		return false, tutela.Errorf(tutela.EINVALID, "erasure ledger entry %s is not valid", e.ID)
	}
	found, repaired, err := tx.repairErasure(ctx, e.TenantID, e.PersonID)
	if err != nil || found {
		return repaired, err
	}
	var n int
	if err := tx.queryRow(ctx, `SELECT count(*) FROM erasures WHERE id = $1`, e.ID).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	var tenant string
	err = tx.queryRow(ctx, `SELECT id FROM tenants WHERE id = $1`, e.TenantID).Scan(&tenant)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := tx.shred(ctx, e.TenantID, e.PersonID); err != nil {
		return false, err
	}
	if _, err := tx.finishErasure(ctx, e.TenantID, e.PersonID, e.Kind, e.ErasedAt); err != nil {
		return false, err
	}
	if _, err := tx.exec(ctx, `INSERT INTO erasures (id, tenant_id, person_id, kind, erased_at, actor_type, actor_id, trigger, reason, legal_basis)
		VALUES ($1, $2, $3, $4, $5, $6, '', $7, $8, $9)`, e.ID, e.TenantID, e.PersonID, e.Kind, e.ErasedAt.UTC(),
		audit.ActorSystem, e.Trigger, reappliedReason, reappliedLegalBasis); err != nil {
		return false, err
	}
	return true, tx.Audit(ctx, audit.Event{ActorType: audit.ActorSystem, Action: "privacy.erasure_reapplied",
		TenantID: e.TenantID, TargetType: e.Kind, TargetID: e.PersonID, Outcome: audit.OutcomeSuccess,
		Details: map[string]any{"erasure_id": e.ID, "trigger": e.Trigger}})
}

// ApplyErasureLedger re-applies every published erasure to a restored database and checks the
// ledger is not behind it: an erasure the database records but the ledger lacks means the
// ledger was truncated, or is another deployment's, and erasures after the backup may be
// missing from it too (ErrLedgerBehind).
func (tx *Tx) ApplyErasureLedger(ctx context.Context, entries []LedgerEntry) (reapplied int, err error) {
	inLedger := make(map[string]bool, len(entries))
	for _, e := range entries {
		inLedger[e.ID] = true
	}
	var missing string
	if err := tx.erasuresSince(ctx, time.Time{}, func(e LedgerEntry) {
		if missing == "" && !inLedger[e.ID] {
			missing = e.ID
		}
	}); err != nil {
		return 0, err
	}
	if missing != "" {
		return 0, fmt.Errorf("%w (erasure %s)", ErrLedgerBehind, missing)
	}
	for _, e := range entries {
		done, err := tx.ReapplyErasure(ctx, e)
		if err != nil {
			return reapplied, err
		}
		if done {
			reapplied++
		}
	}
	return reapplied, nil
}

// CountErasures returns how many erasures the database records (every tenant).
func (tx *Tx) CountErasures(ctx context.Context) (int64, error) {
	var n int64
	err := tx.queryRow(ctx, `SELECT count(*) FROM erasures`).Scan(&n)
	return n, err
}
