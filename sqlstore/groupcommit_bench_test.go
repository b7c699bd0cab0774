package sqlstore_test

import (
	"runtime"
	"testing"

	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// BenchmarkAuditCommitParallel measures 32 concurrent callers each recording one API call's
// event (sealed under the acting user's person key, as a request's is) and waiting until it is
// durable: "update" gives each its own write transaction (what every /v1 call paid before group
// commit), "group" hands it to the store's group-commit writer (AuditCommit). events/s is the
// rate of records committed; tx/event the write transactions each cost.
func BenchmarkAuditCommitParallel(b *testing.B) {
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			db := sqltest.Open(b, d, sqlstore.Options{})
			a := newBenchActor(b, db)
			for _, mode := range []string{"update", "group"} {
				b.Run(mode, func(b *testing.B) {
					before := db.GroupCommitStats()
					b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						i := 0
						for pb.Next() {
							ev := a.event(i)
							i++
							var err error
							if mode == "update" {
								err = db.Update(a.ctx, func(tx *sqlstore.Tx) error { return tx.AuditMany(a.ctx, ev) })
							} else {
								err = db.AuditCommit(a.ctx, ev)
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
					after := db.GroupCommitStats()
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
					b.ReportMetric(float64(after.WriteTransactions-before.WriteTransactions)/float64(b.N), "tx/event")
				})
			}
		})
	}
}
