package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"tutela"
	"tutela/audit"
)

// finishErasure is what erasing a person does beyond tx.shred, by kind: the one implementation
// Subjects.Erase, Users.Erase and the re-application of the published ledger to a restored
// backup (ReapplyErasure) share, so a restored erasure leaves the database exactly as the
// original one did.
//
//   - subject: the row stays as a tombstone marked erased at `at`, with no retention, so
//     listings, holds, reads and the retention schedule all see it as erased. A live row left
//     behind would be listed, could take holds, and would later make the retention schedule
//     erase it a second time (the ledger refuses that).
//   - user: the users row goes, and with it (ON DELETE CASCADE) its sessions, role and
//     permission grants, MFA factors and one-time tokens. A row left behind would keep the
//     e-mail blind index (confirming the address: creating it again would be "taken") and the
//     password hash, and, having no key, could not be read.
//   - a subject's files become erased (eraseSubjectFiles): no name, hash or data key left, links
//     revoked, one purge job per blob.
//   - a subject's referrals lose their free texts and live ones are cancelled
//     (eraseSubjectReferrals); so do their shares (revoked) and the approval requests that
//     target them (eraseSubjectTexts).
//
// It is idempotent and reports whether it changed anything: a person already finished, or
// whose row the database never had (created after the backup), changes nothing.
func (tx *Tx) finishErasure(ctx context.Context, tenantID, personID, kind string, at time.Time) (bool, error) {
	var q string
	var args []any
	switch kind {
	case PersonSubject:
		q = `UPDATE subjects SET erased_at = $1, updated_at = $1, retain_until = NULL
			WHERE tenant_id = $2 AND id = $3 AND erased_at IS NULL`
		args = []any{at.UTC(), tenantID, personID}
	case PersonUser:
		delete(tx.keys, tenantID+"/"+personID)
		q = `DELETE FROM users WHERE tenant_id = $1 AND id = $2`
		args = []any{tenantID, personID}
	default:
		return false, tutela.Errorf(tutela.EINVALID, "person kind must be subject or user")
	}
	res, err := tx.exec(ctx, q, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil || kind != PersonSubject {
		return n > 0, err
	}
	// The subject's files: their data keys went with the subject's key; erasing them removes
	// the leftovers (names, hashes, links, blobs).
	nfiles, err := tx.eraseSubjectFiles(ctx, tenantID, personID)
	if err != nil {
		return false, err
	}
	// Their referrals: what was written about them goes, live ones are cancelled.
	nrefs, err := tx.eraseSubjectReferrals(ctx, tenantID, personID)
	if err != nil {
		return false, err
	}
	// Their shares and the approval requests about them: the texts go, open ones end.
	ntexts, err := tx.eraseSubjectTexts(ctx, tenantID, personID, at)
	return n > 0 || nfiles > 0 || nrefs > 0 || ntexts > 0, err
}

// repairErasure finishes the erasure the ledger records for a person, if it records one: a
// database restored by a release whose ledger re-application ran only the shredding holds the
// ledger row but a live subject or a keyless user row. A repair is audited as
// privacy.erasure_reapplied with "repaired". found reports whether the ledger holds the person,
// repaired whether anything changed.
func (tx *Tx) repairErasure(ctx context.Context, tenantID, personID string) (found, repaired bool, err error) {
	var id, kind, trigger string
	var at time.Time
	err = tx.queryRow(ctx, `SELECT id, kind, trigger, erased_at FROM erasures WHERE tenant_id = $1 AND person_id = $2`,
		tenantID, personID).Scan(&id, &kind, &trigger, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	repaired, err = tx.finishErasure(ctx, tenantID, personID, kind, at)
	if err != nil || !repaired {
		return true, false, err
	}
	return true, true, tx.Audit(ctx, audit.Event{ActorType: audit.ActorSystem, Action: "privacy.erasure_reapplied",
		TenantID: tenantID, TargetType: kind, TargetID: personID, Outcome: audit.OutcomeSuccess,
		Details: map[string]any{"erasure_id": id, "trigger": trigger, "repaired": true}})
}

// eraseSubjectTexts is a subject's erasure reaching the free texts written about them elsewhere
// (finishErasure): their shares' justifications (the shares are revoked: an erased subject is
// shared with no one), and the justifications and decision comments of approval requests that
// target them (an open request is cancelled: there is nothing left to run it on). The rows stay
// as the record that they existed. Idempotent: it reports how many rows it changed.
func (tx *Tx) eraseSubjectTexts(ctx context.Context, tenantID, subjectID string, at time.Time) (int64, error) {
	var n int64
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE partner_shares SET justification = $1, revoked_at = COALESCE(revoked_at, $4)
			WHERE tenant_id = $2 AND subject_id = $3 AND justification <> $1`,
			[]any{ErasedPlaceholder, tenantID, subjectID, at.UTC()}},
		{`UPDATE approval_decisions SET comment = $1 WHERE tenant_id = $2 AND comment <> $1 AND request_id IN
			(SELECT id FROM approval_requests WHERE tenant_id = $2 AND target_type = 'subject' AND target_id = $3)`,
			[]any{ErasedPlaceholder, tenantID, subjectID}},
		{`UPDATE approval_requests SET justification = $1,
			state = CASE WHEN state IN ('pending', 'approved') THEN 'cancelled' ELSE state END
			WHERE tenant_id = $2 AND target_type = 'subject' AND target_id = $3 AND justification <> $1`,
			[]any{ErasedPlaceholder, tenantID, subjectID}},
	} {
		res, err := tx.exec(ctx, q.sql, q.args...)
		if err != nil {
			return 0, err
		}
		c, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}
