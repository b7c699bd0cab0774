package monitor_test

import (
	"testing"
	"time"

	"tutela/monitor"
	"tutela/sqlstore"
)

// BenchmarkStep: one monitoring round over 500 sequenced events (250 lockouts, 250 events no
// rule matches) with the built-in rules, on SQLite, commit included: what the monitor adds per
// 500 audit events.
func BenchmarkStep(b *testing.B) {
	e := newEnv(b, sqlstore.SQLite)
	m := monitor.New(e.db, monitor.Defaults(), nil, monitor.Options{Batch: 500})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e.update(b, func(tx *sqlstore.Tx) error {
			for range 250 {
				if err := tx.RecordSecurityEvent(ctx, &sqlstore.SecurityEvent{TenantID: e.a, UserID: e.ua, Kind: "account_locked"}); err != nil {
					return err
				}
				if err := tx.Record(ctx, "user.update", e.a, "user", e.ua, "", nil); err != nil {
					return err
				}
			}
			return nil
		})
		e.clock.Add(time.Minute)
		e.sequence(b)
		b.StartTimer()
		if n, _, err := m.Step(ctx); err != nil || n != 500 {
			b.Fatalf("%d events, %v", n, err)
		}
	}
}
