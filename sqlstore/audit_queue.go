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
//
// On PostgreSQL audit_events is partitioned by month (migration 00041) and the queue carries
// each event's time: the round reads the queue first (queueHeadQuery), then looks the events up
// by (pos, time) bounded by the batch's first and last time (queuedEventsByKeyQuery), so the
// executor keeps only the months the batch spans (usually one) and probes one primary key per
// event. One joined statement would keep every month in a nested loop that re-prunes per row:
// measured 142 ms against 44-57 ms for 10,000 events in 29 partitions (34 ms unpartitioned).
func (s *Sequencer) pending(ctx context.Context, tx *Tx) (out []pendingEvent, dropped []int64, err error) {
	var rows *sql.Rows
	if tx.db.dialect == Postgres {
		rows, err = queuedEventsPostgres(ctx, tx, s.opt.BatchSize)
	} else {
		rows, err = tx.query(ctx, queuedEventsQuery, s.opt.BatchSize)
	}
	if err != nil {
		return nil, nil, err
	}
	if rows == nil {
		return nil, nil, nil
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

// queuedEventsQuery (SQLite) reads the queue's first $1 positions with their events (NULL for
// none) and whether each is in the log already.
const queuedEventsQuery = `SELECT q.pos, e.id, e.time, e.leaf_hash, l.idx IS NOT NULL
	FROM (SELECT pos FROM audit_pending ORDER BY pos LIMIT $1) q
	LEFT JOIN audit_events e ON e.pos = q.pos
	LEFT JOIN audit_log l ON l.event_id = e.id`

// queueHeadQuery (PostgreSQL) reads the queue's first $1 entries by its primary key.
const queueHeadQuery = `SELECT pos, time FROM audit_pending ORDER BY pos LIMIT $1`

// queuedEventsByKeyQuery (PostgreSQL) is queuedEventsQuery for the queue entries $1 (positions)
// and $2 (their times), whose times lie within $3..$4: the bounds prune audit_events to the
// months they span before the first row is read, and the LATERAL lookup (a nested loop by
// construction) probes the primary key (pos, time) once per entry. As a plain join the planner
// may instead read the month through another index by the time range alone.
const queuedEventsByKeyQuery = `SELECT q.pos, e.id, e.time, e.leaf_hash, l.idx IS NOT NULL
	FROM unnest($1::bigint[], $2::timestamptz[]) AS q(pos, time)
	LEFT JOIN LATERAL (SELECT x.id, x.time, x.leaf_hash FROM audit_events x
		WHERE x.pos = q.pos AND x.time = q.time AND x.time >= $3 AND x.time <= $4 LIMIT 1) e ON true
	LEFT JOIN audit_log l ON l.event_id = e.id`

// queuedEventsPostgres runs queueHeadQuery and then queuedEventsByKeyQuery for what it read; nil
// rows when the queue is empty.
func queuedEventsPostgres(ctx context.Context, tx *Tx, limit int) (*sql.Rows, error) {
	head, err := tx.query(ctx, queueHeadQuery, limit)
	if err != nil {
		return nil, err
	}
	var (
		pos    []int64
		times  []time.Time
		t0, t1 time.Time
	)
	for head.Next() {
		var p int64
		var t time.Time
		if err := head.Scan(&p, &t); err != nil {
			head.Close()
			return nil, err
		}
		if len(pos) == 0 || t.Before(t0) {
			t0 = t
		}
		if len(pos) == 0 || t.After(t1) {
			t1 = t
		}
		pos, times = append(pos, p), append(times, t)
	}
	head.Close()
	if err := head.Err(); err != nil {
		return nil, err
	}
	if len(pos) == 0 {
		return nil, nil
	}
	return tx.query(ctx, queuedEventsByKeyQuery, pos, times, t0, t1)
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
