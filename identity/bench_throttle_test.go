package identity_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tutela"
	"tutela/identity"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// BenchmarkLoginOneAddressParallel is issue 20's contention case: 32 clients signing in at once
// from one address (a clinic behind NAT) on PostgreSQL, to many accounts and to one shared
// account, with a cheap hash so the store's share shows. It reports errors (any refused
// sign-in, e.g. 429 from the throttles) and lockwait/sample: the mean number of backends
// waiting on a row lock, sampled every millisecond from pg_stat_activity.
//
//	go test -run '^$' -bench LoginOneAddressParallel -benchtime 2000x ./identity/
func BenchmarkLoginOneAddressParallel(b *testing.B) {
	sqltest.RequirePostgres(b)
	for _, c := range []struct {
		name     string
		accounts int
	}{{"many_accounts", 64}, {"one_account", 1}} {
		b.Run(c.name, func(b *testing.B) {
			db := sqltest.Open(b, sqlstore.Postgres, sqlstore.Options{MaxOpenConns: 40})
			h := cheapHasher(b)
			emails := seedUsers(b, db, h, "clinic", c.accounts, benchPassword)
			s := benchService(b, db, h)
			ctx := context.Background()
			pw := tutela.NewSecret(benchPassword)
			const clients = 32
			b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))

			var waits, samples atomic.Int64
			stop := make(chan struct{})
			var sampler sync.WaitGroup
			sampler.Go(func() {
				t := time.NewTicker(time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
					}
					var n int64
					if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
						WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err == nil {
						waits.Add(n)
						samples.Add(1)
					}
				}
			})
			var errs, next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					email := emails[int(next.Add(1))%len(emails)]
					if _, err := s.Login(ctx, identity.LoginRequest{Tenant: "clinic", Email: email, Password: pw,
						IP: "192.0.2.80", UserAgent: "bench"}); err != nil {
						errs.Add(1)
					}
				}
			})
			b.StopTimer()
			close(stop)
			sampler.Wait()
			b.ReportMetric(float64(errs.Load()), "errors")
			if n := samples.Load(); n > 0 {
				b.ReportMetric(float64(waits.Load())/float64(n), "lockwait/sample")
			}
		})
	}
}

// seedUsers creates tenant slug with n active users whose password is pw.
func seedUsers(b *testing.B, db *sqlstore.DB, h interface {
	Hash(context.Context, string) (string, error)
}, slug string, n int, pw string) []string {
	b.Helper()
	ctx := context.Background()
	hash, err := h.Hash(ctx, pw)
	if err != nil {
		b.Fatal(err)
	}
	var emails []string
	err = db.Update(ctx, func(tx *sqlstore.Tx) error {
		tn := &tutela.Tenant{Slug: slug, Name: slug, Region: "eu"}
		if err := tx.CreateTenant(ctx, tn); err != nil {
			return err
		}
		for i := range n {
			u := &tutela.User{Email: fmt.Sprintf("staff%d@example.org", i), DisplayName: fmt.Sprintf("Staff %d", i)}
			if err := tx.Users(tn.ID).Create(ctx, u); err != nil {
				return err
			}
			if err := tx.Users(tn.ID).SetPasswordHash(ctx, u.ID, hash); err != nil {
				return err
			}
			emails = append(emails, u.Email)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return emails
}
