package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ExecForBench runs a statement in tx: the plaintext baselines of the subject benchmarks write
// their comparison table in the same transaction as the audit event, as the real store does.
func (tx *Tx) ExecForBench(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return tx.exec(ctx, q, args...)
}

// QueryForBench runs a query in tx.
func (tx *Tx) QueryForBench(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return tx.query(ctx, q, args...)
}

// QueryRowForBench runs a one-row query in tx.
func (tx *Tx) QueryRowForBench(ctx context.Context, q string, args ...any) *sql.Row {
	return tx.queryRow(ctx, q, args...)
}

// CommitWritersForTest is how many group-commit writers the store runs: a test that holds them
// all makes the records handed over meanwhile queue up.
func (db *DB) CommitWritersForTest() int { return db.commitWriters() }

// MaxBatchDurationForTest is the bound of every group-commit transaction.
const MaxBatchDurationForTest = maxBatchDuration

// SequencerQueries returns the statements a sequencer round and AuditPending run against the
// queue and the log in dialect d, each with the arguments to EXPLAIN it with (n queued positions
// from pos).
func SequencerQueries(d Dialect, n int, pos int64) map[string][]any {
	ps := make([]any, n)
	keys, times := make([]int64, n), make([]time.Time, n)
	now := time.Now().UTC()
	for i := range ps {
		ps[i] = pos + int64(i)
		keys[i], times[i] = pos+int64(i), now
	}
	q := map[string][]any{
		queuedEventsQuery: {10_000},
		queueDeleteRange:  {pos, pos + int64(n) - 1},
		`DELETE FROM audit_pending WHERE pos IN (` + placeholders(n) + `)`: ps,
		queueCountQuery:     nil,
		queueOldestQuery(d): nil,
		`SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_log`: nil,
	}
	if d == Postgres {
		delete(q, queuedEventsQuery)
		q[queueHeadQuery] = []any{10_000}
		q[queuedEventsByKeyQuery] = []any{keys, times, now, now}
	}
	return q
}

// AuditRangeQueries returns the statements that read a range of the log with its bodies
// (AuditEntries for export and shipping, MonitorEvents), each with arguments for a range of n
// entries from index from.
func AuditRangeQueries(d Dialect, from, n int64) map[string][]any {
	return map[string][]any{
		entriesQuery(d, true): {from, from + n},
		monitorEventsQuery(d): {from, n},
	}
}

// Explain returns PostgreSQL's EXPLAIN lines for q (args bound), planned as the store plans it
// outside a sequencer round.
func (db *DB) Explain(ctx context.Context, q string, args ...any) (plan []string, err error) {
	rows, err := db.read.QueryContext(ctx, "EXPLAIN "+q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		plan = append(plan, line)
	}
	return plan, rows.Err()
}

// ExplainAsSequencer returns the plan of q (args bound) in a transaction set up as a sequencer
// round's: SQLite's EXPLAIN QUERY PLAN details, PostgreSQL's EXPLAIN lines.
func (db *DB) ExplainAsSequencer(ctx context.Context, q string, args ...any) (plan []string, err error) {
	err = db.Update(ctx, func(tx *Tx) error {
		prefix := "EXPLAIN QUERY PLAN "
		if db.dialect == Postgres {
			prefix = "EXPLAIN "
			if _, err := tx.exec(ctx, sequencerPlan); err != nil {
				return err
			}
		}
		rows, err := tx.query(ctx, prefix+q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			return err
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			plan = append(plan, fmt.Sprint(vals[len(vals)-1])) // SQLite: the detail; PostgreSQL: the line
		}
		return rows.Err()
	})
	return plan, err
}

// WritesAuthState exposes the statement classifier of the authentication epochs.
var WritesAuthState = writesAuthState
