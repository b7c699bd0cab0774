package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"tutela"
	"tutela/audit"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// benchActor is a tenant and a user of it whose API call the benchmark events record: the
// context carries the signed-in user, as a request's does, so the IP and user agent are sealed
// under their person key (auditseal.go) where that exists.
type benchActor struct {
	ctx      context.Context
	tenantID string
	userID   string
}

func newBenchActor(b *testing.B, db *sqlstore.DB) benchActor {
	ctx := context.Background()
	tn := &tutela.Tenant{Slug: "bench", Name: "bench", Region: "eu"}
	u := &tutela.User{Email: "bench@example.org", DisplayName: "Bench"}
	if err := db.Update(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		return tx.Users(tn.ID).Create(ctx, u)
	}); err != nil {
		b.Fatal(err)
	}
	ctx = tutela.WithRequestMeta(ctx, &tutela.RequestMeta{RequestID: "req", IP: "192.0.2.10",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
		Principal: &tutela.Principal{Kind: tutela.PrincipalUser, TenantID: tn.ID, UserID: u.ID}})
	return benchActor{ctx: ctx, tenantID: tn.ID, userID: u.ID}
}

func (a benchActor) event(i int) audit.Event {
	return audit.Event{
		TenantID: a.tenantID, ActorType: audit.ActorUser,
		ActorID: a.userID, SourceIP: "192.0.2.10",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", Action: "user.login", TargetType: "user",
		TargetID: "0190f3a4-cccc-7000-8000-000000000001", Outcome: audit.OutcomeSuccess,
		RequestID: "req", Details: map[string]any{"method": "password", "attempt": i % 3},
	}
}

func benchSequencer(b *testing.B, db *sqlstore.DB) *sqlstore.Sequencer {
	skey, _, _ := audit.GenerateKey("tutela.bench/audit")
	s, _ := audit.NewSigner(skey)
	return sqlstore.NewSequencer(db, s, "tutela.bench/audit", sqlstore.SequencerOptions{BatchSize: 10_000})
}

// BenchmarkAuditAppendPostgres measures recording: one event per transaction (what a request
// costs) and 1,000 per transaction through AuditMany (bulk work).
func BenchmarkAuditAppendPostgres(b *testing.B) {
	ctx := context.Background()
	db := sqltest.Open(b, sqlstore.Postgres, sqlstore.Options{})
	a := newBenchActor(b, db)
	ctx = a.ctx
	b.Run("unbatched", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		for i := 0; b.Loop(); i++ {
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Audit(ctx, a.event(i)) }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	})
	b.Run("batched1000", func(b *testing.B) {
		b.ReportAllocs()
		const batch = 1000
		evs := make([]audit.Event, batch)
		for i := range evs {
			evs[i] = a.event(i)
		}
		start := time.Now()
		for b.Loop() {
			if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AuditMany(ctx, evs...) }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "events/s")
	})
}

// BenchmarkAuditAppendSQLite measures what each durability setting costs a request's commit:
// one event per transaction, with synchronous=FULL (the WAL fsynced at every commit, the
// default) and NORMAL (fsynced at checkpoints only). docs/durability.md.
func BenchmarkAuditAppendSQLite(b *testing.B) {
	for _, sync := range []string{sqlstore.SyncFull, sqlstore.SyncNormal} {
		b.Run("synchronous="+sync, func(b *testing.B) {
			db := sqltest.Open(b, sqlstore.SQLite, sqlstore.Options{SQLiteSynchronous: sync})
			a := newBenchActor(b, db)
			ctx := a.ctx
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.Audit(ctx, a.event(i)) }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkAuditSequence measures the sequencer: rounds of 10,000 events (indices, tree hashes,
// a signed checkpoint) on a log that already holds the earlier rounds.
func BenchmarkAuditSequence(b *testing.B) {
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			sequenceRounds(b, sqltest.Open(b, d, sqlstore.Options{}))
		})
	}
}

// sequenceRounds records 10,000 events before each iteration (untimed) and times the round
// that sequences them, reporting events/s.
func sequenceRounds(b *testing.B, db *sqlstore.DB) {
	a := newBenchActor(b, db)
	ctx := a.ctx
	seq := benchSequencer(b, db)
	evs := make([]audit.Event, 10_000)
	for i := range evs {
		evs[i] = a.event(i)
	}
	var total int
	var spent time.Duration
	for b.Loop() {
		b.StopTimer()
		if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AuditMany(ctx, evs...) }); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		n, err := seq.Step(ctx)
		if err != nil || n != len(evs) {
			b.Fatalf("Step = %d, %v", n, err)
		}
		spent += time.Since(t0)
		total += n
	}
	b.ReportMetric(float64(total)/spent.Seconds(), "events/s")
}

// BenchmarkAuditSequencePartitions is BenchmarkAuditSequence on PostgreSQL with audit_events
// holding the migration's partitions (the current month, three ahead, the default one) and with 24
// more months before them, as two years of retention leave it: a round looks each event up in its
// own month (the queue carries its time), so the months it does not touch cost nothing.
func BenchmarkAuditSequencePartitions(b *testing.B) {
	for _, extra := range []int{0, 24} {
		b.Run(fmt.Sprintf("months+%d", extra), func(b *testing.B) {
			db := sqltest.Open(b, sqlstore.Postgres, sqlstore.Options{})
			for m := 1; m <= extra; m++ {
				if _, err := db.SQL().ExecContext(context.Background(), `SELECT audit_partition_create(
					date_trunc('month', now(), 'UTC') - make_interval(months => $1))`, m); err != nil {
					b.Fatal(err)
				}
			}
			sequenceRounds(b, db)
			parts, err := db.AuditPartitions(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(parts)), "partitions")
		})
	}
}

// BenchmarkAuditInclusionProof measures serving one inclusion proof from the database in a log
// of 20,000 entries.
func BenchmarkAuditInclusionProof(b *testing.B) {
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			ctx := context.Background()
			db := sqltest.Open(b, d, sqlstore.Options{})
			a := newBenchActor(b, db)
			ctx = a.ctx
			seq := benchSequencer(b, db)
			evs := make([]audit.Event, 10_000)
			for i := range evs {
				evs[i] = a.event(i)
			}
			for range 2 {
				if err := db.Update(ctx, func(tx *sqlstore.Tx) error { return tx.AuditMany(ctx, evs...) }); err != nil {
					b.Fatal(err)
				}
				if _, err := seq.Step(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := db.AuditInclusionProof(ctx, int64(i*7919%20_000), 20_000); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
