package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"tutela/audit"
)

// The sequencer's queue, audit_pending (migration 00039, docs/audit.md "Sequencing"): AuditMany
// inserts each event's pos with the event, a sequencer round takes the smallest positions by
// primary key and deletes them as it appends their events, so no round reads audit_events as a
// whole. What the queue does not say (an event missing from both it and the log) is
// AuditUnqueued's, read by `audit verify`.

// insertAuditEvents runs AuditMany's statement for n events and queues them for the sequencer.
// PostgreSQL's statement queues them itself; SQLite's returns their positions, queued here.
func (tx *Tx) insertAuditEvents(ctx context.Context, q string, args []any, n int) error {
	if tx.db.dialect == Postgres {
		_, err := tx.exec(ctx, q, args...)
		return err
	}
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return err
	}
	pos := make([]int64, 0, n)
	for rows.Next() {
		var p int64
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return err
		}
		pos = append(pos, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return mapErr(err)
	}
	if len(pos) != n {
		return fmt.Errorf("audit: %d events inserted, %d positions returned", n, len(pos))
	}
	return insertRows(ctx, tx, `INSERT INTO audit_pending (pos) VALUES `, 1, n, func(i int) []any { return []any{pos[i]} })
}

// pending reads the next events of the queue (audit_pending), oldest pos first, and removes
// them from it: the caller appends them in the same transaction, so a rollback puts them back.
// One query walks the queue's primary key and looks each event up by its own (and audit_log by
// its unique event_id), never reading audit_events or audit_log as a whole, so a round costs the
// same for a log of ten events and of ten million (TestAuditQueue_PlansNeverScanTheLog). On
// PostgreSQL the round's transaction turns off the plans that could read a whole table
// (sequencerPlan), so that holds without statistics too. A transaction with a smaller pos may
// commit after a round took a larger one: its queue entry becomes visible then and the next
// round takes it, so nothing is skipped, and audit_log's unique event_id still refuses a second
// append. A queue entry whose event is missing or already in the log is removed and returned in
// dropped (see Step).
func (s *Sequencer) pending(ctx context.Context, tx *Tx) (out []pendingEvent, dropped []int64, err error) {
	rows, err := tx.query(ctx, queuedEventsQuery(tx.db.dialect), s.opt.BatchSize)
	if err != nil {
		return nil, nil, err
	}
	var queued []int64
	for rows.Next() {
		var (
			p    pendingEvent
			id   sql.NullString
			t    sql.NullTime
			leaf []byte
			done bool
		)
		if err := rows.Scan(&p.pos, &id, &t, &leaf, &done); err != nil {
			rows.Close()
			return nil, nil, err
		}
		queued = append(queued, p.pos)
		if !id.Valid || done {
			dropped = append(dropped, p.pos)
			continue
		}
		if len(leaf) != tlog.HashSize {
			rows.Close()
			return nil, nil, fmt.Errorf("audit sequencer: event %s has a malformed leaf hash", id.String)
		}
		p.id, p.time, p.leaf = id.String, t.Time, tlog.Hash(leaf)
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	// The query's order is the queue's key order; sorting here keeps it so whatever the plan.
	slices.Sort(queued)
	slices.SortFunc(out, func(a, b pendingEvent) int { return cmp.Compare(a.pos, b.pos) })
	if err := deleteQueued(ctx, tx, queued); err != nil {
		return nil, nil, err
	}
	return out, dropped, nil
}

// queueCountQuery is AuditPending's count of waiting events.
const queueCountQuery = `SELECT COUNT(*) FROM audit_pending`

// queueOldestQuery is AuditPending's time of the waiting event with the smallest pos (no row
// when that entry has no event). On PostgreSQL the entry's time leads to the event's partition.
func queueOldestQuery(d Dialect) string {
	if d == Postgres {
		return `SELECT e.time FROM (SELECT pos, time FROM audit_pending ORDER BY pos LIMIT 1) q
	JOIN audit_events e ON e.pos = q.pos AND e.time = q.time`
	}
	return `SELECT e.time FROM audit_events e WHERE e.pos = (SELECT MIN(q.pos) FROM audit_pending q)`
}

// queuedEventsQuery reads the queue's first $1 positions with their events (NULL for none) and
// whether each is in the log already. On PostgreSQL audit_events is partitioned by month
// (migration 00041) and its key is (pos, time): joining on both lets the executor prune to the
// event's own partition for each queue entry (run-time pruning in the nested loop), so a round
// reads one index per event however many months the table holds.
func queuedEventsQuery(d Dialect) string {
	if d == Postgres {
		return `SELECT q.pos, e.id, e.time, e.leaf_hash, l.idx IS NOT NULL
	FROM (SELECT pos, time FROM audit_pending ORDER BY pos LIMIT $1) q
	LEFT JOIN audit_events e ON e.pos = q.pos AND e.time = q.time
	LEFT JOIN audit_log l ON l.event_id = e.id`
	}
	return `SELECT q.pos, e.id, e.time, e.leaf_hash, l.idx IS NOT NULL
	FROM (SELECT pos FROM audit_pending ORDER BY pos LIMIT $1) q
	LEFT JOIN audit_events e ON e.pos = q.pos
	LEFT JOIN audit_log l ON l.event_id = e.id`
}

// sequencerPlan is run by a PostgreSQL round before its reads: for this transaction only, no
// sequential scan, hash join or merge join, so every read goes by index whatever the planner
// believes about the tables' sizes (statistics may be missing after a bulk load or a restore, and
// a plan that hashes audit_log costs a read of the whole log each second).
const sequencerPlan = `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true),
	set_config('enable_mergejoin', 'off', true)`

// queueDeleteRange removes the queue's positions $1..$2.
const queueDeleteRange = `DELETE FROM audit_pending WHERE pos >= $1 AND pos <= $2`

// deleteQueued removes positions, ascending, from the queue: one range delete by primary key
// when they are contiguous (the usual case), else IN lists of at most 500.
func deleteQueued(ctx context.Context, tx *Tx, pos []int64) error {
	if len(pos) == 0 {
		return nil
	}
	first, last := pos[0], pos[len(pos)-1]
	if last-first+1 == int64(len(pos)) {
		_, err := tx.exec(ctx, queueDeleteRange, first, last)
		return err
	}
	for start := 0; start < len(pos); start += 500 {
		part := pos[start:min(start+500, len(pos))]
		args := make([]any, len(part))
		for i, p := range part {
			args[i] = p
		}
		if _, err := tx.exec(ctx, `DELETE FROM audit_pending WHERE pos IN (`+placeholders(len(part))+`)`, args...); err != nil {
			return err
		}
	}
	return nil
}

// AuditUnqueued counts the events that are neither in the log nor in the sequencer's queue, with
// the oldest one's time. Tutela never leaves one so (an event and its queue entry are inserted by
// one statement, and removed from the queue only by the round that appends it): one means a
// queue entry was deleted by hand, or an event inserted by something other than Tx.AuditMany.
// Nothing protects such an event and no sequencer will append it, so `audit verify` reports it as
// unsequenced and `tutela audit sequence` queues it again (AuditRequeue). It reads the whole of
// audit_events (an anti-join on two unique indexes): for verification, not for a hot path.
func (db *DB) AuditUnqueued(ctx context.Context) (n int64, oldest time.Time, err error) {
	const unqueued = ` FROM audit_events e WHERE NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.event_id = e.id)
		AND NOT EXISTS (SELECT 1 FROM audit_pending q WHERE q.pos = e.pos)`
	if err := db.read.QueryRowContext(ctx, `SELECT COUNT(*)`+unqueued).Scan(&n); err != nil {
		return 0, time.Time{}, mapErr(err)
	}
	if n == 0 {
		return 0, time.Time{}, nil
	}
	var t sql.NullTime
	if err := db.read.QueryRowContext(ctx, `SELECT e.time`+unqueued+` ORDER BY e.time LIMIT 1`).Scan(&t); err != nil {
		return 0, time.Time{}, mapErr(err)
	}
	return n, t.Time.UTC(), nil
}

// ActionAuditRequeue is the action of the event recording that AuditRequeue queued events again.
const ActionAuditRequeue = "audit.requeue"

// AuditRequeue puts the events AuditUnqueued counts back into the sequencer's queue, so the next
// round appends them, and records that it did (action audit.requeue, details count and the
// oldest time) in the same transaction. It returns how many it queued (0: nothing recorded).
func (db *DB) AuditRequeue(ctx context.Context, actor audit.Event) (n int64, err error) {
	err = db.Update(ctx, func(tx *Tx) error {
		var oldest sql.NullTime
		err := tx.queryRow(ctx, `SELECT e.time FROM audit_events e WHERE NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.event_id = e.id)
			AND NOT EXISTS (SELECT 1 FROM audit_pending q WHERE q.pos = e.pos) ORDER BY e.time LIMIT 1`).Scan(&oldest)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return mapErr(err)
		}
		cols := `pos) SELECT e.pos`
		if tx.db.dialect == Postgres {
			cols = `pos, time) SELECT e.pos, e.time`
		}
		res, err := tx.exec(ctx, `INSERT INTO audit_pending (`+cols+` FROM audit_events e
			WHERE NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.event_id = e.id)
			AND NOT EXISTS (SELECT 1 FROM audit_pending q WHERE q.pos = e.pos)`)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		e := actor
		e.ID, e.Time, e.Action, e.Outcome = "", time.Time{}, ActionAuditRequeue, audit.OutcomeSuccess
		if e.ActorType == "" {
			e.ActorType = audit.ActorSystem
		}
		e.TargetType = "audit_log"
		e.Details = map[string]any{"count": n, "oldest": oldest.Time.UTC().Format(time.RFC3339Nano)}
		return tx.Audit(ctx, e)
	})
	return n, err
}
