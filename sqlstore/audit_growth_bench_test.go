package sqlstore_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"tutela"
	"tutela/audit"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// growthLogSize is how many sequenced events BenchmarkSequencerIdleRound puts in the large log:
// 1,000,000 unless TUTELA_BENCH_LOG_SIZE says otherwise.
func growthLogSize(b *testing.B) int {
	if v := os.Getenv("TUTELA_BENCH_LOG_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("TUTELA_BENCH_LOG_SIZE=%q", v)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkSequencerIdleRound is what a node pays each second with nothing to sequence, and
// what its first round after a restart costs: a new Sequencer (no state) doing one round, on an
// empty log and on one of a million sequenced events, never ANALYZEd. The two should cost the
// same. legacy_scan is the pending query sequencers ran before migration 00039 on the same
// large log, for comparison (its first round after a restart: the anti-join from pos 0).
func BenchmarkSequencerIdleRound(b *testing.B) {
	ctx := context.Background()
	large := growthLogSize(b)
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			for _, size := range []int{0, large} {
				db := sqltest.Open(b, d, sqlstore.Options{})
				if d == sqlstore.Postgres {
					for _, tb := range []string{"audit_events", "audit_log", "audit_pending"} {
						if _, err := db.SQL().ExecContext(ctx, `ALTER TABLE `+tb+` SET (autovacuum_enabled = false)`); err != nil {
							b.Fatal(err)
						}
					}
				}
				if size > 0 {
					fillSequencedLog(b, db, size)
				}
				// Write the fill out first, so the rounds' commits do not wait behind it.
				flushDB(b, db)
				name := "empty"
				if size > 0 {
					name = fmt.Sprintf("log%dk", size/1000)
				}
				b.Run(name, func(b *testing.B) {
					skey, _, _ := audit.GenerateKey("tutela.bench/audit")
					signer, _ := audit.NewSigner(skey)
					for b.Loop() {
						// A new sequencer each round: the first round after a restart.
						s := sqlstore.NewSequencer(db, signer, "tutela.bench/audit", sqlstore.SequencerOptions{Heartbeat: true})
						if n, err := s.Step(ctx); err != nil || n != 0 {
							b.Fatalf("idle round: %d, %v", n, err)
						}
					}
				})
				if size > 0 {
					b.Run(name+"/legacy_scan", func(b *testing.B) {
						for b.Loop() {
							var n int
							if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT e.pos FROM audit_events e
								WHERE e.pos > 0 AND NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.event_id = e.id)
								ORDER BY e.pos LIMIT 10000) p`).Scan(&n); err != nil || n != 0 {
								b.Fatalf("legacy scan: %d, %v", n, err)
							}
						}
					})
				}
			}
		})
	}
}

// flushDB writes out what the database holds in memory: PostgreSQL CHECKPOINT (a superuser's;
// skipped for another role), SQLite a WAL checkpoint.
func flushDB(b *testing.B, db *sqlstore.DB) {
	q := `CHECKPOINT`
	if db.Dialect() == sqlstore.SQLite {
		q = `PRAGMA wal_checkpoint(TRUNCATE)`
	}
	if _, err := db.SQL().ExecContext(context.Background(), q); err != nil {
		b.Logf("%s: %v", q, err)
	}
}

// BenchmarkAuditBytesPerEvent records typical api.request events (a signed-in user's call, IP and
// user agent sealed, 100 per transaction as the group-committed request records are), sequences
// them, and reports what the audit log's tables grew by per event: SQLite the database file
// (pages in use after a checkpoint), PostgreSQL the heap, indexes and TOAST of every audit table
// but the queue, audit_events' monthly partitions included (schema audit_partitions, migration
// 00041: the partitioned parent itself holds nothing). The queue (audit_pending) does not grow with the log: it
// holds what waits, and on PostgreSQL the dead rows of drained entries until autovacuum makes
// their space reusable, a bound set by the event rate, not the log's size; it is listed apart.
// Run with -benchtime 5000x for a fixed count.
func BenchmarkAuditBytesPerEvent(b *testing.B) {
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			db := sqltest.Open(b, d, sqlstore.Options{})
			sqltest.AttachVault(b, db)
			a := newBenchActor(b, db)
			ctx := a.ctx
			seq := benchSequencer(b, db)
			drain := func() {
				for {
					n, err := seq.Step(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					if n == 0 {
						return
					}
				}
			}
			drain()
			before := auditBytes(b, db)
			const perTx = 100
			var batch []audit.Event
			flush := func() {
				if len(batch) == 0 {
					return
				}
				if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AuditMany(ctx, batch...) }); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
			n := 0
			for b.Loop() {
				batch = append(batch, apiRequestEvent(ctx, a.tenantID, n))
				n++
				if len(batch) == perTx {
					flush()
				}
			}
			flush()
			drain()
			after := auditBytes(b, db)
			b.ReportMetric(float64(after.total-before.total)/float64(n), "B/event")
			if n >= 1000 {
				var parts []string
				for _, name := range after.names {
					parts = append(parts, fmt.Sprintf("%s %.0f", name, float64(after.parts[name]-before.parts[name])/float64(n)))
				}
				b.Logf("%d events, B/event by relation: %s", n, strings.Join(parts, ", "))
			}
		})
	}
}

// apiRequestEvent is the api.request event of an introspection call by a signed-in user, as
// httpapi records it (route, method, status, latency, parameter names; a new request ID each).
func apiRequestEvent(ctx context.Context, tenantID string, i int) audit.Event {
	ctx = tutela.WithRequestMeta(ctx, &tutela.RequestMeta{RequestID: tutela.NewID(), IP: "192.0.2.10",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", Principal: tutela.RequestMetaFrom(ctx).Principal})
	return sqlstore.EventFromContext(ctx, "api.request", tenantID, "route", "POST /v1/auth/introspect", audit.OutcomeSuccess,
		map[string]any{"method": "POST", "status": 200, "latency_ms": i % 3, "query_keys": []any{}, "body_keys": []any{"token"}})
}

type auditSize struct {
	total int64
	names []string
	parts map[string]int64
}

// auditBytes is the space the audit log takes: SQLite the pages in use (file pages less free
// ones, after a WAL checkpoint) with each audit table and index from dbstat when it is there;
// PostgreSQL each audit table's and index's size.
func auditBytes(b *testing.B, db *sqlstore.DB) auditSize {
	ctx := context.Background()
	s := auditSize{parts: map[string]int64{}}
	if db.Dialect() == sqlstore.SQLite {
		if _, err := db.SQL().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			b.Fatal(err)
		}
		var pages, free, size int64
		if err := db.SQL().QueryRowContext(ctx, `SELECT (SELECT page_count FROM pragma_page_count()), (SELECT freelist_count FROM pragma_freelist_count()),
			(SELECT page_size FROM pragma_page_size())`).Scan(&pages, &free, &size); err != nil {
			b.Fatal(err)
		}
		s.total = (pages - free) * size
		rows, err := db.SQL().QueryContext(ctx, `SELECT name, SUM(pgsize) FROM dbstat
			WHERE name LIKE 'audit%' OR name LIKE 'sqlite_autoindex_audit%' GROUP BY name ORDER BY name`)
		if err != nil {
			return s // dbstat not compiled in: the total only
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var n int64
			if err := rows.Scan(&name, &n); err != nil {
				b.Fatal(err)
			}
			s.names = append(s.names, name)
			s.parts[name] = n
		}
		return s
	}
	rows, err := db.SQL().QueryContext(ctx, `SELECT c.relname, pg_relation_size(c.oid)
			+ COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE (n.nspname = current_schema() OR n.nspname = 'audit_partitions') AND c.relkind IN ('r', 'i')
		AND (c.relname LIKE 'audit\_%' AND c.relname NOT LIKE 'audit\_ship%' AND c.relname NOT LIKE 'audit\_sequencer%')
		ORDER BY c.relname`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			b.Fatal(err)
		}
		s.names = append(s.names, name)
		s.parts[name] = n
		if !strings.HasPrefix(name, "audit_pending") {
			s.total += n
		}
	}
	return s
}
