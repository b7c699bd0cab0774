package auditship_test

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"tutela"
	"tutela/audit/receiver"
	"tutela/auditship"
	"tutela/sqlstore/sqltest"
)

// BenchmarkShip measures shipping a log of 5,000 events end to end: read from the store,
// proofs, JSON, HMAC, HTTP to a local receiver that verifies and fsyncs each 1,000-entry batch.
func BenchmarkShip(b *testing.B) {
	for _, d := range sqltest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			r := newRig(b, d, "")
			r.record(b, 5000)
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				b.StopTimer()
				store, err := receiver.Open(b.TempDir(), r.vkey, origin)
				if err != nil {
					b.Fatal(err)
				}
				srv := httptest.NewServer(&receiver.Handler{Store: store, Secret: r.secret, Now: r.clock.Now})
				dest, err := auditship.NewHTTPS(fmt.Sprintf("d%d", i), srv.URL, tutela.NewSecret(r.secret), srv.Client(), r.clock.Now)
				if err != nil {
					b.Fatal(err)
				}
				i++
				s, err := auditship.New(r.db, []auditship.Destination{dest}, auditship.Options{VerifierKey: r.vkey, Origin: origin,
					Owner: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if n, err := s.Step(ctx); err != nil || n != 5000 {
					b.Fatalf("Step = %d, %v", n, err)
				}
				b.StopTimer()
				srv.Close()
				store.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(i*5000)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
