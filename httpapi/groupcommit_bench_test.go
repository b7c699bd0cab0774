package httpapi_test

import (
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"tutela/clocktest"
	"tutela/httpapi"
	"tutela/identity"
	"tutela/sqlstore"
	"tutela/sqlstore/sqltest"
)

// BenchmarkAuditedCallParallel measures 32 concurrent clients calling GET /v1/auth/me through
// the whole middleware chain (bearer verification, principal and session load, the response,
// and the call's api.request record, committed before the response completes), on SQLite and
// PostgreSQL. The record is what group commit (sqlstore.AuditCommit) shares between calls.
func BenchmarkAuditedCallParallel(b *testing.B) {
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			c := clocktest.New(time.Now().UTC())
			db := sqltest.Open(b, d, sqlstore.Options{Clock: c.Now})
			ids := newIdentity(b, db, c.Now, identity.Config{}, nil)
			srv := httpapi.New(httpapi.Deps{DB: db, Identity: ids, Clock: c.Now, RateRPS: 1e9, RateBurst: 1e9})
			e := &env{srv: checkedServer{Server: srv}, db: db, clock: c, ids: ids}
			e.seed(b, "acme", "admin@example.org", pw, "program_admin")
			g := e.login(b, "acme", "admin@example.org", pw, "")
			call := func() int {
				r := httptest.NewRequest("GET", "/v1/auth/me", nil)
				r.Header.Set("Authorization", "Bearer "+g.AccessToken)
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, r)
				return rec.Code
			}
			for range 64 { // warm: pools, keysets, caches
				if code := call(); code != 200 {
					b.Fatalf("warm-up call: %d", code)
				}
			}
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if code := call(); code != 200 {
						b.Errorf("GET /v1/auth/me: %d", code)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}
