package sqlstore_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"tutela/audit"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// fillSequencedLog adds n events that are already in the log (audit_events and audit_log rows,
// no queue entries) with plain SQL, fast enough for a log of a million: what a sequencer finds
// after a restart. The tree hashes are not written: a round with nothing pending reads none.
func fillSequencedLog(tb testing.TB, db *sqlstore.DB, n int) {
	tb.Helper()
	ctx := context.Background()
	var stmts []string
	if db.Dialect() == sqlstore.Postgres {
		stmts = []string{
			`INSERT INTO audit_events (id, time, tenant_id, actor_type, actor_id, action, target_type, target_id, outcome,
				request_id, canonical, leaf_hash)
			SELECT 'fill-' || g, now(), '', 'system', '', 'fill', '', '', 'success', '', '\x7b7d'::bytea, sha256(g::text::bytea)
			FROM generate_series(1, $1) g`,
			`INSERT INTO audit_log (idx, event_id, time, leaf_hash)
			SELECT COALESCE((SELECT MAX(idx) + 1 FROM audit_log), 0) + g - 1, 'fill-' || g, now(), sha256(g::text::bytea)
			FROM generate_series(1, $1) g`,
		}
	} else {
		stmts = []string{
			`WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < $1)
			INSERT INTO audit_events (id, time, tenant_id, actor_type, actor_id, action, target_type, target_id, outcome,
				request_id, canonical, leaf_hash)
			SELECT 'fill-' || x, '2026-01-01 00:00:00+00:00', '', 'system', '', 'fill', '', '', 'success', '', X'7b7d', randomblob(32) FROM g`,
			`WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < $1)
			INSERT INTO audit_log (idx, event_id, time, leaf_hash)
			SELECT COALESCE((SELECT MAX(idx) + 1 FROM audit_log), 0) + x - 1, 'fill-' || x, '2026-01-01 00:00:00+00:00', randomblob(32) FROM g`,
		}
	}
	for _, q := range stmts {
		if _, err := db.SQL().ExecContext(ctx, q, n); err != nil {
			tb.Fatalf("fill: %v", err)
		}
	}
}

// TestAuditQueue_PlansNeverScanTheLog checks, by the database's own plans, that what a sequencer
// round and AuditPending run never reads audit_events or audit_log as a whole, on a log of 20,000
// sequenced events with three pending and no statistics (PostgreSQL: never ANALYZEd, autovacuum
// off for these tables, as right after a restore or a bulk load). The queue itself is read by its
// primary key on PostgreSQL; on SQLite the queue is its own rowid b-tree, so a walk of it in pos
// order is that key.
func TestAuditQueue_PlansNeverScanTheLog(t *testing.T) {
	t.Parallel()
	sqltest.Each(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		if db.Dialect() == sqlstore.Postgres {
			// audit_events is partitioned (migration 00041): its partitions are what autovacuum
			// would analyze.
			tables := []string{"audit_log", "audit_pending"}
			parts, err := db.AuditPartitions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range parts {
				tables = append(tables, "audit_partitions."+p.Name)
			}
			for _, tb := range tables {
				if _, err := db.SQL().ExecContext(ctx, `ALTER TABLE `+tb+` SET (autovacuum_enabled = false)`); err != nil {
					t.Fatal(err)
				}
			}
		}
		fillSequencedLog(t, db, 20_000)
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
			return tx.AuditMany(ctx, auditEventN(1), auditEventN(2), auditEventN(3))
		}); err != nil {
			t.Fatal(err)
		}
		var first int64
		if err := db.SQL().QueryRowContext(ctx, `SELECT MIN(pos) FROM audit_pending`).Scan(&first); err != nil {
			t.Fatal(err)
		}
		if db.Dialect() == sqlstore.Postgres {
			var analyzed int
			if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_user_tables
				WHERE (relname IN ('audit_log', 'audit_pending') OR schemaname = 'audit_partitions')
				AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)`).Scan(&analyzed); err != nil || analyzed != 0 {
				t.Fatalf("the tables must have no statistics: %d analyzed, %v", analyzed, err)
			}
		}
		queries := sqlstore.SequencerQueries(db.Dialect(), 3, first)
		for q, args := range sqlstore.SequencerQueries(db.Dialect(), 500, first) { // a full statement of a busy round
			queries[q] = args
		}
		for q, args := range queries {
			plan, err := db.ExplainAsSequencer(ctx, q, args...)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			text := strings.Join(plan, "\n")
			for _, line := range plan {
				if db.Dialect() == sqlstore.SQLite {
					// "SCAN e" / "SCAN audit_events": a walk of the whole table.
					if strings.HasPrefix(line, "SCAN ") && !strings.HasPrefix(line, "SCAN audit_pending") &&
						!strings.HasPrefix(line, "SCAN q") && !strings.Contains(line, "CONSTANT ROW") {
						t.Errorf("%s\nscans a table:\n%s", q, text)
					}
				} else if strings.Contains(line, "Seq Scan on audit_events") || strings.Contains(line, "Seq Scan on audit_log") {
					t.Errorf("%s\nscans a table:\n%s", q, text)
				}
			}
			// The round's reads of the queue go by its key (counting it is the queue's size).
			if db.Dialect() == sqlstore.Postgres && strings.Contains(q, "audit_pending") && !strings.HasPrefix(q, "SELECT COUNT(*)") &&
				!strings.Contains(text, "audit_pending_pkey") {
				t.Errorf("%s\ndoes not use the queue's primary key:\n%s", q, text)
			}
			// PostgreSQL looks the queued events up by the primary key (pos, time) of their month
			// (migration 00041), not by the time range through another index.
			if db.Dialect() == sqlstore.Postgres && strings.Contains(q, "unnest") &&
				!regexp.MustCompile(`Index Scan using audit_events_\d{4}_\d{2}_pkey`).MatchString(text) {
				t.Errorf("%s\ndoes not probe the month's primary key:\n%s", q, text)
			}
			t.Logf("%s\n%s", q, text)
		}
	})
}

func auditEventN(i int) audit.Event {
	return audit.Event{ActorType: audit.ActorSystem, Action: "queue.test", Outcome: audit.OutcomeSuccess,
		RequestID: fmt.Sprintf("req-%d", i)}
}
